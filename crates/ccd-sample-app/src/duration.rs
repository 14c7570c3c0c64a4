//! A tiny duration parser for the `SAMPLE_*` switches: `500ms`, `5s`, `2m`,
//! or a plain whole number meaning seconds. Kept in-crate so the sample app
//! pulls in no extra dependency for it.

use std::time::Duration;

/// Why a duration string was rejected; the caller adds the variable name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration; use e.g. 500ms, 5s")]
pub struct BadDuration(pub String);

/// Parses `N`, `Nms`, `Ns` or `Nm` (N a whole number, surrounding blanks allowed).
pub fn parse_duration(input: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(input.to_string());
    let text = input.trim();
    // "ms" first: "500ms" also ends in 's'.
    let (digits, millis_per_unit): (&str, u64) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1_000)
    };
    // u64::from_str accepts a leading '+'; a duration written that way is odd
    // enough that we reject it rather than guess.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let value: u64 = digits.parse().map_err(|_| bad())?;
    let millis = value.checked_mul(millis_per_unit).ok_or_else(bad)?;
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn plain_number_means_seconds() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 3 "), Ok(Duration::from_secs(3)));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "abc", "ms", "s", "5h", "1.5s", "-1s", "+5s", "5 s", "s5", "5sm",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(BadDuration(bad.to_string())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rejects_overflow_instead_of_wrapping() {
        assert!(parse_duration("18446744073709551615m").is_err());
        assert!(parse_duration("99999999999999999999999").is_err());
    }

    #[test]
    fn error_message_names_the_value_and_the_forms() {
        let err = parse_duration("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""abc" is not a duration; use e.g. 500ms, 5s"#
        );
    }
}
