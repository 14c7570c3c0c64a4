//! The local cloud's front door (routing, the guard, the discovery
//! document's checks of paths, queries and bodies, then the handlers) on
//! arbitrary requests. An input is `[method][flags]URI\nBODY`:
//! - `method` picks one of [`METHODS`];
//! - `flags` picks the token (right, none, wrong, empty), the Content-Type,
//!   and whether Host, Origin, `Metadata-Flavor` and `X-Forwarded-For` are
//!   a caller's own or a stranger's.
//!
//! Properties: no panic, no hang, never a 5xx (but from the fault injection
//! an input may turn on through the admin API, reset after it); and a request without the
//! token (outside the metadata server), from a foreign Host or Origin, or
//! with a body that is not JSON, is never answered 2xx.

use std::sync::OnceLock;
use std::time::Duration;

use ccd_localcloud::front_door::FrontDoor;

const METHODS: [&[u8]; 9] = [
    b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS", b"get", b"BREW",
];

pub const TOKENS: &[&[u8]] = &[
    b"/compute/v1/projects/p/",
    b"/computeMetadata/v1/",
    b"/admin/v1/",
    b"/v1/projects/p/",
    b"global/",
    b"zones/europe-west1-b/",
    b"regions/europe-west1/",
    b"instances",
    b"firewalls",
    b"instanceTemplates",
    b"instanceGroupManagers",
    b"operations",
    b"/wait",
    b"?requestId=",
    b"&",
    b"=",
    b"%00",
    b"%2F",
    b"..",
    b"//",
    b"{",
    b"}",
    b"\"name\":",
    b"\"metadata\":",
    b"\"items\":[{\"key\":\"ccd-local-run\",\"value\":",
    b"null",
    b"[]",
    b"1e999",
    b"\"\\u0000\"",
];

struct Harness {
    runtime: tokio::runtime::Runtime,
    door: FrontDoor,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime for the front door: {e}"));
        let door = runtime
            .block_on(async { FrontDoor::new() })
            .unwrap_or_else(|e| panic!("the front door: {e}"));
        Harness { runtime, door }
    })
}

pub fn run(input: &[u8]) {
    let [method, flags, rest @ ..] = input else {
        return;
    };
    let (uri, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], rest[i + 1..].to_vec()),
        None => (rest, Vec::new()),
    };
    let h = harness();
    let own_host = h.door.addr().to_string();
    let bearer = format!("Bearer {}", h.door.token());
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    let token_ok = flags & 0b11 == 0;
    match flags & 0b11 {
        0 => headers.push(("authorization", bearer.as_bytes())),
        1 => {}
        2 => headers.push(("authorization", b"Bearer 0123456789abcdef")),
        _ => headers.push(("authorization", b"Bearer ")),
    }
    let json = matches!((flags >> 2) & 0b11, 0 | 3);
    match (flags >> 2) & 0b11 {
        0 => headers.push(("content-type", b"application/json")),
        1 => {}
        2 => headers.push(("content-type", b"text/plain")),
        _ => headers.push(("content-type", b"application/json; charset=utf-8")),
    }
    let foreign_host = flags & 0b1_0000 != 0;
    headers.push((
        "host",
        if foreign_host {
            b"evil.example:8080"
        } else {
            own_host.as_bytes()
        },
    ));
    let foreign_origin = flags & 0b10_0000 != 0;
    if foreign_origin {
        headers.push(("origin", b"http://evil.example"));
    }
    if flags & 0b100_0000 != 0 {
        headers.push(("metadata-flavor", b"Google"));
    }
    if flags & 0b1000_0000 != 0 {
        headers.push(("x-forwarded-for", b"203.0.113.9"));
    }
    let method = METHODS[usize::from(*method) % METHODS.len()];
    let body_len = body.len();
    let call = h.door.call(method, uri, &headers, body);
    let answer = h
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), call).await });
    if uri.windows(6).any(|w| w == b"faults") {
        // The admin API's fault injection answers 503s on purpose: reset it.
        let headers: [(&str, &[u8]); 3] = [
            ("authorization", bearer.as_bytes()),
            ("content-type", b"application/json"),
            ("host", own_host.as_bytes()),
        ];
        let reset = h
            .door
            .call(b"PUT", b"/admin/v1/faults", &headers, b"{}".to_vec());
        if h.runtime.block_on(reset) != Some(200) {
            panic!("cannot reset the fault injection");
        }
    }
    let status = match answer {
        Err(_) => panic!(
            "no answer within 10 s to {} {}",
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(uri)
        ),
        Ok(None) => return, // not an HTTP request at all
        Ok(Some(status)) => status,
    };
    let what = || {
        format!(
            "{} {} (flags {flags:#010b}, {body_len} bytes of body)",
            String::from_utf8_lossy(method),
            String::from_utf8_lossy(uri)
        )
    };
    if status >= 500 {
        panic!("{status} for {}", what());
    }
    let metadata = uri.starts_with(b"/computeMetadata/");
    let refused = (!token_ok && !metadata)
        || foreign_host
        || foreign_origin
        || (body_len > 0 && !json && !metadata);
    if refused && (200..300).contains(&status) {
        panic!("{status} for a request the guard must refuse: {}", what());
    }
}
