//! Decoding of how the app is checked, rolled out, exposed and served.

use std::collections::HashSet;

use crate::decode::{Ctx, join};
use crate::decode_app::{checked, non_empty_strings};
use crate::model::*;
use crate::names;
use crate::values::{Cidr, Duration};
use crate::yaml::Node;

pub fn health(cx: &mut Ctx, node: &Node, path: &str) -> Option<Health> {
    let d = Health::default();
    let mut f = cx.fields(node, path)?;
    let http = f.optional(cx, "http", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let probe_path = f.required(
            cx,
            "path",
            "add the path to probe, e.g. `path: /healthz`",
            |cx, n, p| {
                let s = cx.string(n, p)?;
                if !s.starts_with('/') || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    cx.report(
                        n.at,
                        p,
                        format!(
                            "{s:?} is not a URL path; write it starting with '/', e.g. /healthz"
                        ),
                    );
                    return None;
                }
                Some(s)
            },
        );
        let port = f.optional(cx, "port", |cx, n, p| cx.u16(n, p, 1));
        f.finish(cx, &["path", "port"]);
        Some(HttpProbe {
            path: probe_path?,
            port: port.ok()?,
        })
    });
    let tcp = f.optional(cx, "tcp", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let port = f.optional(cx, "port", |cx, n, p| cx.u16(n, p, 1));
        f.finish(cx, &["port"]);
        Some(TcpProbe { port: port.ok()? })
    });
    let exec = f.optional(cx, "exec", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let command = f.required(
            cx,
            "command",
            "add the command to run, e.g. `command: [/bin/check]`",
            non_empty_strings,
        );
        f.finish(cx, &["command"]);
        Some(ExecProbe { command: command? })
    });
    let interval = f.or(cx, "interval", d.interval, |cx, n, p| {
        at_least(cx, n, p, Duration::from_secs(1))
    });
    let timeout_node = f.take("timeout");
    let healthy = f.or(cx, "healthyThreshold", d.healthy_threshold, |cx, n, p| {
        cx.u32(n, p, 1, 10)
    });
    let unhealthy = f.or(
        cx,
        "unhealthyThreshold",
        d.unhealthy_threshold,
        |cx, n, p| cx.u32(n, p, 1, 10),
    );
    let initial_delay = f.or(cx, "initialDelay", d.initial_delay, |cx, n, p| {
        cx.duration(n, p)
    });
    let at = f.at;
    f.finish(
        cx,
        &[
            "http",
            "tcp",
            "exec",
            "interval",
            "timeout",
            "healthyThreshold",
            "unhealthyThreshold",
            "initialDelay",
        ],
    );

    let interval = interval?;
    // Checked before the probes so that every mistake here is reported at once.
    let timeout = match timeout_node {
        None => Some(d.timeout.min(interval)),
        Some(n) => {
            let p = join(path, "timeout");
            at_least(cx, n, &p, Duration::from_secs(1)).filter(|t| {
                let fits = *t <= interval;
                if !fits {
                    cx.report(n.at, &p, format!("{t} is longer than the interval ({interval}); make it at most the interval"));
                }
                fits
            })
        }
    };
    let (http, tcp, exec) = (http.ok()?, tcp.ok()?, exec.ok()?);
    let probes =
        usize::from(http.is_some()) + usize::from(tcp.is_some()) + usize::from(exec.is_some());
    if probes > 1 {
        cx.report(
            at,
            path,
            "names more than one probe; keep exactly one of http, tcp or exec",
        );
        return None;
    }
    Some(Health {
        http,
        tcp,
        exec,
        interval,
        timeout: timeout?,
        healthy_threshold: healthy?,
        unhealthy_threshold: unhealthy?,
        initial_delay: initial_delay?,
    })
}

/// Compute Engine health checks count whole seconds, at least one.
fn at_least(cx: &mut Ctx, n: &Node, p: &str, min: Duration) -> Option<Duration> {
    let d = cx.duration(n, p)?;
    if d < min || d.as_std().subsec_millis() != 0 {
        cx.report(
            n.at,
            p,
            format!("{d} must be a whole number of seconds, at least {min}"),
        );
        return None;
    }
    Some(d)
}

pub fn rollout(cx: &mut Ctx, node: &Node, path: &str) -> Option<Rollout> {
    let d = Rollout::default();
    let mut f = cx.fields(node, path)?;
    let strategy = f.or(cx, "strategy", d.strategy, |cx, n, p| {
        let options = [
            ("rolling", Strategy::Rolling),
            ("blueGreen", Strategy::BlueGreen),
            ("canary", Strategy::Canary),
        ];
        cx.choice(n, p, &options)
    });
    let max_surge = f.or(cx, "maxSurge", d.max_surge, |cx, n, p| {
        cx.fixed_or_percent(n, p)
    });
    let max_unavailable = f.or(cx, "maxUnavailable", d.max_unavailable, |cx, n, p| {
        cx.fixed_or_percent(n, p)
    });
    let steps_node = f.take("steps");
    let deadline = f.or(cx, "deadline", d.deadline, |cx, n, p| cx.duration(n, p));
    let drain_time = f.or(cx, "drainTime", d.drain_time, |cx, n, p| {
        let t = cx.duration(n, p)?;
        if t > Duration::from_secs(3600) {
            cx.report(
                n.at,
                p,
                format!("{t} is longer than an hour; use at most 1h"),
            );
            return None;
        }
        Some(t)
    });
    let keep_warm = f.or(cx, "keepWarm", d.keep_warm, |cx, n, p| {
        let t = cx.duration(n, p)?;
        if t > Duration::from_secs(24 * 3600) {
            cx.report(
                n.at,
                p,
                format!("{t} is longer than a day; use at most 24h"),
            );
            return None;
        }
        Some(t)
    });
    let at = f.at;
    f.finish(
        cx,
        &[
            "strategy",
            "maxSurge",
            "maxUnavailable",
            "steps",
            "deadline",
            "drainTime",
            "keepWarm",
        ],
    );

    let (strategy, max_surge, max_unavailable) = (strategy?, max_surge?, max_unavailable?);
    let steps_path = join(path, "steps");
    let steps = match (steps_node, strategy) {
        (None, Strategy::Canary) => {
            cx.report(at, &steps_path, "is required with strategy canary; e.g. `steps: [{weight: 10, pause: 5m}, {weight: 50, pause: 10m}]`");
            return None;
        }
        (None, _) => vec![],
        (Some(n), Strategy::Canary) => canary_steps(cx, n, &steps_path)?,
        (Some(n), _) => {
            cx.report(
                n.at,
                &steps_path,
                "is only used with `strategy: canary`; remove it or change the strategy",
            );
            return None;
        }
    };
    if max_surge.resolve(100) == 0 && max_unavailable.resolve(100) == 0 {
        cx.report(at, path, "maxSurge and maxUnavailable are both 0, so no instance could ever be replaced; set maxSurge to 1");
        return None;
    }
    Some(Rollout {
        strategy,
        max_surge,
        max_unavailable,
        steps,
        deadline: deadline?,
        drain_time: drain_time?,
        keep_warm: keep_warm?,
    })
}

fn canary_steps(cx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<CanaryStep>> {
    let steps = cx.list(node, path, |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let weight = f.required(
            cx,
            "weight",
            "add the percent of traffic, e.g. `weight: 10`",
            |cx, n, p| cx.u32(n, p, 1, 100),
        );
        let pause = f.required(
            cx,
            "pause",
            "add how long to hold the step, e.g. `pause: 5m`",
            |cx, n, p| cx.duration(n, p),
        );
        f.finish(cx, &["weight", "pause"]);
        Some((
            CanaryStep {
                weight: u8::try_from(weight?).ok()?,
                pause: pause?,
            },
            n.at,
        ))
    })?;
    if steps.is_empty() {
        cx.report(
            node.at,
            path,
            "is empty; list at least one step, e.g. [{weight: 10, pause: 5m}]",
        );
        return None;
    }
    for pair in steps.windows(2) {
        if pair[1].0.weight <= pair[0].0.weight {
            cx.report(
                pair[1].1,
                path,
                format!(
                    "weights must rise step by step; {} follows {}",
                    pair[1].0.weight, pair[0].0.weight
                ),
            );
            return None;
        }
    }
    Some(steps.into_iter().map(|(s, _)| s).collect())
}

pub fn expose(cx: &mut Ctx, node: &Node, path: &str) -> Option<Expose> {
    let mut f = cx.fields(node, path)?;
    let external = f.optional(cx, "external", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let at = f.at;
        let https = f.optional(cx, "https", |cx, n, p| {
            let mut f = cx.fields(n, p)?;
            let at = f.at;
            let domains_node = f.take("domains");
            f.finish(cx, &["domains"]);
            let p = join(p, "domains");
            let domains = domains_node.and_then(|n| cx.list(n, &p, |cx, n, p| checked(cx, n, p, names::domain)));
            match (domains_node, domains) {
                (_, Some(d)) if !d.is_empty() => Some(Https { domains: d }),
                (Some(_), None) => None, // each bad domain is already reported
                (node, _) => {
                    let at = node.map_or(at, |n| n.at);
                    cx.report(at, &p, "an HTTPS exposure needs its domains for the certificate; add e.g. `domains: [app.example.com]`");
                    None
                }
            }
        });
        let allow_from = f.or(cx, "allowFrom", vec![], allow_from);
        f.finish(cx, &["https", "allowFrom"]);
        let https = match https.ok()? {
            Some(h) => h,
            None => {
                cx.report(at, &join(p, "https"), "is required: external traffic is served over HTTPS only; add `https: {domains: [app.example.com]}`");
                return None;
            }
        };
        Some(ExternalExposure { https, allow_from: allow_from? })
    });
    let internal = f.optional(cx, "internal", |cx, n, p| {
        let mut f = cx.fields(n, p)?;
        let port = f.optional(cx, "port", |cx, n, p| cx.u16(n, p, 1));
        let allow_from = f.or(cx, "allowFrom", vec![], allow_from);
        f.finish(cx, &["port", "allowFrom"]);
        Some(InternalExposure {
            port: port.ok()?,
            allow_from: allow_from?,
        })
    });
    let at = f.at;
    f.finish(cx, &["external", "internal"]);
    let (external, internal) = (external.ok()?, internal.ok()?);
    if external.is_some() && internal.is_some() {
        cx.report(
            at,
            path,
            "names both external and internal; an app has one load balancer, keep one",
        );
        return None;
    }
    Some(Expose { external, internal })
}

fn allow_from(cx: &mut Ctx, n: &Node, p: &str) -> Option<Vec<Cidr>> {
    let mut ranges = cx.list(n, p, |cx, n, p| cx.cidr(n, p))?;
    // A repeat is dropped, the first of each kept in order; a set makes that
    // linear (tens of thousands of ranges fit in a spec).
    let mut seen = HashSet::with_capacity(ranges.len());
    ranges.retain(|r| seen.insert(*r));
    Some(ranges)
}
