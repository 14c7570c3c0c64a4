//! The apps' SQL databases under `ccd up`: a role and a database per app in
//! the PostgreSQL cluster of `postgres.rs` (the rules: `crate::sql`).

use super::LocalServices;
use super::files::read_secret;
use super::postgres::LocalPostgres;
use super::server::{self, Server};
use crate::{ServiceStatus, names, password, sql};

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

    pub(super) async fn sql(
        &self,
        app: &str,
        database: Option<&str>,
    ) -> Result<ServiceStatus, String> {
        let grant = sql::grant(app, database).map_err(|e| e.to_string())?;
        let pg = self.postgres().await?;
        let password_file = self
            .secrets
            .join(names::secret_of(app, "sql", "PGPASSWORD"));
        let password = match read_secret(&password_file) {
            Some(p) => p,
            None => {
                password::generate().map_err(|e| format!("no randomness for a password: {e}"))?
            }
        };
        let done = format!("{} {}", grant.database, password::sha256_hex(&password));
        if !self.applied("sql", app, &done) {
            pg.apply(&sql::provision(&grant, &password))
                .await
                // psql quotes a failed statement: never the password.
                .map_err(|e| format!("sql: {}", e.replace(&password, "<password>")))?;
            let values = sql::env(&grant, &password, "127.0.0.1", pg.port);
            self.deliver(app, "sql", &values)?;
            self.remember("sql", app, done);
        }
        let mut scope = format!("database {}", grant.database);
        let mut message = String::new();
        match self.last_backup(app) {
            Some(r) if r.ok => scope.push_str(&format!(
                "; backed up {} ({} tables, {} rows, restored and checked)",
                r.time, r.tables, r.rows
            )),
            Some(r) => message = format!("the last backup ({}) failed: {}", r.time, r.message),
            None => {}
        }
        Ok(ServiceStatus {
            endpoint: Some(format!("127.0.0.1:{}", pg.port)),
            user: Some(grant.role.clone()),
            scope: Some(scope),
            name: Some(grant.database.clone()),
            message,
            ..ServiceStatus::ready("sql")
        })
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
