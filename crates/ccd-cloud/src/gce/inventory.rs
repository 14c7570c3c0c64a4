//! What ccd owns, found by its mark rather than through any status file:
//! the groups of every app in the region. Removal and the sweep for apps
//! whose spec is gone go by this, so a lost status file leaks nothing.

use std::collections::BTreeSet;

use google_cloud_compute_v1::model::InstanceGroupManager;

use super::GceCloud;
use super::call::{Failure, Outcome};
use super::marker::{self, name_of};
use crate::model::{APP_LABEL, GroupId};

/// The group as ccd's, when its description carries ccd's mark.
fn owned_group(g: &InstanceGroupManager, zone: Option<&str>) -> Option<GroupId> {
    let description = g.description.as_deref();
    let app = marker::word(description, APP_LABEL)?;
    marker::owned_by(description, app).then(|| GroupId {
        app: app.to_owned(),
        name: g.name.clone().unwrap_or_default(),
        zone: zone.map(str::to_owned),
    })
}

impl GceCloud {
    /// The region's zones, by name. Asked once; regions do not change.
    pub(crate) async fn region_zone_names(&self) -> Outcome<Vec<String>> {
        let zones = self
            .region_zones
            .get_or_try_init(|| async {
                let resource = format!("regions/{}", self.region());
                let get = self
                    .c
                    .regions
                    .get()
                    .set_project(self.project())
                    .set_region(self.region());
                let region = self.read(&resource, get.send()).await?;
                Ok::<Vec<String>, Failure>(
                    region.zones.iter().map(|z| name_of(z).to_owned()).collect(),
                )
            })
            .await?;
        Ok(zones.clone())
    }

    /// Every group ccd made in the region: regional ones, and zonal ones in
    /// the region's zones. One list per zone and one for the region.
    #[tracing::instrument(skip_all)]
    pub(crate) async fn list_groups_impl(&self) -> Outcome<Vec<GroupId>> {
        let mut out = Vec::new();
        let (p, r) = (self.project(), self.region());
        let mut token = String::new();
        loop {
            let list = self.c.rigm.list().set_project(p).set_region(r);
            let resource = format!("regions/{r}/instanceGroupManagers");
            let page = self
                .read(&resource, list.set_page_token(&token).send())
                .await?;
            out.extend(page.items.iter().filter_map(|g| owned_group(g, None)));
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => break,
            }
        }
        for zone in self.region_zone_names().await? {
            let mut token = String::new();
            loop {
                let list = self.c.igm.list().set_project(p).set_zone(&zone);
                let resource = format!("zones/{zone}/instanceGroupManagers");
                let page = self
                    .read(&resource, list.set_page_token(&token).send())
                    .await?;
                out.extend(
                    page.items
                        .iter()
                        .filter_map(|g| owned_group(g, Some(&zone))),
                );
                match page.next_page_token {
                    Some(next) if !next.is_empty() => token = next,
                    _ => break,
                }
            }
        }
        Ok(out)
    }

    /// Every app with a group in the region or a template made for it.
    #[tracing::instrument(skip_all)]
    pub(crate) async fn owned_apps_impl(&self) -> Outcome<BTreeSet<String>> {
        let mut apps: BTreeSet<String> = self
            .list_groups_impl()
            .await?
            .into_iter()
            .map(|g| g.app)
            .collect();
        let mut token = String::new();
        loop {
            let list = self.c.templates.list().set_project(self.project());
            let list = list.set_page_token(&token).send();
            let page = self.read("global/instanceTemplates", list).await?;
            for t in &page.items {
                let description = t.description.as_deref();
                if marker::word(description, marker::REGION_WORD) != Some(self.region()) {
                    continue;
                }
                if let Some(app) = marker::word(description, APP_LABEL)
                    && marker::owned_by(description, app)
                {
                    apps.insert(app.to_owned());
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(apps),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_groups_carrying_ccds_mark_are_ccds() {
        let with = |d: &str| {
            InstanceGroupManager::new()
                .set_name("web")
                .set_description(d)
        };
        let ours = with(&marker::description("web", &[]));
        assert_eq!(
            owned_group(&ours, Some("europe-west1-b")),
            Some(GroupId {
                app: "web".into(),
                name: "web".into(),
                zone: Some("europe-west1-b".into()),
            })
        );
        assert_eq!(owned_group(&with("ccd-app=web"), None), None);
        assert_eq!(owned_group(&with("made by hand"), None), None);
        assert_eq!(owned_group(&InstanceGroupManager::new(), None), None);
    }
}
