//! Instance templates: rendered from a [`TemplateSpec`], created once under
//! their content-hash name, never changed.

use google_cloud_compute_v1::model::{
    AttachedDisk, AttachedDiskInitializeParams, InstanceProperties, InstanceTemplate, Metadata,
    NetworkInterface, ServiceAccount, Tags, metadata,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;

use super::boot::startup_script;
use super::call::{Failure, Kind};
use super::call::{Outcome, request_id};
use super::marker;
use super::secrets;
use super::{GceCloud, GceConfig};
use crate::model::{LocalRun, TemplateInfo, TemplateSpec, instance_tag};

/// Container-Optimized OS: Docker is there, the startup script runs the image.
const BOOT_IMAGE: &str = "projects/cos-cloud/global/images/family/cos-stable";
/// Scope of the instances' service account; IAM decides what it may do.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The metadata item the local cloud reads to run an instance; its shape is `ccd_wire`'s.
const LOCAL_RUN_KEY: &str = ccd_wire::local_run::METADATA_KEY;
/// COS's logging agent sends the containers' output (and the startup
/// script's) to Cloud Logging only when asked; Fluent Bit is the agent COS
/// ships now, the older one is going away.
const LOGGING: [(&str, &str); 2] = [
    ("google-logging-enabled", "true"),
    ("google-logging-use-fluentbit", "true"),
];
const REVISION_WORD: &str = "ccd-revision";

/// Single-quotes a word for bash.
pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The local cloud's `ccd-local-run` item; `PORT` and the app's env are given too.
fn local_run(spec: &TemplateSpec, run: &LocalRun) -> String {
    let wire = match run {
        LocalRun::Simulated => ccd_wire::LocalRun::simulated(),
        LocalRun::Process {
            command,
            args,
            env,
            stop_grace,
        } => {
            let mut all = spec.env.clone();
            all.insert("PORT".to_owned(), spec.port.to_string());
            all.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            ccd_wire::LocalRun {
                command: command.clone(),
                args: args.clone(),
                env: all,
                simulated: false,
                stop_grace_sec: Some(stop_grace.as_secs()),
            }
        }
    };
    wire.to_metadata_value()
}

/// The instance template `spec` names, as Compute Engine takes it.
fn render(config: &GceConfig, spec: &TemplateSpec, name: &str) -> InstanceTemplate {
    let script = startup_script(spec, &config.project, config.agent_image.as_deref());
    let mut items = vec![
        metadata::Items::new()
            .set_key("startup-script")
            .set_value(script),
    ];
    items.extend(
        LOGGING
            .iter()
            .map(|(k, v)| metadata::Items::new().set_key(*k).set_value(*v)),
    );
    if let Some(refs) = secrets::metadata_value(spec, &config.project) {
        items.push(
            metadata::Items::new()
                .set_key(secrets::METADATA_KEY)
                .set_value(refs),
        );
    }
    if let Some(agent) = &spec.agent {
        items.push(
            metadata::Items::new()
                .set_key(ccd_agent::METADATA_KEY)
                .set_value(serde_json::to_string(agent).unwrap_or_default()),
        );
    }
    if let Some(run) = &spec.local_run {
        items.push(
            metadata::Items::new()
                .set_key(LOCAL_RUN_KEY)
                .set_value(local_run(spec, run)),
        );
    }
    let mut nic = NetworkInterface::new().set_network(&config.network);
    if let Some(subnetwork) = &config.subnetwork {
        nic = nic.set_subnetwork(subnetwork);
    }
    let properties = InstanceProperties::new()
        .set_machine_type(&spec.machine_type)
        .set_tags(Tags::new().set_items([instance_tag(&spec.app)]))
        .set_labels(marker::labels(&spec.app, &spec.labels))
        .set_disks([AttachedDisk::new()
            .set_boot(true)
            .set_auto_delete(true)
            .set_initialize_params(
                AttachedDiskInitializeParams::new().set_source_image(BOOT_IMAGE),
            )])
        .set_network_interfaces([nic])
        .set_service_accounts([ServiceAccount::new()
            .set_email(spec.service_account.as_deref().unwrap_or("default"))
            .set_scopes([CLOUD_PLATFORM])])
        .set_metadata(Metadata::new().set_items(items));
    InstanceTemplate::new()
        .set_name(name)
        .set_description(marker::description(
            &spec.app,
            // Templates are global: the region says which controller's sweep
            // may take one for left over.
            &[
                (REVISION_WORD, &spec.revision),
                (marker::REGION_WORD, &config.region),
            ],
        ))
        .set_properties(properties)
}

impl GceCloud {
    fn render_template(&self, spec: &TemplateSpec, name: &str) -> InstanceTemplate {
        render(&self.config, spec, name)
    }

    #[tracing::instrument(skip_all, fields(app = %spec.app, template))]
    pub(crate) async fn ensure_template_impl(&self, spec: &TemplateSpec) -> Outcome<String> {
        let name = spec.name();
        tracing::Span::current().record("template", name.as_str());
        let resource = format!("global/instanceTemplates/{name}");
        secrets::check(spec).map_err(|m| Failure::new(Kind::Invalid, &resource, m))?;
        let get = || {
            self.c
                .templates
                .get()
                .set_project(self.project())
                .set_instance_template(&name)
                .send()
        };
        let insert = || {
            self.c
                .templates
                .insert()
                .set_project(self.project())
                .set_body(self.render_template(spec, &name))
                .set_request_id(request_id())
                .with_idempotency(true)
                .poller()
        };
        // Named by content: one of this name that is ccd's for the app is this one.
        if let Some(found) = self.find_or_insert(&resource, get, insert).await? {
            marker::check_owned(&resource, &spec.app, &found)?;
        }
        Ok(name)
    }

    #[tracing::instrument(skip_all, fields(app = %app))]
    pub(crate) async fn list_templates_impl(&self, app: &str) -> Outcome<Vec<TemplateInfo>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let list = self
                .c
                .templates
                .list()
                .set_project(self.project())
                .set_page_token(&token)
                .send();
            let page = self.read("global/instanceTemplates", list).await?;
            for t in page.items {
                if marker::owned_by(t.description.as_deref(), app) {
                    out.push(TemplateInfo {
                        revision: marker::word(t.description.as_deref(), REVISION_WORD)
                            .map(str::to_owned),
                        name: t.name.unwrap_or_default(),
                        created: t.creation_timestamp,
                    });
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(app = %app, template = %name))]
    pub(crate) async fn delete_template_impl(&self, app: &str, name: &str) -> Outcome<()> {
        let delete = self
            .c
            .templates
            .delete()
            .set_project(self.project())
            .set_instance_template(name)
            .set_request_id(request_id())
            .with_idempotency(true)
            .poller();
        self.remove(&format!("global/instanceTemplates/{name}"), delete)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> TemplateSpec {
        TemplateSpec {
            app: "web".into(),
            revision: "1".into(),
            image: "europe-docker.pkg.dev/p/r/web:1".into(),
            port: 8080,
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            machine_type: "e2-small".into(),
            local_run: None,
            labels: BTreeMap::new(),
            agent: None,
            open_ports: vec![],
            service_account: None,
        }
    }

    fn config() -> GceConfig {
        GceConfig {
            project: "acme".into(),
            ..GceConfig::default()
        }
    }

    fn metadata_of(t: &InstanceTemplate) -> BTreeMap<String, String> {
        let items = t
            .properties
            .as_ref()
            .and_then(|p| p.metadata.as_ref())
            .map(|m| m.items.clone())
            .unwrap_or_default();
        items
            .into_iter()
            .map(|i| (i.key.unwrap_or_default(), i.value.unwrap_or_default()))
            .collect()
    }

    fn interface(t: &InstanceTemplate) -> NetworkInterface {
        let nics = t
            .properties
            .as_ref()
            .map(|p| p.network_interfaces.clone())
            .unwrap_or_default();
        assert_eq!(nics.len(), 1, "{nics:?}");
        nics[0].clone()
    }

    #[test]
    fn container_output_goes_to_cloud_logging() {
        let m = metadata_of(&render(&config(), &spec(), "web-1"));
        assert_eq!(m["google-logging-enabled"], "true", "{m:?}");
        assert_eq!(m["google-logging-use-fluentbit"], "true", "{m:?}");
        assert!(m["startup-script"].contains("open_port 8080"), "{m:?}");
    }

    #[test]
    fn the_interface_names_the_configured_subnetwork() {
        let none = interface(&render(&config(), &spec(), "web-1"));
        assert_eq!(none.network.as_deref(), Some("global/networks/default"));
        assert_eq!(none.subnetwork, None);

        let custom = GceConfig {
            network: "global/networks/apps".into(),
            subnetwork: Some("regions/europe-west1/subnetworks/apps-ew1".into()),
            ..config()
        };
        let nic = interface(&render(&custom, &spec(), "web-1"));
        assert_eq!(nic.network.as_deref(), Some("global/networks/apps"));
        assert_eq!(
            nic.subnetwork.as_deref(),
            Some("regions/europe-west1/subnetworks/apps-ew1")
        );
    }

    #[test]
    fn instances_run_as_the_apps_service_account_when_it_names_one() {
        let email = |t: &InstanceTemplate| {
            t.properties
                .as_ref()
                .and_then(|p| p.service_accounts.first())
                .and_then(|a| a.email.clone())
        };
        let default = render(&config(), &spec(), "web-1");
        assert_eq!(email(&default).as_deref(), Some("default"));
        let own = TemplateSpec {
            service_account: Some("web@acme.iam.gserviceaccount.com".into()),
            ..spec()
        };
        assert_ne!(
            own.name(),
            spec().name(),
            "another account, another template"
        );
        let t = render(&config(), &own, "web-2");
        assert_eq!(
            email(&t).as_deref(),
            Some("web@acme.iam.gserviceaccount.com")
        );
    }
}
