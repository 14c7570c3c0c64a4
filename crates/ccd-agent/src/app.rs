//! The app the agent watches and restarts: a port, with an adapter for a
//! process group (the local cloud) and one for a container (Compute Engine).

use std::future::Future;
use std::sync::Arc;

/// Cumulative resource use of the app.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU time used since the app started, in seconds.
    pub cpu_seconds: f64,
    pub memory_bytes: u64,
}

pub trait App: Send + Sync + 'static {
    /// Resource use now; `None` while the app is not running.
    fn usage(&self) -> impl Future<Output = Option<Usage>> + Send;
    /// Kills the app so that it starts again (its supervisor or the
    /// container runtime restarts it).
    fn restart(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What the instance has, to turn use into shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Machine {
    pub cpus: f64,
    pub memory_bytes: u64,
}

impl Machine {
    /// This machine, from the CPUs the process may use and `/proc/meminfo`.
    pub fn this() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        Machine { cpus, memory_bytes }
    }
}

/// An app run as a process group, as the local cloud runs an instance's
/// program: `leader` says the group leader's pid while it runs (the local
/// cloud's supervisor knows it, and restarts the process when it exits).
#[derive(Clone)]
pub struct ProcessGroup {
    leader: Arc<dyn Fn() -> Option<u32> + Send + Sync>,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("leader", &(self.leader)())
            .finish()
    }
}

impl ProcessGroup {
    pub fn new(leader: impl Fn() -> Option<u32> + Send + Sync + 'static) -> Self {
        ProcessGroup {
            leader: Arc::new(leader),
        }
    }

    fn leader(&self) -> Option<i32> {
        (self.leader)()
            .and_then(|pid| i32::try_from(pid).ok())
            .filter(|&pid| pid > 1)
    }
}

impl App for ProcessGroup {
    async fn usage(&self) -> Option<Usage> {
        let group = self.leader()?;
        tokio::task::spawn_blocking(move || proc_usage(group))
            .await
            .ok()
            .flatten()
    }

    async fn restart(&self) -> Result<(), String> {
        let group = self
            .leader()
            .ok_or_else(|| "the app is not running".to_owned())?;
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| format!("killing process group {group}: {e}"))
    }
}

/// An app run as a container, as Compute Engine's startup script runs it
/// (`docker run --name app --restart=always`): its processes are found by
/// the container's init process (the agent runs with the host's process
/// namespace), and a restart is the container runtime's.
#[derive(Debug, Clone)]
pub struct Container {
    name: String,
    /// The `docker` command (a test double in tests).
    docker: std::path::PathBuf,
}

impl Container {
    pub fn new(name: impl Into<String>, docker: impl Into<std::path::PathBuf>) -> Self {
        Container {
            name: name.into(),
            docker: docker.into(),
        }
    }

    /// What runs a command inside the container (for exec checks).
    pub fn exec_prefix(&self) -> Vec<String> {
        vec![
            self.docker.display().to_string(),
            "exec".to_owned(),
            self.name.clone(),
        ]
    }

    async fn docker(&self, args: &[&str]) -> Result<String, String> {
        let out = tokio::process::Command::new(&self.docker)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(std::time::Duration::from_secs(30), out)
            .await
            .map_err(|_| format!("docker {}: no answer within 30s", args.join(" ")))?
            .map_err(|e| format!("{}: {e}", self.docker.display()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(format!(
                "docker {}: {}",
                args.join(" "),
                stderr.lines().last().unwrap_or("failed").trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The container's init process while it runs.
    async fn pid(&self) -> Option<i32> {
        let pid = self
            .docker(&["inspect", "--format", "{{.State.Pid}}", &self.name])
            .await
            .ok()?;
        pid.parse::<i32>().ok().filter(|&p| p > 1)
    }
}

impl App for Container {
    async fn usage(&self) -> Option<Usage> {
        let group = self.pid().await?;
        tokio::task::spawn_blocking(move || proc_usage(group))
            .await
            .ok()
            .flatten()
    }

    async fn restart(&self) -> Result<(), String> {
        self.docker(&["restart", "--time", "10", &self.name])
            .await
            .map(drop)
    }
}

/// CPU time and resident memory of every process in the group, from `/proc`.
fn proc_usage(group: i32) -> Option<Usage> {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let mut found = false;
    let mut usage = Usage {
        cpu_seconds: 0.0,
        memory_bytes: 0,
    };
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // gone since the listing
        };
        let Some(fields) = StatFields::parse(&stat) else {
            continue;
        };
        if fields.pgrp == group {
            found = true;
            usage.cpu_seconds += (fields.utime + fields.stime) as f64 / ticks;
            usage.memory_bytes += fields.rss_pages * page;
        }
    }
    found.then_some(usage)
}

#[derive(Debug, PartialEq, Eq)]
struct StatFields {
    pgrp: i32,
    utime: u64,
    stime: u64,
    rss_pages: u64,
}

impl StatFields {
    /// `/proc/PID/stat`: the command is in parentheses and may hold spaces,
    /// so fields are counted after the last `)` (proc(5)).
    fn parse(stat: &str) -> Option<StatFields> {
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): field n is f[n - 3].
        Some(StatFields {
            pgrp: f.get(2)?.parse().ok()?,
            utime: f.get(11)?.parse().ok()?,
            stime: f.get(12)?.parse().ok()?,
            rss_pages: f.get(21)?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let stat = "4242 (my app) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                    123 1000000 777 18446744073709551615";
        assert_eq!(
            StatFields::parse(stat),
            Some(StatFields {
                pgrp: 4242,
                utime: 250,
                stime: 50,
                rss_pages: 777
            })
        );
        assert_eq!(StatFields::parse("garbage"), None);
    }

    #[tokio::test]
    async fn a_process_groups_use_is_read_and_a_restart_kills_it() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let app = ProcessGroup::new(move || Some(pid));
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let usage = app.usage().await.unwrap();
        assert!(
            usage.cpu_seconds > 0.0 && usage.memory_bytes > 0,
            "{usage:?}"
        );
        app.restart().await.unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "killed");
        assert_eq!(ProcessGroup::new(|| None).usage().await, None);
        assert!(ProcessGroup::new(|| None).restart().await.is_err());
    }

    #[test]
    fn this_machine_has_cpus_and_memory() {
        let m = Machine::this();
        assert!(m.cpus >= 1.0 && m.memory_bytes > 0, "{m:?}");
    }
}
