//! The upload request the bucket store sends in production, which the
//! fake-gcs-server tests cannot show: fake-gcs-server (1.54) has no XML API
//! object PUT, so there an adapter turns every upload into a JSON multipart
//! one (`emulator.rs`). Here the store runs as in production (no adapter)
//! against a stand-in for Cloud Storage's XML API, written from Google's
//! documentation of it (PUT, GET, DELETE on `/BUCKET/OBJECT`;
//! `x-goog-if-generation-match`, `0` meaning "only if absent"; 412 when a
//! precondition fails; `x-goog-generation` on every answer), which records
//! every upload it gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ccd_store::{AnyStore, BucketConfig, BucketStore, GcsAuth, LeaseWrite, SpecStore as _};

/// One upload as the stand-in received it.
#[derive(Debug, Clone)]
struct Upload {
    path: String,
    query: Option<String>,
    precondition: Option<String>,
    body: Vec<u8>,
}

#[derive(Debug, Default)]
struct Xml {
    /// Object name → (generation, bytes).
    objects: HashMap<String, (u64, Vec<u8>)>,
    next_generation: u64,
    uploads: Vec<Upload>,
}

type Shared = Arc<Mutex<Xml>>;

fn answer(status: StatusCode, generation: Option<u64>, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "last-modified",
        "Tue, 01 Dec 2026 00:00:00 GMT".parse().unwrap(),
    );
    if let Some(g) = generation {
        headers.insert("etag", format!("\"etag-{g}\"").parse().unwrap());
        headers.insert("x-goog-generation", g.to_string().parse().unwrap());
    }
    response
}

async fn object(
    State(xml): State<Shared>,
    method: Method,
    uri: Uri,
    Path((bucket, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    assert_eq!(bucket, "prod-bucket");
    let mut xml = xml.lock().unwrap();
    let current = xml.objects.get(&name).map(|(g, _)| *g);
    match method {
        Method::PUT => {
            let precondition = headers
                .get("x-goog-if-generation-match")
                .map(|v| v.to_str().unwrap().to_owned());
            // Object names travel percent-encoded, `/` included.
            let path = percent_encoding::percent_decode_str(uri.path())
                .decode_utf8()
                .unwrap()
                .into_owned();
            xml.uploads.push(Upload {
                path,
                query: uri.query().map(str::to_owned),
                precondition: precondition.clone(),
                body: body.to_vec(),
            });
            if let Some(want) = precondition.map(|p| p.parse::<u64>().unwrap())
                && want != current.unwrap_or(0)
            {
                return answer(
                    StatusCode::PRECONDITION_FAILED,
                    None,
                    b"<Error><Code>PreconditionFailed</Code></Error>".to_vec(),
                );
            }
            xml.next_generation += 1;
            let g = 1_000 + xml.next_generation;
            xml.objects.insert(name, (g, body.to_vec()));
            answer(StatusCode::OK, Some(g), Vec::new())
        }
        Method::GET | Method::HEAD => match xml.objects.get(&name) {
            Some((g, bytes)) => answer(StatusCode::OK, Some(*g), bytes.clone()),
            None => answer(
                StatusCode::NOT_FOUND,
                None,
                b"<Error><Code>NoSuchKey</Code></Error>".to_vec(),
            ),
        },
        Method::DELETE => match xml.objects.remove(&name) {
            Some(_) => answer(StatusCode::NO_CONTENT, None, Vec::new()),
            None => answer(StatusCode::NOT_FOUND, None, Vec::new()),
        },
        _ => answer(StatusCode::METHOD_NOT_ALLOWED, None, Vec::new()),
    }
}

async fn stand_in() -> (String, Shared) {
    let xml = Shared::default();
    let app = Router::new()
        .route("/{bucket}/{*name}", axum::routing::any(object))
        .with_state(xml.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), xml)
}

fn production_store(endpoint: &str) -> AnyStore {
    let mut config = BucketConfig::new("prod-bucket", "prod");
    config.endpoint = Some(endpoint.to_owned());
    config.auth = GcsAuth::Anonymous;
    config.poll_interval = None;
    assert!(
        !config.fake_gcs_uploads,
        "the production request, not the emulator adapter"
    );
    AnyStore::Bucket(BucketStore::new(config).unwrap())
}

#[tokio::test]
async fn status_and_lease_writes_are_conditional_xml_api_puts() {
    let (endpoint, xml) = stand_in().await;
    let store = production_store(&endpoint);

    assert!(store.write_status("web", b"phase: Ready\n").await.unwrap());
    assert!(
        store
            .write_status("web", b"phase: Progressing\n")
            .await
            .unwrap()
    );
    assert!(
        !store
            .write_status("web", b"phase: Progressing\n")
            .await
            .unwrap(),
        "unchanged: no write"
    );
    assert_eq!(
        store.read_status("web").await.unwrap().as_deref(),
        Some(&b"phase: Progressing\n"[..])
    );

    let first = match store.write_lease("ctl", b"{\"a\":1}", None).await.unwrap() {
        LeaseWrite::Written(g) => g,
        LeaseWrite::Moved => panic!("a new lease is written"),
    };
    assert_eq!(
        store.write_lease("ctl", b"{}", None).await.unwrap(),
        LeaseWrite::Moved
    );
    let second = match store
        .write_lease("ctl", b"{\"a\":2}", Some(first))
        .await
        .unwrap()
    {
        LeaseWrite::Written(g) => g,
        LeaseWrite::Moved => panic!("written at its generation"),
    };
    assert!(second > first);
    assert_eq!(
        store
            .write_lease("ctl", b"{\"a\":3}", Some(first))
            .await
            .unwrap(),
        LeaseWrite::Moved,
        "a stale generation is refused"
    );
    store.check_conditional_writes("candidate-1").await.unwrap();

    let uploads = xml.lock().unwrap().uploads.clone();
    let seen: Vec<(&str, Option<&str>)> = uploads
        .iter()
        .map(|u| (u.path.as_str(), u.precondition.as_deref()))
        .collect();
    assert_eq!(
        &seen[..6],
        [
            ("/prod-bucket/prod/status/web.yaml", Some("0")),
            ("/prod-bucket/prod/status/web.yaml", Some("1001")),
            ("/prod-bucket/prod/leases/ctl.json", Some("0")),
            ("/prod-bucket/prod/leases/ctl.json", Some("0")),
            (
                "/prod-bucket/prod/leases/ctl.json",
                Some(first.to_string().as_str())
            ),
            (
                "/prod-bucket/prod/leases/ctl.json",
                Some(first.to_string().as_str())
            ),
        ]
    );
    for u in &uploads {
        assert_eq!(
            u.query, None,
            "a plain XML API PUT, not an upload endpoint: {u:?}"
        );
        assert!(
            u.precondition.is_some(),
            "every write is conditional: {u:?}"
        );
    }
    assert_eq!(uploads[1].body, b"phase: Progressing\n");
}
