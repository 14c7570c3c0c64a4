//! Log shipping for `ccd up` (`services: {logs: {retention: 7d}}`): the
//! output of an app's instances, copied out of the local cloud's instance
//! folders into storage of the app's own, kept for the retention and readable
//! after the instances are gone (`ccd logs APP`).
//!
//! - The local cloud names each instance's app in a file beside its logs
//!   (`DATA/cloud/instances/<zone>/<instance>/app`, [`ccd_wire::INSTANCE_APP_FILE`]).
//! - [`Shipper`] (`ship.rs`) copies every new complete line of the apps that
//!   ask into `<logs>/<app>/<YYYY-MM-DD>T<HH>.jsonl`, one [`LogLine`] per line,
//!   one file per UTC hour; `source.rs` reads an instance's stream across the
//!   supervisor's rotations, `state.rs` remembers how far (`.offsets.json`).
//! - [`read`] and [`Cursor`] (`read.rs`) are `ccd logs` and `ccd logs --follow`.

mod files;
mod read;
mod ship;
mod source;
mod state;

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::ServiceError;

pub use read::{Cursor, read};
pub use ship::{ShipReport, Shipper};

/// The longest line kept whole, in bytes; a longer one is cut and ends with [`CUT_MARK`].
pub const MAX_LINE: usize = 16 * 1024;
/// What ends a line cut at [`MAX_LINE`].
pub const CUT_MARK: &str = " [ccd: cut, the line was longer than 16 KiB]";
/// How far the shipper read each instance's files, in the logs folder.
pub const OFFSETS_FILE: &str = ".offsets.json";
const HOUR_SUFFIX: &str = ".jsonl";

/// Which of an instance's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub const ALL: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// The supervisor's file for it (`crates/ccd-supervisor/src/logs.rs`).
    fn file(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout.log",
            Stream::Stderr => "stderr.log",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One shipped line: the one definition of the format, written by the
/// shipper (one JSON object per line) and read by `ccd logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was shipped (within the shipper's interval of when it was
    /// written: the supervisor does not stamp lines), RFC 3339 UTC with millis.
    #[serde(with = "rfc3339")]
    pub time: SystemTime,
    pub instance: String,
    pub stream: Stream,
    /// Without its newline; not UTF-8 bytes are replaced (U+FFFD).
    pub line: String,
}

impl LogLine {
    /// The line as shipped from an instance's output (`bytes` without the newline).
    pub(crate) fn from_output(
        time: SystemTime,
        instance: &str,
        stream: Stream,
        bytes: &[u8],
    ) -> Self {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = if bytes.len() > MAX_LINE {
            // A character split by the cut shows as U+FFFD before the mark.
            let mut cut = String::from_utf8_lossy(&bytes[..MAX_LINE]).into_owned();
            cut.push_str(CUT_MARK);
            cut
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        };
        LogLine {
            time,
            instance: instance.to_owned(),
            stream,
            line,
        }
    }
}

/// `TIME INSTANCE STREAM: line`, as `ccd logs` prints it.
impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = rfc3339::format(self.time).unwrap_or_else(|| "(out of range)".to_owned());
        write!(f, "{time} {} {}: {}", self.instance, self.stream, self.line)
    }
}

/// An app name usable as a folder name under the logs folder.
fn check_app(app: &str) -> Result<(), ServiceError> {
    let plain = !app.is_empty()
        && !app.starts_with('.')
        && app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "{app:?} is not an app name: give the name of the spec's app \
             (letters, digits and '-')"
        )))
    }
}

/// The hour file holding lines shipped at `t`: `YYYY-MM-DDTHH.jsonl` (UTC).
fn hour_file(t: SystemTime) -> Option<String> {
    let t = jiff::Timestamp::try_from(t).ok()?;
    Some(format!("{}{HOUR_SUFFIX}", t.strftime("%Y-%m-%dT%H")))
}

/// When the hour of an hour file's name begins; `None` for any other file.
fn hour_start(file: &str) -> Option<SystemTime> {
    let hour = file.strip_suffix(HOUR_SUFFIX)?;
    let t: jiff::Timestamp = format!("{hour}:00:00Z").parse().ok()?;
    // Only the names `hour_file` writes: the parse accepts more.
    (hour_file(SystemTime::from(t))? == file).then(|| SystemTime::from(t))
}

const HOUR: Duration = Duration::from_secs(3600);

/// RFC 3339 in UTC with milliseconds (`2025-06-01T10:00:00.123Z`), for serde.
mod rfc3339 {
    use std::time::SystemTime;

    pub(super) fn format(t: SystemTime) -> Option<String> {
        jiff::Timestamp::try_from(t).ok().map(|t| format!("{t:.3}"))
    }

    pub(super) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let text = format(*t).ok_or_else(|| serde::ser::Error::custom("time out of range"))?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<SystemTime, D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        let t: jiff::Timestamp = text.parse().map_err(serde::de::Error::custom)?;
        Ok(SystemTime::from(t))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
    }

    #[test]
    fn a_line_is_one_json_object_with_the_time_in_utc_millis() {
        // 2025-06-01T10:20:30.045Z
        let line = LogLine::from_output(at(1_748_773_230, 45), "web-1", Stream::Stderr, b"oops\r");
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(
            json,
            r#"{"time":"2025-06-01T10:20:30.045Z","instance":"web-1","stream":"stderr","line":"oops"}"#
        );
        assert_eq!(serde_json::from_str::<LogLine>(&json).unwrap(), line);
        assert_eq!(
            line.to_string(),
            "2025-06-01T10:20:30.045Z web-1 stderr: oops"
        );
    }

    #[test]
    fn a_long_line_is_cut_and_marked() {
        let long = vec![b'x'; MAX_LINE + 10];
        let line = LogLine::from_output(at(0, 0), "i", Stream::Stdout, &long);
        assert_eq!(line.line.len(), MAX_LINE + CUT_MARK.len());
        assert!(line.line.ends_with(CUT_MARK));
        let exact = LogLine::from_output(at(0, 0), "i", Stream::Stdout, &long[..MAX_LINE]);
        assert_eq!(exact.line.len(), MAX_LINE, "16 KiB exactly is kept whole");
    }

    #[test]
    fn hour_files_are_named_by_the_utc_hour() {
        let name = hour_file(at(1_748_773_230, 45)).unwrap();
        assert_eq!(name, "2025-06-01T10.jsonl");
        assert_eq!(hour_start(&name), Some(at(1_748_772_000, 0)));
        for other in [
            ".offsets.json",
            "2025-06-01T10.jsonl.tmp",
            "2025-6-1T10.jsonl",
            "x.jsonl",
        ] {
            assert_eq!(hour_start(other), None, "{other}");
        }
    }

    #[test]
    fn app_names_stay_inside_the_logs_folder() {
        check_app("web-2").unwrap();
        for bad in ["", "..", ".offsets.json", "a/b", "../etc"] {
            assert!(check_app(bad).is_err(), "{bad}");
        }
    }
}
