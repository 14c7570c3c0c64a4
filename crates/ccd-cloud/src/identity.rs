//! An app's own service account, as the Cloud port speaks of it: the
//! account ccd keeps for the app and what it is granted. Nothing here names
//! a Google API type.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

/// What an app's instances need from the project, granted to its account
/// and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySpec {
    pub app: String,
    /// The Secret Manager secrets the app's spec names (their names).
    pub secrets: BTreeSet<String>,
    /// The app's image, whose repository the account may read when it is
    /// in Artifact Registry.
    pub image: String,
    /// Secrets whose grant is taken away: named by an earlier revision,
    /// not by this one, and no instance runs that revision any more.
    pub revoke: BTreeSet<String>,
}

/// Roles every app's account holds on the project: its container's logs
/// and its agent's metrics.
pub const PROJECT_ROLES: [&str; 2] = ["roles/logging.logWriter", "roles/monitoring.metricWriter"];
/// The role on each secret the app names.
pub const SECRET_ROLE: &str = "roles/secretmanager.secretAccessor";
/// The role on the Artifact Registry repository of the app's image.
pub const IMAGE_ROLE: &str = "roles/artifactregistry.reader";

/// The account ID of `app`'s account: `ccd-{app}` when that fits IAM's 6 to
/// 30 characters, else a shortened name with a hash of the whole, so two
/// long names never share an account.
pub fn account_id(app: &str) -> String {
    let whole = format!("ccd-{app}");
    if (6..=30).contains(&whole.len()) {
        return whole;
    }
    let digest = Sha256::digest(app.as_bytes());
    let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    if whole.len() < 6 {
        return format!("ccd-{app}-{hash}");
    }
    // 30 = "ccd-" + 19 + "-" + 6: cut at a character, never end on `-`.
    let head: String = app.chars().take(19).collect();
    format!("ccd-{}-{hash}", head.trim_end_matches('-'))
}

/// The email of `app`'s account in `project`.
pub fn account_email(app: &str, project: &str) -> String {
    format!("{}@{project}.iam.gserviceaccount.com", account_id(app))
}

/// The Artifact Registry repository of `image`
/// (`LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/...`), as
/// `projects/PROJECT/locations/LOCATION/repositories/REPOSITORY`; `None`
/// for images elsewhere (Docker Hub, say), which need no grant to pull or
/// are another registry's business.
pub fn image_repository(image: &str) -> Option<String> {
    let mut parts = image.split('/');
    let host = parts.next()?;
    let location = host.strip_suffix("-docker.pkg.dev")?;
    let project = parts.next()?;
    let repository = parts.next()?;
    // An image name must follow the repository.
    parts.next()?;
    let repository = repository.split([':', '@']).next()?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    };
    (ok(location) && ok(project) && ok(repository))
        .then(|| format!("projects/{project}/locations/{location}/repositories/{repository}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(id: &str) -> bool {
        (6..=30).contains(&id.len())
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && !id.ends_with('-')
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn account_ids_are_valid_for_iam_and_distinct() {
        assert_eq!(account_id("web"), "ccd-web");
        assert_eq!(account_id("a"), format!("ccd-a-{}", &account_id("a")[6..]));
        let long_a = "a-very-long-application-name-one";
        let long_b = "a-very-long-application-name-two";
        for app in [
            "a",
            "ab",
            "web",
            "notes-api",
            long_a,
            long_b,
            "x-------------------y",
        ] {
            let id = account_id(app);
            assert!(valid(&id), "{app} -> {id}");
        }
        assert_ne!(account_id(long_a), account_id(long_b));
        assert_eq!(
            account_email("web", "acme"),
            "ccd-web@acme.iam.gserviceaccount.com"
        );
    }

    #[test]
    fn only_artifact_registry_images_name_a_repository() {
        assert_eq!(
            image_repository("europe-west1-docker.pkg.dev/acme/apps/web:1.2").as_deref(),
            Some("projects/acme/locations/europe-west1/repositories/apps")
        );
        assert_eq!(
            image_repository("us-docker.pkg.dev/acme/apps/team/web@sha256:abc").as_deref(),
            Some("projects/acme/locations/us/repositories/apps")
        );
        assert_eq!(image_repository("nginx:1.27"), None);
        assert_eq!(image_repository("ghcr.io/acme/web:1"), None);
        assert_eq!(
            image_repository("europe-west1-docker.pkg.dev/acme/apps"),
            None
        );
    }
}
