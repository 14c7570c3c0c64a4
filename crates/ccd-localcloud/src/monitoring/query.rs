//! `projects.timeSeries.list`'s query, read the way Cloud Monitoring reads
//! it, as far as the local cloud answers it: a filter of `=` terms joined by
//! AND, an interval, and one aggregation (a DELTA aligner, summed or not).
//! Anything else is refused with the error Monitoring would give, naming
//! what the local cloud does not do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error in the shape Google's JSON APIs send (`google.rpc.Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringError {
    pub status: StatusCode,
    pub message: String,
}

impl MonitoringError {
    pub fn invalid(message: impl Into<String>) -> Self {
        MonitoringError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn status_name(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "INVALID_ARGUMENT",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::NOT_IMPLEMENTED => "UNIMPLEMENTED",
            _ => "INTERNAL",
        }
    }
}

impl IntoResponse for MonitoringError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.status.as_u16(),
            "message": self.message,
            "status": self.status_name(),
        }});
        (self.status, axum::Json(body)).into_response()
    }
}

/// What a filter term or a `groupByFields` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    MetricType,
    ResourceType,
    ResourceLabel(String),
    MetricLabel(String),
}

impl Field {
    fn parse(text: &str) -> Option<Field> {
        let label = |prefix: &str| {
            [".labels.", ".label."]
                .iter()
                .find_map(|sep| text.strip_prefix(&format!("{prefix}{sep}")))
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
        };
        match text {
            "metric.type" => Some(Field::MetricType),
            "resource.type" => Some(Field::ResourceType),
            _ => label("resource")
                .map(Field::ResourceLabel)
                .or_else(|| label("metric").map(Field::MetricLabel)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reducer {
    None,
    Sum,
}

/// A query the local cloud can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub metric_type: String,
    /// Every other `field = "value"` term of the filter.
    pub conditions: Vec<(Field, String)>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub alignment: Duration,
    pub reducer: Reducer,
    pub group_by: Vec<Field>,
    /// `view=HEADERS`: the series without their points.
    pub headers_only: bool,
}

/// Parameters every Google API takes and ignores here.
const SYSTEM_PARAMETERS: [&str; 9] = [
    "$alt",
    "alt",
    "prettyPrint",
    "fields",
    "key",
    "quotaUser",
    "access_token",
    "callback",
    "$.xgafv",
];

/// Reads a raw query string.
pub fn parse(raw: &str) -> Result<Query, MonitoringError> {
    let mut filter = None;
    let (mut start, mut end) = (None, None);
    let (mut alignment, mut aligner, mut reducer) = (None, None, None);
    let mut group_by = Vec::new();
    let mut headers_only = false;
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "filter" => filter = Some(value),
            "interval.startTime" => start = Some(parse_time("interval.startTime", &value)?),
            "interval.endTime" => end = Some(parse_time("interval.endTime", &value)?),
            "aggregation.alignmentPeriod" => alignment = Some(parse_duration(&value)?),
            // Enums come by name or by number, as Google's front end takes them.
            "aggregation.perSeriesAligner" => aligner = Some(enum_name(value, &ALIGNERS)),
            "aggregation.crossSeriesReducer" => reducer = Some(enum_name(value, &REDUCERS)),
            "aggregation.groupByFields" => {
                group_by.push(Field::parse(&value).ok_or_else(|| {
                    MonitoringError::invalid(format!("Invalid groupByFields: {value}"))
                })?)
            }
            "view" => match value.as_str() {
                "FULL" | "0" | "" => headers_only = false,
                "HEADERS" | "1" => headers_only = true,
                other => return Err(invalid_enum("view", other)),
            },
            "pageSize" => {
                value.parse::<u32>().map_err(|_| {
                    MonitoringError::invalid(format!(
                        "Invalid value at 'page_size' (TYPE_INT32), \"{value}\""
                    ))
                })?;
            }
            // Everything fits one page here, so there is never a token to come back with.
            "pageToken" | "orderBy" if value.is_empty() => {}
            "pageToken" => return Err(MonitoringError::invalid("The page token is not valid.")),
            "orderBy" => return Err(unsupported("orderBy")),
            k if k.starts_with("secondaryAggregation.") => return Err(unsupported(k)),
            k if SYSTEM_PARAMETERS.contains(&k) => {}
            k => {
                return Err(MonitoringError::invalid(format!(
                    "Invalid JSON payload received. Unknown name \"{k}\": Cannot bind query parameter. Field '{k}' could not be found in request message."
                )));
            }
        }
    }
    let filter = filter.filter(|f| !f.trim().is_empty()).ok_or_else(|| {
        MonitoringError::invalid("Field filter had an invalid value: must be specified")
    })?;
    let mut conditions = parse_filter(&filter)?;
    let metric_types: Vec<String> = conditions
        .iter()
        .filter(|(f, _)| *f == Field::MetricType)
        .map(|(_, v)| v.clone())
        .collect();
    let [metric_type] = metric_types.as_slice() else {
        return Err(MonitoringError::invalid(format!(
            "Field filter had an invalid value of \"{filter}\": the filter must name exactly one metric.type"
        )));
    };
    conditions.retain(|(f, _)| *f != Field::MetricType);
    let end = end.ok_or_else(|| {
        MonitoringError::invalid("Field interval.endTime had an invalid value: must be specified")
    })?;
    let start = start.unwrap_or(end);
    if start > end {
        return Err(MonitoringError::invalid(
            "Field interval.startTime had an invalid value: it must not be later than interval.endTime",
        ));
    }
    let aligner = aligner.unwrap_or_default();
    match aligner.as_str() {
        "ALIGN_DELTA" | "ALIGN_SUM" => {}
        "" | "ALIGN_NONE" => {
            return Err(MonitoringError::invalid(
                "The local cloud answers aligned queries only: set aggregation.perSeriesAligner to ALIGN_DELTA or ALIGN_SUM",
            ));
        }
        other => return Err(invalid_enum("aggregation.perSeriesAligner", other)),
    }
    let alignment = alignment.ok_or_else(|| {
        MonitoringError::invalid(
            "Field aggregation.alignmentPeriod had an invalid value: it is required with a perSeriesAligner",
        )
    })?;
    if alignment < Duration::from_secs(60) {
        return Err(MonitoringError::invalid(
            "Field aggregation.alignmentPeriod had an invalid value: it must be at least 60 seconds",
        ));
    }
    let reducer = match reducer.as_deref().unwrap_or("") {
        "" | "REDUCE_NONE" => Reducer::None,
        "REDUCE_SUM" => Reducer::Sum,
        other => return Err(invalid_enum("aggregation.crossSeriesReducer", other)),
    };
    Ok(Query {
        metric_type: metric_type.clone(),
        conditions,
        start,
        end,
        alignment,
        reducer,
        group_by,
        headers_only,
    })
}

/// The aligners and reducers the local cloud knows, with their numbers.
const ALIGNERS: [(&str, &str); 3] = [
    ("0", "ALIGN_NONE"),
    ("1", "ALIGN_DELTA"),
    ("14", "ALIGN_SUM"),
];
const REDUCERS: [(&str, &str); 2] = [("0", "REDUCE_NONE"), ("4", "REDUCE_SUM")];

fn enum_name(value: String, known: &[(&str, &str)]) -> String {
    known
        .iter()
        .find(|(number, _)| *number == value)
        .map_or(value, |(_, name)| (*name).to_owned())
}

fn unsupported(what: &str) -> MonitoringError {
    MonitoringError::invalid(format!(
        "The local cloud does not support {what}; leave it out"
    ))
}

fn invalid_enum(field: &str, value: &str) -> MonitoringError {
    MonitoringError::invalid(format!(
        "Invalid value at '{field}': \"{value}\" is not supported by the local cloud"
    ))
}

/// `metric.type = "x" AND resource.labels.y = "z"`: the only operator is
/// `=`, the only connective AND, values are quoted (or single words).
pub fn parse_filter(filter: &str) -> Result<Vec<(Field, String)>, MonitoringError> {
    let bad = |why: &str| {
        MonitoringError::invalid(format!(
            "Field filter had an invalid value of \"{filter}\": {why}"
        ))
    };
    let mut terms = Vec::new();
    let mut rest = filter.trim_start();
    loop {
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_len);
        let field = Field::parse(name).ok_or_else(|| {
            bad(&format!(
                "the local cloud filters on metric.type, resource.type and resource or metric labels, not \"{name}\""
            ))
        })?;
        let after = after.trim_start();
        let after = after
            .strip_prefix('=')
            .filter(|a| !a.starts_with('='))
            .ok_or_else(|| bad("the local cloud supports only the = operator"))?
            .trim_start();
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let close = quoted
                .find('"')
                .ok_or_else(|| bad("a quoted value is not closed"))?;
            (&quoted[..close], &quoted[close + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            let word = &after[..end];
            if word.is_empty() || word.contains(['(', ')', '"']) {
                return Err(bad("a value must be a quoted string"));
            }
            (word, &after[end..])
        };
        terms.push((field, value.to_owned()));
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(terms);
        }
        rest = after
            .strip_prefix("AND")
            .filter(|r| r.starts_with(char::is_whitespace))
            .ok_or_else(|| bad("the local cloud joins terms with AND only"))?
            .trim_start();
    }
}

/// RFC 3339, as Google's JSON writes a Timestamp (`Z` or an offset,
/// fractions of a second up to nanoseconds).
pub fn parse_time(field: &str, text: &str) -> Result<SystemTime, MonitoringError> {
    let bad = || {
        MonitoringError::invalid(format!(
            "Invalid value at '{field}' (type.googleapis.com/google.protobuf.Timestamp), Field '{field}', Illegal timestamp format; timestamps must end with 'Z' or have a valid timezone offset."
        ))
    };
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> Result<i64, MonitoringError> {
        text.get(from..to)
            .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let padded = format!("{:0<9}", &fraction[..digits]);
        nanos = padded.parse().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let (h, m) = (
                rest[1..3].parse::<i64>().map_err(|_| bad())?,
                rest[4..6].parse::<i64>().map_err(|_| bad())?,
            );
            sign * (h * 3600 + m * 60)
        }
        _ => return Err(bad()),
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| bad())?;
    Ok(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Howard Hinnant's civil-to-days algorithm: days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A protobuf Duration in JSON: `60s`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, MonitoringError> {
    text.strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            MonitoringError::invalid(format!(
                "Invalid value at 'aggregation.alignment_period' (type.googleapis.com/google.protobuf.Duration), \"{text}\""
            ))
        })
}
