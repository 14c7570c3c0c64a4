//! Instance templates: rendered from a [`TemplateSpec`], created once under
//! their content-hash name, never changed.

use google_cloud_compute_v1::model::{
    AttachedDisk, AttachedDiskInitializeParams, InstanceProperties, InstanceTemplate, Metadata,
    NetworkInterface, ServiceAccount, Tags, metadata,
};
use google_cloud_gax::options::RequestOptionsBuilder as _;
use serde_json::json;

use super::GceCloud;
use super::call::{Failure, Kind};
use super::call::{Outcome, request_id};
use super::marker;
use super::secrets;
use crate::model::{LocalRun, TemplateInfo, TemplateSpec, instance_tag};

/// Container-Optimized OS: Docker is there, the startup script runs the image.
const BOOT_IMAGE: &str = "projects/cos-cloud/global/images/family/cos-stable";
/// Scope of the instances' service account; IAM decides what it may do.
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// The metadata item the local cloud reads to run an instance.
const LOCAL_RUN_KEY: &str = "ccd-local-run";
const REVISION_WORD: &str = "ccd-revision";

/// Single-quotes a word for bash.
pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs the image with Docker at boot. The container declaration metadata
/// (konlet) stops working on 2026-07-31, so ccd does not use it. Pulling
/// needs a route to the registry: Private Google Access or Cloud NAT, as the
/// instances get no external address.
fn startup_script(spec: &TemplateSpec, project: &str, agent_image: Option<&str>) -> String {
    let registry = spec.image.split('/').next().unwrap_or_default();
    let mut env = format!(" -e {}", quote(&format!("PORT={}", spec.port)));
    for (k, v) in &spec.env {
        env.push_str(&format!(" -e {}", quote(&format!("{k}={v}"))));
    }
    let (secrets, env_file) = if spec.secrets.is_empty() {
        (String::new(), String::new())
    } else {
        (
            secrets::fetch_script(spec, project),
            format!(" --env-file {}", secrets::ENV_FILE),
        )
    };
    let run = format!(
        "docker run -d --name app --restart=always --network host{env_file}{env} {image}",
        image = quote(&spec.image),
    );
    let run = if secrets.is_empty() {
        format!("{run}\n")
    } else {
        // Docker keeps the values in the container's own (root-only) state;
        // the file is not needed once the container exists.
        format!(
            "{run} || fail \"docker run failed\"\nrm -f {}\n",
            secrets::ENV_FILE
        )
    };
    // Container-Optimized OS has no package manager: the agent comes as a
    // container of ccd's own image, seeing the host's processes (to sample
    // the app) and Docker's socket (to restart the app and run exec checks).
    let agent = match (agent_image, &spec.agent) {
        (Some(image), Some(_)) => format!(
            "docker rm -f ccd-agent >/dev/null 2>&1 || true\n\
             docker run -d --name ccd-agent --restart=always --network host --pid host \
             -v /var/run/docker.sock:/var/run/docker.sock {} agent --container app\n",
            quote(image)
        ),
        _ => String::new(),
    };
    format!(
        "#!/bin/bash\n\
         # Written by ccd; instances of this template run one container.\n\
         set -u\n\
         export HOME=/var/lib/ccd\n\
         mkdir -p \"$HOME\"\n\
         docker-credential-gcr configure-docker --registries={registry} >/dev/null 2>&1 || true\n\
         docker rm -f app >/dev/null 2>&1 || true\n\
         {secrets}{run}{agent}",
        registry = quote(registry),
    )
}

/// The local cloud's `ccd-local-run` item; `PORT` and the app's env are given too.
fn local_run(spec: &TemplateSpec, run: &LocalRun) -> String {
    match run {
        LocalRun::Simulated => json!({"simulated": true}).to_string(),
        LocalRun::Process {
            command,
            args,
            env,
            stop_grace,
        } => {
            let mut all = spec.env.clone();
            all.insert("PORT".to_owned(), spec.port.to_string());
            all.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
            json!({"command": command, "args": args, "env": all, "stopGraceSec": stop_grace.as_secs()}).to_string()
        }
    }
}

impl GceCloud {
    fn render_template(&self, spec: &TemplateSpec, name: &str) -> InstanceTemplate {
        let mut items =
            vec![
                metadata::Items::new()
                    .set_key("startup-script")
                    .set_value(startup_script(
                        spec,
                        self.project(),
                        self.config.agent_image.as_deref(),
                    )),
            ];
        if let Some(refs) = secrets::metadata_value(spec, self.project()) {
            items.push(
                metadata::Items::new()
                    .set_key(secrets::METADATA_KEY)
                    .set_value(refs),
            );
        }
        if let Some(agent) = &spec.agent {
            items.push(
                metadata::Items::new()
                    .set_key(ccd_agent::METADATA_KEY)
                    .set_value(serde_json::to_string(agent).unwrap_or_default()),
            );
        }
        if let Some(run) = &spec.local_run {
            items.push(
                metadata::Items::new()
                    .set_key(LOCAL_RUN_KEY)
                    .set_value(local_run(spec, run)),
            );
        }
        let properties = InstanceProperties::new()
            .set_machine_type(&spec.machine_type)
            .set_tags(Tags::new().set_items([instance_tag(&spec.app)]))
            .set_labels(marker::labels(&spec.app, &spec.labels))
            .set_disks([AttachedDisk::new()
                .set_boot(true)
                .set_auto_delete(true)
                .set_initialize_params(
                    AttachedDiskInitializeParams::new().set_source_image(BOOT_IMAGE),
                )])
            .set_network_interfaces([NetworkInterface::new().set_network(&self.config.network)])
            .set_service_accounts([ServiceAccount::new()
                .set_email("default")
                .set_scopes([CLOUD_PLATFORM])])
            .set_metadata(Metadata::new().set_items(items));
        InstanceTemplate::new()
            .set_name(name)
            .set_description(marker::description(
                &spec.app,
                &[(REVISION_WORD, &spec.revision)],
            ))
            .set_properties(properties)
    }

    #[tracing::instrument(skip_all, fields(app = %spec.app, template))]
    pub(crate) async fn ensure_template_impl(&self, spec: &TemplateSpec) -> Outcome<String> {
        let name = spec.name();
        tracing::Span::current().record("template", name.as_str());
        let resource = format!("global/instanceTemplates/{name}");
        secrets::check(spec).map_err(|m| Failure::new(Kind::Invalid, &resource, m))?;
        let get = self
            .c
            .templates
            .get()
            .set_project(self.project())
            .set_instance_template(&name)
            .send();
        if self.find(&resource, get).await?.is_some() {
            return Ok(name);
        }
        let insert = self
            .c
            .templates
            .insert()
            .set_project(self.project())
            .set_body(self.render_template(spec, &name))
            .set_request_id(request_id())
            .with_idempotency(true)
            .poller();
        self.create(&resource, insert).await?;
        Ok(name)
    }

    #[tracing::instrument(skip_all, fields(app = %app))]
    pub(crate) async fn list_templates_impl(&self, app: &str) -> Outcome<Vec<TemplateInfo>> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let list = self
                .c
                .templates
                .list()
                .set_project(self.project())
                .set_page_token(&token)
                .send();
            let page = self.read("global/instanceTemplates", list).await?;
            for t in page.items {
                if marker::owned_by(t.description.as_deref(), app) {
                    out.push(TemplateInfo {
                        revision: marker::word(t.description.as_deref(), REVISION_WORD)
                            .map(str::to_owned),
                        name: t.name.unwrap_or_default(),
                        created: t.creation_timestamp,
                    });
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => token = next,
                _ => return Ok(out),
            }
        }
    }

    #[tracing::instrument(skip_all, fields(app = %app, template = %name))]
    pub(crate) async fn delete_template_impl(&self, app: &str, name: &str) -> Outcome<()> {
        let delete = self
            .c
            .templates
            .delete()
            .set_project(self.project())
            .set_instance_template(name)
            .set_request_id(request_id())
            .with_idempotency(true)
            .poller();
        self.remove(&format!("global/instanceTemplates/{name}"), delete)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn startup_scripts_quote_what_they_pass() {
        let spec = TemplateSpec {
            app: "web".into(),
            revision: "1".into(),
            image: "europe-docker.pkg.dev/p/r/web:1".into(),
            port: 8080,
            env: BTreeMap::from([("GREETING".into(), "it's me".into())]),
            secrets: BTreeMap::new(),
            machine_type: "e2-small".into(),
            local_run: None,
            labels: BTreeMap::new(),
            agent: None,
        };
        let s = startup_script(&spec, "acme", None);
        assert!(s.contains(r"-e 'GREETING=it'\''s me'"), "{s}");
        assert!(s.contains("--registries='europe-docker.pkg.dev'"), "{s}");
        assert!(
            s.ends_with(
                "-e 'PORT=8080' -e 'GREETING=it'\\''s me' 'europe-docker.pkg.dev/p/r/web:1'\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn with_secrets_the_container_starts_only_after_every_secret_is_read() {
        let spec = TemplateSpec {
            app: "web".into(),
            revision: "1".into(),
            image: "europe-docker.pkg.dev/p/r/web:1".into(),
            port: 8080,
            env: BTreeMap::from([("GREETING".into(), "hi".into())]),
            secrets: BTreeMap::from([(
                "DB_PASSWORD".into(),
                crate::model::SecretRef {
                    secret: "db".into(),
                    version: "2".into(),
                },
            )]),
            machine_type: "e2-small".into(),
            local_run: None,
            labels: BTreeMap::new(),
            agent: None,
        };
        let s = startup_script(&spec, "acme", None);
        let fetch = s
            .find("secret 'DB_PASSWORD' 'projects/acme/secrets/db/versions/2'\n")
            .expect("the secret is fetched");
        let remove_old = s.find("docker rm -f app").expect("the old container goes");
        let run = s
            .find("docker run -d --name app --restart=always --network host --env-file /run/ccd/secrets.env -e 'PORT=8080' -e 'GREETING=hi' 'europe-docker.pkg.dev/p/r/web:1' || fail")
            .expect("the container reads the env file");
        // A boot that cannot read a secret leaves nothing serving (so the
        // health check tells), rather than last boot's container.
        assert!(remove_old < fetch && fetch < run, "{s}");
        assert!(s.ends_with("rm -f /run/ccd/secrets.env\n"), "{s}");
        assert!(!s.contains("-e 'DB_PASSWORD"), "{s}");
        assert!(s.starts_with("#!/bin/bash\n"), "{s}");
    }

    #[test]
    fn the_agent_runs_beside_the_app_when_an_image_is_given() {
        let mut spec = TemplateSpec {
            app: "web".into(),
            revision: "1".into(),
            image: "europe-docker.pkg.dev/p/r/web:1".into(),
            port: 8080,
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            machine_type: "e2-small".into(),
            local_run: None,
            labels: BTreeMap::new(),
            agent: None,
        };
        let image = Some("europe-docker.pkg.dev/ccd/ccd:0.1");
        assert!(!startup_script(&spec, "acme", image).contains("ccd-agent"));
        spec.agent = Some(
            ccd_agent::AgentConfig::parse(
                r#"{"app": "web", "version": "1", "check": {"kind": "tcp", "port": 8080},
                "interval": 5000, "timeout": 2000, "healthyThreshold": 2,
                "unhealthyThreshold": 2, "initialDelay": 0}"#,
            )
            .expect("a configuration"),
        );
        assert!(!startup_script(&spec, "acme", None).contains("ccd-agent"));
        let s = startup_script(&spec, "acme", image);
        let app = s.find("docker run -d --name app").expect("the app");
        let agent = s
            .find("docker run -d --name ccd-agent --restart=always --network host --pid host -v /var/run/docker.sock:/var/run/docker.sock 'europe-docker.pkg.dev/ccd/ccd:0.1' agent --container app\n")
            .expect("the agent, from ccd's image");
        assert!(app < agent, "{s}");
    }
}
