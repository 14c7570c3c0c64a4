//! The apps' SQL databases under `ccd up`: a role and a database per app in
//! the PostgreSQL cluster of `postgres.rs` (the rules: `crate::sql`).

use super::LocalServices;
use super::files::{new_password, read_secret};
use super::postgres::LocalPostgres;
use super::rotation;
use super::server::{self, Server};
use crate::{ServiceStatus, password, sql};

/// The variable holding the password.
const PGPASSWORD: &str = ccd_spec::contract::SQL[4];

impl Server for LocalPostgres {
    async fn alive(&mut self) -> bool {
        LocalPostgres::alive(self).await
    }
}

impl LocalServices {
    pub(super) async fn postgres(
        &self,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, LocalPostgres>, String> {
        server::running(
            &self.postgres,
            "PostgreSQL",
            LocalPostgres::start(self.dir.join("postgres")),
            || self.forget("sql"),
        )
        .await
        .map_err(|e| format!("sql: {e}"))
    }

    /// The app's database and the role that logs in with the current
    /// rotation's password (the other one kept while a rotation runs): its
    /// status, and the generation of the password the app is to read.
    pub(super) async fn sql(
        &self,
        app: &str,
        database: Option<&str>,
    ) -> Result<(ServiceStatus, u32), String> {
        let grant = sql::grant(app, database).map_err(|e| e.to_string())?;
        let rotation = rotation::read(&self.dir, app, "sql")?;
        let generation = rotation.generation;
        let login = sql::login_role(&grant, generation);
        let pg = self.postgres().await?;
        let password_file = self.secret_file(app, "sql", PGPASSWORD, generation);
        let password = match read_secret(&password_file) {
            Some(p) => p,
            None => new_password()?,
        };
        let previous = match rotation.retiring {
            Some(_) => sql::Previous::Keep,
            None => sql::Previous::Retire,
        };
        let done = format!(
            "{} {generation} {previous:?} {}",
            grant.database,
            password::sha256_hex(&password)
        );
        if !self.applied("sql", app, &done) {
            self.apply_login(&pg, &grant, &login, &password, previous)
                .await?;
            let values = sql::env(&grant, &login, &password, "127.0.0.1", pg.port);
            self.deliver(app, "sql", generation, &values)?;
            self.remember("sql", app, done);
        }
        let mut scope = format!("database {}", grant.database);
        let mut message = rotation.message();
        match self.last_backup(app) {
            Some(r) if r.ok => scope.push_str(&format!(
                "; backed up {} ({} tables, {} rows, restored and checked)",
                r.time, r.tables, r.rows
            )),
            Some(r) => {
                let failed = format!("the last backup ({}) failed: {}", r.time, r.message);
                message = [message, failed]
                    .join("; ")
                    .trim_start_matches("; ")
                    .to_owned();
            }
            None => {}
        }
        let status = ServiceStatus {
            endpoint: Some(format!("127.0.0.1:{}", pg.port)),
            user: Some(login),
            scope: Some(scope),
            name: Some(grant.database.clone()),
            message,
            ..ServiceStatus::ready("sql")
        };
        Ok((status, generation))
    }

    /// A new password for the app's login role of generation `next`, valid
    /// while the current one still logs in: the variables with it.
    pub(super) async fn rotate_sql(
        &self,
        app: &str,
        database: Option<&str>,
        next: u32,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let grant = sql::grant(app, database).map_err(|e| e.to_string())?;
        let login = sql::login_role(&grant, next);
        let pg = self.postgres().await?;
        let new = new_password()?;
        self.apply_login(&pg, &grant, &login, &new, sql::Previous::Keep)
            .await?;
        Ok(sql::env(&grant, &login, &new, "127.0.0.1", pg.port))
    }

    async fn apply_login(
        &self,
        pg: &LocalPostgres,
        grant: &sql::SqlGrant,
        login: &str,
        password: &str,
        previous: sql::Previous,
    ) -> Result<(), String> {
        pg.apply(&sql::provision(grant, login, password, previous))
            .await
            // psql quotes a failed statement: never the password.
            .map_err(|e| format!("sql: {}", e.replace(password, "<password>")))
    }

    /// The app is deleted: its role may no longer log in, and with `delete`
    /// its database and role are gone.
    pub(super) async fn drop_sql(
        &self,
        app: &str,
        database: Option<&str>,
        delete: bool,
    ) -> Result<(), String> {
        let grant = sql::grant(app, database).map_err(|e| e.to_string())?;
        let pg = self.postgres().await?;
        let statements = if delete {
            sql::remove(&grant)
        } else {
            sql::disable(&grant)
        };
        pg.apply(&statements)
            .await
            .map_err(|e| format!("sql: {e}"))?;
        self.forget_app("sql", app);
        if delete {
            self.undeliver(app, "sql");
        }
        Ok(())
    }
}
