//! Spawns the real `ccd-sample-app` binary on a free loopback port and talks
//! to it over raw HTTP/1.1, so the tests see exactly what a client sees.
//! Waits poll with generous limits: the tests must pass on a busy 2-core box.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::Duration;
use tokio::time::Instant;

/// Generous limit for start-up, exits and log lines.
pub const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

/// Variables the app reads; cleared so the caller's shell cannot leak in.
const APP_VARS: &[&str] = &[
    "PORT",
    "HOST",
    "CCD_APP",
    "CCD_VERSION",
    "CCD_INSTANCE",
    "SAMPLE_FAIL_HEALTH",
    "SAMPLE_START_DELAY",
    "SAMPLE_CRASH_AFTER",
    "SAMPLE_BURN_MS",
    "SAMPLE_EXPOSE_ENV",
    "SAMPLE_TEST_VALUE",
];

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

#[derive(Debug)]
pub struct App {
    child: Child,
    pub port: u16,
    logs: Receiver<String>,
    seen: Vec<String>,
}

impl App {
    /// Spawns the binary without waiting for it to listen.
    pub fn spawn(env: &[(&str, &str)]) -> App {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccd-sample-app"));
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
        for var in APP_VARS {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ccd-sample-app");

        // Drain stderr on a thread so the app never blocks on a full pipe.
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, logs) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        App {
            child,
            port,
            logs,
            seen: Vec::new(),
        }
    }

    /// Spawns the binary and waits until it answers HTTP.
    pub fn start(env: &[(&str, &str)]) -> App {
        let mut app = App::spawn(env);
        app.wait_ready();
        app
    }

    /// Polls `/healthz` until any HTTP answer (200 or 503) comes back.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("app exited with {status} before answering"));
            }
            if request(self.port, "GET", "/healthz").is_ok() {
                return;
            }
            thread::sleep(POLL);
        }
        self.fail("app did not answer within 10 s");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.port, "GET", path).expect("GET request")
    }

    pub fn post(&self, path: &str) -> Response {
        request(self.port, "POST", path).expect("POST request")
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_log(&mut self, needle: &str) {
        if self.seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("no log line containing {needle:?}"));
                }
            }
        }
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            thread::sleep(POLL);
        }
        self.fail("app did not exit within 10 s");
    }

    /// Every stderr line so far (all of them once the process has exited).
    pub fn logs(&mut self) -> String {
        while let Ok(line) = self.logs.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }

    fn fail(&mut self, why: &str) -> ! {
        let logs = self.logs();
        panic!("{why}\n--- app stderr ---\n{logs}");
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // Never leave a server behind, whatever the test did.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (the race with other tests is tiny).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Sends a request and returns the open stream, to read the answer later.
pub fn send_request(port: u16, method: &str, path: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr(port), Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(req.as_bytes())?;
    Ok(stream)
}

/// Reads a whole `Connection: close` answer.
pub fn read_response(mut stream: TcpStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let bad = || std::io::Error::other(format!("not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok(Response {
        status,
        body: body.to_string(),
    })
}

pub fn request(port: u16, method: &str, path: &str) -> std::io::Result<Response> {
    read_response(send_request(port, method, path)?)
}
