//! The SQL service (`engine: postgres`): per app a role that is neither
//! superuser nor able to create roles or databases, owning only its own
//! database, with `CONNECT` revoked from `PUBLIC` so no other app can open
//! it. The statements are a pure function of the grant ([`provision`]),
//! idempotent, so a pass can apply them again at any time. On Cloud SQL the
//! role is the app's service account logging in through IAM
//! ([`iam_grant`], [`provision_iam`]): same ownership, no password.

use crate::{ServiceError, names};

/// What an app may reach in the SQL service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlGrant {
    pub app: String,
    /// The role, `ccd-<app>`.
    pub role: String,
    /// The database: the spec's `database`, or the app's name.
    pub database: String,
}

/// The grant of `app`, with the spec's database name or the app's.
pub fn grant(app: &str, database: Option<&str>) -> Result<SqlGrant, ServiceError> {
    let database = database.unwrap_or(app).to_owned();
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    };
    if !ok(&database) || !ok(app) {
        return Err(ServiceError::Invalid(format!(
            "services.sql.database: {database:?} must be 1 to 63 lowercase letters, digits, _ or -"
        )));
    }
    if matches!(database.as_str(), "postgres" | "template0" | "template1") {
        return Err(ServiceError::Invalid(format!(
            "services.sql.database: {database:?} is the server's own; name another, e.g. {app}_db"
        )));
    }
    Ok(SqlGrant {
        app: app.to_owned(),
        role: names::sql_role(app),
        database,
    })
}

/// The grant of `app` on Cloud SQL: the role is the IAM database user of its
/// service account ([`names::sql_iam_user`]), which Cloud SQL creates.
pub fn iam_grant(
    app: &str,
    database: Option<&str>,
    account_email: &str,
) -> Result<SqlGrant, ServiceError> {
    let role = names::sql_iam_user(account_email);
    // PostgreSQL cuts identifiers at 63 bytes: a longer name would be
    // another role than the one Cloud SQL made.
    if role.is_empty() || role.len() > 63 {
        return Err(ServiceError::Invalid(format!(
            "the service account {account_email:?} makes a database user of {} bytes; \
             PostgreSQL allows 63: shorten the project ID or the app's name",
            role.len()
        )));
    }
    Ok(SqlGrant {
        role,
        ..grant(app, database)?
    })
}

/// `"name"`, with any `"` doubled.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`, with any `'` doubled (standard_conforming_strings is on).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The role that logs in with generation `generation` of the app's
/// password. PostgreSQL keeps one password per role, so a rotation
/// alternates between two: the owner itself (even generations) and a second
/// role, `<owner>_alt`, that is a member of the owner and acts as it on
/// login, so that what it creates is the owner's. The old password logs in
/// until every instance runs with the new one. (`_` is in no app's name, so
/// no app's role is another's second.)
pub fn login_role(grant: &SqlGrant, generation: u32) -> String {
    if generation.is_multiple_of(2) {
        grant.role.clone()
    } else {
        alternate(&grant.role)
    }
}

fn alternate(role: &str) -> String {
    format!("{role}_alt")
}

/// What becomes of the login role a rotation replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Previous {
    /// It still logs in with its password (instances use it).
    Keep,
    /// It may no longer log in, and its password is gone.
    Retire,
}

/// The statements (psql's, for `\gexec`) that make the grant true: `login`
/// ([`login_role`]) logs in with `password` and nothing more, the owner
/// role owns the database, opened by it (and its second role) alone; the
/// other login role is kept or retired as `previous` says.
pub fn provision(grant: &SqlGrant, login: &str, password: &str, previous: Previous) -> String {
    let (role, db) = (&grant.role, &grant.database);
    let alt = alternate(role);
    let limits = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT";
    let with_password = format!("LOGIN PASSWORD {}", literal(password));
    let retired = "NOLOGIN PASSWORD NULL";
    let owner_login = if login == role.as_str() {
        with_password.as_str()
    } else if previous == Previous::Retire {
        retired
    } else {
        ""
    };
    let mut sql = format!(
        "SELECT format('CREATE ROLE %I', {role_l}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role_l})\\gexec\n\
         ALTER ROLE {role_i} WITH {limits} {owner_login};\n\
         SELECT format('CREATE DATABASE %I OWNER %I', {db_l}, {role_l}) WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {db_l})\\gexec\n",
        role_i = ident(role),
        role_l = literal(role),
        db_l = literal(db),
    );
    if login == alt {
        sql.push_str(&format!(
            "SELECT format('CREATE ROLE %I', {alt_l}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {alt_l})\\gexec\n\
             ALTER ROLE {alt_i} WITH {limits} {with_password};\n\
             GRANT {role_i} TO {alt_i};\n\
             ALTER ROLE {alt_i} SET role = {role_l};\n",
            alt_i = ident(&alt),
            alt_l = literal(&alt),
            role_i = ident(role),
            role_l = literal(role),
        ));
    } else if previous == Previous::Retire {
        sql.push_str(&format!(
            "SELECT format('ALTER ROLE %I {retired}', {alt_l}) WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = {alt_l})\\gexec\n",
            alt_l = literal(&alt),
        ));
    }
    sql.push_str(&owned_by(grant));
    sql
}

/// The statements, run on a Cloud SQL instance by a member of
/// `cloudsqlsuperuser` (the `postgres` user), that make an [`iam_grant`]
/// true once Cloud SQL has made its user and its database: the user owns
/// the database and alone may open it. Changing a database's owner needs
/// membership in the new owner, hence the first statement; the IAM user
/// itself gets no attribute beyond logging in, which Cloud SQL gave it.
pub fn provision_iam(grant: &SqlGrant) -> String {
    format!(
        "GRANT {role_i} TO CURRENT_USER;\n{owned}",
        role_i = ident(&grant.role),
        owned = owned_by(grant),
    )
}

/// The grant's database owned by its role, opened by it alone.
fn owned_by(grant: &SqlGrant) -> String {
    let (role_i, db_i) = (ident(&grant.role), ident(&grant.database));
    format!(
        "ALTER DATABASE {db_i} OWNER TO {role_i};\n\
         REVOKE ALL ON DATABASE {db_i} FROM PUBLIC;\n\
         GRANT CONNECT, TEMPORARY ON DATABASE {db_i} TO {role_i};\n"
    )
}

/// What a cluster of ccd's own needs once: no app may open the server's
/// own databases.
pub const CLUSTER_SETUP: &str = "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;\n\
     REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;\n";

/// What deleting an app with `onDelete: retain` leaves: its database, and
/// its roles unable to log in (providing the app again lets it back in).
pub fn disable(grant: &SqlGrant) -> String {
    [grant.role.clone(), alternate(&grant.role)]
        .iter()
        .map(|role| {
            format!(
                "SELECT format('ALTER ROLE %I NOLOGIN', {role_l}) WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = {role_l})\\gexec\n",
                role_l = literal(role)
            )
        })
        .collect()
}

/// What `onDelete: delete` (or pruning) does: the database (its sessions
/// ended) and the roles are gone.
pub fn remove(grant: &SqlGrant) -> String {
    format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE);\nDROP ROLE IF EXISTS {};\nDROP ROLE IF EXISTS {};\n",
        ident(&grant.database),
        ident(&alternate(&grant.role)),
        ident(&grant.role)
    )
}

/// The variables the app receives, logging in as `login`: `DATABASE_URL`
/// and libpq's `PG*`.
pub fn env(
    grant: &SqlGrant,
    login: &str,
    password: &str,
    host: &str,
    port: u16,
) -> Vec<(&'static str, String)> {
    let url = format!(
        "postgresql://{login}:{password}@{host}:{port}/{}",
        grant.database
    );
    let values = [
        url,
        host.to_owned(),
        port.to_string(),
        login.to_owned(),
        password.to_owned(),
        grant.database.clone(),
    ];
    ccd_spec::contract::SQL.into_iter().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_apps_unless_named_and_never_the_servers() {
        let g = grant("web", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.role.as_str(), g.database.as_str()), ("ccd-web", "web"));
        assert_eq!(
            grant("web", Some("notes_main"))
                .map(|g| g.database)
                .ok()
                .as_deref(),
            Some("notes_main")
        );
        for bad in ["postgres", "Web", "a b", ""] {
            assert!(grant("web", Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_statements_quote_names_and_the_password() {
        let g = grant("web", None).unwrap_or_else(|e| panic!("{e}"));
        let sql = provision(&g, "ccd-web", "pa'ss", Previous::Retire);
        assert!(sql.contains(
            "ALTER ROLE \"ccd-web\" WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT LOGIN PASSWORD"
        ));
        assert!(sql.contains("PASSWORD 'pa''ss'"));
        assert!(sql.contains("REVOKE ALL ON DATABASE \"web\" FROM PUBLIC"));
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn on_cloud_sql_the_account_owns_its_database_and_alone_opens_it() {
        let email = "ccd-web@proj-1.iam.gserviceaccount.com";
        let g = iam_grant("web", Some("notes"), email).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (g.role.as_str(), g.database.as_str()),
            ("ccd-web@proj-1.iam", "notes")
        );
        let sql = provision_iam(&g);
        assert_eq!(
            sql,
            "GRANT \"ccd-web@proj-1.iam\" TO CURRENT_USER;\n\
             ALTER DATABASE \"notes\" OWNER TO \"ccd-web@proj-1.iam\";\n\
             REVOKE ALL ON DATABASE \"notes\" FROM PUBLIC;\n\
             GRANT CONNECT, TEMPORARY ON DATABASE \"notes\" TO \"ccd-web@proj-1.iam\";\n"
        );
        assert!(!sql.contains("PASSWORD"));
        assert!(
            provision(
                &grant("web", Some("notes")).unwrap_or_else(|e| panic!("{e}")),
                "ccd-web",
                "x",
                Previous::Keep
            )
            .ends_with(&owned_by(
                &grant("web", Some("notes")).unwrap_or_else(|e| panic!("{e}"))
            ))
        );
        let long = format!(
            "{}@{}.iam.gserviceaccount.com",
            "a".repeat(30),
            "p".repeat(30)
        );
        assert!(iam_grant("web", None, &long).is_err());
        assert!(iam_grant("web", Some("postgres"), email).is_err());
    }

    #[test]
    fn a_rotation_alternates_login_roles_that_act_as_the_owner() {
        let g = grant("web", None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(login_role(&g, 0), "ccd-web");
        assert_eq!(login_role(&g, 1), "ccd-web_alt");
        assert_eq!(login_role(&g, 2), "ccd-web");
        // Rotating to the second role: it logs in as a member of the owner
        // acting as it, and the owner's own password still works.
        let rotating = provision(&g, "ccd-web_alt", "new", Previous::Keep);
        assert!(rotating.contains(
            "ALTER ROLE \"ccd-web_alt\" WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT LOGIN PASSWORD 'new'"
        ));
        assert!(rotating.contains("GRANT \"ccd-web\" TO \"ccd-web_alt\";"));
        assert!(rotating.contains("ALTER ROLE \"ccd-web_alt\" SET role = 'ccd-web';"));
        assert!(
            rotating.contains("INHERIT ;"),
            "the owner's login is left alone"
        );
        // Once every instance runs with it, the owner logs in no more.
        let retired = provision(&g, "ccd-web_alt", "new", Previous::Retire);
        assert!(retired.contains("INHERIT NOLOGIN PASSWORD NULL;"));
        // And back: the owner logs in again, the second role is retired.
        let back = provision(&g, "ccd-web", "newer", Previous::Retire);
        assert!(back.contains("ALTER ROLE %I NOLOGIN PASSWORD NULL', 'ccd-web_alt'"));
        assert!(back.contains("LOGIN PASSWORD 'newer'"));
        for statements in [disable(&g), remove(&g)] {
            assert!(statements.contains("ccd-web_alt"), "{statements}");
        }
        let env = env(&g, "ccd-web_alt", "pw", "127.0.0.1", 5432);
        assert_eq!(env[0].1, "postgresql://ccd-web_alt:pw@127.0.0.1:5432/web");
        assert_eq!(env[3], ("PGUSER", "ccd-web_alt".to_owned()));
    }
}
