//! What a user sees for common mistakes: the field, the place, and a fix.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the first surprise

use ccd_spec::{FixedOrPercent, ProbeKind, Strategy, parse};

const MINIMAL: &str = "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 8080\n";

/// The problems as `LINE:COL: field: message` lines.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => vec![],
        Err(p) => p.0.iter().map(ToString::to_string).collect(),
    }
}

fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn a_minimal_spec_gets_safe_defaults() {
    let app = parse(MINIMAL).unwrap();
    let s = &app.spec;
    assert_eq!((s.replicas.min, s.replicas.max), (2, 2));
    assert_eq!(s.rollout.strategy, Strategy::Rolling);
    assert_eq!(s.rollout.max_unavailable, FixedOrPercent::Fixed(0));
    assert_eq!(s.rollout.max_surge, FixedOrPercent::Fixed(1));
    assert!(
        s.expose.external.is_none() && s.expose.internal.is_none(),
        "nothing exposed unless asked"
    );
    assert_eq!(s.probe(), ProbeKind::Tcp { port: 8080 });
    assert!(s.health.timeout <= s.health.interval);
}

#[test]
fn each_mistake_is_reported_at_its_place() {
    let text = "apiVersion: ccd/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: img:1\n  version: \"1\"\n  port: 80800\n  replicas: {min: 3, max: 2}\n  health: {http: {path: healthz}, interval: 5s, timeout: 10s}\n  rollout: {strategy: canary}\n  expose: {internal: {allowFrom: [10.0.0.0/33]}}\n  drift: fix\n";
    assert_eq!(
        problems(text),
        [
            "7:9: spec.port: 80800 is out of range; use 1 to 65535",
            "8:27: spec.replicas.max: 2 is below replicas.min (3); raise max or lower min",
            "9:25: spec.health.http.path: \"healthz\" is not a URL path; write it starting with '/', e.g. /healthz",
            "9:58: spec.health.timeout: 10s is longer than the interval (5s); make it at most the interval",
            "10:12: spec.rollout.steps: is required with strategy canary; e.g. `steps: [{weight: 10, pause: 5m}, {weight: 50, pause: 10m}]`",
            "11:35: spec.expose.internal.allowFrom[0]: prefix length \"33\" must be 0 to 32; write an address range like 10.0.0.0/8, 203.0.113.7/32 or 0.0.0.0/0",
            "12:10: spec.drift: \"fix\" is not one of correct, warn, off",
        ]
    );
}

#[test]
fn missing_required_fields_say_what_to_add() {
    let found = problems("apiVersion: ccd/v1\nkind: App\nmetadata: {}\nspec: {port: 1}\n");
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("3:11: metadata.name: is required; add the app's name")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.contains("spec.image: is required")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("spec.version: is required")),
        "{found:?}"
    );
}

#[test]
fn https_needs_domains_and_external_needs_https() {
    let no_domains = problems(&with("  expose: {external: {https: {domains: []}}}\n"));
    assert!(
        no_domains[0]
            .contains("spec.expose.external.https.domains: an HTTPS exposure needs its domains"),
        "{no_domains:?}"
    );
    let no_https = problems(&with("  expose: {external: {allowFrom: [0.0.0.0/0]}}\n"));
    assert!(
        no_https[0].contains("spec.expose.external.https: is required"),
        "{no_https:?}"
    );
    let both = problems(&with(
        "  expose: {internal: {}, external: {https: {domains: [a.example.com]}}}\n",
    ));
    assert!(
        both[0].contains("names both external and internal"),
        "{both:?}"
    );
}

#[test]
fn yaml_typing_pitfalls_are_explained() {
    let found = problems(&MINIMAL.replace("version: \"1\"", "version: 1.10"));
    assert_eq!(
        found,
        ["6:12: spec.version: expected a string, found a decimal number; put it in quotes"]
    );
    let found = problems(&MINIMAL.replace("port: 8080", "port: \"8080\""));
    assert_eq!(
        found,
        ["7:9: spec.port: expected a number, found a string; remove the quotes"]
    );
    let found = problems(&with("  env: {DEBUG: true}\n"));
    assert_eq!(
        found,
        ["8:16: spec.env.DEBUG: expected a string, found a boolean; put it in quotes"]
    );
}

#[test]
fn unknown_and_duplicate_fields() {
    let found = problems(&with("  replica: {min: 1}\n  port: 9090\n"));
    assert_eq!(
        found,
        [
            "8:3: spec.replica: unknown field; did you mean replicas?",
            "9:3: spec.port: is given twice; keep one"
        ]
    );
}

#[test]
fn rollout_rules() {
    let stuck = problems(&with("  rollout: {maxSurge: 0, maxUnavailable: 0}\n"));
    assert!(
        stuck[0].contains("no instance could ever be replaced"),
        "{stuck:?}"
    );
    let falling = problems(&with(
        "  rollout: {strategy: canary, steps: [{weight: 50, pause: 1m}, {weight: 10, pause: 1m}]}\n",
    ));
    assert!(falling[0].contains("weights must rise"), "{falling:?}");
    let misplaced = problems(&with("  rollout: {steps: [{weight: 50, pause: 1m}]}\n"));
    assert!(
        misplaced[0].contains("only used with `strategy: canary`"),
        "{misplaced:?}"
    );
    let pct = parse(&with("  rollout: {maxSurge: \"25%\"}\n")).unwrap();
    assert_eq!(pct.spec.rollout.max_surge, FixedOrPercent::Percent(25));
    let over = problems(&with(
        "  rollout: {strategy: canary, steps: [{weight: 10, pause: 1m}, {weight: 120, pause: 1m}]}\n",
    ));
    assert!(over[0].contains("spec.rollout.steps"), "{over:?}");
    let unexposed = problems(&with(
        "  rollout: {strategy: canary, steps: [{weight: 10, pause: 1m}]}\n",
    ));
    assert!(
        unexposed[0].contains("spec.rollout.strategy: canary shifts a share of the requests")
            && unexposed[0].contains("add `expose`"),
        "{unexposed:?}"
    );
    let warm = parse(&with("  rollout: {strategy: blueGreen, keepWarm: 90s}\n")).unwrap();
    assert_eq!(warm.spec.rollout.keep_warm.as_std().as_secs(), 90);
    let too_warm = problems(&with("  rollout: {keepWarm: 25h}\n"));
    assert!(too_warm[0].contains("longer than a day"), "{too_warm:?}");
}

#[test]
fn secrets_hold_names_never_values() {
    let app = parse(&with("  secrets: {DB_PASSWORD: {secret: db-password}}\n")).unwrap();
    assert_eq!(app.spec.secrets["DB_PASSWORD"].version, "latest");
    let clash = problems(&with(
        "  env: {TOKEN: x}\n  secrets: {TOKEN: {secret: t}}\n",
    ));
    assert!(
        clash[0].contains("TOKEN is both in env and in secrets"),
        "{clash:?}"
    );
    let reserved = problems(&with("  env: {PORT: \"1\"}\n"));
    assert!(reserved[0].contains("PORT is set by ccd"), "{reserved:?}");
    let delivered = problems(&with(
        "  secrets: {REDIS_URL: {secret: r}}\n  services: {cache: {}}\n",
    ));
    assert!(
        delivered[0]
            .contains("spec.services.cache: delivers REDIS_URL, which env or secrets also sets"),
        "{delivered:?}"
    );
}

#[test]
fn zones_must_belong_to_the_region() {
    let found = problems(&with(
        "  machine: {region: europe-west1, zones: [europe-west1-b, us-east1-c]}\n",
    ));
    assert_eq!(
        found,
        [
            "8:59: spec.machine.zones[1]: \"us-east1-c\" is not a zone of europe-west1; write e.g. europe-west1-b"
        ]
    );
}

#[test]
fn not_yaml_or_not_utf8() {
    let found = problems("apiVersion: [ccd\n");
    assert!(found[0].contains("this is not valid YAML"), "{found:?}");
    let err = ccd_spec::parse_bytes(b"apiVersion: ccd/v1\nkind: \xff\n").unwrap_err();
    assert_eq!(
        err.0[0].to_string(),
        "2:7: the file is not UTF-8 text; save it as UTF-8"
    );
    let found = problems("- a\n- b\n");
    assert!(
        found[0].contains("expected a mapping, found a list"),
        "{found:?}"
    );
}
