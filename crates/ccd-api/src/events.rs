//! `/v1/events`: what the controllers did and why, read from the event log
//! (`ccd events`), and as a live stream of server-sent events whose ids are
//! the log's sequence numbers: a client that reconnects with
//! `Last-Event-ID` gets what it missed from the log, then the live ones. A
//! comment line every heartbeat keeps proxies from closing a quiet stream
//! and lets a client tell a dead connection from a calm app.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as Sse, KeepAlive};
use ccd_events::{Event, EventLog};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

use crate::ApiState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authorized, Query, app_name};
use crate::tokens::{Caller, Scope};

/// Most events one answer (or one catch-up) holds.
const MAX_EVENTS: usize = 1000;

/// The event log, and the events recorded from now on as they happen.
#[derive(Clone)]
pub struct EventFeed {
    log: EventLog,
    live: broadcast::Sender<Event>,
}

impl std::fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFeed").finish_non_exhaustive()
    }
}

impl EventFeed {
    pub fn new(log: EventLog) -> Self {
        EventFeed {
            log,
            live: broadcast::Sender::new(1024),
        }
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// The events recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.live.subscribe()
    }

    /// An event the log just stored, for the streams open now.
    pub fn publish(&self, event: Event) {
        let _ = self.live.send(event);
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only this app's events.
    app: Option<String>,
    /// Only events after this sequence number (the `seq` of the last one seen).
    since: Option<u64>,
    /// Most events to return, 1 to 1000 (default 100).
    limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventRow {
    seq: u64,
    /// Unix milliseconds of the last occurrence, and of the first.
    at_ms: u64,
    first_at_ms: u64,
    app: String,
    /// `Normal` or `Warning`.
    kind: String,
    reason: String,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<String>,
    count: u64,
}

impl From<&Event> for EventRow {
    fn from(e: &Event) -> Self {
        EventRow {
            seq: e.seq,
            at_ms: e.at_ms,
            first_at_ms: e.first_at_ms,
            app: e.app.clone(),
            kind: e.kind.as_str().to_owned(),
            reason: e.reason.clone(),
            message: e.message.clone(),
            revision: e.revision.clone(),
            count: e.count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Events {
    /// Oldest first.
    events: Vec<EventRow>,
}

/// Events, oldest first: the newest `limit`, or those after `since`.
#[utoipa::path(get, path = "/v1/events", params(EventParams), security(("bearer" = [])),
    responses((status = 200, body = Events), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Query(params): Query<EventParams>,
) -> Result<Json<Events>, ApiError> {
    let app = match params.app.as_deref() {
        Some(a) => Some(app_name(a)?),
        None => None,
    };
    auth.may(Scope::Read, app)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: 1 to {MAX_EVENTS} events"
        )));
    }
    if params.since.is_some_and(|s| s > i64::MAX as u64) {
        return Err(ApiError::bad_request(format!(
            "since={}: a sequence number is at most {}",
            params.since.unwrap_or_default(),
            i64::MAX
        )));
    }
    let log = api.events.log();
    let found = match params.since {
        Some(seq) => log.after(app, seq, limit),
        None => log.list(app, limit),
    }
    .map_err(ApiError::unavailable)?;
    Ok(Json(Events {
        events: found
            .iter()
            .filter(|e| auth.0.reaches(&e.app))
            .map(EventRow::from)
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only this app's events.
    app: Option<String>,
}

/// Server-sent events, one per event recorded (`id` its seq, `event:
/// event`, `data` the event as JSON). With `Last-Event-ID`, the events
/// missed since come first, from the log.
#[utoipa::path(get, path = "/v1/events/stream", params(StreamParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "the seq of the last event received")),
    security(("bearer" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn stream(
    State(api): State<Arc<ApiState>>,
    auth: Authorized,
    Query(params): Query<StreamParams>,
    headers: HeaderMap,
) -> Result<axum::response::Sse<impl Stream<Item = Result<Sse, Infallible>>>, ApiError> {
    let app = match params.app.as_deref() {
        Some(a) => Some(app_name(a)?.to_owned()),
        None => None,
    };
    auth.may(Scope::Read, app.as_deref())?;
    let last = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request("Last-Event-ID: the seq of an event, a number")
                })?,
        ),
    };
    // Subscribed before the log is read: nothing falls between the two.
    let live = api.events.live.subscribe();
    let follow = Follow {
        log: api.events.log.clone(),
        live,
        caller: auth.0,
        app,
        last: last.unwrap_or(0),
        backlog: VecDeque::new(),
        caught_up: last.is_none(),
        stop: api.stop.clone(),
    };
    let events = futures::stream::unfold(follow, |mut f| async move {
        let event = f.next().await?;
        Some((Ok(event), f))
    });
    Ok(axum::response::Sse::new(events).keep_alive(KeepAlive::new().interval(api.heartbeat)))
}

/// One client's place in the stream.
struct Follow {
    log: EventLog,
    live: broadcast::Receiver<Event>,
    caller: Caller,
    app: Option<String>,
    /// The seq of the last event sent (or the client's `Last-Event-ID`).
    last: u64,
    backlog: VecDeque<Event>,
    /// Whether the log holds nothing newer than `last` that was not sent.
    caught_up: bool,
    stop: tokio_util::sync::CancellationToken,
}

impl Follow {
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                if let Some(sse) = self.send(&e) {
                    return Some(sse);
                }
                continue;
            }
            if !self.caught_up {
                // From the log: what was missed (a reconnect, or a slow
                // client that the live channel left behind).
                let missed = self
                    .log
                    .after(self.app.as_deref(), self.last, MAX_EVENTS)
                    .ok()?;
                self.caught_up = missed.len() < MAX_EVENTS;
                self.backlog.extend(missed);
                continue;
            }
            let received = tokio::select! {
                r = self.live.recv() => r,
                () = self.stop.cancelled() => return None,
            };
            match received {
                Ok(e) => self.backlog.push_back(e),
                Err(broadcast::error::RecvError::Lagged(_)) => self.caught_up = false,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The event as sent, if this client is to get it (each seq once, in order).
    fn send(&mut self, e: &Event) -> Option<Sse> {
        if e.seq <= self.last {
            return None;
        }
        self.last = e.seq;
        if self.app.as_deref().is_some_and(|a| a != e.app) || !self.caller.reaches(&e.app) {
            return None;
        }
        let data = serde_json::to_string(&EventRow::from(e)).ok()?;
        Some(
            Sse::default()
                .id(e.seq.to_string())
                .event("event")
                .data(data),
        )
    }
}
