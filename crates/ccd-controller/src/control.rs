//! Operator controls (`controls/<app>.yaml`): what `ccd rollout
//! pause|resume|promote|abort` asks of one rollout. Written by the command
//! line (or, later, the API) into the store, read by the controller on each
//! pass of an open rollout, so they work with a folder and a bucket alike
//! and a pause survives a restart. A control names the rollout it is for:
//! one left over from an earlier rollout never touches a later one.

use serde::{Deserialize, Serialize};

use crate::record::{RolloutState, Timestamp};
use crate::status::Status;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// The rollout's id, as its status records it (`rollout.id`).
    pub rollout: String,
    /// Hold the rollout where it stands; `false` resumes it.
    #[serde(default)]
    pub paused: bool,
    /// Skip the remaining holds: all traffic to the new revision once its
    /// instances are healthy (never before).
    #[serde(default)]
    pub promote: bool,
    /// Roll back now.
    #[serde(default)]
    pub abort: bool,
    /// When it was last changed, and by whom (for people reading it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

impl Control {
    pub fn to_yaml(&self, app: &str) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        ccd_spec::document::to_yaml(
            &format!("Rollout controls for {app}, written by `ccd rollout`."),
            &value,
        )
    }

    /// `None` for bytes that are not a control (they are ignored).
    pub fn parse(bytes: &[u8]) -> Option<Control> {
        let value = ccd_spec::document::from_yaml(bytes).ok()?;
        serde_json::from_value(value).ok()
    }
}

/// What an operator asks of a rollout under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Pause,
    Resume,
    Promote,
    Abort,
}

impl Ask {
    pub const ALL: [Ask; 4] = [Ask::Pause, Ask::Resume, Ask::Promote, Ask::Abort];

    /// The command's word: `pause`, `resume`, `promote`, `abort`.
    pub fn verb(self) -> &'static str {
        match self {
            Ask::Pause => "pause",
            Ask::Resume => "resume",
            Ask::Promote => "promote",
            Ask::Abort => "abort",
        }
    }

    pub fn parse(verb: &str) -> Option<Ask> {
        Ask::ALL.into_iter().find(|a| a.verb() == verb)
    }

    fn apply(self, c: &mut Control) {
        match self {
            Ask::Pause => c.paused = true,
            Ask::Resume => c.paused = false,
            Ask::Promote => c.promote = true,
            Ask::Abort => c.abort = true,
        }
    }
}

/// Why an ask was not written.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Nothing to act on (no rollout under way, or an abort with nothing to
    /// go back to): the operator's request does not fit, nothing changed.
    #[error("{0}")]
    NotNow(String),
    #[error("cannot write controls/{app}.yaml: {source}")]
    Store {
        app: String,
        source: ccd_store::StoreError,
    },
}

/// The ask written: the rollout it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub rollout: String,
    pub version: String,
    /// Said when the ask changes nothing (resuming a rollout not paused).
    pub note: Option<String>,
}

/// Writes `ask` for the rollout `status` shows under way, into the store's
/// `controls/<app>.yaml`, where the controller reads it on its next pass:
/// what `ccd rollout pause|resume|promote|abort` and the API do.
pub async fn ask(
    store: &impl ccd_store::SpecStore,
    app: &str,
    status: &Status,
    ask: Ask,
    by: Option<String>,
) -> Result<Asked, AskError> {
    let verb = ask.verb();
    let Some(rollout) = status.rollout.as_ref().filter(|r| r.state.is_open()) else {
        let last = status
            .rollout
            .as_ref()
            .map_or("never happened".to_owned(), |r| {
                format!("{} for version {}", state_word(r.state), r.to.version)
            });
        return Err(AskError::NotNow(format!(
            "{app} has no rollout under way (the last one {last}); `{verb}` acts on a rollout in progress"
        )));
    };
    if ask == Ask::Abort && rollout.from.is_none() {
        return Err(AskError::NotNow(format!(
            "the rollout of version {} is the app's first deploy: there is no earlier version to roll back to",
            rollout.to.version
        )));
    }
    let note = (ask == Ask::Resume && rollout.state != RolloutState::Paused).then(|| {
        format!(
            "the rollout of version {} is not paused",
            rollout.to.version
        )
    });
    let store_error = |source| AskError::Store {
        app: app.to_owned(),
        source,
    };
    let existing = store
        .read_control(app)
        .await
        .map_err(store_error)?
        .and_then(|b| Control::parse(&b))
        .filter(|c| c.rollout == rollout.id);
    let mut c = existing.unwrap_or_else(|| Control {
        rollout: rollout.id.clone(),
        ..Control::default()
    });
    ask.apply(&mut c);
    c.changed = Some(Timestamp::new(ccd_clock::wall()));
    c.by = by.filter(|u| !u.is_empty());
    store
        .write_control(app, c.to_yaml(app).as_bytes())
        .await
        .map_err(store_error)?;
    Ok(Asked {
        rollout: rollout.id.clone(),
        version: rollout.to.version.clone(),
        note,
    })
}

/// How a rollout ended (or stands), in words.
pub fn state_word(s: RolloutState) -> &'static str {
    match s {
        RolloutState::Progressing => "is progressing",
        RolloutState::Paused => "is paused",
        RolloutState::Succeeded => "succeeded",
        RolloutState::Failed => "failed and was rolled back",
        RolloutState::Aborted => "was aborted and rolled back",
        RolloutState::Superseded => "was superseded",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips() {
        let c = Control {
            rollout: "web-0a1b2c3d4e@2026-11-30T02:00:00.000Z".into(),
            paused: true,
            by: Some("ana".into()),
            ..Control::default()
        };
        let y = c.to_yaml("web");
        assert!(y.contains("paused: true\n"), "{y}");
        assert_eq!(Control::parse(y.as_bytes()), Some(c));
        assert_eq!(Control::parse(b"rollout: [1]"), None);
        assert_eq!(
            Control::parse(b"rollout: x\n").unwrap(),
            Control {
                rollout: "x".into(),
                ..Control::default()
            }
        );
    }
}
