//! What `ccd up`'s service servers (redis-server, PostgreSQL, the Firestore
//! emulator, fake-gcs-server) share: started when an app first asks, again
//! when one stopped, on the port they had, and waited for until they answer.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

/// A server `ccd up` runs for the apps, or adopted from an earlier run.
pub(crate) trait Server: Sized + Send {
    /// Whether it still runs and answers.
    fn alive(&mut self) -> impl Future<Output = bool> + Send;
}

/// The slot's server: the running one, or one `start`ed when there is none
/// or it stopped (then `stopped` is told: what was applied to it is gone).
pub(crate) async fn running<'a, S: Server>(
    slot: &'a Mutex<Option<S>>,
    what: &str,
    start: impl Future<Output = Result<S, String>>,
    stopped: impl FnOnce(),
) -> Result<MappedMutexGuard<'a, S>, String> {
    let mut guard = slot.lock().await;
    if let Some(server) = guard.as_mut()
        && !server.alive().await
    {
        tracing::warn!("the apps' {what} stopped; starting it again");
        *guard = None;
        stopped();
    }
    if guard.is_none() {
        *guard = Some(start.await?);
    }
    MutexGuard::try_map(guard, Option::as_mut).map_err(|_| format!("{what} did not start"))
}

/// Starts `bin` with `args` for the apps, its output in `dir/<log>` (the
/// server is stopped with `ccd up`: kill on drop).
pub(crate) fn spawn(
    bin: &Path,
    args: &[String],
    dir: &Path,
    log: &str,
) -> Result<tokio::process::Child, String> {
    let out = std::fs::File::create(dir.join(log))
        .map_err(|e| format!("cannot write {}: {e}", dir.join(log).display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot write {}: {e}", dir.join(log).display()))?;
    tokio::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))
}

/// The port recorded in `dir/port`, when there is one.
pub(crate) fn recorded_port(dir: &Path) -> Option<u16> {
    std::fs::read_to_string(dir.join("port"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
}

/// A free port for the server in `dir` (the one it had, when free),
/// recorded there.
pub(crate) fn claim_port(dir: &Path) -> Result<u16, String> {
    let port = port_for(recorded_port(dir)).ok_or("no free port on 127.0.0.1")?;
    super::files::write_private(&dir.join("port"), port.to_string())
        .map_err(|e| format!("cannot write {}: {e}", dir.join("port").display()))?;
    Ok(port)
}

/// The first of `candidates` that is a file.
pub(crate) fn first_file(candidates: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    candidates.into_iter().find(|p| p.is_file())
}

/// `name` in PATH's folders and then in `also`.
pub(crate) fn on_path(name: &str, also: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    first_file(
        std::env::split_paths(&path)
            .chain(also.iter().map(PathBuf::from))
            .map(|d| d.join(name)),
    )
}

/// The port a server had (`recorded`) when it is free, else a free one.
pub(crate) fn port_for(recorded: Option<u16>) -> Option<u16> {
    recorded
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .ok()
                .map(|a| a.port())
        })
}

/// Calls `check` every `pause` until it succeeds, at most `within`; the
/// last failure otherwise.
pub(crate) async fn answers<F, Fut>(
    within: Duration,
    pause: Duration,
    check: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        let last = match check().await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if tokio::time::Instant::now() >= end {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
    }
}

/// One plain HTTP/1.1 exchange with a server on loopback (the emulators'
/// APIs; the Firestore emulator does not answer HTTP/1.0), the connection
/// closed after it: the status code and the body.
pub(crate) async fn http(
    address: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let body = body.unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        // Read until the reply is whole: some servers (the Firestore
        // emulator) keep the connection open despite `Connection: close`.
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        while !complete(&reply) && reply.len() < 16 << 20 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("{address} did not answer {method} {path} within 10 s"))?
        .map_err(|e| format!("cannot reach {address}: {e}"))?;
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or((reply.as_slice(), &b""[..]), |at| {
            (&reply[..at], &reply[at + 4..])
        });
    let (head, body) = (String::from_utf8_lossy(split.0), split.1);
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{address} answered {method} {path} with no HTTP status"))?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// Whether `reply` holds a whole response: its headers and the body they
/// announce (by length, or chunks up to the last).
fn complete(reply: &[u8]) -> bool {
    let Some(at) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&reply[..at]).to_ascii_lowercase();
    let body = &reply[at + 4..];
    for line in head.lines() {
        let line = line.replace(' ', "");
        if let Some(length) = line.strip_prefix("content-length:") {
            return length.parse::<usize>().is_ok_and(|n| body.len() >= n);
        }
        if line == "transfer-encoding:chunked" {
            return body.ends_with(b"0\r\n\r\n");
        }
    }
    false
}

/// The body of a chunked reply, its chunks joined.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&rest[..end]);
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        let after = &rest[end + 2..];
        if size == 0 || after.len() < size {
            break;
        }
        body.extend_from_slice(&after[..size]);
        rest = after[size..]
            .strip_prefix(b"\r\n")
            .unwrap_or(&after[size..]);
    }
    body
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chunked_body_is_joined() {
        assert_eq!(
            super::dechunk(b"4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
    }
}
