//! Instances of the local cloud are real processes: they answer on their own
//! addresses, restart when they crash, are recreated by autohealing when
//! their health check fails, and come back after the local cloud restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use ccd_e2e::{Api, LocalCloudProcess, binary, eventually, temp_dir};
use serde_json::{Value, json};

const ZONE: &str = "zones/europe-west1-b";

fn template(name: &str, version: &str) -> Value {
    let run = json!({
        "command": [binary("ccd-sample-app").display().to_string()],
        "args": ["--port", "$(PORT)"],
        "env": {"PORT": "8080", "CCD_VERSION": version},
        "stopGraceSec": 5,
    });
    json!({"name": name, "properties": {"machineType": "e2-small", "tags": {"items": ["web"]},
        "metadata": {"items": [{"key": "ccd-local-run", "value": run.to_string()}]}}})
}

async fn managed(api: &Api, group: &str) -> Vec<Value> {
    api.post(
        &format!("{ZONE}/instanceGroupManagers/{group}/listManagedInstances"),
        json!({}),
    )
    .await
    .ok()
    .and_then(|v| v["managedInstances"].as_array().cloned())
    .unwrap_or_default()
}

async fn address_of(api: &Api, instance_link: &str) -> String {
    let name = instance_link.rsplit('/').next().unwrap();
    let i = api.get(&format!("{ZONE}/instances/{name}")).await.unwrap();
    i["networkInterfaces"][0]["networkIP"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn answer(http: &reqwest::Client, ip: &str) -> Option<Value> {
    http.get(format!("http://{ip}:8080/"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_run_heal_and_survive_a_restart() {
    let data = temp_dir("instances");
    let cloud = LocalCloudProcess::start(&data).await.unwrap();
    let api = cloud.api("e2e");
    let http = reqwest::Client::new();

    api.post("global/instanceTemplates", template("web-v1", "1.0.0"))
        .await
        .unwrap();
    api.post(
        "global/healthChecks",
        json!({"name": "web-hc", "type": "HTTP",
        "httpHealthCheck": {"port": 8080, "requestPath": "/healthz"},
        "checkIntervalSec": 1, "timeoutSec": 1, "healthyThreshold": 1, "unhealthyThreshold": 2}),
    )
    .await
    .unwrap();
    // Health probes come from Google's ranges: the firewall must admit them.
    api.post(
        "global/firewalls",
        json!({"name": "allow-hc", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"],
        "targetTags": ["web"], "allowed": [{"IPProtocol": "tcp", "ports": ["8080"]}]}),
    )
    .await
    .unwrap();
    api.post(&format!("{ZONE}/instanceGroupManagers"), json!({"name": "web", "instanceTemplate": "global/instanceTemplates/web-v1",
        "targetSize": 2, "autoHealingPolicies": [{"healthCheck": "global/healthChecks/web-hc", "initialDelaySec": 1}]})).await.unwrap();

    // Both instances answer on their own addresses once the group is stable.
    let members = eventually("a stable group of 2", Duration::from_secs(60), || async {
        let g = api
            .get(&format!("{ZONE}/instanceGroupManagers/web"))
            .await
            .ok()?;
        let m = managed(&api, "web").await;
        (g["status"]["isStable"] == true && m.len() == 2).then_some(m)
    })
    .await
    .unwrap();
    let mut addresses = Vec::new();
    for m in &members {
        assert_eq!(
            m["instanceHealth"][0]["detailedHealthState"], "HEALTHY",
            "{m}"
        );
        let ip = address_of(&api, m["instance"].as_str().unwrap()).await;
        let body = answer(&http, &ip).await.expect("the instance answers");
        assert_eq!(body["version"], "1.0.0");
        assert_eq!(body["instance"], m["name"]);
        addresses.push(ip);
    }
    assert_ne!(
        addresses[0], addresses[1],
        "each instance has its own address"
    );

    // A crash on demand: the process restarts (a new pid) and the instance stays.
    let victim = members[0]["name"].as_str().unwrap().to_owned();
    let pid_before = answer(&http, &addresses[0]).await.unwrap()["pid"].clone();
    let crash = format!(
        "{}/admin/v1/projects/e2e/{ZONE}/instances/{victim}/crash",
        cloud.base
    );
    assert_eq!(
        cloud.http().post(&crash).send().await.unwrap().status(),
        202
    );
    eventually(
        "the crashed instance to answer with a new pid",
        Duration::from_secs(30),
        || async {
            let body = answer(&http, &addresses[0]).await?;
            (body["pid"] != pid_before).then_some(())
        },
    )
    .await
    .unwrap();

    // Failing health: autohealing recreates the instance (a new id, same name), which is healthy again.
    let sick = members[1]["name"].as_str().unwrap().to_owned();
    let sick_id = members[1]["id"].clone();
    http.post(format!(
        "http://{}:8080/admin/health?fail=true",
        addresses[1]
    ))
    .send()
    .await
    .unwrap();
    eventually(
        "autohealing to recreate the failing instance",
        Duration::from_secs(60),
        || async {
            let m = managed(&api, "web").await;
            let again = m.iter().find(|i| i["name"] == sick.as_str())?;
            (again["id"] != sick_id
                && again["currentAction"] == "NONE"
                && again["instanceHealth"][0]["detailedHealthState"] == "HEALTHY")
                .then_some(())
        },
    )
    .await
    .unwrap();

    // kill -9 of the local cloud: its instances are stopped by the next one, which starts them again.
    let pid = cloud.pid();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    drop(cloud);
    let cloud = LocalCloudProcess::start(&data).await.unwrap();
    let api = cloud.api("e2e");
    let members = managed(&api, "web").await;
    assert_eq!(
        members.len(),
        2,
        "no instance lost or duplicated by the restart"
    );
    // Recreation gave the healed instance a new address, as an ephemeral IP does.
    let mut addresses = Vec::new();
    for m in &members {
        let ip = address_of(&api, m["instance"].as_str().unwrap()).await;
        let body = eventually(
            "instances back after a restart",
            Duration::from_secs(60),
            || answer(&http, &ip),
        )
        .await
        .unwrap();
        assert_eq!(body["instance"], m["name"]);
        addresses.push(ip);
    }

    // Deleting the group stops its processes.
    api.call(
        reqwest::Method::DELETE,
        &format!("{ZONE}/instanceGroupManagers/web"),
        None,
    )
    .await
    .unwrap();
    for ip in &addresses {
        eventually(
            "the instance's process to stop",
            Duration::from_secs(60),
            || async { answer(&http, ip).await.is_none().then_some(()) },
        )
        .await
        .unwrap();
    }
    drop(cloud);
    let _ = std::fs::remove_dir_all(&data);
}
