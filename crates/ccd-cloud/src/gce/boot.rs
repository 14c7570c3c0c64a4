//! The startup script: what an instance of a template runs at every boot on
//! Container-Optimized OS (COS). It opens the app's ports in COS's host
//! firewall, pulls the image (retrying), reads the secrets, and runs the
//! app's container (retrying), then ccd's agent beside it.

use std::collections::BTreeSet;

use super::secrets;
use super::templates::quote;
use crate::model::TemplateSpec;

/// Shell helpers every script starts with. `retry TRIES WHAT CMD...` runs CMD
/// until it succeeds, waiting 1, 2, 4 ... 60 s between tries; TRIES 0 means
/// until it succeeds (see [`startup_script`] for which steps do).
const HELPERS: &str = r#"log() { echo "ccd: $*" >&2; }
retry() {
  local tries=$1 what=$2 try=1 delay=1
  shift 2
  until "$@"; do
    if [ "$tries" -gt 0 ] && [ "$try" -ge "$tries" ]; then
      log "$what failed $try times; going on without it"
      return 1
    fi
    log "$what failed (try $try); trying again in ${delay}s"
    sleep "$delay"
    try=$((try + 1))
    delay=$((delay * 2))
    [ "$delay" -le 60 ] || delay=60
  done
}
# COS's host firewall drops every inbound connection but SSH's, and its
# rules do not survive a reboot: open the port at every boot, once (-C).
open_port() {
  iptables -w -C INPUT -p tcp --dport "$1" -j ACCEPT 2>/dev/null ||
    iptables -w -A INPUT -p tcp --dport "$1" -j ACCEPT
}
"#;

/// Tries of the steps that can only fail on this instance (the firewall,
/// the credential helper's config): a few, then the boot goes on, so that
/// the cause is logged rather than waited on forever.
const LOCAL_TRIES: u32 = 5;

/// The ports the host firewall admits: the app's, and a health check's when
/// it probes another one. Sorted, each once.
fn ports(spec: &TemplateSpec) -> BTreeSet<u16> {
    std::iter::once(spec.port)
        .chain(spec.open_ports.iter().copied())
        .collect()
}

/// Runs the image with Docker at boot. The container declaration metadata
/// (konlet) stops working on 2026-07-31, so ccd does not use it. Pulling
/// needs a route to the registry: Private Google Access or Cloud NAT, as the
/// instances get no external address.
///
/// The pull and `docker run` are retried until they succeed: at boot the
/// route to the registry (NAT, DNS) or the registry itself may not answer
/// yet, and the instance has nothing else to do. The loop is bounded from
/// outside: autohealing recreates an instance still unhealthy after the
/// initial delay, and a rollout fails on it (docs/decisions.md).
pub(super) fn startup_script(
    spec: &TemplateSpec,
    project: &str,
    agent_image: Option<&str>,
) -> String {
    let registry = spec.image.split('/').next().unwrap_or_default();
    let image = quote(&spec.image);
    let mut env = format!(" -e {}", quote(&format!("PORT={}", spec.port)));
    for (k, v) in &spec.env {
        env.push_str(&format!(" -e {}", quote(&format!("{k}={v}"))));
    }
    let (secrets, env_file, forget) = if spec.secrets.is_empty() {
        (String::new(), String::new(), String::new())
    } else {
        (
            secrets::fetch_script(spec, project),
            format!(" --env-file {}", secrets::ENV_FILE),
            // Docker keeps the values in the container's own (root-only)
            // state; the file is not needed once the container exists.
            format!("rm -f {}\n", secrets::ENV_FILE),
        )
    };
    let open: String = ports(spec)
        .iter()
        .map(|p| format!("retry {LOCAL_TRIES} 'opening tcp port {p}' open_port {p}\n"))
        .collect();
    // A failed `docker run` can leave the container created under its name,
    // so every try removes it first.
    let run = format!(
        "start_app() {{\n  docker rm -f app >/dev/null 2>&1\n  \
         docker run -d --name app --restart=always --network host{env_file}{env} {image}\n}}\n\
         retry 0 'starting the app' start_app\n"
    );
    // Container-Optimized OS has no package manager: the agent comes as a
    // container of ccd's own image, seeing the host's processes (to sample
    // the app) and Docker's socket (to restart the app and run exec checks).
    // It starts after the app, so it never delays serving.
    let agent = match (agent_image, &spec.agent) {
        (Some(agent_image), Some(_)) => format!(
            "start_agent() {{\n  docker rm -f ccd-agent >/dev/null 2>&1\n  \
             docker run -d --name ccd-agent --restart=always --network host --pid host \
             -v /var/run/docker.sock:/var/run/docker.sock {} agent --container app\n}}\n\
             retry 0 'starting the agent' start_agent\n",
            quote(agent_image)
        ),
        _ => String::new(),
    };
    // The old container goes before the secrets are read, so a boot that
    // cannot read them leaves nothing serving (and the health check tells).
    format!(
        "#!/bin/bash\n\
         # Written by ccd; instances of this template run one container.\n\
         set -u\n\
         export HOME=/var/lib/ccd\n\
         mkdir -p \"$HOME\"\n\
         {HELPERS}\
         {open}\
         retry {LOCAL_TRIES} {configuring} \
         docker-credential-gcr configure-docker --registries={registry} >/dev/null\n\
         docker rm -f app >/dev/null 2>&1 || true\n\
         retry 0 {pulling} docker pull {image}\n\
         {secrets}{run}{forget}{agent}",
        configuring = quote(&format!("configuring docker for {registry}")),
        registry = quote(registry),
        pulling = quote(&format!("pulling {}", spec.image)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> TemplateSpec {
        TemplateSpec {
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
            open_ports: vec![],
            service_account: None,
        }
    }

    #[test]
    fn startup_scripts_quote_what_they_pass() {
        let s = startup_script(&spec(), "acme", None);
        assert!(s.contains(r"-e 'GREETING=it'\''s me'"), "{s}");
        assert!(s.contains("--registries='europe-docker.pkg.dev'"), "{s}");
        assert!(
            s.contains(
                "docker run -d --name app --restart=always --network host -e 'PORT=8080' \
                 -e 'GREETING=it'\\''s me' 'europe-docker.pkg.dev/p/r/web:1'\n"
            ),
            "{s}"
        );
        assert!(s.starts_with("#!/bin/bash\n"), "{s}");
    }

    #[test]
    fn the_app_port_and_a_health_check_port_are_opened_once_each() {
        let s = startup_script(&spec(), "acme", None);
        assert!(
            s.contains("retry 5 'opening tcp port 8080' open_port 8080\n"),
            "{s}"
        );
        assert_eq!(s.matches("open_port 8").count(), 1, "{s}");
        // Idempotent: the rule is checked (-C) before it is appended (-A).
        assert!(
            s.contains(
                "iptables -w -C INPUT -p tcp --dport \"$1\" -j ACCEPT 2>/dev/null ||\n    \
                 iptables -w -A INPUT -p tcp --dport \"$1\" -j ACCEPT"
            ),
            "{s}"
        );

        let mut other = spec();
        other.open_ports = vec![9001, 8080];
        let s = startup_script(&other, "acme", None);
        let app = s.find("open_port 8080\n").expect("the app's port");
        let health = s.find("open_port 9001\n").expect("the health check's port");
        assert_eq!(s.matches("open_port 8080\n").count(), 1, "{s}");
        // Open before anything can listen, so the first check can pass.
        let run = s.find("retry 0 'starting the app'").expect("the app");
        assert!(app < run && health < run, "{s}");
    }

    #[test]
    fn the_pull_and_the_run_are_retried_with_back_off() {
        let s = startup_script(&spec(), "acme", None);
        assert!(
            s.contains(
                "retry 0 'pulling europe-docker.pkg.dev/p/r/web:1' \
                 docker pull 'europe-docker.pkg.dev/p/r/web:1'\n"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "retry 5 'configuring docker for europe-docker.pkg.dev' \
                 docker-credential-gcr configure-docker --registries='europe-docker.pkg.dev' >/dev/null\n"
            ),
            "{s}"
        );
        // Each try of the run first removes what a failed one left.
        let start = s
            .find("start_app() {\n  docker rm -f app")
            .expect("the run");
        let retried = s
            .find("retry 0 'starting the app' start_app\n")
            .expect("retried");
        let pull = s.find("docker pull").expect("the pull");
        assert!(pull < start && start < retried, "{s}");
        // The back-off doubles up to a minute.
        assert!(s.contains("delay=$((delay * 2))"), "{s}");
        assert!(s.contains("[ \"$delay\" -le 60 ] || delay=60"), "{s}");
    }

    #[test]
    fn with_secrets_the_container_starts_only_after_every_secret_is_read() {
        let mut spec = spec();
        spec.env = BTreeMap::from([("GREETING".into(), "hi".into())]);
        spec.secrets = BTreeMap::from([(
            "DB_PASSWORD".into(),
            crate::model::SecretRef {
                secret: "db".into(),
                version: "2".into(),
            },
        )]);
        let s = startup_script(&spec, "acme", None);
        let fetch = s
            .find("secret 'DB_PASSWORD' 'projects/acme/secrets/db/versions/2'\n")
            .expect("the secret is fetched");
        let remove_old = s
            .find("docker rm -f app >/dev/null 2>&1 || true")
            .expect("the old container goes");
        let run = s
            .find("docker run -d --name app --restart=always --network host --env-file /run/ccd/secrets.env -e 'PORT=8080' -e 'GREETING=hi' 'europe-docker.pkg.dev/p/r/web:1'\n")
            .expect("the container reads the env file");
        // A boot that cannot read a secret leaves nothing serving (so the
        // health check tells), rather than last boot's container.
        assert!(remove_old < fetch && fetch < run, "{s}");
        assert!(s.ends_with("rm -f /run/ccd/secrets.env\n"), "{s}");
        assert!(!s.contains("-e 'DB_PASSWORD"), "{s}");
    }

    #[test]
    fn the_agent_runs_beside_the_app_when_an_image_is_given() {
        let mut spec = spec();
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
        let app = s.find("retry 0 'starting the app'").expect("the app");
        let agent = s
            .find("docker run -d --name ccd-agent --restart=always --network host --pid host -v /var/run/docker.sock:/var/run/docker.sock 'europe-docker.pkg.dev/ccd/ccd:0.1' agent --container app\n")
            .expect("the agent, from ccd's image");
        let retried = s
            .find("retry 0 'starting the agent' start_agent\n")
            .expect("retried");
        assert!(app < agent && agent < retried, "{s}");
    }

    #[test]
    fn the_script_is_valid_bash() {
        let mut spec = spec();
        spec.open_ports = vec![9001];
        spec.secrets = BTreeMap::from([(
            "DB_PASSWORD".into(),
            crate::model::SecretRef {
                secret: "db".into(),
                version: "latest".into(),
            },
        )]);
        let s = startup_script(&spec, "acme", None);
        // `bash -n` parses without running anything.
        let mut child = std::process::Command::new("bash")
            .arg("-n")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("bash, which COS runs startup scripts with, is installed");
        use std::io::Write as _;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(s.as_bytes())
                .expect("bash reads the script");
        }
        let out = child.wait_with_output().expect("bash -n finishes");
        assert!(
            out.status.success(),
            "{}\n{s}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
