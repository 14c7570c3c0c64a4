//! Where the controller's events go, in both `ccd up` and `ccd controller`:
//! the event log (`ccd events`) and the log; under `ccd up` readiness also
//! goes to stdout as `ready: APP URL`, the line users and scripts wait for.
//! Each event recorded is also published to the API's event streams.

use ccd_controller::EventSink;

#[derive(Debug)]
pub struct Events {
    pub feed: ccd_api::EventFeed,
    pub print_ready: bool,
}

impl EventSink for Events {
    fn record(
        &self,
        app: &str,
        warning: bool,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) {
        let kind = if warning {
            ccd_events::Kind::Warning
        } else {
            ccd_events::Kind::Normal
        };
        match self.feed.log().record(app, kind, reason, message, revision) {
            Ok(event) => self.feed.publish(event),
            Err(e) => tracing::warn!(error = %e, "cannot record an event"),
        }
        if warning {
            tracing::warn!(app, reason, revision, "{message}");
        } else {
            tracing::info!(app, reason, revision, "{message}");
        }
        if self.print_ready && reason == "Ready" {
            #[allow(clippy::print_stdout)] // the command's own output
            {
                println!("ready: {app} {message}");
            }
        }
    }
}
