//! Cloud Logging: a sink per app, put right only when it differs; the
//! app's entries read oldest first across pages.

use serde_json::{Value, json};

use crate::server::{Server, error};

fn sink(destination: &str) -> Value {
    json!({"name": "ccd-web-logs", "destination": destination,
           "filter": ccd_services_gcp::logging::app_filter("p", "web"),
           "writerIdentity": "serviceAccount:service-1@gcp-sa-logging.iam.gserviceaccount.com"})
}

#[tokio::test]
async fn a_sink_per_app_made_then_put_right_only_when_it_differs() {
    let s = Server::start().await;
    let services = s.services().await;
    s.answer("logging.projects.sinks.get", 404, error(404, "NOT_FOUND"))
        .answer(
            "logging.projects.sinks.create",
            200,
            sink("storage.googleapis.com/ccd-logs"),
        );
    let made = services.ensure_log_sink("web").await.unwrap();
    assert!(
        made.created
            && made
                .writer_identity
                .starts_with("serviceAccount:service-1@")
    );
    let r = s.recorded();
    assert_eq!(r[0].path, "/v2/projects/p/sinks/ccd-web-logs");
    let create = &r[1];
    assert_eq!(create.path, "/v2/projects/p/sinks");
    assert_eq!(
        create.query("uniqueWriterIdentity"),
        Some("true"),
        "a writer of its own"
    );
    assert_eq!(create.body()["name"], "ccd-web-logs");
    assert_eq!(
        create.body()["destination"],
        "storage.googleapis.com/ccd-logs"
    );
    let filter = create.body()["filter"].as_str().unwrap();
    assert!(filter.contains("labels.\"ccd-app\"=\"web\""), "{filter}");
    assert!(
        !filter.contains(" OR ") && !filter.contains("\":"),
        "nothing broader: {filter}"
    );

    s.answer(
        "logging.projects.sinks.get",
        200,
        sink("storage.googleapis.com/ccd-logs"),
    );
    assert!(!services.ensure_log_sink("web").await.unwrap().updated);
    assert_eq!(s.methods().len(), 3, "the same sink is left alone");

    s.answer(
        "logging.projects.sinks.get",
        200,
        sink("storage.googleapis.com/elsewhere"),
    )
    .answer(
        "logging.projects.sinks.update",
        200,
        sink("storage.googleapis.com/ccd-logs"),
    );
    assert!(services.ensure_log_sink("web").await.unwrap().updated);
    let r = s.recorded();
    let update = &r[4];
    assert_eq!(
        (update.verb.as_str(), update.path.as_str()),
        ("PUT", "/v2/projects/p/sinks/ccd-web-logs")
    );
    assert_eq!(update.query("updateMask"), Some("destination,filter"));
    assert_eq!(
        update.body()["destination"],
        "storage.googleapis.com/ccd-logs"
    );

    s.answer("logging.projects.sinks.delete", 200, json!({}));
    services.remove_log_sink("web").await.unwrap();
    assert_eq!(
        s.methods().last().map(String::as_str),
        Some("logging.projects.sinks.delete")
    );
}

#[tokio::test]
async fn logs_are_read_oldest_first_following_every_page() {
    let entry = |t: &str, payload: Value| {
        let mut e = json!({"logName": "projects/p/logs/cos_containers", "timestamp": t,
                           "resource": {"type": "gce_instance", "labels": {"instance_id": "42"}}});
        e.as_object_mut()
            .unwrap()
            .extend(payload.as_object().unwrap().clone());
        e
    };
    let s = Server::start().await;
    s.answer("logging.entries.list", 200, json!({"entries": [
            entry("2026-01-02T03:04:06Z", json!({"textPayload": "hello"}))], "nextPageToken": "t2"}))
        .answer("logging.entries.list", 200, json!({"entries": [
            entry("2026-01-02T03:04:07Z", json!({"jsonPayload": {"message": "world", "stream": "stdout"}}))]}));
    let lines = s
        .services()
        .await
        .read_logs("web", "2026-01-02T03:04:05Z", 100)
        .await
        .unwrap();
    let texts: Vec<_> = lines
        .iter()
        .map(|l| (l.timestamp.as_str(), l.text.as_str()))
        .collect();
    assert_eq!(
        texts,
        [
            ("2026-01-02T03:04:06Z", "hello"),
            ("2026-01-02T03:04:07Z", "world")
        ]
    );
    assert_eq!(lines[0].instance, "42");
    let r = s.recorded();
    for (i, call) in r.iter().enumerate() {
        assert_eq!(call.path, "/v2/entries:list");
        let b = call.body();
        assert_eq!(b["resourceNames"], json!(["projects/p"]));
        assert_eq!(b["orderBy"], "timestamp asc");
        let filter = b["filter"].as_str().unwrap();
        assert!(filter.contains("labels.\"ccd-app\"=\"web\""), "{filter}");
        assert!(
            filter.ends_with("timestamp >= \"2026-01-02T03:04:05Z\""),
            "{filter}"
        );
        assert_eq!(
            b.get("pageToken").and_then(Value::as_str),
            [None, Some("t2")][i]
        );
    }
    let e = s
        .services()
        .await
        .read_logs("web", "yesterday", 10)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("RFC 3339"), "{e}");
}
