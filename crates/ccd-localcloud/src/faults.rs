//! Fault injection for tests and scale runs: a share of API calls failing the
//! way Compute fails under load, and slow operations. Set by flags or the
//! admin endpoint.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of API calls (0 to 1) that fail before doing anything.
    #[serde(default)]
    pub error_rate: f64,
    /// Which failures to draw from: 403 (rateLimitExceeded), 429, 503. Empty means all three.
    #[serde(default)]
    pub error_codes: Vec<u16>,
    /// How long each operation takes from PENDING to DONE, in milliseconds.
    #[serde(default)]
    pub operation_latency_ms: u64,
}

impl FaultConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "errorRate {} must be between 0 and 1",
                self.error_rate
            ));
        }
        if let Some(bad) = self
            .error_codes
            .iter()
            .find(|c| ![403, 429, 503].contains(*c))
        {
            return Err(format!("errorCodes: {bad} is not one of 403, 429, 503"));
        }
        if self.operation_latency_ms > 600_000 {
            return Err("operationLatencyMs must be at most 600000".to_owned());
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    config: Mutex<FaultConfig>,
    rng: AtomicU64,
}

impl Faults {
    pub fn set(&self, config: FaultConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    pub fn get(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn operation_latency(&self) -> Duration {
        Duration::from_millis(self.get().operation_latency_ms)
    }

    /// Maybe fails this call, as configured.
    pub fn maybe_fail(&self) -> Result<(), ApiError> {
        let config = self.get();
        if config.error_rate <= 0.0 {
            return Ok(());
        }
        let draw = self.next_random();
        if (draw % 1_000_000) as f64 >= config.error_rate * 1_000_000.0 {
            return Ok(());
        }
        let codes: &[u16] = if config.error_codes.is_empty() {
            &[403, 429, 503]
        } else {
            &config.error_codes
        };
        let code = codes[(draw / 1_000_000) as usize % codes.len()];
        Err(match code {
            403 => ApiError::new(
                StatusCode::FORBIDDEN,
                "rateLimitExceeded",
                "Rate Limit Exceeded (injected by the local cloud)",
            ),
            429 => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "Quota exceeded for quota metric 'Queries' (injected by the local cloud)",
            ),
            _ => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "The service is currently unavailable (injected by the local cloud)",
            ),
        })
    }

    /// splitmix64: good enough to spread failures, no dependency.
    fn next_random(&self) -> u64 {
        let seed = ccd_clock::since_epoch().as_nanos() as u64;
        let _ = self
            .rng
            .compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
        let mut z = self.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_rate_is_honoured_roughly() {
        let faults = Faults::default();
        faults.set(FaultConfig {
            error_rate: 0.3,
            error_codes: vec![429],
            operation_latency_ms: 0,
        });
        let failed = (0..10_000).filter(|_| faults.maybe_fail().is_err()).count();
        assert!((2_500..3_500).contains(&failed), "{failed}");
        assert_eq!(
            faults.maybe_fail().err().map_or(429, |e| e.status.as_u16()),
            429
        );
        faults.set(FaultConfig::default());
        assert!((0..1000).all(|_| faults.maybe_fail().is_ok()));
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad = FaultConfig {
            error_rate: 2.0,
            ..Default::default()
        };
        assert!(bad.check().is_err());
        let bad = FaultConfig {
            error_codes: vec![500],
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }
}
