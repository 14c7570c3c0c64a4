//! The in-process bus and the inbox above it, on tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use ccd_bus::messages::{Health, Report};
use ccd_bus::{
    Admit, Bus, BusError, Dedup, DropReason, Drops, InProcessBus, Inbox, Payload, Topic,
};
use fixtures::{envelope, report};

async fn inbox(bus: &InProcessBus, name: &str, drops: &Arc<Drops>) -> Inbox<Report> {
    let subscription = bus.subscribe(Topic::Reports, name).await.unwrap();
    Inbox::new(subscription, name, drops.clone())
}

#[tokio::test(start_paused = true)]
async fn every_subscription_gets_every_message_published_after_it_exists() {
    let bus = Arc::new(InProcessBus::new());
    fixtures::fan_out(bus, Duration::from_secs(5), Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_delivery_not_acknowledged_comes_again() {
    let bus = InProcessBus::new();
    let mut sub = bus.subscribe(Topic::Alerts, "health").await.unwrap();
    let payload = Payload {
        data: b"x".to_vec(),
        ..Payload::default()
    };
    bus.publish(Topic::Alerts, payload.clone()).await.unwrap();
    sub.next().await.unwrap().nack();
    let again = sub.next().await.unwrap();
    assert_eq!(again.payload, payload);
    drop(again); // neither acknowledged nor refused: as if the consumer died
    let third = sub.next().await.unwrap();
    third.ack();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .is_err(),
        "acknowledged: never again"
    );
}

#[tokio::test(start_paused = true)]
async fn one_consumer_per_subscription_in_a_process() {
    let bus = InProcessBus::new();
    let first = bus.subscribe(Topic::Reports, "health").await.unwrap();
    assert!(matches!(
        bus.subscribe(Topic::Reports, "health").await,
        Err(BusError::AlreadySubscribed(name)) if name == "health"
    ));
    drop(first);
    bus.subscribe(Topic::Reports, "health").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn malformed_unknown_duplicated_and_stale_messages_are_dropped_and_counted() {
    let bus = InProcessBus::new();
    let drops = Arc::new(Drops::default());
    let mut inbox = inbox(&bus, "health", &drops).await;
    let raw = |data: Vec<u8>| Payload {
        data,
        ..Payload::default()
    };
    let send = |p: Payload| bus.publish(Topic::Reports, p);
    let healthy = |seq| envelope("vm-1", "a", seq, report("vm-1", Health::Healthy));

    send(raw(b"{not json".to_vec())).await.unwrap();
    let mut v2 = serde_json::to_value(healthy(1)).unwrap();
    v2["schema"] = "ccd.agent.report/v2".into();
    send(raw(serde_json::to_vec(&v2).unwrap())).await.unwrap();
    let mut broken = serde_json::to_value(healthy(1)).unwrap();
    broken["body"]["health"] = "sparkling".into();
    send(raw(serde_json::to_vec(&broken).unwrap()))
        .await
        .unwrap();
    send(healthy(2).encode().unwrap()).await.unwrap();
    send(healthy(2).encode().unwrap()).await.unwrap(); // redelivered
    send(healthy(1).encode().unwrap()).await.unwrap(); // overtaken by #2
    // The source restarted: a new run counts from 1 again.
    send(
        envelope("vm-1", "b", 1, report("vm-1", Health::Unhealthy))
            .encode()
            .unwrap(),
    )
    .await
    .unwrap();

    let first = inbox.next().await.unwrap();
    assert_eq!((first.run.as_str(), first.seq), ("a", 2));
    let second = inbox.next().await.unwrap();
    assert_eq!((second.run.as_str(), second.seq), ("b", 1));
    assert_eq!(second.body.health, Health::Unhealthy);
    let counted: Vec<(DropReason, u64)> =
        DropReason::ALL.iter().map(|&r| (r, drops.get(r))).collect();
    assert_eq!(
        counted,
        [
            (DropReason::Malformed, 2),
            (DropReason::UnknownSchema, 1),
            (DropReason::Duplicate, 1),
            (DropReason::Stale, 1),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dedup_forgets_sources_not_heard_from() {
    let mut dedup = Dedup::new(Duration::from_secs(60));
    assert_eq!(dedup.admit("vm-1", "a", 5), Admit::New);
    assert_eq!(dedup.admit("vm-1", "a", 5), Admit::Duplicate);
    assert_eq!(dedup.admit("vm-1", "a", 4), Admit::Stale);
    assert_eq!(dedup.admit("vm-1", "a", 7), Admit::New);
    tokio::time::advance(Duration::from_secs(61)).await;
    // Forgotten: a message that old is taken again (consumers judge it by
    // the instance it names, which no longer exists by then).
    assert_eq!(dedup.admit("vm-1", "a", 3), Admit::New);
}

#[test]
fn a_runtime_shut_down_with_deliveries_pending_stops_quietly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bus = InProcessBus::new();
    let subscription = runtime.block_on(async {
        let mut s = bus.subscribe(Topic::Alerts, "health").await.unwrap();
        for _ in 0..3 {
            bus.publish(Topic::Alerts, Payload::default())
                .await
                .unwrap();
        }
        // One waits for redelivery on the runtime; two are queued.
        s.next().await.unwrap().nack();
        s
    });
    drop(runtime);
    drop(subscription);
}
