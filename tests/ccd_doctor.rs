//! `ccd doctor --config FILE` against a local cloud: the real binary, its
//! lines and exit code as a person running it sees them.

use std::path::Path;

use anyhow::{Context, Result};
use ccd_e2e::{LocalCloudProcess, binary, temp_dir};
use serde_json::json;

/// The project's `default` network and its subnetwork in the region, made
/// through the API when the local cloud has not made them itself.
async fn default_network(cloud: &LocalCloudProcess) -> Result<()> {
    let api = cloud.api("p");
    if api.get("global/networks/default").await.is_err() {
        api.post(
            "global/networks",
            json!({"name": "default", "autoCreateSubnetworks": true}),
        )
        .await?;
    }
    if api
        .get("regions/europe-west1/subnetworks/default")
        .await
        .is_err()
    {
        let body = json!({
            "name": "default", "network": "global/networks/default",
            "ipCidrRange": "10.132.0.0/20", "privateIpGoogleAccess": true,
        });
        api.post("regions/europe-west1/subnetworks", body).await?;
    }
    Ok(())
}

/// A store with the example `hello` spec and a configuration naming it.
fn setup(dir: &Path, cloud: &LocalCloudProcess, extra: &str) -> Result<std::path::PathBuf> {
    let store = dir.join("store");
    std::fs::create_dir_all(store.join("specs"))?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/examples/hello.yaml");
    std::fs::copy(&example, store.join("specs/hello.yaml")).context("example spec")?;
    let config = dir.join("ccd.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"store": "{}", "project": "p", "region": "europe-west1", "endpoint": "{}", "endpointTokenFile": "{}"{extra}}}"#,
            store.display(),
            cloud.base,
            cloud.token_file.display()
        ),
    )?;
    Ok(config)
}

/// Runs `ccd doctor`: its exit code and stdout.
async fn doctor(config: &Path) -> Result<(i32, String)> {
    doctor_with(config, &[]).await
}

/// `ccd doctor` with environment variables (the emulators').
async fn doctor_with(config: &Path, env: &[(&str, &str)]) -> Result<(i32, String)> {
    let out = tokio::process::Command::new(binary("ccd"))
        .args(["doctor", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok((out.status.code().unwrap_or(-1), stdout))
}

fn line<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(check)))
        .unwrap_or_default()
}

#[tokio::test]
async fn passes_on_the_local_clouds_default_network() -> Result<()> {
    let dir = temp_dir("doctor-ok");
    let cloud = LocalCloudProcess::start(&dir).await?;
    default_network(&cloud).await?;
    let config = setup(&dir, &cloud, "")?;
    let (code, out) = doctor(&config).await?;
    assert_eq!(code, 0, "{out}");
    assert!(!out.lines().any(|l| l.starts_with("fail")), "{out}");
    assert!(
        line(&out, "network").starts_with("ok") && out.contains("default exists"),
        "{out}"
    );
    assert!(line(&out, "subnetwork").starts_with("ok"), "{out}");
    assert!(line(&out, "store").starts_with("ok"), "{out}");
    // What a local cloud cannot show is said, not passed.
    assert!(line(&out, "permissions").starts_with("warn"), "{out}");
    assert!(line(&out, "apis").starts_with("warn"), "{out}");
    // The probe is gone.
    let controls = dir.join("store/controls");
    let left = std::fs::read_dir(&controls).map_or(0, |d| d.count());
    assert_eq!(left, 0, "probe left in {}", controls.display());
    Ok(())
}

#[tokio::test]
async fn fails_naming_a_network_that_does_not_exist() -> Result<()> {
    let dir = temp_dir("doctor-net");
    let cloud = LocalCloudProcess::start(&dir).await?;
    default_network(&cloud).await?;
    let config = setup(&dir, &cloud, r#", "network": "prod-vpc""#)?;
    let (code, out) = doctor(&config).await?;
    assert_eq!(code, 1, "{out}");
    let network = line(&out, "network");
    assert!(network.starts_with("fail"), "{out}");
    assert!(network.contains("network prod-vpc not found"), "{network}");
    assert!(
        network.contains("\"network\"")
            && network.contains("gcloud compute networks create prod-vpc"),
        "{network}"
    );
    Ok(())
}

#[tokio::test]
async fn fails_naming_a_store_it_cannot_write() -> Result<()> {
    let dir = temp_dir("doctor-store");
    let cloud = LocalCloudProcess::start(&dir).await?;
    default_network(&cloud).await?;
    let config = setup(&dir, &cloud, "")?;
    // A file where the store keeps its controls: no write can succeed, even as root.
    std::fs::write(dir.join("store/controls"), "not a folder")?;
    let (code, out) = doctor(&config).await?;
    assert_eq!(code, 1, "{out}");
    let store = line(&out, "store");
    assert!(store.starts_with("fail"), "{out}");
    assert!(
        store.contains(&dir.join("store").display().to_string()),
        "{store}"
    );
    assert!(
        line(&out, "network").starts_with("ok"),
        "the other checks still run: {out}"
    );
    Ok(())
}

#[tokio::test]
async fn fails_naming_a_token_file_it_cannot_read() -> Result<()> {
    let dir = temp_dir("doctor-token");
    let cloud = LocalCloudProcess::start(&dir).await?;
    let config = setup(&dir, &cloud, "")?;
    let missing = dir.join("no-such-token");
    let text = std::fs::read_to_string(&config)?;
    let token_file = cloud.token_file.display().to_string();
    std::fs::write(
        &config,
        text.replace(&token_file, &missing.display().to_string()),
    )?;
    let (code, out) = doctor(&config).await?;
    assert_eq!(code, 1, "{out}");
    let credentials = line(&out, "credentials");
    assert!(credentials.starts_with("fail"), "{out}");
    assert!(
        credentials.contains(&missing.display().to_string())
            && credentials.contains("endpointTokenFile"),
        "{credentials}"
    );
    Ok(())
}

#[tokio::test]
async fn checks_the_bucket_notification_subscription() -> Result<()> {
    use ccd_e2e::notifications::Notified;
    let dir = temp_dir("doctor-notes");
    let cloud = LocalCloudProcess::start(&dir).await?;
    default_network(&cloud).await?;
    let notified = Notified::start().await?;
    notified.gcs.create_bucket("ccd-doctor").await?;
    let env = [
        ("STORAGE_EMULATOR_HOST", notified.gcs.host.as_str()),
        ("PUBSUB_EMULATOR_HOST", notified.pubsub.as_str()),
    ];
    let config = dir.join("ccd.json");
    let write = |subscription: &str| {
        std::fs::write(
            &config,
            json!({
                "store": "gs://ccd-doctor/prod", "project": "p", "region": "europe-west1",
                "endpoint": cloud.base, "endpointTokenFile": cloud.token_file,
                "bucketNotifications": {"subscription": subscription},
            })
            .to_string(),
        )
    };
    write("projects/local/subscriptions/not-made")?;
    let (code, out) = doctor_with(&config, &env).await?;
    assert_eq!(code, 1, "{out}");
    let notes = line(&out, "notifications");
    assert!(notes.starts_with("fail"), "{out}");
    assert!(
        notes.contains("projects/local/subscriptions/not-made does not exist")
            && notes.contains("gcloud pubsub subscriptions create"),
        "{notes}"
    );
    write(&notified.subscription)?;
    let (_, out) = doctor_with(&config, &env).await?;
    let notes = line(&out, "notifications");
    assert!(notes.starts_with("ok"), "{out}");
    assert!(
        notes.contains("projects/local/topics/spec-changes")
            && notes.contains("gcloud storage buckets notifications list gs://ccd-doctor"),
        "{notes}"
    );
    assert!(line(&out, "store").starts_with("ok"), "{out}");
    Ok(())
}
