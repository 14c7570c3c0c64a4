#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The adapters' requests, recorded: every one resolves to the method
//! expected in Google's discovery document, with only the query parameters
//! that method declares and a body its request schema accepts (`server`
//! checks each and fails the test on any other); then what a user cares
//! about, per API.

mod firestore;
mod folders;
mod logging;
mod port;
mod server;
mod sql;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The app's service account, as ccd-cloud's identity names it.
const EMAIL: &str = "ccd-web@p.iam.gserviceaccount.com";

/// One raw HTTP/1.1 request, the answer read to its end.
async fn raw(endpoint: &str, line: &str, body: &str) -> String {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{line} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// The checks are not vacuous: a request off the contract is caught.
#[tokio::test]
async fn the_recorder_catches_requests_off_the_contract() {
    let s = server::Server::start().await;
    s.answer(
        "sql.databases.insert",
        200,
        serde_json::json!({"status": "DONE"}),
    );
    let path = "/v1/projects/p/instances/main/databases";
    raw(
        &s.endpoint,
        &format!("POST {path}?bogus=1"),
        r#"{"nmae": "web"}"#,
    )
    .await;
    raw(&s.endpoint, "GET /v1/projects/p/nowhere", "").await;
    let problems = s.problems().join("\n");
    for caught in [
        "\"bogus\" is not the method's",
        "refuses the body as Database: [FieldError { field: \"nmae\"",
        "resolved by 0 methods",
    ] {
        assert!(problems.contains(caught), "{caught} in {problems}");
    }
}
