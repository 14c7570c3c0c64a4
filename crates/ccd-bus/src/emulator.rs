//! Google's Pub/Sub emulator for tests, started once per test binary by the
//! project's script (`tests/scripts/pubsub-emulator.sh`, which says how to
//! install it when it is missing). Behind the `emulator` feature: tests only.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::Duration;
use tokio::time::Instant;

/// `host:port` of the emulator, started on first use (the value for
/// `PUBSUB_EMULATOR_HOST`). The process is spawned by a thread of its own
/// that lives as long as it does: the script has the emulator killed when
/// the thread that spawned it ends (a parent-death signal), so when the test
/// binary exits, panicked or not, and never while it still runs.
///
/// # Panics
/// When the emulator cannot be started, with its output: a test cannot run
/// without it.
#[allow(clippy::panic, clippy::expect_used)] // test support fails loudly
pub fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scripts/pubsub-emulator.sh");
        let log_path =
            std::env::temp_dir().join(format!("ccd-pubsub-emulator-{}.log", std::process::id()));
        let log = File::create(&log_path).expect("a log file for the emulator");
        let (port_tx, port_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut child = Command::new("bash")
                .arg(script)
                .arg("start")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect("bash runs tests/scripts/pubsub-emulator.sh");
            let mut line = String::new();
            if let Some(stdout) = child.stdout.take() {
                let _ = BufReader::new(stdout).read_line(&mut line);
            }
            let _ = port_tx.send(line.trim().parse::<u16>().ok());
            let _ = child.wait();
        });
        let failed = |why: &str| -> ! {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!(
                "the Pub/Sub emulator {why}; its output ({}):\n{log}",
                log_path.display()
            )
        };
        let Ok(Some(port)) = port_rx.recv_timeout(Duration::from_secs(60)) else {
            failed("did not start")
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                failed(&format!("is not listening on port {port} after 60 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        format!("127.0.0.1:{port}")
    })
}
