//! Checks for the names a spec carries. Each returns a message that says
//! what is wrong and what a valid name looks like.

/// App names become part of cloud resource names (at most 63 characters),
/// which leaves room for a prefix and a revision hash.
pub const MAX_APP_NAME: usize = 40;

pub fn app_name(name: &str) -> Result<(), String> {
    let shape = "use lowercase letters, digits and '-', starting with a letter and not ending with '-' (e.g. hello-api)";
    if name.is_empty() {
        return Err(format!("is empty; {shape}"));
    }
    if name.len() > MAX_APP_NAME {
        return Err(format!(
            "{name:?} is {} characters; use at most {MAX_APP_NAME} so cloud resource names derived from it fit",
            name.len()
        ));
    }
    if !is_dns_label(name) {
        return Err(format!("{name:?} is not a DNS label; {shape}"));
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

pub fn env_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(format!(
            "{name:?} is not a valid environment variable name; use letters, digits and '_', not starting with a digit"
        ));
    }
    if name == "PORT" || name.starts_with("CCD_") {
        return Err(format!("{name} is set by ccd; choose another name"));
    }
    Ok(())
}

/// Compute Engine label keys and values.
pub fn label_key(key: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&key.len())
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "{key:?} is not a valid label key; use 1-63 lowercase letters, digits, '_' or '-', starting with a letter"
        ));
    }
    if key == "ccd-app" || key == "ccd-managed" {
        return Err(format!("the label {key} is set by ccd; choose another key"));
    }
    Ok(())
}

pub fn label_value(value: &str) -> Result<(), String> {
    let ok = value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a valid label value; use at most 63 lowercase letters, digits, '_' or '-'"
        ))
    }
}

pub fn domain(name: &str) -> Result<(), String> {
    // Google-managed certificates do not cover wildcards: such a name would
    // be accepted here and refused by the cloud, with HTTPS never working.
    if let Some(rest) = name.strip_prefix("*.") {
        return Err(format!(
            "{name:?}: Google-managed certificates do not cover wildcard domains; list each name served, such as app.{rest}"
        ));
    }
    let host = name;
    let ok = name.len() <= 253
        && host.contains('.')
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            (1..=63).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a domain name; write a lowercase name such as app.example.com"
        ))
    }
}

pub fn secret_name(name: &str) -> Result<(), String> {
    let ok = (1..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a Secret Manager secret name; use letters, digits, '_' and '-' (the secret's name, never its value)"
        ))
    }
}

pub fn secret_version(version: &str) -> Result<(), String> {
    let ok = version == "latest"
        || (version.starts_with(|c: char| ('1'..='9').contains(&c))
            && version.len() <= 10
            && version.chars().all(|c| c.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{version:?} is not a secret version; use latest or a number such as 3"
        ))
    }
}

pub fn version(v: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} is not a version; use up to 63 letters, digits, '.', '_', '-' or '+' (e.g. 1.2.0)"
        ))
    }
}

/// An image reference as Docker's distribution grammar reads it:
/// `[host[:port]/]path[:tag][@algorithm:digest]`. The reference becomes an
/// argument of `docker run`, so one that starts with `-` (an option) or
/// holds anything outside the grammar is refused here, not there.
pub fn image(reference: &str) -> Result<(), String> {
    if image_reference_ok(reference) {
        Ok(())
    } else {
        Err(format!(
            "{reference:?} is not an image reference; write registry/path:tag in lower case, e.g. europe-docker.pkg.dev/acme/apps/hello:1.2.0"
        ))
    }
}

fn image_reference_ok(reference: &str) -> bool {
    if reference.is_empty() || reference.len() > 1024 {
        return false;
    }
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if digest.is_some_and(|d| !image_digest_ok(d)) {
        return false;
    }
    // A tag follows the last ':' unless that ':' belongs to `host:port/`.
    let (name, tag) = match rest.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !image_tag_ok(t)) {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it looks like one (Docker's rule).
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        if !image_host_ok(parts[0]) {
            return false;
        }
        parts.remove(0);
    }
    !parts.is_empty() && parts.iter().all(|p| image_path_component_ok(p))
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn image_path_component_ok(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &part[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn image_host_ok(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                && label.ends_with(|c: char| c.is_ascii_alphanumeric())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn image_tag_ok(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `algorithm:hex`, e.g. `sha256:` and 64 hex digits.
fn image_digest_ok(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    !algorithm.is_empty()
        && algorithm.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '.' | '_' | '-')
        })
        && hex.len() >= 32
        && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Region (`europe-west1`) and zone (`europe-west1-b`) names.
pub fn region(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('-').collect();
    let ok = parts.len() == 2
        && parts[0].len() >= 2
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1].starts_with(|c: char| c.is_ascii_lowercase())
        && parts[1].ends_with(|c: char| c.is_ascii_digit())
        && parts[1]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a region name; write e.g. europe-west1"
        ))
    }
}

pub fn machine_type(name: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a machine type; write e.g. e2-small or n2-standard-4"
        ))
    }
}

/// A Google service account's email: `NAME@PROJECT.iam.gserviceaccount.com`
/// (or Compute Engine's default, `NUMBER-compute@developer.gserviceaccount.com`).
pub fn service_account(email: &str) -> Result<(), String> {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let ok = email.split_once('@').is_some_and(|(name, domain)| {
        label(name)
            && (domain
                .strip_suffix(".iam.gserviceaccount.com")
                .is_some_and(label)
                || domain == "developer.gserviceaccount.com")
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{email:?} is not a service account's email; write e.g. \
             web@my-project.iam.gserviceaccount.com"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_are_google_service_account_emails() {
        assert!(service_account("web@acme-prod.iam.gserviceaccount.com").is_ok());
        assert!(service_account("123-compute@developer.gserviceaccount.com").is_ok());
        for bad in [
            "web",
            "web@gmail.com",
            "Web@acme.iam.gserviceaccount.com",
            "@acme.iam.gserviceaccount.com",
            "-x@evil.com",
        ] {
            assert!(service_account(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_names_are_short_dns_labels() {
        assert!(app_name("hello-api").is_ok());
        assert!(app_name("Hello").is_err());
        assert!(app_name("hello-").is_err());
        assert!(app_name("1hello").is_err());
        assert!(
            app_name(&"a".repeat(41))
                .unwrap_err()
                .contains("at most 40")
        );
    }

    #[test]
    fn other_names() {
        assert!(env_name("LOG_LEVEL").is_ok());
        assert!(env_name("1X").is_err());
        assert!(env_name("PORT").unwrap_err().contains("set by ccd"));
        assert!(domain("hello.example.com").is_ok());
        let wildcard = domain("*.example.com").unwrap_err();
        assert!(
            wildcard.contains("do not cover wildcard") && wildcard.contains("app.example.com"),
            "{wildcard}"
        );
        assert!(domain("localhost").is_err());
        assert!(domain("Hello.example.com").is_err());
        assert!(region("europe-west1").is_ok());
        assert!(region("europe-west1-b").is_err());
        assert!(secret_version("latest").is_ok());
        assert!(secret_version("0").is_err());
        assert!(version("1.2.0").is_ok());
        assert!(version("-1").is_err());
        assert!(image("hello:1.0 ").is_err());
    }

    #[test]
    fn image_references_follow_dockers_grammar() {
        let digest = format!("sha256:{}", "a".repeat(64));
        for ok in [
            "hello",
            "example/web:1.0.0",
            "europe-docker.pkg.dev/acme/apps/hello:1.2.0",
            "localhost:5000/web:dev",
            "127.0.0.1:5000/team/web",
            "ghcr.io/a-b/c__d/e.f:v1_2-rc.3",
            &format!("gcr.io/p/web@{digest}"),
            &format!("gcr.io/p/web:1@{digest}"),
        ] {
            assert!(image(ok).is_ok(), "{ok} is a valid reference");
        }
        for bad in [
            "-v",
            "--privileged",
            "-it/web:1",
            "web:-x",
            "Web:1",
            "gcr.io/p/-web",
            "gcr.io/p/web-",
            "gcr.io//web",
            "web:",
            "web@sha256:zz",
            "web:1 --rm",
            "-gcr.io/web",
            "gcr.io:port/web",
            "web;rm -rf ~",
            "web$(id)",
        ] {
            let e = image(bad).unwrap_err();
            assert!(e.contains("not an image reference"), "{bad}: {e}");
        }
    }
}
