//! What an app spec asks of the cloud, in ccd-cloud's model: one template
//! per revision, one group, one autohealing check, one load balancer if the
//! app is exposed, and firewall rules that admit only what the spec allows.

use std::path::PathBuf;
use std::time::Duration;

use ccd_agent::{AgentConfig, CheckConfig};
use ccd_cloud::identity::IdentitySpec;
use ccd_cloud::model::{
    Autohealing, FirewallSpec, GroupSpec, GroupVersion, HealthCheckSpec, HealthDefinition,
    LbBackend, LbKind, LoadBalancerSpec, LocalRun, NamedPort, OutlierDetection, Probe, RetryOn,
    RetryPolicy, SecretRef, Share, TemplateSpec, UpdatePolicy,
};
use ccd_spec::{App, FixedOrPercent, ProbeKind};

/// Where the app's instances run when the cloud is ccd's local cloud.
#[derive(Debug, Clone, Default)]
pub struct LocalTarget {
    /// Folders searched for a `run.command` given by bare name, before `PATH`
    /// (the folder of the `ccd` binary, so the sample app is found).
    pub search: Vec<PathBuf>,
}

/// Every cloud resource of one app revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub template: TemplateSpec,
    /// The account ccd keeps for the app, when the spec names none.
    pub identity: Option<IdentitySpec>,
    pub health_check: Option<HealthCheckSpec>,
    pub group: GroupSpec,
    pub load_balancer: Option<LoadBalancerSpec>,
    pub firewalls: Vec<FirewallSpec>,
}

pub const PORT_NAME: &str = "http";

impl Plan {
    /// Adds the services' credentials (`ENV` ← secret and version):
    /// references the template carries and the app's account is granted,
    /// as the spec's own secrets are.
    pub fn add_credentials(
        &mut self,
        credentials: &std::collections::BTreeMap<String, ccd_services::Credential>,
    ) {
        for (env, c) in credentials {
            self.template.secrets.insert(
                env.clone(),
                SecretRef {
                    secret: c.secret.clone(),
                    version: c.version.clone(),
                },
            );
            if let Some(identity) = &mut self.identity {
                identity.secrets.insert(c.secret.clone());
            }
        }
    }
}

/// `account`: the email of the account ccd keeps for the app on this cloud
/// ([`Cloud::app_account`](ccd_cloud::Cloud::app_account)), which the
/// instances run as unless the spec names one.
pub fn plan(app: &App, local: Option<&LocalTarget>, account: Option<String>) -> Plan {
    let name = app.metadata.name.clone();
    let s = &app.spec;
    let mut env = s.env.clone();
    env.insert("PORT".to_owned(), s.port.to_string());
    env.insert("CCD_APP".to_owned(), name.clone());
    env.insert("CCD_VERSION".to_owned(), s.version.clone());
    let local_run = local.map(|target| match &s.run {
        Some(run) => {
            let mut command = run.command.clone();
            if let Some(first) = command.first_mut() {
                *first = resolve(first, target);
            }
            LocalRun::Process {
                command,
                args: run.args.clone(),
                env: run.env.clone(),
                stop_grace: s.rollout.drain_time.as_std().max(Duration::from_secs(5)),
            }
        }
        None => LocalRun::Simulated,
    });
    let mut template = TemplateSpec {
        app: name.clone(),
        revision: s.version.clone(),
        image: s.image.clone(),
        port: s.port,
        env,
        // References only: the instance reads the values when it starts.
        secrets: s
            .secrets
            .iter()
            .map(|(env, r)| {
                let r = SecretRef {
                    secret: r.secret.clone(),
                    version: r.version.clone(),
                };
                (env.clone(), r)
            })
            .collect(),
        machine_type: s.machine.machine_type.clone(),
        local_run,
        labels: app.metadata.labels.clone(),
        agent: Some(agent_config(app)),
        // A health check on another port must pass the host firewall too.
        open_ports: match app.spec.probe() {
            ProbeKind::Http { port, .. } | ProbeKind::Tcp { port } if port != s.port => vec![port],
            _ => Vec::new(),
        },
        service_account: s.machine.service_account.clone(),
    };
    let identity = match (&s.machine.service_account, account) {
        (None, Some(email)) => {
            template.service_account = Some(email);
            Some(IdentitySpec {
                app: name.clone(),
                secrets: s.secrets.values().map(|r| r.secret.clone()).collect(),
                image: s.image.clone(),
                // The shape knows what runs: it says what may go.
                revoke: Default::default(),
            })
        }
        // The spec's own account: its grants are the user's business.
        _ => None,
    };
    let health = health_definition(app);
    // An exec probe runs on the instance (the agent's job); the cloud's
    // checks can only probe the network, so autohealing uses TCP then.
    let health_check = Some(HealthCheckSpec {
        app: name.clone(),
        name: format!("{name}-autoheal"),
        health: autoheal_definition(&health),
    });
    let group = GroupSpec {
        app: name.clone(),
        name: name.clone(),
        // One zone: a zonal group; several, or none (all of the region's):
        // a regional group spread over them.
        zones: s.machine.zones.clone(),
        versions: vec![GroupVersion {
            name: s.version.clone(),
            template: template.name(),
            target: None,
        }],
        target_size: Some(crate::steps::target_size(app)),
        size_range: crate::steps::size_range(app),
        update: UpdatePolicy {
            max_surge: share(s.rollout.max_surge),
            max_unavailable: share(s.rollout.max_unavailable),
        },
        autohealing: health_check.as_ref().map(|h| Autohealing {
            health_check: h.name.clone(),
            initial_delay: s.health.initial_delay.as_std(),
        }),
        named_port: Some(NamedPort {
            name: PORT_NAME.to_owned(),
            port: s.port,
        }),
    };
    let mut firewalls = vec![FirewallSpec::health_checks(&name, s.port)];
    // A check on another port than the app's must be let through too, or
    // every check fails and autohealing recreates instances in a loop.
    if let Probe::Http { port, .. } | Probe::Tcp { port } = health.probe
        && port != s.port
    {
        let mut rule = FirewallSpec::health_checks(&name, port);
        rule.name = format!("{name}-allow-health-port");
        firewalls.push(rule);
    }
    let load_balancer = if let Some(external) = &s.expose.external {
        if !external.allow_from.is_empty() {
            firewalls.push(FirewallSpec::allow_from(
                &name,
                "clients",
                s.port,
                external
                    .allow_from
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ));
        }
        Some(LbKind::External {
            domains: external.https.domains.clone(),
        })
    } else if let Some(internal) = &s.expose.internal {
        if !internal.allow_from.is_empty() {
            firewalls.push(FirewallSpec::allow_from(
                &name,
                "clients",
                s.port,
                internal
                    .allow_from
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ));
        }
        // The internal load balancer's proxies do not come from the
        // health-check ranges (on Compute Engine: the proxy-only subnet).
        firewalls.push(FirewallSpec::load_balancer_proxies(&name, s.port));
        Some(LbKind::Internal {
            port: internal.port.unwrap_or(s.port),
        })
    } else {
        None
    }
    .map(|kind| LoadBalancerSpec {
        app: name.clone(),
        name: name.clone(),
        backends: vec![LbBackend {
            group: group.id(),
            weight: 1,
        }],
        port_name: PORT_NAME.to_owned(),
        health: health.clone(),
        drain: s.rollout.drain_time.as_std(),
        kind,
        labels: app.metadata.labels.clone(),
        retry: Some(retry_policy(&health)),
        outlier: Some(outlier_detection(&health)),
    });
    Plan {
        template,
        identity,
        health_check,
        group,
        load_balancer,
        firewalls,
    }
}

fn share(v: FixedOrPercent) -> Share {
    match v {
        FixedOrPercent::Fixed(n) => Share::Fixed(n),
        FixedOrPercent::Percent(p) => Share::Percent(u32::from(p)),
    }
}

fn health_definition(app: &App) -> HealthDefinition {
    let h = &app.spec.health;
    let probe = match app.spec.probe() {
        ProbeKind::Http { path, port } => Probe::Http {
            path: path.to_owned(),
            port,
        },
        ProbeKind::Tcp { port } => Probe::Tcp { port },
        ProbeKind::Exec { .. } => Probe::Tcp {
            port: app.spec.port,
        },
    };
    HealthDefinition {
        probe,
        interval: h.interval.as_std(),
        timeout: h.timeout.as_std(),
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
    }
}

/// Compute's largest unhealthy threshold and check interval.
const MAX_UNHEALTHY_THRESHOLD: u32 = 10;
const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// The cloud's autohealing check: the spec's probe, but slower to call an
/// instance unhealthy than the agent is, so that a hung app is restarted by
/// its agent (seconds) before the cloud recreates the whole instance
/// (minutes on Compute Engine): the healing ladder's first rung comes
/// first. It waits for about twice the agent's worst time to notice (each
/// failed check may take its interval and its timeout) plus two intervals;
/// beyond Compute's ten checks, the interval grows instead. Becoming
/// healthy is as quick as the spec says.
fn autoheal_definition(health: &HealthDefinition) -> HealthDefinition {
    let agent_notices = (health.interval + health.timeout) * health.unhealthy_threshold;
    let wait = agent_notices * 2 + health.interval * 2;
    let max = MAX_UNHEALTHY_THRESHOLD;
    let interval = health
        .interval
        .max(Duration::from_secs(wait.as_secs().div_ceil(u64::from(max))))
        .min(MAX_INTERVAL.max(health.interval));
    let checks = u32::try_from(wait.as_millis().div_ceil(interval.as_millis().max(1)))
        .unwrap_or(max)
        .clamp(health.unhealthy_threshold, max);
    HealthDefinition {
        interval,
        unhealthy_threshold: checks,
        ..health.clone()
    }
}

/// How the load balancer retries a request that an instance failed: on
/// another instance, after no connection, a 502/503/504 or no answer within
/// the per-try timeout (Compute's `gateway-error` covers resets and the
/// timeout). Not plain 5xx: an app's own error is likely the same anywhere.
/// The per-try timeout is twice the health check's timeout, at least 5 s (a
/// request that slow, on an instance that answers its check in a second or
/// two, is more likely stuck than working) and at most 10 s, so that three
/// tries fit in the backend service's 30 s, which Compute applies to all
/// tries together. See docs/decisions.md.
fn retry_policy(health: &HealthDefinition) -> RetryPolicy {
    RetryPolicy {
        on: vec![
            RetryOn::ConnectFailure,
            RetryOn::GatewayError,
            RetryOn::RefusedStream,
        ],
        retries: 2,
        per_try_timeout: (health.timeout * 2)
            .clamp(Duration::from_secs(5), Duration::from_secs(10)),
    }
}

/// When the load balancer stops sending requests to an instance: as many
/// gateway failures (no connection, 502/503/504, per-try timeout) in a row as
/// the health check needs to call it unhealthy. It stays out until then, at
/// least 30 s (Compute's default); plain 5xx never eject (an app's own error
/// is likely everywhere); never more than half the instances at once.
fn outlier_detection(health: &HealthDefinition) -> OutlierDetection {
    let condemned = health.interval * health.unhealthy_threshold + health.timeout;
    OutlierDetection {
        consecutive_errors: 5,
        consecutive_gateway_failures: health.unhealthy_threshold.clamp(1, 10),
        enforcing_consecutive_errors: 0,
        enforcing_consecutive_gateway_failures: 100,
        interval: Duration::from_secs(1),
        base_ejection_time: condemned.max(Duration::from_secs(30)),
        max_ejection_percent: 50,
    }
}

/// What the agent on each instance checks: the spec's own probe, exec
/// included (the cloud's checks can only reach the network).
fn agent_config(app: &App) -> AgentConfig {
    let h = &app.spec.health;
    let check = match app.spec.probe() {
        ProbeKind::Http { path, port } => CheckConfig::Http {
            port,
            path: path.to_owned(),
        },
        ProbeKind::Tcp { port } => CheckConfig::Tcp { port },
        ProbeKind::Exec { command } => CheckConfig::Exec {
            command: command.to_vec(),
        },
    };
    AgentConfig {
        app: app.metadata.name.clone(),
        version: app.spec.version.clone(),
        check,
        interval: h.interval.as_std(),
        timeout: h.timeout.as_std(),
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        initial_delay: h.initial_delay.as_std(),
        cpu_pressure_percent: 90,
        memory_pressure_percent: 90,
        pressure_checks: 3,
    }
}

/// A bare command name found in the search folders becomes a full path;
/// otherwise it is left for `PATH`.
fn resolve(command: &str, target: &LocalTarget) -> String {
    if command.contains('/') {
        return command.to_owned();
    }
    target
        .search
        .iter()
        .map(|dir| dir.join(command))
        .find(|p| p.is_file())
        .map_or_else(|| command.to_owned(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = include_str!("../../../specs/examples/hello.yaml");

    #[test]
    fn an_unchanged_spec_plans_the_same_template() {
        let app = ccd_spec::parse(SPEC).unwrap();
        let a = plan(&app, None, None);
        let b = plan(&app, None, None);
        assert_eq!(a.template.name(), b.template.name());
        let changed =
            ccd_spec::parse(&SPEC.replace("LOG_LEVEL: info", "LOG_LEVEL: debug")).unwrap();
        assert_ne!(
            plan(&changed, None, None).template.name(),
            a.template.name(),
            "a new env is a new revision"
        );
    }

    #[test]
    fn the_agent_checks_what_the_spec_says_exec_included() {
        let worker = ccd_spec::parse(include_str!("../../../specs/examples/mailer.yaml")).unwrap();
        let p = plan(&worker, None, None);
        let agent = p.template.agent.as_ref().unwrap();
        assert_eq!(
            agent.check,
            CheckConfig::Exec {
                command: vec!["sh".into(), "-c".into(), "test -f /tmp/mailer-alive".into()]
            }
        );
        assert_eq!(
            (agent.app.as_str(), agent.interval, agent.timeout),
            ("mailer", Duration::from_secs(10), Duration::from_secs(5))
        );
        // The cloud's autohealing cannot run a command: it probes TCP.
        assert!(matches!(
            p.health_check.unwrap().health.probe,
            ccd_cloud::model::Probe::Tcp { .. }
        ));
        let web = plan(&ccd_spec::parse(SPEC).unwrap(), None, None);
        assert!(matches!(
            web.template.agent.unwrap().check,
            CheckConfig::Http { .. }
        ));
    }

    #[test]
    fn exposure_and_firewalls_follow_the_spec() {
        let app = ccd_spec::parse(SPEC).unwrap();
        let p = plan(&app, None, None);
        assert!(matches!(
            p.load_balancer.as_ref().unwrap().kind,
            LbKind::External { .. }
        ));
        assert_eq!(
            p.firewalls.len(),
            2,
            "health checkers and the spec's allowFrom"
        );
        assert_eq!(p.group.target_size, Some(2));
        assert_eq!(p.group.update.max_unavailable, Share::Fixed(0));
        let worker = ccd_spec::parse(include_str!("../../../specs/examples/mailer.yaml")).unwrap();
        let p = plan(&worker, None, None);
        assert!(p.load_balancer.is_none(), "nothing exposed unless asked");
        assert_eq!(p.firewalls.len(), 1);
        let internal =
            ccd_spec::parse(include_str!("../../../specs/examples/orders-api.yaml")).unwrap();
        let names: Vec<String> = plan(&internal, None, None)
            .firewalls
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert!(
            names.contains(&"orders-api-allow-proxies".to_owned()),
            "the internal load balancer's proxies are admitted: {names:?}"
        );
    }

    #[test]
    fn a_health_check_on_its_own_port_is_let_through_the_firewall_too() {
        let on_own_port = SPEC.replace("{path: /healthz}", "{path: /healthz, port: 9090}");
        let p = plan(&ccd_spec::parse(&on_own_port).unwrap(), None, None);
        let checkers: Vec<(String, u16)> = p
            .firewalls
            .iter()
            .filter(|f| f.sources.iter().any(|s| s == "35.191.0.0/16"))
            .map(|f| (f.name.clone(), f.port))
            .collect();
        assert_eq!(
            checkers,
            [
                ("hello-allow-health".to_owned(), 8080),
                ("hello-allow-health-port".to_owned(), 9090)
            ]
        );
        let p = plan(&ccd_spec::parse(SPEC).unwrap(), None, None);
        assert!(!p.firewalls.iter().any(|f| f.name.ends_with("health-port")));
    }

    #[test]
    fn every_load_balancer_retries_and_ejects_as_its_health_check_suggests() {
        let app = ccd_spec::parse(SPEC).unwrap();
        let lb = plan(&app, None, None).load_balancer.unwrap();
        // hello: timeout 1s, interval 2s, unhealthyThreshold 3.
        let retry = lb.retry.unwrap();
        assert_eq!(retry.per_try_timeout, Duration::from_secs(5), "the floor");
        assert!(
            retry.on.contains(&RetryOn::GatewayError) && !retry.on.contains(&RetryOn::ServerError)
        );
        let outlier = lb.outlier.unwrap();
        assert_eq!(outlier.consecutive_gateway_failures, 3);
        assert_eq!(outlier.base_ejection_time, Duration::from_secs(30));
        assert_eq!(outlier.enforcing_consecutive_errors, 0);

        let slow = ccd_spec::parse(
            &SPEC
                .replace("timeout: 1s", "timeout: 8s")
                .replace("interval: 2s", "interval: 20s"),
        )
        .unwrap();
        let lb = plan(&slow, None, None).load_balancer.unwrap();
        assert_eq!(
            lb.retry.unwrap().per_try_timeout,
            Duration::from_secs(10),
            "the cap"
        );
        assert_eq!(
            lb.outlier.unwrap().base_ejection_time,
            Duration::from_secs(68),
            "as long as the health check takes to condemn it"
        );
    }

    #[test]
    fn secret_references_reach_the_template_and_its_name() {
        let spec = include_str!("../../../specs/examples/orders-api.yaml");
        let app = ccd_spec::parse(spec).unwrap();
        let p = plan(&app, None, None);
        assert_eq!(
            p.template.secrets,
            std::collections::BTreeMap::from([(
                "API_TOKEN".to_owned(),
                SecretRef {
                    secret: "orders-api-token".to_owned(),
                    version: "latest".to_owned(),
                }
            )])
        );
        assert!(
            !p.template.env.contains_key("API_TOKEN"),
            "a secret is never a plain env"
        );
        let pinned = spec.replace(
            "{secret: orders-api-token}",
            "{secret: orders-api-token, version: 2}",
        );
        assert_ne!(pinned, spec);
        let pinned = plan(&ccd_spec::parse(&pinned).unwrap(), None, None);
        assert_eq!(pinned.template.secrets["API_TOKEN"].version, "2");
        assert_ne!(
            pinned.template.name(),
            p.template.name(),
            "a changed reference is a new revision"
        );
        assert_eq!(pinned.group.versions[0].template, pinned.template.name());
    }

    #[test]
    fn autohealing_waits_for_the_agent_to_restart_the_app_first() {
        let def = |interval, timeout, unhealthy| HealthDefinition {
            probe: Probe::Tcp { port: 8080 },
            interval: Duration::from_secs(interval),
            timeout: Duration::from_secs(timeout),
            healthy_threshold: 1,
            unhealthy_threshold: unhealthy,
        };
        for spec in [def(1, 1, 2), def(10, 5, 3), def(5, 5, 10), def(300, 60, 1)] {
            let cloud = autoheal_definition(&spec);
            let agent = (spec.interval + spec.timeout) * spec.unhealthy_threshold;
            let cloud_waits = cloud.interval * cloud.unhealthy_threshold;
            assert!(cloud_waits >= agent * 2, "{spec:?} -> {cloud:?}");
            assert!(cloud.unhealthy_threshold <= MAX_UNHEALTHY_THRESHOLD);
            assert_eq!(
                (cloud.probe, cloud.timeout, cloud.healthy_threshold),
                (spec.probe.clone(), spec.timeout, spec.healthy_threshold)
            );
        }
        assert_eq!(
            autoheal_definition(&def(1, 1, 2)).interval,
            Duration::from_secs(1)
        );
    }
}
