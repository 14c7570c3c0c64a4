//! A host whose firewall drops inbound traffic as Container-Optimized OS's
//! does: a network namespace of its own, reached from this one over a veth
//! pair, with an INPUT policy of DROP that accepts only loopback, replies
//! and SSH. Dropping the [`Host`] kills every process in it and removes the
//! namespace and the link, whatever the test did.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

/// What the test needs to make one: root and `ip` (iptables is checked by
/// `tests/scripts/need.sh iptables`, which installs it).
pub fn preflight() -> Result<()> {
    let uid = run(Command::new("id").arg("-u")).context("cannot run `id -u`")?;
    if uid.trim() != "0" {
        bail!(
            "the boot test makes a network namespace and its firewall (ip netns, iptables), \
             which needs root: run it as root (or in a container with CAP_NET_ADMIN and \
             CAP_SYS_ADMIN); uid is {}",
            uid.trim()
        );
    }
    run(Command::new("ip").args(["netns", "list"])).context(
        "`ip netns` does not work here; the boot test needs iproute2 (apt-get install iproute2) \
         and a kernel with network namespaces",
    )?;
    Ok(())
}

/// The COS-like host: its namespace, and the addresses on each end of the link.
#[derive(Debug)]
pub struct Host {
    pub ns: String,
    link: String,
    /// This side of the link, where requests come from.
    pub outside: Ipv4Addr,
    /// The host's address, where its ports are.
    pub inside: Ipv4Addr,
    /// Processes the test started in the namespace.
    children: Vec<Child>,
}

impl Host {
    /// Makes the namespace, named after this process so parallel runs do
    /// not collide, with its link on a /30 of 198.18.0.0/15 (reserved for
    /// network tests) also chosen by pid.
    pub fn create() -> Result<Host> {
        let pid = std::process::id();
        let offset = (pid % 32768) * 4;
        let net = Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + offset);
        let host = Host {
            ns: format!("ccdboot{pid}"),
            link: format!("cbh{pid}"),
            outside: Ipv4Addr::from(u32::from(net) + 1),
            inside: Ipv4Addr::from(u32::from(net) + 2),
            children: Vec::new(),
        };
        // Left by a run of this pid that was killed before it could clean up.
        host.remove();
        let peer = format!("cbn{pid}");
        let (ns, link) = (host.ns.as_str(), host.link.as_str());
        let out = format!("{}/30", host.outside);
        let inside = format!("{}/30", host.inside);
        ip(&["netns", "add", ns])?;
        ip(&["link", "add", link, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", ns])?;
        ip(&["addr", "add", &out, "dev", link])?;
        ip(&["link", "set", link, "up"])?;
        host.sh(&["ip", "addr", "add", &inside, "dev", &peer])?;
        host.sh(&["ip", "link", "set", &peer, "up"])?;
        host.sh(&["ip", "link", "set", "lo", "up"])?;
        // COS's host firewall, as its documentation describes it: outgoing
        // connections allowed, incoming ones only to SSH.
        for rule in [
            "-P INPUT DROP",
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A INPUT -p tcp --dport 22 -j ACCEPT",
        ] {
            let mut args = vec!["iptables", "-w"];
            args.extend(rule.split(' '));
            host.sh(&args)?;
        }
        Ok(host)
    }

    /// `program args...` run in the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// Runs `args` in the namespace; its stdout, or why it failed.
    pub fn sh(&self, args: &[&str]) -> Result<String> {
        let (program, rest) = args.split_first().context("a command")?;
        run(self.command(program).args(rest))
    }

    /// Starts a long-running process in the namespace, stopped with the host.
    pub fn spawn(&mut self, mut command: Command) -> Result<()> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start a process in the namespace")?;
        self.children.push(child);
        Ok(())
    }

    /// Whether something in the namespace accepts connections on `port`
    /// (from inside, where the firewall does not apply).
    pub fn listens(&self, port: u16) -> bool {
        self.command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn remove(&self) {
        if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", &self.ns])) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
        // Gone with the namespace once its peer was moved there; not before.
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args)).map(drop)
}

/// Runs a command to the end: its stdout, or an error with its stderr.
fn run(command: &mut Command) -> Result<String> {
    let out = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
