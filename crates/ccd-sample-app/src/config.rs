//! Command line and environment, resolved once at start into a [`Config`].
//!
//! The environment is read through a lookup function rather than
//! `std::env` directly so the rules can be unit-tested without mutating the
//! process environment (which is `unsafe` in edition 2024).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;

use crate::duration::parse_duration;

/// Most CPU time one request may ask to burn; also caps `SAMPLE_BURN_MS`.
pub const MAX_BURN_MS: u64 = 10_000;
/// Longest `GET /slow` may sleep.
pub const MAX_SLOW_MS: u64 = 60_000;

const DEFAULT_PORT: u16 = 8080;
const DEFAULT_APP: &str = "sample";

/// Sample HTTP app for ccd's end-to-end tests.
///
/// Environment: PORT, HOST, CCD_APP, CCD_VERSION, CCD_INSTANCE,
/// SAMPLE_FAIL_HEALTH=1, SAMPLE_START_DELAY=5s, SAMPLE_CRASH_AFTER=10s,
/// SAMPLE_BURN_MS=50, SAMPLE_ERROR_PERCENT=20, SAMPLE_EXPOSE_ENV=1, RUST_LOG.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Port to listen on (else env PORT, else 8080).
    #[arg(long)]
    pub port: Option<u16>,
    /// IP address to listen on (else env HOST, else 0.0.0.0).
    #[arg(long)]
    pub host: Option<IpAddr>,
}

/// Who this instance says it is on `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub app: String,
    pub version: String,
    pub instance: String,
}

/// Everything the server needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub addr: SocketAddr,
    pub identity: Identity,
    /// `/healthz` answers 503 from the start.
    pub fail_health: bool,
    /// Sleep this long before binding the port.
    pub start_delay: Option<Duration>,
    /// Exit with code 1 this long after the port is bound.
    pub crash_after: Option<Duration>,
    /// CPU milliseconds every `GET /` burns before answering.
    pub burn_ms: u64,
    /// Percent of `GET /` requests answered 500 (evenly spread, not random).
    pub error_percent: u8,
    /// Serve `GET /env/NAME` (whether NAME is set, and its value's SHA-256).
    pub expose_env: bool,
}

/// A bad environment value, worded for the person who set it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {value:?} is not {expected}")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Config {
    /// Resolves flags over environment over defaults. `default_instance` is
    /// used when `CCD_INSTANCE` is unset (the caller passes the hostname).
    pub fn resolve(
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
        default_instance: impl FnOnce() -> String,
    ) -> Result<Self, ConfigError> {
        // Treat empty values as unset: `PORT=` in a manifest means "no port given".
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let invalid = |var: &'static str, value: String, expected: &'static str| ConfigError {
            var,
            value,
            expected,
        };

        let port = match (cli.port, var("PORT")) {
            (Some(port), _) => port,
            (None, Some(v)) => v
                .parse()
                .map_err(|_| invalid("PORT", v, "a port number; use 0-65535"))?,
            (None, None) => DEFAULT_PORT,
        };
        let host = match (cli.host, var("HOST")) {
            (Some(host), _) => host,
            (None, Some(v)) => v
                .parse()
                .map_err(|_| invalid("HOST", v, "an IP address; use e.g. 0.0.0.0, 127.0.0.1"))?,
            (None, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };

        let identity = Identity {
            app: var("CCD_APP").unwrap_or_else(|| DEFAULT_APP.to_string()),
            version: var("CCD_VERSION").unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            instance: var("CCD_INSTANCE").unwrap_or_else(default_instance),
        };

        let switch = |name: &'static str| match var(name).as_deref() {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(other) => Err(invalid(name, other.to_string(), "a switch; use 1 or 0")),
        };
        let fail_health = switch("SAMPLE_FAIL_HEALTH")?;
        let expose_env = switch("SAMPLE_EXPOSE_ENV")?;

        let duration = |name: &'static str| -> Result<Option<Duration>, ConfigError> {
            var(name)
                .map(|v| {
                    parse_duration(&v)
                        .map_err(|_| invalid(name, v, "a duration; use e.g. 500ms, 5s"))
                })
                .transpose()
        };
        let start_delay = duration("SAMPLE_START_DELAY")?;
        let crash_after = duration("SAMPLE_CRASH_AFTER")?;

        let burn_ms = match var("SAMPLE_BURN_MS") {
            None => 0,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if ms <= MAX_BURN_MS => ms,
                _ => {
                    return Err(invalid(
                        "SAMPLE_BURN_MS",
                        v,
                        "a number of milliseconds from 0 to 10000",
                    ));
                }
            },
        };

        let error_percent = match var("SAMPLE_ERROR_PERCENT") {
            None => 0,
            Some(v) => match v.parse::<u8>() {
                Ok(p) if p <= 100 => p,
                _ => {
                    return Err(invalid(
                        "SAMPLE_ERROR_PERCENT",
                        v,
                        "a whole percentage from 0 to 100",
                    ));
                }
            },
        };

        Ok(Self {
            addr: SocketAddr::new(host, port),
            identity,
            fail_health,
            start_delay,
            crash_after,
            burn_ms,
            error_percent,
            expose_env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("ccd-sample-app").chain(args.iter().copied()))
                .unwrap();
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        Config::resolve(&cli, lookup, || "box-1".to_string())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let config = resolve(&[], &[]).unwrap();
        assert_eq!(config.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            config.identity,
            Identity {
                app: "sample".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                instance: "box-1".into(),
            }
        );
        assert!(!config.fail_health);
        assert_eq!(config.start_delay, None);
        assert_eq!(config.crash_after, None);
        assert_eq!(config.burn_ms, 0);
        assert_eq!(config.error_percent, 0);
        assert!(!config.expose_env);
    }

    #[test]
    fn env_sets_everything() {
        let config = resolve(
            &[],
            &[
                ("PORT", "9000"),
                ("HOST", "127.0.0.1"),
                ("CCD_APP", "shop"),
                ("CCD_VERSION", "v42"),
                ("CCD_INSTANCE", "shop-3"),
                ("SAMPLE_FAIL_HEALTH", "1"),
                ("SAMPLE_START_DELAY", "5s"),
                ("SAMPLE_CRASH_AFTER", "300ms"),
                ("SAMPLE_BURN_MS", "50"),
                ("SAMPLE_EXPOSE_ENV", "1"),
            ],
        )
        .unwrap();
        assert_eq!(config.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(config.identity.app, "shop");
        assert_eq!(config.identity.version, "v42");
        assert_eq!(config.identity.instance, "shop-3");
        assert!(config.fail_health);
        assert_eq!(config.start_delay, Some(Duration::from_secs(5)));
        assert_eq!(config.crash_after, Some(Duration::from_millis(300)));
        assert_eq!(config.burn_ms, 50);
        assert!(config.expose_env);
    }

    #[test]
    fn flags_win_over_env() {
        let config = resolve(
            &["--port", "7000", "--host", "::1"],
            &[("PORT", "9000"), ("HOST", "127.0.0.1")],
        )
        .unwrap();
        assert_eq!(config.addr, "[::1]:7000".parse().unwrap());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = resolve(
            &[],
            &[("PORT", ""), ("CCD_APP", " "), ("SAMPLE_START_DELAY", "")],
        )
        .unwrap();
        assert_eq!(config.addr.port(), 8080);
        assert_eq!(config.identity.app, "sample");
        assert_eq!(config.start_delay, None);
    }

    #[test]
    fn fail_health_accepts_only_clear_switches() {
        for (value, want) in [("0", false), ("false", false), ("1", true), ("true", true)] {
            let config = resolve(&[], &[("SAMPLE_FAIL_HEALTH", value)]).unwrap();
            assert_eq!(config.fail_health, want, "{value}");
        }
        let err = resolve(&[], &[("SAMPLE_FAIL_HEALTH", "yes please")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"SAMPLE_FAIL_HEALTH: "yes please" is not a switch; use 1 or 0"#
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let cases = [
            (
                "SAMPLE_START_DELAY",
                "abc",
                r#"SAMPLE_START_DELAY: "abc" is not a duration; use e.g. 500ms, 5s"#,
            ),
            (
                "SAMPLE_CRASH_AFTER",
                "1h",
                r#"SAMPLE_CRASH_AFTER: "1h" is not a duration; use e.g. 500ms, 5s"#,
            ),
            (
                "SAMPLE_BURN_MS",
                "lots",
                r#"SAMPLE_BURN_MS: "lots" is not a number of milliseconds from 0 to 10000"#,
            ),
            (
                "SAMPLE_BURN_MS",
                "10001",
                r#"SAMPLE_BURN_MS: "10001" is not a number of milliseconds from 0 to 10000"#,
            ),
            (
                "PORT",
                "70000",
                r#"PORT: "70000" is not a port number; use 0-65535"#,
            ),
            (
                "HOST",
                "example.com",
                r#"HOST: "example.com" is not an IP address; use e.g. 0.0.0.0, 127.0.0.1"#,
            ),
        ];
        for (var, value, message) in cases {
            let err = resolve(&[], &[(var, value)]).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
    }

    #[test]
    fn bad_flags_are_rejected_by_the_parser() {
        let argv = ["ccd-sample-app", "--port", "http"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
