//! Reading the agent's configuration from the metadata server, as every
//! program on a Compute Engine VM does.

use std::time::Duration;

use crate::config::{AgentConfig, ConfigError, METADATA_KEY};

/// Where the metadata server is: `GCE_METADATA_HOST` (as Google's client
/// libraries read it; the local cloud sets it per instance), else Compute's.
pub fn host() -> String {
    host_from(std::env::var("GCE_METADATA_HOST").ok())
}

fn host_from(var: Option<String>) -> String {
    var.filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "metadata.google.internal".to_owned())
}

/// What the agent learns from the metadata server.
#[derive(Debug, Clone)]
pub struct FromMetadata {
    pub instance: String,
    pub instance_id: String,
    pub project: String,
    pub config: AgentConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata server at {host}: {path}: {message}")]
    Unreachable {
        host: String,
        path: String,
        message: String,
    },
    #[error(
        "this instance has no metadata item {METADATA_KEY}: it was not created from a ccd template (or an old one)"
    )]
    NoConfig,
    #[error(transparent)]
    Config(#[from] ConfigError),
}

pub async fn read(host: &str) -> Result<FromMetadata, MetadataError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .map_err(|e| MetadataError::Unreachable {
            host: host.to_owned(),
            path: String::new(),
            message: e.to_string(),
        })?;
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let url = format!("http://{host}/computeMetadata/v1/{path}");
            let failed = |message: String| MetadataError::Unreachable {
                host: host.to_owned(),
                path: path.to_owned(),
                message,
            };
            let response = client
                .get(&url)
                .header("Metadata-Flavor", "Google")
                .send()
                .await
                .map_err(|e| failed(e.to_string()))?;
            match response.status().as_u16() {
                200 => response
                    .text()
                    .await
                    .map(Some)
                    .map_err(|e| failed(e.to_string())),
                404 => Ok(None),
                code => Err(failed(format!("HTTP {code}"))),
            }
        }
    };
    let missing = |path: &str| MetadataError::Unreachable {
        host: host.to_owned(),
        path: path.to_owned(),
        message: "not found".to_owned(),
    };
    let instance = get("instance/name")
        .await?
        .ok_or_else(|| missing("instance/name"))?;
    let instance_id = get("instance/id")
        .await?
        .ok_or_else(|| missing("instance/id"))?;
    let project = get("project/project-id")
        .await?
        .ok_or_else(|| missing("project/project-id"))?;
    let text = get("instance/attributes/ccd-agent")
        .await?
        .ok_or(MetadataError::NoConfig)?;
    Ok(FromMetadata {
        instance,
        instance_id,
        project,
        config: AgentConfig::parse(&text)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_host_comes_from_the_environment_like_googles_libraries() {
        assert_eq!(host_from(None), "metadata.google.internal");
        assert_eq!(host_from(Some(" ".into())), "metadata.google.internal");
        assert_eq!(
            host_from(Some("127.0.0.1:9/instances/z/vm-1".into())),
            "127.0.0.1:9/instances/z/vm-1"
        );
    }
}
