//! Serving ccd's REST API (`ccd-api`) beside a controller: its tokens, the
//! admin token `ccd up` writes to `DATA/api-token`, and plans against the
//! controller's cloud.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use ccd_api::{ApiState, EventFeed, Planner, Scope, Tokens};
use ccd_cloud::Cloud;
use ccd_controller::LocalTarget;
use ccd_controller::status::Status;
use tokio_util::sync::CancellationToken;

/// Where `ccd up` keeps the API's token hashes.
pub fn tokens_file(data: &Path) -> PathBuf {
    data.join("api").join("tokens.json")
}

/// Where `ccd up` writes an admin token for the person who runs it.
pub fn admin_token_file(data: &Path) -> PathBuf {
    data.join("api-token")
}

/// The admin token in `DATA/api-token`, made when there is none (or the
/// one there is no longer known): a restart keeps the token scripts use.
pub fn admin_token(data: &Path, tokens: &Tokens) -> anyhow::Result<String> {
    let file = admin_token_file(data);
    if let Ok(kept) = std::fs::read_to_string(&file)
        && let Some(caller) = tokens.caller(kept.trim())
        && caller.scope == Scope::Admin
    {
        return Ok(kept.trim().to_owned());
    }
    let token = tokens.create(Scope::Admin, &[])?;
    ccd_services::private::write(&file, &token)
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(token)
}

/// Plans against the cloud the controller deploys to.
pub struct CloudPlanner<C> {
    pub cloud: Arc<C>,
    pub local: Option<LocalTarget>,
    pub endpoints: ccd_controller::Endpoints,
}

impl<C: Cloud + Send + Sync + 'static> Planner for CloudPlanner<C> {
    fn plan<'a>(
        &'a self,
        app: &'a ccd_spec::App,
        spec_version: &'a str,
        recorded: &'a Status,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send + 'a>,
    > {
        Box::pin(async move {
            let preview = ccd_controller::preview::preview(
                &*self.cloud,
                app,
                spec_version,
                recorded,
                self.local.as_ref(),
                &self.endpoints,
            )
            .await
            .map_err(|e| format!("cannot read the cloud: {e}"))?;
            serde_json::to_value(&preview).map_err(|e| e.to_string())
        })
    }
}

/// Binds `listen` and serves the API there until `stop`; the address bound.
pub async fn serve(
    listen: SocketAddr,
    state: ApiState,
    stop: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for the API on {listen}"))?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = ccd_api::serve(listener, Arc::new(state), stop).await {
            tracing::error!(error = %e, "the API stopped");
        }
    });
    Ok(address)
}

/// What the API of `ccd up` needs besides the cloud: tokens under `data`
/// (with the admin token in `DATA/api-token`), the store and the event feed.
pub fn local_state(data: &Path, feed: EventFeed) -> anyhow::Result<ApiState> {
    let tokens = Tokens::open(&tokens_file(data))?;
    admin_token(data, &tokens)?;
    let store = ccd_store::AnyStore::Folder(
        ccd_store::FolderStore::new(data).context("cannot open the spec folder")?,
    );
    Ok(ApiState::new(store, tokens, feed))
}
