//! What a client of a running instance sees.

// Helpers outside #[test] fns panic on setup failure on purpose: that is a
// failed test, not a bug to handle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"))
}

#[test]
fn root_reports_identity_from_env() {
    let app = App::start(&[
        ("CCD_APP", "shop"),
        ("CCD_VERSION", "v7"),
        ("CCD_INSTANCE", "shop-2"),
    ]);
    let resp = app.get("/");
    assert_eq!(resp.status, 200, "{resp:?}");
    let body = json(&resp.body);
    assert_eq!(body["app"], "shop");
    assert_eq!(body["version"], "v7");
    assert_eq!(body["instance"], "shop-2");
    assert_eq!(body["pid"], app.pid());
}

#[test]
fn root_defaults_without_env() {
    let app = App::start(&[]);
    let body = json(&app.get("/").body);
    assert_eq!(body["app"], "sample");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        body["instance"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
}

#[test]
fn health_can_be_failed_and_restored_at_run_time() {
    let app = App::start(&[]);
    let ok = app.get("/healthz");
    assert_eq!((ok.status, ok.body.as_str()), (200, "ok"));

    assert_eq!(app.post("/admin/health?fail=true").status, 200);
    assert_eq!(app.get("/healthz").status, 503);

    assert_eq!(app.post("/admin/health?fail=false").status, 200);
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn a_share_of_requests_fails_as_asked() {
    let app = App::start(&[("SAMPLE_ERROR_PERCENT", "20")]);
    let failed = (0..100).filter(|_| app.get("/").status == 500).count();
    assert_eq!(failed, 20, "exactly 20 of 100");
    assert_eq!(app.get("/healthz").status, 200, "health is separate");
    assert_eq!(app.post("/admin/errors?percent=0").status, 200);
    assert!((0..20).all(|_| app.get("/").status == 200));
    assert_eq!(app.post("/admin/errors?percent=100").status, 200);
    assert!((0..20).all(|_| app.get("/").status == 500));
    assert_eq!(app.post("/admin/errors?percent=101").status, 400);
}

#[test]
fn sample_fail_health_fails_from_the_start() {
    let app = App::start(&[("SAMPLE_FAIL_HEALTH", "1")]);
    assert_eq!(app.get("/healthz").status, 503);
    // The app itself still serves.
    assert_eq!(app.get("/").status, 200);
}

#[test]
fn slow_start_still_comes_up() {
    let mut app = App::start(&[("SAMPLE_START_DELAY", "300ms")]);
    app.wait_log("SAMPLE_START_DELAY");
    assert_eq!(app.get("/healthz").status, 200);
}

#[test]
fn burn_and_slow_answer_and_cap_their_input() {
    let app = App::start(&[("SAMPLE_BURN_MS", "20")]);
    assert_eq!(app.get("/").status, 200, "GET / with SAMPLE_BURN_MS");

    let burn = app.get("/burn?ms=30");
    assert_eq!(burn.status, 200, "{burn:?}");
    assert_eq!(json(&burn.body)["burned_ms"], 30);
    assert_eq!(app.get("/slow?ms=10").status, 200);

    for path in [
        "/burn?ms=10001",
        "/slow?ms=60001",
        "/burn?ms=abc",
        "/burn",
        "/slow?ms=-1",
    ] {
        assert_eq!(app.get(path).status, 400, "{path}");
    }
    assert_eq!(app.post("/admin/health?fail=maybe").status, 400);
}

#[test]
fn burn_uses_cpu() {
    let app = App::start(&[]);
    let before = cpu_ticks(app.pid());
    assert_eq!(app.get("/burn?ms=1500").status, 200);
    let used = cpu_ticks(app.pid()) - before;
    // 1500 ms of spinning; ask for a tenth of it in CPU time (ticks are
    // 10 ms) so a loaded machine that preempts the spin still passes.
    assert!(used >= 15, "only {used} ticks of CPU for a 1500 ms burn");
}

#[test]
fn unknown_paths_and_methods_are_rejected() {
    let app = App::start(&[]);
    assert_eq!(app.get("/nope").status, 404);
    assert_eq!(app.get("/admin/crash").status, 405);
    // Still alive after all that.
    assert_eq!(app.get("/healthz").status, 200);
}

/// User + system CPU time of a process, in clock ticks, from /proc.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the ")" closing the command name start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn env_is_shown_only_as_a_hash_and_only_when_asked() {
    let hidden = App::start(&[("SAMPLE_TEST_VALUE", "hunter2")]);
    assert_eq!(hidden.get("/env/SAMPLE_TEST_VALUE").status, 404);

    let app = App::start(&[("SAMPLE_EXPOSE_ENV", "1"), ("SAMPLE_TEST_VALUE", "hunter2")]);
    let resp = app.get("/env/SAMPLE_TEST_VALUE");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(!resp.body.contains("hunter2"), "{}", resp.body);
    let body = json(&resp.body);
    assert_eq!(body["set"], true);
    // printf hunter2 | sha256sum
    assert_eq!(
        body["sha256"],
        "f52fbd32b2b3b86ff88ef6c490628285f482af15ddcb29541f94bcf526a3f6c7"
    );
    let unset = json(&app.get("/env/SAMPLE_NOT_SET").body);
    assert_eq!(
        (unset["set"].clone(), unset.get("sha256")),
        (serde_json::json!(false), None)
    );
}
