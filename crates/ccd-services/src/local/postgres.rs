//! A PostgreSQL cluster of `ccd up`'s own under `DATA/services/postgres/`,
//! from the PostgreSQL packages on this machine (`initdb`, `postgres`,
//! `psql`). PostgreSQL refuses to run as root, so under root it runs as the
//! packages' `postgres` user (`setpriv`, which execs: a stop reaches the
//! server itself). ccd administers it as its superuser over the Unix socket
//! (peer authentication, no password); apps connect over TCP on 127.0.0.1
//! with SCRAM passwords. SQL goes to `psql` on stdin, never on a command
//! line.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use crate::sql::CLUSTER_SETUP;

#[derive(Debug)]
pub(crate) struct LocalPostgres {
    /// Ours (kill on drop); `None` for one an earlier ccd up left running.
    server: Option<tokio::process::Child>,
    pub(crate) port: u16,
    socket_dir: PathBuf,
    bin: PathBuf,
    /// `postgres` when ccd runs as root.
    run_as: Option<(u32, u32)>,
}

impl LocalPostgres {
    pub(crate) async fn start(dir: PathBuf) -> Result<LocalPostgres, String> {
        let bin = find_bin().ok_or_else(|| {
            "sql: PostgreSQL is not installed (initdb, postgres, psql): apt-get install \
             postgresql-15, then touch the spec (or restart ccd up)"
                .to_owned()
        })?;
        let root = std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false);
        let run_as = if root {
            Some(postgres_user().ok_or_else(|| {
                "sql: PostgreSQL does not run as root, and there is no `postgres` user to run it \
                 as (the postgresql package makes one)"
                    .to_owned()
            })?)
        } else {
            None
        };
        let at = |e: std::io::Error, what: &str| format!("sql: {what} {}: {e}", dir.display());
        let (data, socket_dir) = (dir.join("data"), dir.join("run"));
        if run_as.is_some()
            && let Some(services) = dir.parent()
        {
            // The postgres user passes through DATA/services (and nothing more) to its own.
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(services)
                .map_err(|e| at(e, "cannot create"))?;
            std::fs::set_permissions(services, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| at(e, "cannot open the way through"))?;
        }
        for d in [&dir, &socket_dir] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .map_err(|e| at(e, "cannot create"))?;
            if let Some((uid, gid)) = run_as {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .map_err(|e| at(e, "cannot hand to the postgres user"))?;
            }
        }
        let mut pg = LocalPostgres {
            server: None,
            port: 0,
            socket_dir,
            bin,
            run_as,
        };
        let port_file = dir.join("port");
        let recorded = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
        if let Some(port) = recorded {
            pg.port = port;
            if pg.apply("SELECT 1;").await.is_ok() {
                tracing::info!(
                    port,
                    "adopted the PostgreSQL an earlier ccd up left running"
                );
                return Ok(pg);
            }
        }
        if !data.join("PG_VERSION").exists() {
            let out = pg
                .command("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                ])
                .output()
                .await
                .map_err(|e| format!("sql: cannot run initdb: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "sql: initdb failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        pg.port = super::server::port_for(recorded)
            .ok_or_else(|| "sql: no free port on 127.0.0.1".to_owned())?;
        std::fs::write(&port_file, pg.port.to_string()).map_err(|e| at(e, "cannot write in"))?;
        let log =
            std::fs::File::create(dir.join("postgres.log")).map_err(|e| at(e, "no log in"))?;
        let err = log.try_clone().map_err(|e| at(e, "no log in"))?;
        let server = pg
            .command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&pg.socket_dir)
            .args([
                "-p",
                &pg.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("sql: cannot start postgres: {e}"))?;
        pg.server = Some(server);
        let answered =
            super::server::answers(Duration::from_secs(30), Duration::from_millis(200), || {
                pg.apply(CLUSTER_SETUP)
            })
            .await;
        match answered {
            Ok(()) => {
                tracing::info!(port = pg.port, "PostgreSQL started for the apps' databases");
                Ok(pg)
            }
            Err(last) => Err(format!(
                "sql: PostgreSQL did not answer within 30 s ({last}); see {}",
                dir.join("postgres.log").display()
            )),
        }
    }

    /// Whether the server still runs.
    pub(crate) async fn alive(&mut self) -> bool {
        match &mut self.server {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => self.apply("SELECT 1;").await.is_ok(),
        }
    }

    /// Runs `sql` as the superuser (psql, the statements on stdin, stopping
    /// at the first error); the error's text otherwise.
    pub(crate) async fn apply(&self, sql: &str) -> Result<(), String> {
        self.run(
            "psql",
            &[
                "-d",
                "postgres",
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-f",
                "-",
            ],
            Some(sql.as_bytes()),
            Duration::from_secs(30),
        )
        .await
        .map(drop)
    }

    /// Runs one of PostgreSQL's programs as the superuser over the socket
    /// (`args` after the connection's), `input` on its stdin: its stdout, or
    /// its error's text.
    pub(crate) async fn run(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&[u8]>,
        within: Duration,
    ) -> Result<Vec<u8>, String> {
        let mut child = self
            .command(program)
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string()])
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
            // Written beside the reading of stdout, so a large input cannot
            // block on a full pipe.
            let bytes = input.to_vec();
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let out = tokio::time::timeout(within, child.wait_with_output())
            .await
            .map_err(|_| format!("{program} did not finish within {}s", within.as_secs()))?
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            // PostgreSQL's programs name themselves in their errors.
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    /// One of PostgreSQL's programs, as the user the cluster belongs to.
    fn command(&self, program: &str) -> tokio::process::Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some((uid, gid)) => {
                let mut c = tokio::process::Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(path)
                    // PostgreSQL's programs look for the home of the user they run as.
                    .env("HOME", "/var/lib/postgresql")
                    .current_dir("/");
                c
            }
            None => tokio::process::Command::new(path),
        }
    }
}

/// The folder of PostgreSQL's programs: on PATH, or Debian's newest.
fn find_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let complete = |d: &Path| {
        ["initdb", "postgres", "psql"]
            .iter()
            .all(|p| d.join(p).is_file())
    };
    if let Some(d) = std::env::split_paths(&path).find(|d| complete(d)) {
        return Some(d);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| complete(b))
        .collect();
    versions.sort_by_key(|b| {
        b.parent()
            .and_then(Path::file_name)
            .and_then(|v| v.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// The uid and gid of `postgres`, from /etc/passwd.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}
