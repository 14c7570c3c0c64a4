//! A template's secret references as Compute Engine gets them: in the
//! startup script and in the `ccd-secrets` item the local cloud reads,
//! names and versions only; and the local cloud's items (`ccd-local-run`,
//! `ccd-secrets`) read back by the local cloud as the adapter meant them.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use ccd_cloud::model::{LocalRun, SecretRef};
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::{FaultConfig, LocalCloud, SecretReference};
use common::{PROJECT, template};

/// A template as the local cloud keeps it, in the API's JSON.
async fn stored_template(local: &LocalCloud, name: &str) -> serde_json::Value {
    let url = format!(
        "{}/compute/v1/projects/{PROJECT}/global/instanceTemplates/{name}",
        local.endpoint()
    );
    common::http(local)
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The contract end to end: the adapter writes the items through `ccd_wire`, the local cloud
/// stores the template, and its own readers (the ones that start the process and read its
/// secrets) find what the spec said. A field renamed, or written by hand, on either side
/// fails here.
#[tokio::test]
async fn what_the_adapter_writes_is_what_the_local_cloud_reads() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let mut spec = template("web", "1.0.0");
    spec.secrets.insert(
        "DB_PASSWORD".to_owned(),
        SecretRef {
            secret: "db".to_owned(),
            version: "3".to_owned(),
        },
    );
    spec.local_run = Some(LocalRun::Process {
        command: vec!["ccd-sample-app".to_owned()],
        args: vec!["--port".to_owned(), "$(PORT)".to_owned()],
        env: BTreeMap::from([("MODE".to_owned(), "blue".to_owned())]),
        stop_grace: Duration::from_secs(7),
    });
    let name = cloud.ensure_template(&spec).await.unwrap();
    let t = stored_template(&local, &name).await;

    let run = ccd_localcloud::local_run_of_template(&t).unwrap();
    assert_eq!(
        run,
        ccd_localcloud::LocalRun {
            command: vec!["ccd-sample-app".to_owned()],
            args: vec!["--port".to_owned(), "$(PORT)".to_owned()],
            // The app's env, PORT, and the local run's own.
            env: BTreeMap::from([
                ("GREETING".to_owned(), "hello".to_owned()),
                ("MODE".to_owned(), "blue".to_owned()),
                ("PORT".to_owned(), "8080".to_owned()),
            ]),
            simulated: false,
            stop_grace_sec: Some(7),
        }
    );
    let refs = ccd_localcloud::secret_references_of_template(&t).unwrap();
    assert_eq!(
        refs,
        [SecretReference {
            env: "DB_PASSWORD".to_owned(),
            project: PROJECT.to_owned(),
            secret: "db".to_owned(),
            version: "3".to_owned(),
        }]
    );

    // A simulated instance is one to the local cloud too.
    let simulated = cloud
        .ensure_template(&template("web", "2.0.0"))
        .await
        .unwrap();
    let t = stored_template(&local, &simulated).await;
    assert!(ccd_localcloud::local_run_of_template(&t).unwrap().simulated);
    assert!(
        ccd_localcloud::secret_references_of_template(&t)
            .unwrap()
            .is_empty()
    );
    common::finish(local).await;
}

#[tokio::test]
async fn secret_references_are_rendered_into_the_template_metadata() {
    let (local, cloud) = common::start(FaultConfig::default()).await;
    let mut spec = template("web", "1.0.0");
    spec.secrets.insert(
        "DB_PASSWORD".to_owned(),
        SecretRef {
            secret: "db".to_owned(),
            version: "3".to_owned(),
        },
    );
    let name = cloud.ensure_template(&spec).await.unwrap();
    assert_ne!(name, template("web", "1.0.0").name());

    let url = format!(
        "{}/compute/v1/projects/{PROJECT}/global/instanceTemplates/{name}",
        local.endpoint()
    );
    let t: serde_json::Value = common::http(&local)
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = t["properties"]["metadata"]["items"].as_array().unwrap();
    let item = |key: &str| {
        items
            .iter()
            .find(|i| i["key"] == key)
            .and_then(|i| i["value"].as_str())
            .unwrap_or_else(|| panic!("no {key} in {t}"))
            .to_owned()
    };
    assert_eq!(
        item("ccd-secrets"),
        format!(r#"{{"DB_PASSWORD":"projects/{PROJECT}/secrets/db/versions/3"}}"#)
    );
    let script = item("startup-script");
    assert!(
        script.contains(&format!(
            "secret 'DB_PASSWORD' 'projects/{PROJECT}/secrets/db/versions/3'\n"
        )),
        "{script}"
    );
    assert!(
        script.contains("--env-file /run/ccd/secrets.env"),
        "{script}"
    );

    // A reference that could break the script is refused before any call.
    spec.secrets.insert(
        "BAD".to_owned(),
        SecretRef {
            secret: "../other".to_owned(),
            version: "latest".to_owned(),
        },
    );
    let err = cloud.ensure_template(&spec).await.unwrap_err();
    assert!(matches!(err, CloudError::Invalid { .. }), "{err:?}");
    assert_eq!(cloud.list_templates("web").await.unwrap().len(), 1);
    common::finish(local).await;
}
