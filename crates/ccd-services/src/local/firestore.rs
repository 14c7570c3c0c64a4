//! The apps' document databases under `ccd up`: Google's Firestore emulator
//! (from the Cloud SDK on this machine), each app in a project of its own.
//! The emulator keeps documents in memory and checks no credentials: on one
//! machine the projects keep apps' data apart, not out of each other's
//! reach (on Google Cloud, a database per app and a conditional IAM grant).

use std::path::PathBuf;
use std::time::Duration;

use super::LocalServices;
use super::files::private_dir;
use super::server::{self, Server};
use crate::{ServiceStatus, names};

#[derive(Debug)]
pub(crate) struct LocalFirestore {
    /// Ours (kill on drop); `None` for one an earlier ccd up left running.
    server: Option<tokio::process::Child>,
    address: String,
}

impl Server for LocalFirestore {
    async fn alive(&mut self) -> bool {
        match &mut self.server {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => answers(&self.address).await.is_ok(),
        }
    }
}

/// The project an app's documents live in under `ccd up`.
pub fn local_project(app: &str) -> String {
    format!("ccd-{app}")
}

impl LocalServices {
    async fn firestore(&self) -> Result<tokio::sync::MappedMutexGuard<'_, LocalFirestore>, String> {
        server::running(
            &self.firestore,
            "Firestore emulator",
            LocalFirestore::start(self.dir.join("firestore")),
            || self.forget("nosql"),
        )
        .await
        .map_err(|e| format!("nosql: {e}"))
    }

    pub(super) async fn nosql(
        &self,
        app: &str,
        database: Option<&str>,
    ) -> Result<ServiceStatus, String> {
        let database = names::nosql_database(app, database);
        let emulator = self.firestore().await?;
        let project = local_project(app);
        let done = format!("{project} {database} {}", emulator.address);
        if !self.applied("nosql", app, &done) {
            let values = [
                ("FIRESTORE_PROJECT_ID", project.clone()),
                ("FIRESTORE_DATABASE_ID", database.clone()),
                ("FIRESTORE_EMULATOR_HOST", emulator.address.clone()),
            ];
            self.deliver(app, "nosql", 0, &values)?;
            self.remember("nosql", app, done);
        }
        Ok(ServiceStatus {
            endpoint: Some(emulator.address.clone()),
            scope: Some(format!("project {project}, database {database}")),
            name: Some(database),
            ..ServiceStatus::ready("nosql")
        })
    }

    /// `onDelete: delete`: the app's documents are gone.
    pub(super) async fn drop_nosql(&self, app: &str, database: Option<&str>) -> Result<(), String> {
        let database = names::nosql_database(app, database);
        let emulator = self.firestore().await?;
        let path = format!(
            "/emulator/v1/projects/{}/databases/{database}/documents",
            local_project(app)
        );
        match server::http(&emulator.address, "DELETE", &path, None).await? {
            (200, _) => {}
            (code, body) => return Err(format!("nosql: the emulator answered {code}: {body}")),
        }
        self.forget_app("nosql", app);
        self.undeliver(app, "nosql");
        Ok(())
    }
}

impl LocalFirestore {
    async fn start(dir: PathBuf) -> Result<LocalFirestore, String> {
        let jar = emulator_jar().ok_or_else(|| {
            "the Firestore emulator is not installed: apt-get install google-cloud-cli \
             google-cloud-cli-firestore-emulator (or set FIRESTORE_EMULATOR_JAR), then touch \
             the spec"
                .to_owned()
        })?;
        let java = server::on_path("java", &["/usr/bin"]).ok_or_else(|| {
            "the Firestore emulator needs Java: apt-get install default-jre-headless".to_owned()
        })?;
        private_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Some(port) = server::recorded_port(&dir) {
            let address = format!("127.0.0.1:{port}");
            if answers(&address).await.is_ok() {
                tracing::info!(%address, "adopted the Firestore emulator an earlier ccd up left running");
                return Ok(LocalFirestore {
                    server: None,
                    address,
                });
            }
        }
        let port = server::claim_port(&dir)?;
        let args = [
            "-Duser.language=en".to_owned(),
            "-cp".to_owned(),
            jar.display().to_string(),
            "com.google.cloud.datastore.emulator.firestore.CloudFirestore".to_owned(),
            "start".to_owned(),
            "--host".to_owned(),
            "127.0.0.1".to_owned(),
            "--port".to_owned(),
            port.to_string(),
        ];
        let child = server::spawn(&java, &args, &dir, "firestore.log")?;
        let emulator = LocalFirestore {
            server: Some(child),
            address: format!("127.0.0.1:{port}"),
        };
        server::answers(Duration::from_secs(60), Duration::from_millis(250), || {
            answers(&emulator.address)
        })
        .await
        .map_err(|last| {
            format!(
                "the Firestore emulator did not answer within 60 s ({last}); see {}",
                dir.join("firestore.log").display()
            )
        })?;
        tracing::info!(address = %emulator.address, "Firestore emulator started for the apps' documents");
        Ok(emulator)
    }
}

/// The emulator answers `Ok` on `/`.
async fn answers(address: &str) -> Result<(), String> {
    match server::http(address, "GET", "/", None).await? {
        (200, body) if body.trim() == "Ok" => Ok(()),
        (code, _) => Err(format!(
            "{address} answered {code}, not as the Firestore emulator"
        )),
    }
}

/// `FIRESTORE_EMULATOR_JAR`, else the Cloud SDK's.
fn emulator_jar() -> Option<PathBuf> {
    if let Some(jar) = std::env::var_os("FIRESTORE_EMULATOR_JAR") {
        return Some(PathBuf::from(jar));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(gcloud) = server::on_path("gcloud", &[])
        && let Ok(real) = std::fs::canonicalize(gcloud)
        && let Some(root) = real.parent().and_then(|bin| bin.parent())
    {
        roots.push(root.to_owned());
    }
    roots.extend(
        [
            "/usr/lib/google-cloud-sdk",
            "/usr/share/google-cloud-sdk",
            "/opt/google-cloud-sdk",
        ]
        .map(PathBuf::from),
    );
    server::first_file(
        roots
            .into_iter()
            .map(|r| r.join("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")),
    )
}
