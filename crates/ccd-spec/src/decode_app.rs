//! Decoding of the spec's top level: identity, image, run, env, machine, scale.

use crate::decode::{Ctx, join};
use crate::decode_policy::{expose, health, rollout};
use crate::decode_services::services;
use crate::model::*;
use crate::names;
use crate::yaml::Node;

pub fn app(cx: &mut Ctx, root: &Node) -> Option<App> {
    let mut f = cx.fields(root, "")?;
    let api_version = f.required(cx, "apiVersion", "add `apiVersion: ccd/v1`", |cx, n, p| {
        let v = cx.string(n, p)?;
        if v == "ccd/v1" {
            Some(v)
        } else {
            cx.report(n.at, p, format!("{v:?} is not supported; use ccd/v1"));
            None
        }
    });
    let kind = f.required(cx, "kind", "add `kind: App`", |cx, n, p| {
        let v = cx.string(n, p)?;
        if v == "App" {
            Some(v)
        } else {
            cx.report(n.at, p, format!("{v:?} is not a kind ccd knows; use App"));
            None
        }
    });
    let metadata = f.required(cx, "metadata", "add `metadata: {name: my-app}`", metadata);
    let spec = f.required(
        cx,
        "spec",
        "add a `spec:` with at least image, version and port",
        spec,
    );
    f.finish(cx, &["apiVersion", "kind", "metadata", "spec"]);
    Some(App {
        api_version: api_version?,
        kind: kind?,
        metadata: metadata?,
        spec: spec?,
    })
}

fn metadata(cx: &mut Ctx, node: &Node, path: &str) -> Option<Metadata> {
    let mut f = cx.fields(node, path)?;
    let name = f.required(
        cx,
        "name",
        "add the app's name, e.g. `name: hello`",
        |cx, n, p| {
            let name = cx.string(n, p)?;
            names::app_name(&name)
                .map_err(|m| cx.report(n.at, p, m))
                .ok()?;
            Some(name)
        },
    );
    let labels = f.or(cx, "labels", Default::default(), |cx, n, p| {
        cx.map_of(n, p, names::label_key, |cx, n, p| {
            checked(cx, n, p, names::label_value)
        })
    });
    f.finish(cx, &["name", "labels"]);
    Some(Metadata {
        name: name?,
        labels: labels?,
    })
}

/// A string that must also pass `check`.
pub fn checked(
    cx: &mut Ctx,
    n: &Node,
    p: &str,
    check: fn(&str) -> Result<(), String>,
) -> Option<String> {
    let s = cx.string(n, p)?;
    check(&s).map_err(|m| cx.report(n.at, p, m)).ok()?;
    Some(s)
}

fn spec(cx: &mut Ctx, node: &Node, path: &str) -> Option<AppSpec> {
    let mut f = cx.fields(node, path)?;
    let image = f.required(
        cx,
        "image",
        "add the container image, e.g. `image: europe-docker.pkg.dev/acme/apps/hello:1.2.0`",
        |cx, n, p| checked(cx, n, p, names::image),
    );
    let version = f.required(
        cx,
        "version",
        "add the app's version, e.g. `version: \"1.2.0\"`",
        |cx, n, p| checked(cx, n, p, names::version),
    );
    let run = f.optional(cx, "run", local_run);
    let port = f.required(
        cx,
        "port",
        "add the port the app listens on, e.g. `port: 8080`",
        |cx, n, p| cx.u16(n, p, 1),
    );
    let env = f.or(cx, "env", Default::default(), |cx, n, p| {
        cx.map_of(n, p, names::env_name, |cx, n, p| cx.string(n, p))
    });
    let secrets = f.or(cx, "secrets", Default::default(), |cx, n, p| {
        cx.map_of(n, p, names::env_name, secret_ref)
    });
    let machine = f.or(cx, "machine", Machine::default(), machine);
    let replicas = f.or(cx, "replicas", Replicas::default(), replicas);
    let autoscaling = f.optional(cx, "autoscaling", autoscaling);
    let health = f.or(cx, "health", Health::default(), health);
    let rollout = f.or(cx, "rollout", Rollout::default(), rollout);
    let expose = f.or(cx, "expose", Expose::default(), expose);
    let services = f.or(cx, "services", Services::default(), services);
    let drift = f.or(cx, "drift", DriftMode::default(), |cx, n, p| {
        cx.choice(
            n,
            p,
            &[
                ("correct", DriftMode::Correct),
                ("warn", DriftMode::Warn),
                ("off", DriftMode::Off),
            ],
        )
    });
    let deletion_protection = f.or(cx, "deletionProtection", false, |cx, n, p| cx.boolean(n, p));
    let known = [
        "image",
        "version",
        "run",
        "port",
        "env",
        "secrets",
        "machine",
        "replicas",
        "autoscaling",
        "health",
        "rollout",
        "expose",
        "services",
        "drift",
        "deletionProtection",
    ];
    let spec_at = f.at;
    f.finish(cx, &known);

    let spec = AppSpec {
        image: image?,
        version: version?,
        run: run.ok()?,
        port: port?,
        env: env?,
        secrets: secrets?,
        machine: machine?,
        replicas: replicas?,
        autoscaling: autoscaling.ok()?,
        health: health?,
        rollout: rollout?,
        expose: expose?,
        services: services?,
        drift: drift?,
        deletion_protection: deletion_protection?,
    };
    cross_checks(cx, &spec, spec_at, path);
    Some(spec)
}

/// Rules that span several fields, checked once each field is valid on its own.
fn cross_checks(cx: &mut Ctx, spec: &AppSpec, at: crate::problem::Location, path: &str) {
    for name in spec.env.keys().filter(|k| spec.secrets.contains_key(*k)) {
        cx.report(
            at,
            &join(path, "secrets"),
            format!("{name} is both in env and in secrets; keep one"),
        );
    }
    // The variables the services deliver are theirs alone.
    for (service, variables) in spec.services.variables() {
        for name in variables
            .iter()
            .filter(|n| spec.env.contains_key(**n) || spec.secrets.contains_key(**n))
        {
            cx.report(
                at,
                &join(path, &format!("services.{service}")),
                format!("delivers {name}, which env or secrets also sets; remove it there"),
            );
        }
    }
    if spec.rollout.strategy == crate::model::Strategy::Canary
        && spec.expose.external.is_none()
        && spec.expose.internal.is_none()
    {
        cx.report(
            at,
            &join(path, "rollout.strategy"),
            "canary shifts a share of the requests through the load balancer, and this app has none; \
             add `expose` or use `strategy: blueGreen`",
        );
    }
    if spec.autoscaling.is_some() && spec.replicas.min == spec.replicas.max {
        cx.report(
            at,
            &join(path, "autoscaling"),
            format!(
                "has no room to act: replicas.min and replicas.max are both {}; raise replicas.max",
                spec.replicas.min
            ),
        );
    }
}

fn local_run(cx: &mut Ctx, node: &Node, path: &str) -> Option<LocalRun> {
    let mut f = cx.fields(node, path)?;
    let command = f.required(
        cx,
        "command",
        "add the program to start, e.g. `command: [my-server]`",
        non_empty_strings,
    );
    let args = f.or(cx, "args", vec![], |cx, n, p| cx.strings(n, p));
    let env = f.or(cx, "env", Default::default(), |cx, n, p| {
        cx.map_of(n, p, names::env_name, |cx, n, p| cx.string(n, p))
    });
    f.finish(cx, &["command", "args", "env"]);
    Some(LocalRun {
        command: command?,
        args: args?,
        env: env?,
    })
}

pub fn non_empty_strings(cx: &mut Ctx, n: &Node, p: &str) -> Option<Vec<String>> {
    let items = cx.strings(n, p)?;
    if items.first().is_none_or(|s| s.is_empty()) {
        cx.report(
            n.at,
            p,
            "must name a program; write e.g. [my-server, --flag]",
        );
        return None;
    }
    Some(items)
}

fn secret_ref(cx: &mut Ctx, node: &Node, path: &str) -> Option<SecretRef> {
    let mut f = cx.fields(node, path)?;
    let secret = f.required(
        cx,
        "secret",
        "name the Secret Manager secret, e.g. `secret: db-password`",
        |cx, n, p| checked(cx, n, p, names::secret_name),
    );
    let version = f.or(cx, "version", "latest".to_owned(), |cx, n, p| {
        // Plain numbers are natural here (`version: 3`), so accept them as text.
        let text = match &n.value {
            crate::yaml::Value::Scalar { text, .. } => text.clone(),
            _ => cx.string(n, p)?,
        };
        names::secret_version(&text)
            .map_err(|m| cx.report(n.at, p, m))
            .ok()?;
        Some(text)
    });
    f.finish(cx, &["secret", "version"]);
    Some(SecretRef {
        secret: secret?,
        version: version?,
    })
}

fn machine(cx: &mut Ctx, node: &Node, path: &str) -> Option<Machine> {
    let mut f = cx.fields(node, path)?;
    let machine_type = f.or(cx, "type", Machine::default().machine_type, |cx, n, p| {
        checked(cx, n, p, names::machine_type)
    });
    let region = f.or(cx, "region", Machine::default().region, |cx, n, p| {
        checked(cx, n, p, names::region)
    });
    let zones = f.or(cx, "zones", vec![], |cx, n, p| {
        cx.list(n, p, |cx, n, p| {
            Some((cx.string(n, p)?, n.at, p.to_owned()))
        })
    });
    let service_account = f.optional(cx, "serviceAccount", |cx, n, p| {
        checked(cx, n, p, names::service_account)
    });
    f.finish(cx, &["type", "region", "zones", "serviceAccount"]);
    let region = region?;
    let mut out = Vec::new();
    for (zone, at, p) in zones? {
        let in_region = zone
            .strip_prefix(region.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|z| z.len() == 1 && z.chars().all(|c| c.is_ascii_lowercase()));
        if !in_region {
            cx.report(
                at,
                &p,
                format!("{zone:?} is not a zone of {region}; write e.g. {region}-b"),
            );
        } else if out.contains(&zone) {
            cx.report(at, &p, format!("{zone} is listed twice; keep one"));
        } else {
            out.push(zone);
        }
    }
    Some(Machine {
        machine_type: machine_type?,
        region,
        zones: out,
        service_account: service_account.ok()?,
    })
}

fn replicas(cx: &mut Ctx, node: &Node, path: &str) -> Option<Replicas> {
    let mut f = cx.fields(node, path)?;
    let min = f.or(cx, "min", Replicas::default().min, |cx, n, p| {
        cx.u32(n, p, 0, 1000)
    });
    let max_node = f.take("max");
    let at = f.at;
    f.finish(cx, &["min", "max"]);
    let min = min?;
    let max = match max_node {
        None => min.max(1),
        Some(n) => cx.u32(n, &join(path, "max"), 1, 1000)?,
    };
    if min > max {
        let at = max_node.map_or(at, |n| n.at);
        cx.report(
            at,
            &join(path, "max"),
            format!("{max} is below replicas.min ({min}); raise max or lower min"),
        );
        return None;
    }
    Some(Replicas { min, max })
}

fn autoscaling(cx: &mut Ctx, node: &Node, path: &str) -> Option<Autoscaling> {
    let mut f = cx.fields(node, path)?;
    let cpu = f.optional(cx, "cpuUtilization", |cx, n, p| cx.float(n, p, 0.01, 1.0));
    let rps = f.optional(cx, "requestsPerSecond", |cx, n, p| cx.float(n, p, 0.1, 1e9));
    let stabilization = f.or(
        cx,
        "scaleInStabilization",
        Duration::from_secs(600),
        |cx, n, p| cx.duration(n, p),
    );
    let at = f.at;
    f.finish(
        cx,
        &[
            "cpuUtilization",
            "requestsPerSecond",
            "scaleInStabilization",
        ],
    );
    let (cpu, rps) = (cpu.ok()?, rps.ok()?);
    if cpu.is_none() && rps.is_none() {
        cx.report(at, path, "names no target; set cpuUtilization (e.g. 0.6) or requestsPerSecond (e.g. 100), or remove autoscaling");
        return None;
    }
    Some(Autoscaling {
        cpu_utilization: cpu,
        requests_per_second: rps,
        scale_in_stabilization: stabilization?,
    })
}

use crate::values::Duration;
