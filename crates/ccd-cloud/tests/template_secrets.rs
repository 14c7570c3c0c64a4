//! A template's secret references as Compute Engine gets them: in the
//! startup script and in the `ccd-secrets` item the local cloud reads,
//! names and versions only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ccd_cloud::model::SecretRef;
use ccd_cloud::{Cloud, CloudError};
use ccd_localcloud::FaultConfig;
use common::{PROJECT, template};

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
    let t: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
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
