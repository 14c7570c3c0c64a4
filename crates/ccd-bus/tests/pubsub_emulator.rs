//! The Pub/Sub bus against Google's Pub/Sub emulator: what `in_process.rs`
//! checks of the in-process bus, on real time. One emulator serves the whole
//! file (tests/scripts/pubsub-emulator.sh); each test has a project of its
//! own in it, so they run side by side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use std::sync::Arc;
use std::time::Duration;

use ccd_bus::messages::{Health, Report};
use ccd_bus::{
    Bus, BusError, Delivery, DropReason, Drops, Inbox, Payload, PubSubBus, PubSubConfig,
    Subscription, Topic,
};
use fixtures::{envelope, report};
use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::{SubscriptionAdmin, TopicAdmin};

fn emulator() -> &'static str {
    ccd_bus::emulator::host()
}

/// The emulator's config for `project`, as `PUBSUB_EMULATOR_HOST` gives it.
fn config(project: &str) -> PubSubConfig {
    PubSubConfig::with_emulator_host(project, Some(emulator()))
}

async fn bus(project: &str) -> PubSubBus {
    PubSubBus::new(config(project)).await.unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within 10 s")
        .expect("the subscription is open")
}

/// Nothing arrives for `quiet`.
async fn assert_quiet(sub: &mut Subscription, quiet: Duration, why: &str) {
    if let Ok(got) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("{why}: got {:?}", got.map(|d| d.payload.clone()));
    }
}

fn raw(data: &[u8]) -> Payload {
    Payload {
        data: data.to_vec(),
        ..Payload::default()
    }
}

async fn admins(project: &str) -> (TopicAdmin, SubscriptionAdmin) {
    let endpoint = config(project).endpoint.unwrap();
    let topics = TopicAdmin::builder()
        .with_endpoint(&endpoint)
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let subscriptions = SubscriptionAdmin::builder()
        .with_endpoint(&endpoint)
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    (topics, subscriptions)
}

#[tokio::test]
async fn every_subscription_gets_every_message_published_after_it_exists() {
    let bus = Arc::new(bus("ccd-test-fan-out").await);
    fixtures::fan_out(bus, WAIT, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_delivery_not_acknowledged_comes_again_and_an_acknowledged_one_never() {
    let bus = bus("ccd-test-redelivery").await;
    let mut sub = bus.subscribe(Topic::Alerts, "health").await.unwrap();
    let payload = Payload {
        data: b"x".to_vec(),
        attributes: [("schema".to_owned(), "test/v1".to_owned())].into(),
    };
    bus.publish(Topic::Alerts, payload.clone()).await.unwrap();
    let first = next(&mut sub).await;
    assert_eq!(first.payload, payload, "data and attributes travel");
    first.nack();
    let again = next(&mut sub).await;
    assert_eq!(again.payload, payload);
    drop(again); // neither acknowledged nor refused: as if the consumer died
    let third = next(&mut sub).await;
    assert_eq!(third.payload, payload);
    third.ack();
    // Past the ack deadline (10 s): an acknowledgement lost on the way would
    // have the message sent again by then.
    assert_quiet(
        &mut sub,
        Duration::from_secs(13),
        "acknowledged: never again",
    )
    .await;
}

#[tokio::test]
async fn one_consumer_per_subscription_in_a_process() {
    let bus = bus("ccd-test-one-consumer").await;
    let first = bus.subscribe(Topic::Reports, "health").await.unwrap();
    assert!(matches!(
        bus.subscribe(Topic::Reports, "health").await,
        Err(BusError::AlreadySubscribed(name)) if name == "health"
    ));
    // The same name on another topic is another subscription.
    bus.subscribe(Topic::Alerts, "health").await.unwrap();
    drop(first);
    bus.subscribe(Topic::Reports, "health").await.unwrap();
}

#[tokio::test]
async fn malformed_unknown_duplicated_and_stale_messages_are_dropped_and_counted() {
    let bus = bus("ccd-test-inbox").await;
    let drops = Arc::new(Drops::default());
    let subscription = bus.subscribe(Topic::Reports, "health").await.unwrap();
    let mut inbox = Inbox::<Report>::new(subscription, "health", drops.clone());
    let send = |p: Payload| bus.publish(Topic::Reports, p);
    let healthy = |seq| envelope("vm-1", "a", seq, report("vm-1", Health::Healthy));
    let next = async |inbox: &mut Inbox<Report>| {
        tokio::time::timeout(WAIT, inbox.next())
            .await
            .expect("a report within 10 s")
            .unwrap()
    };

    // Pub/Sub may reorder messages, so each lot is judged once it is all
    // there: the bad ones and #2, then a duplicate and an older one of #2
    // (however they come), and a new run.
    send(raw(b"{not json")).await.unwrap();
    let mut v2 = serde_json::to_value(healthy(1)).unwrap();
    v2["schema"] = "ccd.agent.report/v2".into();
    send(raw(&serde_json::to_vec(&v2).unwrap())).await.unwrap();
    let mut broken = serde_json::to_value(healthy(1)).unwrap();
    broken["body"]["health"] = "sparkling".into();
    send(raw(&serde_json::to_vec(&broken).unwrap()))
        .await
        .unwrap();
    send(healthy(2).encode().unwrap()).await.unwrap();
    let first = next(&mut inbox).await;
    assert_eq!((first.run.as_str(), first.seq), ("a", 2));

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
    let second = next(&mut inbox).await;
    assert_eq!((second.run.as_str(), second.seq), ("b", 1));
    assert_eq!(second.body.health, Health::Unhealthy);
    // Whatever came after the new run is judged meanwhile; nothing else passes.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), inbox.next())
            .await
            .is_err(),
        "nothing else is worth handling"
    );
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

#[tokio::test]
async fn topics_and_subscriptions_are_created_when_missing_and_reused() {
    let project = "ccd-test-create";
    let (topics, subscriptions) = admins(project).await;
    let first = bus(project).await;
    let topic = first.topic_path(Topic::Reports);
    let subscription = first.subscription_path(Topic::Reports, "health");
    assert_eq!(topic, "projects/ccd-test-create/topics/ccd-agent-reports");
    assert_eq!(
        subscription,
        "projects/ccd-test-create/subscriptions/ccd-agent-reports-health"
    );
    let missing = topics.get_topic().set_topic(&topic).send().await;
    assert!(missing.is_err(), "no topic before: {missing:?}");

    let mut sub = first.subscribe(Topic::Reports, "health").await.unwrap();
    topics.get_topic().set_topic(&topic).send().await.unwrap();
    let made = subscriptions
        .get_subscription()
        .set_subscription(&subscription)
        .send()
        .await
        .unwrap();
    assert_eq!(made.topic, topic);
    assert_eq!(made.ack_deadline_seconds, 10);
    assert_eq!(
        made.labels.get("managed-by").map(String::as_str),
        Some("ccd")
    );
    first.publish(Topic::Reports, raw(b"one")).await.unwrap();
    let got = next(&mut sub).await;
    assert_eq!(got.payload.data, b"one");
    got.ack();

    // Another bus (another process) on the same project finds them there.
    let second = bus(project).await;
    second.publish(Topic::Reports, raw(b"two")).await.unwrap();
    let got = next(&mut sub).await;
    assert_eq!(got.payload.data, b"two", "the same topic");
    got.ack();
    // Its consumer of the subscription is a second one of the same: each
    // message goes to one of them. (The first is not dropped before: the
    // emulator keeps sending to a streaming pull its client cancelled, and
    // what it sent there comes back some 20 s later, if at all.)
    let mut again = second.subscribe(Topic::Reports, "health").await.unwrap();
    second.publish(Topic::Reports, raw(b"three")).await.unwrap();
    let got = tokio::time::timeout(WAIT, async {
        tokio::select! {
            got = sub.next() => got,
            got = again.next() => got,
        }
    })
    .await
    .expect("a delivery within 10 s")
    .unwrap();
    assert_eq!(got.payload.data, b"three", "the same subscription");
    got.ack();
    let either = async {
        tokio::select! {
            got = sub.next() => got,
            got = again.next() => got,
        }
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(1), either)
            .await
            .is_err(),
        "one consumer only"
    );

    let mut listed = topics
        .list_topics()
        .set_project(format!("projects/{project}"))
        .send()
        .await
        .unwrap()
        .topics
        .into_iter()
        .map(|t| t.name)
        .collect::<Vec<_>>();
    listed.sort();
    assert_eq!(listed, [topic]);
    let listed = subscriptions
        .list_subscriptions()
        .set_project(format!("projects/{project}"))
        .send()
        .await
        .unwrap()
        .subscriptions
        .into_iter()
        .map(|s| s.name)
        .collect::<Vec<_>>();
    assert_eq!(listed, [subscription]);
}

#[tokio::test]
async fn errors_name_the_subscription_and_what_to_do() {
    let bus = bus("ccd-test-errors").await;
    let err = bus
        .subscribe(Topic::Alerts, "no spaces allowed")
        .await
        .unwrap_err();
    let BusError::Transport { context, message } = &err else {
        panic!("not a transport error: {err:?}");
    };
    assert!(
        context
            .contains("projects/ccd-test-errors/subscriptions/ccd-agent-alerts-no spaces allowed"),
        "{context}"
    );
    assert!(message.contains("subscription IDs are"), "{message}");
    // Refused, it is not taken: the name is free for a good consumer.
    assert!(!matches!(
        bus.subscribe(Topic::Alerts, "no spaces allowed").await,
        Err(BusError::AlreadySubscribed(_))
    ));
}

#[test]
fn from_env_reads_pubsub_emulator_host_as_google_libraries_do() {
    // `from_env` reads the variable and hands it to `with_emulator_host`,
    // tested here without touching the process's environment.
    let emulator = PubSubConfig::with_emulator_host("proj", Some("localhost:8085"));
    assert_eq!(
        emulator,
        PubSubConfig {
            project: "proj".into(),
            prefix: "ccd-".into(),
            endpoint: Some("http://localhost:8085".into()),
        }
    );
    let google = PubSubConfig::with_emulator_host("proj", None);
    assert_eq!(google, PubSubConfig::new("proj"));
    assert_eq!(google.endpoint, None);
    assert_eq!(
        PubSubConfig::with_emulator_host("proj", Some("")).endpoint,
        None,
        "set but empty: no emulator"
    );
}

#[tokio::test]
async fn a_subscription_ccd_did_not_make_is_consumed_as_it_is() {
    let project = "ccd-test-given";
    let (topics, subscriptions) = admins(project).await;
    let bus = bus(project).await;
    let missing = format!("projects/{project}/subscriptions/spec-changes");
    let err = bus.subscription_topic(&missing).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = bus.consume(&missing).await.unwrap_err();
    assert!(
        err.to_string().contains("does not exist") && err.to_string().contains(&missing),
        "{err}"
    );
    // As a user makes it for the bucket's notifications: their own names.
    let topic = bus.topic_path(Topic::Alerts);
    topics.create_topic().set_name(&topic).send().await.unwrap();
    subscriptions
        .create_subscription()
        .set_name(&missing)
        .set_topic(&topic)
        .send()
        .await
        .unwrap();
    assert_eq!(bus.subscription_topic(&missing).await.unwrap(), topic);
    let mut sub = bus.consume(&missing).await.unwrap();
    let note = Payload {
        data: b"{}".to_vec(),
        attributes: [("objectId".to_owned(), "specs/web.yaml".to_owned())]
            .into_iter()
            .collect(),
    };
    bus.publish(Topic::Alerts, note.clone()).await.unwrap();
    let got = next(&mut sub).await;
    assert_eq!(got.payload, note, "data and attributes as published");
    got.ack();
    let made = subscriptions
        .get_subscription()
        .set_subscription(&missing)
        .send()
        .await
        .unwrap();
    assert!(made.labels.is_empty(), "left as the user made it");
    assert!(matches!(
        bus.consume(&missing).await,
        Err(BusError::AlreadySubscribed(_))
    ));
}
