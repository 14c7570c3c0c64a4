//! What a pass reads before deciding: the members of every group the
//! status records (one call each; none before there is a status), and while
//! a canary takes requests, the load balancer's counts per group.

use ccd_cloud::{Cloud, CloudError};

use crate::decide::Observed;
use crate::plan::Plan;
use crate::shape::traffic_share;
use crate::status::{GroupRecord, GroupRole, Status};

pub async fn observe<C: Cloud>(
    cloud: &C,
    app: &str,
    plan: &Plan,
    recorded: &Status,
) -> Result<Observed, CloudError> {
    if *recorded == Status::default() {
        // No status at all: a new app (or one whose status was lost). Its
        // group is not looked for: this pass creates it insert-first, and one
        // that exists after all is read there, checked for ccd's mark and
        // corrected; the status records it before that, so the next pass
        // observes it.
        return Ok(Observed::default());
    }
    let mut groups: Vec<GroupRecord> = recorded.groups.clone();
    if !groups.iter().any(|g| g.role == GroupRole::Stable) {
        // Nothing recorded: the group the spec would have, if it exists.
        let id = plan.group.id();
        groups.push(GroupRecord {
            name: id.name.clone(),
            region: id.zone.is_none().then(|| cloud.region().to_owned()),
            zone: id.zone,
            role: GroupRole::Stable,
        });
    }
    let mut observed = Observed::default();
    for g in groups {
        let members = cloud.group_members(&g.id(app)).await?;
        observed.groups.push((g, members));
    }
    if let (Some(r), Some(lb)) = (&recorded.rollout, &plan.load_balancer) {
        let shifting =
            r.state.is_open() && r.strategy == ccd_spec::Strategy::Canary && traffic_share(r) > 0;
        if shifting {
            let since = r.step.ready.unwrap_or(r.step.started);
            match cloud.lb_traffic(&lb.id(), since.system()).await {
                Ok(t) => observed.traffic = Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "no request counts from the load balancer; the canary is judged on health alone")
                }
            }
        }
    }
    Ok(observed)
}
