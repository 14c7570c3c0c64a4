//! What an app's services are called, defined once: the adapters that make
//! them and the commands that show them derive the same names.

/// The Redis ACL user of an app.
pub fn cache_user(app: &str) -> String {
    format!("ccd-{app}")
}

/// The default key namespace of an app's cache: `<app>:`.
pub fn default_namespace(app: &str) -> String {
    format!("{app}:")
}

/// The secret holding the app's `REDIS_URL`: the services write it, the
/// template references it.
pub fn cache_secret(app: &str) -> String {
    format!("ccd-{app}-cache")
}

/// The SQL role of an app.
pub fn sql_role(app: &str) -> String {
    format!("ccd-{app}")
}

/// The Cloud SQL user of an app's service account on PostgreSQL: the
/// account's email without `.gserviceaccount.com`, the name Cloud SQL gives
/// IAM service-account users there (and the role the account logs in as).
pub fn sql_iam_user(account_email: &str) -> String {
    account_email
        .strip_suffix(".gserviceaccount.com")
        .unwrap_or(account_email)
        .to_owned()
}

/// The Cloud Logging sink shipping an app's container output: `ccd-APP-logs`.
pub fn log_sink(app: &str) -> String {
    format!("ccd-{app}-logs")
}

/// The secret a service of `kind` (the spec's key) keeps the variable `env`
/// of the app in: `ccd-APP-sql-databaseurl`, `ccd-APP-storage-storagebucket`...;
/// the cache's one variable is `ccd-APP-cache`.
pub fn secret_of(app: &str, kind: &str, env: &str) -> String {
    if kind == "cache" {
        return cache_secret(app);
    }
    let var: String = env
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("ccd-{app}-{kind}-{var}")
}

/// The app's Firestore database: the spec's, else `ccd-<app>`.
pub fn nosql_database(app: &str, named: Option<&str>) -> String {
    named.map_or_else(|| format!("ccd-{app}"), str::to_owned)
}

/// The app's prefix in its storage bucket.
pub fn storage_prefix(app: &str) -> String {
    format!("{app}/")
}
