//! Google's official clients for IAM Admin, Resource Manager and Secret
//! Manager against the local cloud's IAM subset: what ccd's controller
//! does for an app's service account, over the wire it uses.

use crate::common;

use ccd_localcloud::{Config, LocalCloud};
use common::finish;
use google_cloud_gax::error::rpc::Code;
use google_cloud_iam_admin_v1::model::ServiceAccount;
use google_cloud_iam_v1::model::{Binding, GetPolicyOptions, Policy};

const PROJECT: &str = "ccd-test";
const ACCESSOR: &str = "roles/secretmanager.secretAccessor";

fn code<T: std::fmt::Debug>(result: Result<T, google_cloud_gax::error::Error>) -> Code {
    let e = result.expect_err("the call fails");
    e.status().map(|s| s.code).unwrap_or(Code::Unknown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_clients_manage_an_account_and_its_grants() {
    let data = std::env::temp_dir().join(format!("ccd-localcloud-sdk-iam-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(data.join("secrets")).unwrap();
    std::fs::write(data.join("secrets").join("db-password"), "value").unwrap();
    let cloud = LocalCloud::start(Config {
        data_dir: Some(data.clone()),
        check_responses: true,
        ..Config::default()
    })
    .await
    .unwrap();
    let iam = client!(google_cloud_iam_admin_v1::client::Iam, cloud);
    let projects = client!(google_cloud_resourcemanager_v3::client::Projects, cloud);
    let secrets = client!(
        google_cloud_secretmanager_v1::client::SecretManagerService,
        cloud
    );

    // The account: created, read, refused a second time.
    let create = || {
        iam.create_service_account()
            .set_name(format!("projects/{PROJECT}"))
            .set_account_id("ccd-web")
            .set_service_account(
                ServiceAccount::new()
                    .set_display_name("ccd app web")
                    .set_description("ccd:app=web"),
            )
            .send()
    };
    let made = create().await.unwrap();
    let email = format!("ccd-web@{PROJECT}.iam.gserviceaccount.com");
    assert_eq!(made.email, email);
    assert_eq!(made.unique_id.len(), 21);
    assert_eq!(made.oauth2_client_id, made.unique_id);
    assert_eq!(code(create().await), Code::AlreadyExists);
    let name = format!("projects/{PROJECT}/serviceAccounts/{email}");
    let read = iam
        .get_service_account()
        .set_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(read, made);
    let bad = iam
        .create_service_account()
        .set_name(format!("projects/{PROJECT}"))
        .set_account_id("Web")
        .send()
        .await;
    assert_eq!(code(bad), Code::InvalidArgument);

    // The secret's policy: read, granted with the etag read, and a write
    // with the old etag refused as a concurrent change.
    let secret = format!("projects/{PROJECT}/secrets/db-password");
    let options = GetPolicyOptions::new().set_requested_policy_version(3);
    let empty = secrets
        .get_iam_policy()
        .set_resource(&secret)
        .set_options(options.clone())
        .send()
        .await
        .unwrap();
    assert!(empty.bindings.is_empty());
    assert!(!empty.etag.is_empty());
    let member = format!("serviceAccount:{email}");
    let granted = Policy::new()
        .set_version(3)
        .set_etag(empty.etag.clone())
        .set_bindings([Binding::new()
            .set_role(ACCESSOR)
            .set_members([member.clone()])]);
    let stored = secrets
        .set_iam_policy()
        .set_resource(&secret)
        .set_policy(granted.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(stored.bindings, granted.bindings);
    assert_ne!(stored.etag, empty.etag);
    let stale = secrets
        .set_iam_policy()
        .set_resource(&secret)
        .set_policy(granted)
        .send()
        .await;
    assert_eq!(code(stale), Code::Aborted);
    let missing = secrets
        .get_iam_policy()
        .set_resource(format!("projects/{PROJECT}/secrets/absent"))
        .send()
        .await;
    assert_eq!(code(missing), Code::NotFound);

    // The project's policy, through Resource Manager.
    let project = format!("projects/{PROJECT}");
    let before = projects
        .get_iam_policy()
        .set_resource(&project)
        .set_options(options)
        .send()
        .await
        .unwrap();
    let writer = before.clone().set_bindings([Binding::new()
        .set_role("roles/logging.logWriter")
        .set_members([member.clone()])]);
    let after = projects
        .set_iam_policy()
        .set_resource(&project)
        .set_policy(writer.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(after.bindings, writer.bindings);

    // Deleted: gone, and its grant is a deleted member.
    iam.delete_service_account()
        .set_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(iam.get_service_account().set_name(&name).send().await),
        Code::NotFound
    );
    let left = secrets
        .get_iam_policy()
        .set_resource(&secret)
        .send()
        .await
        .unwrap();
    assert!(
        left.bindings[0].members[0].starts_with(&format!("deleted:{member}?uid=")),
        "{left:?}"
    );

    // Monitoring still answers beside Resource Manager under /v3/projects/.
    // (A query without a filter: Monitoring's 400, not IAM's 404.)
    let http = common::http(&cloud);
    let monitoring = http
        .get(format!(
            "{}/v3/projects/{PROJECT}/timeSeries",
            cloud.endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(monitoring.status(), 400);
    // Any Artifact Registry repository has a policy.
    let repo = http
        .get(format!(
            "{}/v1/projects/{PROJECT}/locations/europe-west1/repositories/images:getIamPolicy",
            cloud.endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(repo.status(), 200);

    finish(cloud).await;
    let _ = std::fs::remove_dir_all(&data);
}
