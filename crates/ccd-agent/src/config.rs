//! What an agent is told: one definition, written into the instance's
//! metadata by the controller and read by the agent.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The instance metadata item that holds an [`AgentConfig`] as JSON.
pub const METADATA_KEY: &str = "ccd-agent";

/// The app's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum CheckConfig {
    /// Passes on a 2xx answer to `GET path` on the instance's own port.
    Http { port: u16, path: String },
    /// Passes when a connection to the port is accepted.
    Tcp { port: u16 },
    /// Passes when the command exits 0 within the timeout (workers with no port).
    Exec { command: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    pub app: String,
    pub version: String,
    pub check: CheckConfig,
    #[serde(with = "millis")]
    pub interval: Duration,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Failures do not count this long after the app (re)starts.
    #[serde(with = "millis")]
    pub initial_delay: Duration,
    /// CPU use, in percent of the instance's CPUs, above which for
    /// `pressure_checks` reports in a row a CPU pressure alert is raised.
    #[serde(default = "default_pressure")]
    pub cpu_pressure_percent: u32,
    /// Memory use, in percent of the instance's, above which a memory
    /// pressure alert is raised.
    #[serde(default = "default_pressure")]
    pub memory_pressure_percent: u32,
    #[serde(default = "default_pressure_checks")]
    pub pressure_checks: u32,
}

fn default_pressure() -> u32 {
    90
}

fn default_pressure_checks() -> u32 {
    3
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("metadata item {METADATA_KEY} is not a valid agent configuration: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("metadata item {METADATA_KEY}: {0}")]
    Invalid(String),
}

impl AgentConfig {
    pub fn cpu_pressure(&self) -> f64 {
        f64::from(self.cpu_pressure_percent) / 100.0
    }

    pub fn memory_pressure(&self) -> f64 {
        f64::from(self.memory_pressure_percent) / 100.0
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: AgentConfig = serde_json::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.interval.is_zero() || self.timeout.is_zero() {
            return invalid("interval and timeout must be positive");
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 {
            return invalid("thresholds must be at least 1");
        }
        if let CheckConfig::Exec { command } = &self.check
            && command.first().is_none_or(String::is_empty)
        {
            return invalid("an exec check must name a command");
        }
        for (name, level) in [
            ("cpuPressurePercent", self.cpu_pressure_percent),
            ("memoryPressurePercent", self.memory_pressure_percent),
        ] {
            if !(1..=100).contains(&level) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be from 1 to 100, not {level}"
                )));
            }
        }
        Ok(())
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
