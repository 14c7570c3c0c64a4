//! `ccd doctor --config FILE`: whether the project, the network and the
//! store are ready for `ccd controller` with that configuration. One line
//! per check, `ok|warn|fail  CHECK  detail and the fix`; exit 1 on any fail.
//! Reads only, except one small probe object written to and deleted from
//! the store.
#![allow(clippy::print_stdout)] // this module is the command's output

mod cloud;
mod judge;
mod notifications;
mod services;

use std::hash::{BuildHasher as _, Hasher as _};
use std::path::PathBuf;
use std::process::ExitCode;

use ccd_store::{AnyStore, SpecStore as _, StoreUrl};

use crate::controller::ControllerConfig;
use judge::Needs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The controller's configuration, as `ccd controller --config` reads it.
    #[arg(
        long,
        required_unless_present_any = ["print_role", "print_grant_condition", "print_grants_role"]
    )]
    config: Option<PathBuf>,
    /// Print the custom role `ccdController` the controller needs (the YAML
    /// `gcloud iam roles create --file` reads), generated from ccd's
    /// permission table, and exit.
    #[arg(long)]
    print_role: bool,
    /// Print the IAM condition under which the controller holds the role
    /// `ccdControllerGrants`: it may grant the apps' accounts their roles
    /// (log and metric writing, Cloud SQL login, Firestore, their files,
    /// the log sinks' writing) and nothing else. `deploy/bootstrap.sh`
    /// binds it so.
    #[arg(long)]
    print_grant_condition: bool,
    /// Print the custom role `ccdControllerGrants` (policy writes only,
    /// bound under `--print-grant-condition`), generated from ccd's
    /// permission table, and exit.
    #[arg(long)]
    print_grants_role: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// The lines printed so far; any fail makes the exit code 1.
#[derive(Debug, Default)]
struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, verdict: Verdict, check: &str, detail: impl std::fmt::Display) {
        let word = match verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        };
        self.failed |= verdict == Verdict::Fail;
        println!("{word:<4}  {check:<18}  {detail}");
    }

    fn ok(&mut self, check: &str, detail: impl std::fmt::Display) {
        self.line(Verdict::Ok, check, detail);
    }

    fn warn(&mut self, check: &str, detail: impl std::fmt::Display) {
        self.line(Verdict::Warn, check, detail);
    }

    fn fail(&mut self, check: &str, detail: impl std::fmt::Display) {
        self.line(Verdict::Fail, check, detail);
    }
}

pub fn run(args: Args) -> ExitCode {
    if args.print_role {
        print!("{}", ccd_cloud::permissions::role_yaml());
        return ExitCode::SUCCESS;
    }
    if args.print_grant_condition {
        println!("{}", ccd_cloud::permissions::grant_condition());
        return ExitCode::SUCCESS;
    }
    if args.print_grants_role {
        print!("{}", ccd_cloud::permissions::grants_role_yaml());
        return ExitCode::SUCCESS;
    }
    let Some(path) = args.config else {
        return ExitCode::from(2);
    };
    let mut report = Report::default();
    let config = match crate::controller::load(&path) {
        Ok(c) => c,
        Err(e) => {
            report.fail("configuration", format!("{e:#}"));
            return ExitCode::FAILURE;
        }
    };
    report.ok("configuration", path.display());
    let checked = crate::logging::block_on(async {
        let needs = store(&config, &mut report).await;
        notifications::check(&config, &mut report).await;
        if cloud::checks(&config, &path, &needs, &mut report).await {
            services::checks(&config, &needs, &mut report).await;
        }
        Ok(())
    });
    if let Err(e) = checked {
        report.fail("doctor", format!("{e:#}"));
    }
    if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The store: opened, a probe object written, read back and deleted; then
/// what its specs ask of the network.
async fn store(config: &ControllerConfig, report: &mut Report) -> Needs {
    let opened = config
        .store
        .parse::<StoreUrl>()
        .map_err(|e| e.to_string())
        .and_then(|url| AnyStore::open(&url).map_err(|e| e.to_string()));
    let store = match opened {
        Ok(s) => s,
        Err(e) => {
            report.fail("store", format!("store {:?}: {e}", config.store));
            return Needs::default();
        }
    };
    match probe(&store).await {
        Ok(name) => report.ok(
            "store",
            format!("{}: wrote, read back and deleted controls/{name}.yaml", store.location()),
        ),
        Err(e) => report.fail(
            "store",
            format!(
                "store {}: {e}; the controller must write there: for a bucket grant its service account roles/storage.objectAdmin on it (deploy/bootstrap.sh does), for a folder make it writable",
                store.location()
            ),
        ),
    }
    needs(&store, config.app_service_accounts, report).await
}

async fn probe(store: &AnyStore) -> Result<String, String> {
    // A name no app has: controls are never listed as specs, so no reconciler sees it.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let name = format!("ccd-doctor-probe-{random:016x}");
    let body = format!("# written by ccd doctor, deleted at once\nprobe: {random}\n");
    store
        .write_control(&name, body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let back = store.read_control(&name).await.map_err(|e| e.to_string());
    let deleted = store.delete_control(&name).await.map_err(|e| e.to_string());
    match back? {
        Some(bytes) if bytes.as_ref() == body.as_bytes() => {}
        _ => return Err(format!("controls/{name}.yaml did not read back as written")),
    }
    deleted?;
    Ok(name)
}

/// Ports, internal apps and images of the store's valid specs.
/// `app_accounts`: whether apps without an account of their own get one
/// from ccd (the configuration's `appServiceAccounts`).
async fn needs(store: &AnyStore, app_accounts: bool, report: &mut Report) -> Needs {
    let mut needs = Needs::default();
    let listing = match store.list_specs().await {
        Ok(l) => l,
        Err(e) => {
            report.fail("specs", format!("{e}; fix the store first"));
            return needs;
        }
    };
    let (mut valid, mut invalid) = (0, Vec::new());
    let mut as_default = Vec::new();
    for file in &listing.specs {
        let Ok(app) = ccd_spec::parse_bytes(&file.bytes) else {
            invalid.push(file.path.clone());
            continue;
        };
        valid += 1;
        let s = &app.spec;
        needs.ports.insert(s.port);
        needs
            .ports
            .extend(s.health.http.as_ref().and_then(|h| h.port));
        needs
            .ports
            .extend(s.health.tcp.as_ref().and_then(|t| t.port));
        needs.images.insert(s.image.clone());
        if s.expose.internal.is_some() {
            needs.internal_apps.push(app.metadata.name.clone());
        }
        let asked = [
            ("sql", s.services.sql.is_some()),
            ("nosql", s.services.nosql.is_some()),
            ("cache", s.services.cache.is_some()),
            ("storage", s.services.storage.is_some()),
            ("logs", s.services.logs.is_some()),
        ];
        for (kind, _) in asked.into_iter().filter(|(_, on)| *on) {
            let apps = needs.services.entry(kind).or_default();
            apps.push(app.metadata.name.clone());
        }
        if let Some(bucket) = s.services.storage.as_ref().and_then(|f| f.bucket.clone()) {
            needs.spec_buckets.insert(bucket);
        }
        if s.machine.service_account.is_none() && !app_accounts {
            as_default.push(app.metadata.name.clone());
        }
    }
    invalid.extend(listing.unreadable.iter().map(|u| u.path.clone()));
    if invalid.is_empty() {
        report.ok("specs", format!("{valid} valid"));
    } else {
        report.warn(
            "specs",
            format!(
                "{valid} valid; not counted below: {} (ccd validate names each problem)",
                invalid.join(", ")
            ),
        );
    }
    if as_default.is_empty() {
        let how = if app_accounts {
            "those without machine.serviceAccount as one ccd keeps for it"
        } else {
            "each as the one its spec names"
        };
        report.ok(
            "service accounts",
            format!("every app runs as an account of its own: {how}"),
        );
    } else {
        report.warn(
            "service accounts",
            format!(
                "{} run as the project's default service account (appServiceAccounts is \
                 false), which can read every other app's secrets; remove \
                 `appServiceAccounts: false` from the configuration so that ccd keeps an \
                 account per app, or give each `machine.serviceAccount: \
                 NAME@PROJECT.iam.gserviceaccount.com` with only the roles it needs",
                as_default.join(", ")
            ),
        );
    }
    needs
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    #[test]
    fn the_bootstrap_grants_the_generated_roles_and_no_hand_kept_list() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/bootstrap.sh"),
        )
        .unwrap();
        let role = ccd_cloud::permissions::role_yaml();
        let listed: Vec<&str> = role.lines().filter_map(|l| l.strip_prefix("- ")).collect();
        let grants = ccd_cloud::permissions::grants_role_yaml();
        let granting: Vec<&str> = grants
            .lines()
            .filter_map(|l| l.strip_prefix("- "))
            .collect();
        let tables = ccd_cloud::permissions::TABLE
            .iter()
            .chain(ccd_cloud::permissions::SERVICES);
        for need in tables {
            for p in need.permissions {
                assert!(
                    listed.contains(p) || granting.contains(p),
                    "no role holds {p}"
                );
            }
        }
        // The delegated permissions come from a conditional binding of a
        // role ccd prints, under the condition ccd prints.
        assert!(script.contains(r#""$ccd" doctor --print-grant-condition"#));
        assert!(script.contains(r#""$ccd" doctor --print-grants-role > "$work/grants.yaml""#));
        assert!(script.contains(ccd_cloud::permissions::GRANTOR_ROLE_ID));
        assert!(
            script
                .contains(r#"--role "projects/$project/roles/$grants_role" --condition-from-file"#)
        );
        // The role files come from the binary, and both create and update read them.
        assert!(script.contains(r#""$ccd" doctor --print-role > "$work/role.yaml""#));
        assert!(script.contains(r#"roles create "$1" --file "$2""#));
        assert!(script.contains(r#"roles update "$1" --file "$2""#));
        assert!(script.contains(r#"--role "projects/$project/roles/$role""#));
        assert!(
            !script.contains("--permissions"),
            "a hand list of permissions"
        );
        let copied: Vec<&&str> = listed
            .iter()
            .chain(&granting)
            .filter(|p| script.contains(**p))
            .collect();
        assert!(
            copied.is_empty(),
            "permissions written into the script: {copied:?}"
        );
        // Services: their APIs, and the one step an administrator does by hand.
        for api in [
            "sqladmin.googleapis.com",
            "firestore.googleapis.com",
            "logging.googleapis.com",
        ] {
            assert!(script.contains(api), "{api}");
        }
        assert!(script.contains("GRANT cloudsqlsuperuser TO"));
        assert!(
            script
                .trim_end()
                .ends_with("doctor --config ./ccd-bootstrap.json")
        );
    }

    #[test]
    fn the_grant_condition_allows_exactly_the_roles_the_adapters_grant() {
        use std::collections::BTreeSet;
        let granted: BTreeSet<&str> = ccd_cloud::identity::PROJECT_ROLES
            .into_iter()
            .chain(ccd_services_gcp::sql::LOGIN_ROLES)
            .chain([
                ccd_services_gcp::firestore::ROLE,
                ccd_services_gcp::storage::FOLDER_ROLE,
                ccd_services_gcp::storage::SINK_ROLE,
            ])
            .collect();
        let allowed: BTreeSet<&str> = ccd_cloud::permissions::GRANTED_ROLES.into_iter().collect();
        assert_eq!(allowed, granted);
        let condition = ccd_cloud::permissions::grant_condition();
        for role in granted {
            assert!(
                condition.contains(&format!("'{role}'")),
                "{role}: {condition}"
            );
        }
    }
}
