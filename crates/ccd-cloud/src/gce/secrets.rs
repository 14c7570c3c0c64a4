//! App secrets on Compute Engine: the startup script reads each one from
//! Secret Manager at boot, with the instance's service account, into a
//! root-only env file in a tmpfs that Docker reads. Only references (secret
//! names and versions) are ever in the template: in the script and in the
//! `ccd-secrets` metadata item, which the local cloud reads to emulate the
//! same thing from files.

use ccd_wire::secrets::{SecretRefs, valid_env_name, valid_secret_name, valid_version};

use super::templates::quote;
use crate::model::TemplateSpec;

/// The metadata item listing the secret references, `{"ENV": "projects/P/secrets/S/versions/V"}`;
/// its shape is `ccd_wire::secrets`'s, shared with the local cloud that reads it.
pub(crate) use ccd_wire::secrets::METADATA_KEY;
/// Written at boot, read by `docker run --env-file`, removed once the
/// container exists. `/run` is a tmpfs on Container-Optimized OS.
pub(crate) const ENV_FILE: &str = "/run/ccd/secrets.env";

/// Reads `secret ENV RESOURCE` lines' secrets into [`ENV_FILE`]. The token
/// reaches curl on stdin (`-K -`), never on a command line, and COS has no
/// JSON tool, so the two known answers (the metadata server's token and
/// Secret Manager's `AccessSecretVersionResponse`) are taken apart with sed
/// after joining lines and undoing the escapes JSON may put in base64
/// (`\/`, `\u003d`, `\u002b`, `\u002f`). Any failure stops the boot loudly,
/// before the container starts.
const FETCH: &str = r#"# Secrets: read from Secret Manager at every boot; only their names are written here.
export LC_ALL=C
fail() { echo "ccd: $*" >&2; logger -t ccd -p user.err -- "ccd: $*" 2>/dev/null; exit 1; }
umask 077
mkdir -p /run/ccd || fail "cannot create /run/ccd"
{ : > @ENV_FILE@ && chmod 600 @ENV_FILE@; } || fail "cannot write @ENV_FILE@"
token=$(curl -sSf --retry 10 --retry-connrefused -H 'Metadata-Flavor: Google' 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token' | tr -d '\r\n' | sed -n 's|.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*|\1|p')
[ -n "$token" ] || fail "no access token from the metadata server; give the instances a service account"
# secret ENV RESOURCE: appends ENV=<the version's value> to the env file.
secret() {
  local body data nul value
  body=$(printf 'header = "Authorization: Bearer %s"\n' "$token" | curl -sSf --retry 5 --retry-connrefused -K - "https://secretmanager.googleapis.com/v1/$2:access") || fail "cannot read $2 for $1 (HTTP 403: grant the instances' service account roles/secretmanager.secretAccessor on the secret; 404: create the secret or that version)"
  body=$(printf '%s' "$body" | tr -d '\r\n' | sed -e 's|\\/|/|g' -e 's|\\u003[dD]|=|g' -e 's|\\u002[bB]|+|g' -e 's|\\u002[fF]|/|g')
  case "$body" in *'"payload"'*) ;; *) fail "Secret Manager's answer for $2 has no payload" ;; esac
  data=$(printf '%s' "$body" | sed -n 's|.*"data"[[:space:]]*:[[:space:]]*"\([A-Za-z0-9+/=_-]*\)".*|\1|p' | tr '_-' '/+')
  # No data at all is an empty value (JSON leaves empty bytes out); data that does not parse is not.
  if [ -z "$data" ]; then case "$body" in *'"data"'*) fail "cannot read the payload of $2" ;; esac; fi
  nul=$(printf '%s' "$data" | base64 -d 2>/dev/null | tr -cd '\000' | wc -c)
  value=$(printf '%s' "$data" | base64 -d) || fail "the payload of $2 is not base64"
  [ "$nul" -eq 0 ] || fail "$2 holds a NUL byte, which an environment variable cannot"
  case "$value" in *$'\n'*|*$'\r'*) fail "$2 has more than one line; $1 takes one (trailing newlines are dropped)" ;; esac
  printf '%s=%s\n' "$1" "$value" >> @ENV_FILE@ || fail "cannot write @ENV_FILE@"
}
"#;

/// The startup script's part that fills [`ENV_FILE`]; empty without secrets.
pub(crate) fn fetch_script(spec: &TemplateSpec, project: &str) -> String {
    if spec.secrets.is_empty() {
        return String::new();
    }
    let mut script = FETCH.replace("@ENV_FILE@", ENV_FILE);
    for (env, secret) in &spec.secrets {
        script.push_str(&format!(
            "secret {} {}\n",
            quote(env),
            quote(&secret.resource(project))
        ));
    }
    script.push_str("unset token\n");
    script
}

/// The `ccd-secrets` item's value; `None` without secrets.
pub(crate) fn metadata_value(spec: &TemplateSpec, project: &str) -> Option<String> {
    if spec.secrets.is_empty() {
        return None;
    }
    let refs = spec
        .secrets
        .iter()
        .map(|(env, s)| (env.clone(), s.version_in(project)))
        .collect();
    Some(SecretRefs(refs).to_metadata_value())
}

/// What the script and the env file can carry: the spec's own rules for
/// names, so a reference can neither break a line of the env file nor point
/// outside the secret it names.
pub(crate) fn check(spec: &TemplateSpec) -> Result<(), String> {
    for (env, s) in &spec.secrets {
        if !valid_env_name(env) {
            return Err(format!("{env:?} is not an environment variable name"));
        }
        if !valid_secret_name(&s.secret) {
            return Err(format!("{env}: {:?} is not a secret name", s.secret));
        }
        if !valid_version(&s.version) {
            return Err(format!(
                "{env}: {:?} is not a secret version (latest or a number)",
                s.version
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::SecretRef;

    fn spec() -> TemplateSpec {
        TemplateSpec {
            app: "web".into(),
            revision: "1".into(),
            image: "europe-docker.pkg.dev/p/r/web:1".into(),
            port: 8080,
            env: BTreeMap::new(),
            secrets: BTreeMap::from([
                (
                    "DB_PASSWORD".into(),
                    SecretRef {
                        secret: "db-password".into(),
                        version: "latest".into(),
                    },
                ),
                (
                    "API_KEY".into(),
                    SecretRef {
                        secret: "api_key".into(),
                        version: "3".into(),
                    },
                ),
            ]),
            machine_type: "e2-small".into(),
            local_run: None,
            labels: BTreeMap::new(),
            agent: None,
            open_ports: vec![],
            service_account: None,
        }
    }

    #[test]
    fn each_secret_is_fetched_by_reference() {
        let s = fetch_script(&spec(), "acme");
        assert!(
            s.contains("secret 'API_KEY' 'projects/acme/secrets/api_key/versions/3'\n"),
            "{s}"
        );
        assert!(
            s.contains(
                "secret 'DB_PASSWORD' 'projects/acme/secrets/db-password/versions/latest'\n"
            ),
            "{s}"
        );
        assert!(s.contains(
            "https://secretmanager.googleapis.com/v1/$2:access\") || fail \"cannot read $2 for $1"
        ));
        assert!(s.contains("-H 'Metadata-Flavor: Google' 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token'"));
        assert!(s.ends_with("unset token\n"), "{s}");
        assert!(!s.contains("@ENV_FILE@"), "{s}");
        assert_eq!(
            fetch_script(
                &TemplateSpec {
                    secrets: BTreeMap::new(),
                    ..spec()
                },
                "acme"
            ),
            ""
        );
    }

    #[test]
    fn values_and_tokens_never_reach_a_command_line() {
        let s = fetch_script(&spec(), "acme");
        // The token goes to curl as a config file on stdin; values only through printf, a builtin.
        assert!(s.contains("printf 'header = \"Authorization: Bearer %s\"\\n' \"$token\" | curl -sSf --retry 5 --retry-connrefused -K - "));
        assert!(!s.contains("Bearer $token"), "{s}");
        assert!(!s.contains("-H \"Authorization"), "{s}");
        assert_eq!(
            s.matches("$value").count(),
            2,
            "checked once, written once: {s}"
        );
        assert!(s.contains("printf '%s=%s\\n' \"$1\" \"$value\" >> /run/ccd/secrets.env"));
        // A root-only file in a tmpfs, with every failure stopping the boot.
        assert!(s.contains("umask 077\n"));
        assert!(s.contains("chmod 600 /run/ccd/secrets.env"));
        assert!(s.contains("exit 1; }"));
        for line in s
            .lines()
            .filter(|l| l.contains("curl ") || l.contains("base64 -d)"))
        {
            assert!(
                line.contains("|| fail")
                    || line.starts_with("token=")
                    || line.starts_with("  nul="),
                "{line}"
            );
        }
    }

    #[test]
    fn the_metadata_item_holds_references_only() {
        let v = metadata_value(&spec(), "acme").unwrap();
        assert_eq!(
            v,
            r#"{"API_KEY":"projects/acme/secrets/api_key/versions/3","DB_PASSWORD":"projects/acme/secrets/db-password/versions/latest"}"#
        );
        assert_eq!(
            metadata_value(
                &TemplateSpec {
                    secrets: BTreeMap::new(),
                    ..spec()
                },
                "acme"
            ),
            None
        );
    }

    #[test]
    fn references_that_could_break_the_script_are_refused() {
        assert_eq!(check(&spec()), Ok(()));
        let bad = |env: &str, secret: &str, version: &str| {
            let mut s = spec();
            s.secrets.insert(
                env.into(),
                SecretRef {
                    secret: secret.into(),
                    version: version.into(),
                },
            );
            check(&s)
        };
        assert!(bad("A=B", "x", "latest").is_err());
        assert!(bad("A\nB", "x", "latest").is_err());
        assert!(bad("1A", "x", "latest").is_err());
        assert!(bad("A", "../x", "latest").is_err());
        assert!(bad("A", "", "latest").is_err());
        assert!(bad("A", "x", "0").is_err());
        assert!(bad("A", "x", "latest/../1").is_err());
        assert!(bad("A", "x", "12").is_ok());
    }

    /// A fake `curl` for [`run`]: the metadata server's token, and Secret
    /// Manager's answers from `DIR/answers/<resource with _ for />` (404
    /// when absent). It records its arguments and insists on the token.
    const FAKE_CURL: &str = r#"#!/bin/bash
printf '%s\n' "$*" >> "$FAKE/argv"
url="${@: -1}"
case "$url" in
  *metadata.google.internal*) printf '{"access_token":"tok-123.abc","expires_in":3599,"token_type":"Bearer"}' ;;
  https://secretmanager.googleapis.com/v1/*:access)
    [ "$(cat)" = 'header = "Authorization: Bearer tok-123.abc"' ] || { echo "curl: (22) 401" >&2; exit 22; }
    name=${url#https://secretmanager.googleapis.com/v1/}; name=${name%:access}
    f="$FAKE/answers/${name//\//_}"
    [ -f "$f" ] || { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
    cat "$f" ;;
  *) exit 3 ;;
esac
"#;

    fn answer(data: &str) -> String {
        format!(
            "{{\n  \"name\": \"projects/123/secrets/x/versions/4\",\n  \"payload\": {{\n    \"data\": \"{data}\",\n    \"dataCrc32c\": \"1234\"\n  }}\n}}\n"
        )
    }

    /// Runs the fetch part of the script for real (bash, sed, base64) with
    /// the fake curl, the env file moved into a scratch folder; returns the
    /// exit code, stderr and the scratch folder.
    fn run(spec: &TemplateSpec, answers: &[(&str, String)]) -> (i32, String, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ccd-secrets-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("answers")).unwrap();
        for (name, body) in answers {
            std::fs::write(dir.join("answers").join(name.replace('/', "_")), body).unwrap();
        }
        let curl = dir.join("bin/curl");
        std::fs::write(&curl, FAKE_CURL).unwrap();
        std::fs::set_permissions(&curl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script =
            fetch_script(spec, "acme").replace("/run/ccd", &dir.join("run").display().to_string());
        let out = std::process::Command::new("bash")
            .args(["-c", &format!("set -u\n{script}")])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    dir.join("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("FAKE", &dir)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            dir,
        )
    }

    fn with_secrets(refs: &[(&str, &str)]) -> TemplateSpec {
        let mut s = spec();
        s.secrets = refs
            .iter()
            .map(|(env, name)| {
                (
                    (*env).to_owned(),
                    SecretRef {
                        secret: (*name).to_owned(),
                        version: "latest".into(),
                    },
                )
            })
            .collect();
        s
    }

    #[test]
    fn the_script_reads_both_answers_into_a_root_only_env_file() {
        use std::os::unix::fs::PermissionsExt;
        let spec = with_secrets(&[("DB_PASSWORD", "db"), ("API_KEY", "api"), ("QUOTED", "q")]);
        let (code, stderr, dir) = run(
            &spec,
            &[
                // "pä?ss>w=rd~\n", with the escapes JSON allows in a string.
                ("projects/acme/secrets/db/versions/latest", answer(r"cMOkP3NzPnc9cmR\u002bCg\u003d\u003d")),
                // "k€y?~>\n", with an escaped slash.
                ("projects/acme/secrets/api/versions/latest", answer(r"a+KCrHk\/fj4K")),
                // "it's \"q\" $(x)`y`\n\n", on one line as a compact answer.
                ("projects/acme/secrets/q/versions/latest", r#"{"name":"projects/1/secrets/q/versions/1","payload":{"data":"aXQncyAicSIgJCh4KWB5YAoK","dataCrc32c":"1"}}"#.to_owned()),
            ],
        );
        assert_eq!(code, 0, "{stderr}");
        let file = dir.join("run/secrets.env");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "API_KEY=k€y?~>\nDB_PASSWORD=pä?ss>w=rd~\nQUOTED=it's \"q\" $(x)`y`\n"
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let argv = std::fs::read_to_string(dir.join("argv")).unwrap();
        assert_eq!(argv.lines().count(), 4, "{argv}");
        for leak in ["tok-123", "pä?ss", "k€y", "it's"] {
            assert!(
                !argv.contains(leak),
                "{leak} reached a command line: {argv}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_script_stops_the_boot_when_a_secret_cannot_be_read() {
        let cases = [
            (
                "missing",
                None,
                "cannot read projects/acme/secrets/missing/versions/latest for DB_PASSWORD (HTTP 403",
            ),
            (
                "lines",
                Some(answer("dHdvCmxpbmVz")),
                "has more than one line",
            ),
            ("nul", Some(answer("YQBi")), "holds a NUL byte"),
            (
                "garbled",
                Some(answer("not base64!")),
                "cannot read the payload of projects/acme/secrets/garbled/versions/latest",
            ),
            (
                "odd",
                Some(r#"{"error": {"code": 200}}"#.to_owned()),
                "has no payload",
            ),
        ];
        for (name, body, message) in cases {
            let spec = with_secrets(&[("DB_PASSWORD", name)]);
            let resource = format!("projects/acme/secrets/{name}/versions/latest");
            let answers: Vec<(&str, String)> =
                body.into_iter().map(|b| (resource.as_str(), b)).collect();
            let (code, stderr, dir) = run(&spec, &answers);
            assert_eq!(code, 1, "{name}: {stderr}");
            assert!(stderr.contains(message), "{name}: {stderr}");
            let written = std::fs::read_to_string(dir.join("run/secrets.env")).unwrap_or_default();
            assert!(!written.contains("DB_PASSWORD"), "{name}: {written}");
            let _ = std::fs::remove_dir_all(dir);
        }
        // An empty secret is a value too: JSON leaves its data out.
        let spec = with_secrets(&[("EMPTY", "e")]);
        let (code, stderr, dir) = run(
            &spec,
            &[(
                "projects/acme/secrets/e/versions/latest",
                r#"{"name":"x","payload":{"dataCrc32c":"0"}}"#.to_owned(),
            )],
        );
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(
            std::fs::read_to_string(dir.join("run/secrets.env")).unwrap(),
            "EMPTY=\n"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
