//! The bus's throughput and latency: MESSAGES agent reports published at a
//! steady RATE a second through Google's Pub/Sub emulator and through the
//! in-process bus (the peer, measured in the same run), each received by an
//! `Inbox<Report>` on a subscription of its own.
//!
//! `bench_bus [MESSAGES] [RATE]` (default 5,000 at 1,000/s). The Pub/Sub
//! side needs `PUBSUB_EMULATOR_HOST` (tests/bench/bus.sh starts an emulator
//! and sets it); without it only the in-process bus is measured.
//!
//! The reports come from 1,000 agents (sources), each reporting once a
//! second at the default rate, as a fleet would: the inbox keeps each
//! source's order, and one source sending faster than its reports are
//! delivered would see them dropped as stale. Each report is published from
//! a task of its own at its tick (the bus's `publish` resolves once the bus
//! has the message, so one publisher awaiting each would cap the rate); the
//! latency is from just before `publish` to the inbox handing the report
//! out. Throughput is counted from the first report received to the last. A warm-up of 50 reports
//! (topic and subscription made, connections open) is not counted. A report
//! not received within 10 s of the last one sent is lost: the figures say so
//! and the run fails. Goal: 1,000 messages/s at p99 under 100 ms. Run by
//! `make bench` (tests/bench/bus.sh).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a benchmark reports on stdout

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ccd_bus::messages::{Health, InstanceRef, Report};
use ccd_bus::{
    Bus, DropReason, Drops, Envelope, InProcessBus, Inbox, Message, PubSubBus, PubSubConfig, Topic,
};
use tokio::time::{Instant, MissedTickBehavior};

type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WARM_UP: u64 = 50;
/// Agents reporting, in turn.
const SOURCES: u64 = 1000;
/// A report not received this long after the last one was sent is lost.
const DEADLINE: Duration = Duration::from_secs(10);
const GOAL_RATE: f64 = 1000.0;
const GOAL_P99: Duration = Duration::from_millis(100);

/// The `i`th measured report: from agent `i % SOURCES`, its `i / SOURCES + 1`th.
fn report(i: u64) -> Envelope<Report> {
    envelope(
        format!("vm-{:04}", i % SOURCES),
        i / SOURCES + 1,
        i % SOURCES,
    )
}

/// Which measured report this is, if it is one.
fn index(envelope: &Envelope<Report>) -> Option<usize> {
    let agent: u64 = envelope.source.strip_prefix("vm-")?.parse().ok()?;
    Some(((envelope.seq.checked_sub(1)?) * SOURCES + agent) as usize)
}

fn envelope(source: String, seq: u64, agent: u64) -> Envelope<Report> {
    Envelope {
        schema: Report::SCHEMA.to_owned(),
        source,
        run: "bench".to_owned(),
        seq,
        sent_ms: 0,
        body: Report {
            instance: InstanceRef {
                app: "web".to_owned(),
                version: "v42".to_owned(),
                instance: format!("web-v42-{agent:04}"),
                instance_id: format!("{}", 8_000_000_000_000_000_000u64 + agent),
            },
            health: Health::Healthy,
            failure: None,
            cpu: Some(0.37),
            memory_bytes: Some(123_456_789),
            memory: Some(0.12),
            requests_per_second: Some(512.5),
            restarts: 0,
            interval_ms: 10_000,
        },
    }
}

#[derive(Debug)]
struct Figures {
    name: &'static str,
    sent: u64,
    received: u64,
    publish_errors: u64,
    first_error: Option<String>,
    duplicates: u64,
    /// Sending the measured reports: first tick to last tick.
    send_span: Duration,
    /// First report received to the last.
    span: Duration,
    latencies: Vec<Duration>,
    acked: Vec<Duration>,
}

/// When each measured report was sent, and when `publish` resolved.
#[derive(Debug, Default)]
struct Sent {
    at: Vec<Option<Instant>>,
    acked: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

async fn measure<B: Bus>(
    name: &'static str,
    bus: Arc<B>,
    messages: u64,
    rate: f64,
) -> Fallible<Figures> {
    let drops = Arc::new(Drops::default());
    let subscription = bus.subscribe(Topic::Reports, "bench").await?;
    let mut inbox = Inbox::<Report>::new(subscription, "bench", drops.clone());

    // Warm-up: the topic, the subscription, connections and streams.
    for seq in 1..=WARM_UP {
        let warm_up = envelope("warm-up".to_owned(), seq, 0);
        bus.publish(Topic::Reports, warm_up.encode()?).await?;
    }
    let mut warmed = 0;
    while warmed < WARM_UP {
        match tokio::time::timeout(DEADLINE, inbox.next()).await {
            Ok(Some(_)) => warmed += 1,
            _ => return Err(format!("{name}: the warm-up reports did not arrive").into()),
        }
    }

    let n = messages as usize;
    let sent = Arc::new(Mutex::new(Sent {
        at: vec![None; n],
        ..Sent::default()
    }));
    let publisher = {
        let bus = bus.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            // Late ticks are caught up on: the rate stays the one asked for.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            let first = Instant::now();
            for i in 0..n {
                ticks.tick().await;
                let bus = bus.clone();
                let sent = sent.clone();
                tasks.spawn(async move {
                    let at = Instant::now();
                    guard(&sent).at[i] = Some(at);
                    let result = match report(i as u64).encode() {
                        Ok(payload) => bus.publish(Topic::Reports, payload).await,
                        Err(e) => Err(e),
                    };
                    let mut s = guard(&sent);
                    match result {
                        Ok(()) => s.acked.push(at.elapsed()),
                        Err(e) => {
                            s.errors += 1;
                            s.first_error.get_or_insert(e.to_string());
                        }
                    }
                });
                // Reap the finished ones as we go, so the set stays small.
                while tasks.try_join_next().is_some() {}
            }
            let send_span = first.elapsed();
            while tasks.join_next().await.is_some() {}
            send_span
        })
    };

    // Reports come in steadily: none for DEADLINE means the rest are lost.
    let mut latencies = Vec::with_capacity(n);
    let mut first_received: Option<Instant> = None;
    let mut last_received = Instant::now();
    while latencies.len() < n {
        let Ok(Some(envelope)) = tokio::time::timeout(DEADLINE, inbox.next()).await else {
            break;
        };
        let now = Instant::now();
        let Some(i) = index(&envelope) else {
            continue; // a warm-up report again
        };
        let at = guard(&sent).at.get(i).copied().flatten();
        if let Some(at) = at {
            latencies.push(now.saturating_duration_since(at));
            first_received.get_or_insert(now);
            last_received = now;
        }
    }
    let send_span = publisher.await?;
    let s = guard(&sent);
    Ok(Figures {
        name,
        sent: s.at.iter().filter(|a| a.is_some()).count() as u64,
        received: latencies.len() as u64,
        publish_errors: s.errors,
        first_error: s.first_error.clone(),
        duplicates: drops.get(DropReason::Duplicate) + drops.get(DropReason::Stale),
        send_span,
        span: first_received.map_or(Duration::ZERO, |f| {
            last_received.saturating_duration_since(f)
        }),
        latencies,
        acked: s.acked.clone(),
    })
}

fn guard(sent: &Mutex<Sent>) -> std::sync::MutexGuard<'_, Sent> {
    sent.lock().unwrap_or_else(PoisonError::into_inner)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints the figures; whether nothing was lost.
fn print(f: &mut Figures, messages: u64) -> bool {
    f.latencies.sort();
    f.acked.sort();
    let throughput = if f.span.is_zero() {
        0.0
    } else {
        f.received.saturating_sub(1) as f64 / f.span.as_secs_f64()
    };
    let offered = if f.send_span.is_zero() {
        0.0
    } else {
        f.sent.saturating_sub(1) as f64 / f.send_span.as_secs_f64()
    };
    let p99 = percentile(&f.latencies, 0.99);
    println!("  {}:", f.name);
    println!(
        "    sent {} at {offered:.0}/s, received {} ({} lost), {:.0} messages/s received",
        f.sent,
        f.received,
        messages.saturating_sub(f.received),
        throughput,
    );
    println!(
        "    publish -> received: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&f.latencies, 0.50)),
        ms(p99),
        ms(f.latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "    publish -> acknowledged by the bus: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&f.acked, 0.50)),
        ms(percentile(&f.acked, 0.99)),
    );
    if f.publish_errors > 0 || f.duplicates > 0 {
        println!(
            "    publish errors: {}{}; duplicate or stale deliveries dropped: {}",
            f.publish_errors,
            f.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            f.duplicates
        );
    }
    let lost = f.received < messages;
    let met = !lost && f.publish_errors == 0 && throughput >= GOAL_RATE * 0.98 && p99 < GOAL_P99;
    println!("    goal {}", if met { "met" } else { "missed" });
    !lost
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000.0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_bus: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(messages, rate)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench_bus: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(messages: u64, rate: f64) -> Fallible<bool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let emulator = std::env::var("PUBSUB_EMULATOR_HOST")
        .ok()
        .filter(|h| !h.is_empty());
    println!(
        "bus: {messages} agent reports at {rate:.0}/s, each bus in turn, received through an Inbox, {cores} cores  (goal: {GOAL_RATE:.0} messages/s at p99 under {} ms)",
        GOAL_P99.as_millis()
    );
    let mut all_received = true;
    // The peer first, then Pub/Sub: the same load, one after the other.
    let mut figures = measure(
        "in-process bus",
        Arc::new(InProcessBus::new()),
        messages,
        rate,
    )
    .await?;
    all_received &= print(&mut figures, messages);
    match emulator {
        Some(host) => {
            // A prefix of its own, should the emulator have served a run before.
            let mut config = PubSubConfig::from_env("ccd-bench");
            config.prefix = format!("bench-{}-", std::process::id());
            let bus = PubSubBus::new(config).await?;
            println!("  (Pub/Sub: Google's emulator at {host}, google-cloud-pubsub's clients)");
            let mut figures = measure("Pub/Sub", Arc::new(bus), messages, rate).await?;
            all_received &= print(&mut figures, messages);
        }
        None => println!(
            "  Pub/Sub: not measured, PUBSUB_EMULATOR_HOST is not set (tests/bench/bus.sh sets it)"
        ),
    }
    if !all_received {
        println!("  FAILED: reports were lost");
    }
    Ok(all_received)
}
