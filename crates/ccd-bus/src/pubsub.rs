//! The bus on Google Cloud Pub/Sub, through Google's official client
//! (`google-cloud-pubsub`): a batching publisher per topic, streaming pull
//! with acknowledgements per subscription, and the topics and subscriptions
//! created when missing.
//!
//! Names: the topic of [`Topic::Reports`] is `{prefix}agent-reports`; a
//! subscription `health` of it is `{prefix}agent-reports-health`, since
//! Pub/Sub's subscription names are per project while the bus's are per
//! topic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use google_cloud_auth::credentials::{self, Credentials, anonymous};
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::retry_policy::RetryPolicyExt;
use google_cloud_pubsub::client::{
    BasePublisher, Publisher, Subscriber, SubscriptionAdmin, TopicAdmin,
};
use google_cloud_pubsub::error::PublishError;
use google_cloud_pubsub::model::{self, ExpirationPolicy, RetryPolicy};
use google_cloud_pubsub::retry_policy::RetryableErrors;
use google_cloud_pubsub::subscriber::ShutdownBehavior;
use google_cloud_pubsub::subscriber::handler::Handler;
use tokio::sync::OnceCell;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::{Acker, Bus, BusError, Delivery, Payload, Subscription, Topic};

/// How long a delivery is leased before Pub/Sub sends it again, unless the
/// client extends it (it does, while the consumer holds the delivery).
const ACK_DEADLINE: Duration = Duration::from_secs(10);
/// A subscription nobody consumed for this long is deleted by Pub/Sub
/// (its minimum), so the subscriptions of consumers gone for good go away.
const EXPIRE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Messages not acknowledged for this long are discarded: every source says
/// again what still holds at its interval, so an hour-old message is
/// worthless, and a consumer back after a long absence is not flooded.
const RETAIN_FOR: Duration = Duration::from_secs(3600);
/// Redelivery of a refused delivery waits at least this long (growing to
/// [`REDELIVERY_MAX`]), so that a consumer that cannot handle it does not spin.
const REDELIVERY_MIN: Duration = Duration::from_secs(1);
const REDELIVERY_MAX: Duration = Duration::from_secs(60);
/// A consumer's stream that failed is opened again after this, doubling.
const REOPEN_MIN: Duration = Duration::from_secs(1);
const REOPEN_MAX: Duration = Duration::from_secs(60);
/// A message that could not be published for this long (Pub/Sub
/// unreachable, say) is an error: the client's default, ten minutes, would
/// pile up publishers waiting on stale reports.
const PUBLISH_RETRIES_FOR: Duration = Duration::from_secs(60);
/// How long creating or reading a topic or subscription is retried on a
/// transient failure. Creates are repeated too (Google's default policy
/// does not, a create not being idempotent): one that did succeed before
/// its answer was lost comes back as AlreadyExists, which is handled.
const ADMIN_RETRIES_FOR: Duration = Duration::from_secs(60);

/// Labels on what the bus creates, to tell it apart in the project.
const LABELS: [(&str, &str); 1] = [("managed-by", "ccd")];

/// Where the bus lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubConfig {
    /// The Google Cloud project of the topics and subscriptions.
    pub project: String,
    /// Put before every topic and subscription ID, so that several ccd
    /// installations (or tests) share a project. Default `ccd-`.
    pub prefix: String,
    /// Pub/Sub's address, `https://pubsub.googleapis.com` when `None`. An
    /// `http://` endpoint is an emulator: no credentials are sent to it
    /// (Application Default Credentials are used otherwise).
    pub endpoint: Option<String>,
}

impl PubSubConfig {
    /// The project on Google's Pub/Sub, with the default prefix.
    pub fn new(project: impl Into<String>) -> Self {
        PubSubConfig {
            project: project.into(),
            prefix: "ccd-".to_owned(),
            endpoint: None,
        }
    }

    /// As Google's client libraries do: the emulator at
    /// `PUBSUB_EMULATOR_HOST` (`host:port`) when it is set, with anonymous
    /// credentials; Google's Pub/Sub with Application Default Credentials
    /// otherwise.
    pub fn from_env(project: impl Into<String>) -> Self {
        let host = std::env::var("PUBSUB_EMULATOR_HOST").ok();
        Self::with_emulator_host(project, host.as_deref())
    }

    /// [`PubSubConfig::from_env`] with the variable's value given.
    pub fn with_emulator_host(project: impl Into<String>, emulator_host: Option<&str>) -> Self {
        PubSubConfig {
            endpoint: emulator_host.and_then(emulator_endpoint),
            ..Self::new(project)
        }
    }

    fn endpoint_or_default(&self) -> &str {
        self.endpoint
            .as_deref()
            .unwrap_or("https://pubsub.googleapis.com")
    }

    fn is_emulator(&self) -> bool {
        self.endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
    }
}

/// The endpoint of an emulator at `PUBSUB_EMULATOR_HOST`'s value: `host:port`
/// (as Google documents it) becomes `http://host:port`; a value with a scheme
/// is taken as it is; an empty one means no emulator.
pub(crate) fn emulator_endpoint(value: &str) -> Option<String> {
    let value = value.trim().trim_end_matches('/');
    if value.is_empty() {
        None
    } else if value.starts_with("http://") || value.starts_with("https://") {
        Some(value.to_owned())
    } else {
        Some(format!("http://{value}"))
    }
}

/// The bus on Google Cloud Pub/Sub. Cheap to clone: clones share the clients.
#[derive(Debug, Clone)]
pub struct PubSubBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: PubSubConfig,
    base_publisher: BasePublisher,
    subscriber: Subscriber,
    topics: TopicAdmin,
    subscriptions: SubscriptionAdmin,
    /// One batching publisher per topic, made (and the topic created) on
    /// the first message.
    publishers: Mutex<HashMap<Topic, Arc<OnceCell<Publisher>>>>,
    /// This process's consumers, by subscription path: one each, as for
    /// the in-process bus.
    consumers: Mutex<HashMap<String, UnboundedSender<Delivery>>>,
}

impl PubSubBus {
    /// Connects (lazily: nothing is sent before the first publish or
    /// subscribe) to Pub/Sub as `config` says.
    pub async fn new(config: PubSubConfig) -> Result<Self, BusError> {
        let endpoint = config.endpoint_or_default().to_owned();
        let context = || format!("connecting to Pub/Sub at {endpoint}");
        let credentials: Credentials = if config.is_emulator() {
            anonymous::Builder::new().build()
        } else {
            credentials::Builder::default()
                .build()
                .map_err(|e| BusError::Transport {
                    context: context(),
                    message: format!(
                        "no Application Default Credentials: {e} (set GOOGLE_APPLICATION_CREDENTIALS, \
                         run `gcloud auth application-default login`, or run on a VM with a \
                         service account; for the emulator set PUBSUB_EMULATOR_HOST)"
                    ),
                })?
        };
        let built = |e: google_cloud_gax::client_builder::Error| BusError::Transport {
            context: context(),
            message: e.to_string(),
        };
        let base_publisher = BasePublisher::builder()
            .with_endpoint(&endpoint)
            .with_credentials(credentials.clone())
            .with_retry_policy(RetryableErrors.with_time_limit(PUBLISH_RETRIES_FOR))
            .build()
            .await
            .map_err(built)?;
        let subscriber = Subscriber::builder()
            .with_endpoint(&endpoint)
            .with_credentials(credentials.clone())
            .build()
            .await
            .map_err(built)?;
        let topics = TopicAdmin::builder()
            .with_endpoint(&endpoint)
            .with_credentials(credentials.clone())
            .with_retry_policy(RetryableErrors.with_time_limit(ADMIN_RETRIES_FOR))
            .build()
            .await
            .map_err(built)?;
        let subscriptions = SubscriptionAdmin::builder()
            .with_endpoint(&endpoint)
            .with_credentials(credentials)
            .with_retry_policy(RetryableErrors.with_time_limit(ADMIN_RETRIES_FOR))
            .build()
            .await
            .map_err(built)?;
        Ok(PubSubBus {
            inner: Arc::new(Inner {
                config,
                base_publisher,
                subscriber,
                topics,
                subscriptions,
                publishers: Mutex::default(),
                consumers: Mutex::default(),
            }),
        })
    }

    pub fn config(&self) -> &PubSubConfig {
        &self.inner.config
    }

    /// The topic's full name: `projects/{project}/topics/{prefix}{name}`.
    pub fn topic_path(&self, topic: Topic) -> String {
        self.inner.topic_path(topic)
    }

    /// The full name of the bus's `subscription` of the topic:
    /// `projects/{project}/subscriptions/{prefix}{topic name}-{subscription}`.
    pub fn subscription_path(&self, topic: Topic, subscription: &str) -> String {
        self.inner.subscription_path(topic, subscription)
    }

    /// The topic of a subscription ccd did not make (`ccd doctor`'s check
    /// of the one `consume` would read), or why it cannot be read.
    pub async fn subscription_topic(&self, subscription: &str) -> Result<String, BusError> {
        self.inner
            .given_subscription(subscription)
            .await
            .map(|s| s.topic)
            .map_err(|e| self.inner.given_error(&e, subscription))
    }

    /// Consumes a subscription ccd did not make, by its full name
    /// (`projects/P/subscriptions/S`): the one Cloud Storage's notifications
    /// of the spec bucket reach, say. It is neither created nor changed, and
    /// one that does not exist is an error saying how to make it.
    pub async fn consume(&self, subscription: &str) -> Result<Subscription, BusError> {
        let path = subscription.to_owned();
        let (tx, rx) = self
            .inner
            .claim_consumer(&path)
            .ok_or_else(|| BusError::AlreadySubscribed(path.clone()))?;
        match self.inner.given_subscription(&path).await {
            Ok(_) => {}
            // Credentials that may only consume cannot read it: the stream says.
            Err(e) if code(&e) == Some(Code::PermissionDenied) => {}
            Err(e) => {
                lock(&self.inner.consumers).remove(&path);
                return Err(self.inner.given_error(&e, &path));
            }
        }
        tokio::spawn(consume(self.inner.clone(), None, path, tx));
        Ok(Subscription::new(rx))
    }

    async fn publisher(&self, topic: Topic) -> Result<Publisher, BusError> {
        let cell = lock(&self.inner.publishers)
            .entry(topic)
            .or_default()
            .clone();
        let publisher = cell
            .get_or_try_init(|| async {
                self.inner.ensure_topic(topic).await?;
                // Batches of up to 100 messages or 1 MB, sent at the latest
                // 10 ms after their first message (the client's defaults).
                Ok::<_, BusError>(
                    self.inner
                        .base_publisher
                        .publisher(self.inner.topic_path(topic))
                        .build(),
                )
            })
            .await?;
        Ok(publisher.clone())
    }
}

impl Bus for PubSubBus {
    async fn publish(&self, topic: Topic, payload: Payload) -> Result<(), BusError> {
        let publisher = self.publisher(topic).await?;
        let message = model::Message::new()
            .set_data(payload.data)
            .set_attributes(payload.attributes);
        match publisher.publish(message).await {
            Ok(_id) => Ok(()),
            Err(e) => {
                let path = self.inner.topic_path(topic);
                let message = match &e {
                    PublishError::Rpc(error) => explain(
                        error,
                        &self.inner.config,
                        Operation::Publish { topic: &path },
                    ),
                    other => other.to_string(),
                };
                Err(BusError::Transport {
                    context: format!("publishing to topic {path}"),
                    message,
                })
            }
        }
    }

    async fn subscribe(&self, topic: Topic, subscription: &str) -> Result<Subscription, BusError> {
        let path = self.inner.subscription_path(topic, subscription);
        let (tx, rx) = self
            .inner
            .claim_consumer(&path)
            .ok_or_else(|| BusError::AlreadySubscribed(subscription.to_owned()))?;
        let ready = async {
            self.inner.ensure_topic(topic).await?;
            self.inner.ensure_subscription(topic, &path).await
        };
        if let Err(e) = ready.await {
            lock(&self.inner.consumers).remove(&path);
            return Err(e);
        }
        tokio::spawn(consume(self.inner.clone(), Some(topic), path, tx));
        Ok(Subscription::new(rx))
    }
}

impl Inner {
    /// Registers this process's one consumer of `path`: its channel, or
    /// `None` when it already has one.
    fn claim_consumer(
        &self,
        path: &str,
    ) -> Option<(UnboundedSender<Delivery>, UnboundedReceiver<Delivery>)> {
        let (tx, rx) = unbounded_channel();
        let mut consumers = lock(&self.consumers);
        consumers.retain(|_, tx| !tx.is_closed());
        if consumers.contains_key(path) {
            return None;
        }
        consumers.insert(path.to_owned(), tx.clone());
        Some((tx, rx))
    }

    /// A subscription ccd did not make, as Pub/Sub describes it.
    async fn given_subscription(&self, path: &str) -> Result<model::Subscription, GaxError> {
        self.subscriptions
            .get_subscription()
            .set_subscription(path)
            .send()
            .await
    }

    /// Why a subscription ccd did not make cannot be read, and the fix.
    fn given_error(&self, error: &GaxError, path: &str) -> BusError {
        BusError::Transport {
            context: format!("reading subscription {path}"),
            message: explain(
                error,
                &self.config,
                Operation::ConsumeGiven { subscription: path },
            ),
        }
    }

    fn topic_path(&self, topic: Topic) -> String {
        format!(
            "projects/{}/topics/{}{}",
            self.config.project,
            self.config.prefix,
            topic.name()
        )
    }

    fn subscription_path(&self, topic: Topic, subscription: &str) -> String {
        format!(
            "projects/{}/subscriptions/{}{}-{}",
            self.config.project,
            self.config.prefix,
            topic.name(),
            subscription
        )
    }

    /// Creates the topic unless it exists. Credentials that may only publish
    /// (`roles/pubsub.publisher`) cannot create it, nor see whether it
    /// exists: the topic is then taken to exist, and publishing says if not.
    async fn ensure_topic(&self, topic: Topic) -> Result<(), BusError> {
        let path = self.topic_path(topic);
        let created = self
            .topics
            .create_topic()
            .set_name(&path)
            .set_labels(LABELS)
            .send()
            .await;
        match created {
            Ok(_) => {
                tracing::info!(topic = %path, "Pub/Sub topic created");
                Ok(())
            }
            Err(e) if code(&e) == Some(Code::AlreadyExists) => Ok(()),
            Err(e) if code(&e) == Some(Code::PermissionDenied) => {
                tracing::debug!(topic = %path, error = %e, "may not create the topic: taken to exist");
                Ok(())
            }
            Err(e) => Err(BusError::Transport {
                context: format!("creating topic {path}"),
                message: explain(&e, &self.config, Operation::CreateTopic { topic: &path }),
            }),
        }
    }

    /// Creates the subscription unless it exists; one that exists is
    /// checked to be of the topic.
    async fn ensure_subscription(&self, topic: Topic, path: &str) -> Result<(), BusError> {
        let topic_path = self.topic_path(topic);
        let context = || format!("creating subscription {path} of topic {topic_path}");
        let operation = Operation::CreateSubscription {
            topic: &topic_path,
            subscription: path,
        };
        let created = self.create_subscription(&topic_path, path).await;
        let error = match created {
            Ok(()) => {
                tracing::info!(subscription = %path, topic = %topic_path, "Pub/Sub subscription created");
                return Ok(());
            }
            Err(e) => e,
        };
        match code(&error) {
            Some(Code::AlreadyExists) => {}
            // Credentials that may only consume can still read it.
            Some(Code::PermissionDenied) => {}
            _ => {
                return Err(BusError::Transport {
                    context: context(),
                    message: explain(&error, &self.config, operation),
                });
            }
        }
        let existing = self
            .subscriptions
            .get_subscription()
            .set_subscription(path)
            .send()
            .await;
        let existing = match existing {
            Ok(s) => s,
            Err(e) if code(&error) == Some(Code::AlreadyExists) => {
                // It exists: whether it is the topic's, these credentials
                // may not tell (pubsub.subscriptions.get).
                tracing::debug!(subscription = %path, error = %e, "cannot read the existing subscription");
                return Ok(());
            }
            Err(_) => {
                return Err(BusError::Transport {
                    context: context(),
                    message: explain(&error, &self.config, operation),
                });
            }
        };
        if existing.topic == topic_path {
            return Ok(());
        }
        if existing.topic == "_deleted-topic_" {
            // The topic was deleted and made again: the subscription is of
            // the old one and will never get a message. It is ours: again.
            tracing::warn!(subscription = %path, "Pub/Sub subscription of a deleted topic: making it again");
            let deleted = self
                .subscriptions
                .delete_subscription()
                .set_subscription(path)
                .send()
                .await;
            return match deleted.map(|_| ()) {
                Ok(()) => match self.create_subscription(&topic_path, path).await {
                    Ok(()) => Ok(()),
                    Err(e) if code(&e) == Some(Code::AlreadyExists) => Ok(()),
                    Err(e) => Err(BusError::Transport {
                        context: context(),
                        message: explain(&e, &self.config, operation),
                    }),
                },
                Err(e) => Err(BusError::Transport {
                    context: format!("deleting subscription {path} of a deleted topic"),
                    message: explain(&e, &self.config, operation),
                }),
            };
        }
        Err(BusError::Transport {
            context: context(),
            message: format!(
                "the subscription exists, of topic {}: delete it (gcloud pubsub subscriptions \
                 delete {path}) or use another prefix",
                existing.topic
            ),
        })
    }

    async fn create_subscription(&self, topic_path: &str, path: &str) -> Result<(), GaxError> {
        let subscription = model::Subscription::new()
            .set_name(path)
            .set_topic(topic_path)
            .set_ack_deadline_seconds(ACK_DEADLINE.as_secs() as i32)
            .set_expiration_policy(ExpirationPolicy::new().set_ttl(duration(EXPIRE_AFTER)))
            .set_message_retention_duration(duration(RETAIN_FOR))
            .set_retry_policy(
                RetryPolicy::new()
                    .set_minimum_backoff(duration(REDELIVERY_MIN))
                    .set_maximum_backoff(duration(REDELIVERY_MAX)),
            )
            .set_labels(LABELS);
        self.subscriptions
            .create_subscription()
            .with_request(subscription)
            .send()
            .await
            .map(|_| ())
    }
}

/// Streams a subscription's messages into the consumer's channel until the
/// consumer drops its end. A stream that fails (the client already retries
/// what is transient) is logged and opened again, the subscription made
/// again if it expired meanwhile (one of the bus's topics; one that is not
/// ccd's is left as it is).
async fn consume(
    inner: Arc<Inner>,
    topic: Option<Topic>,
    path: String,
    tx: UnboundedSender<Delivery>,
) {
    let mut backoff = REOPEN_MIN;
    loop {
        let mut stream = inner
            .subscriber
            .subscribe(&path)
            .set_max_lease_extension(ACK_DEADLINE)
            // A consumer gone: what it held goes to others at once.
            .set_shutdown_behavior(ShutdownBehavior::NackImmediately)
            .build();
        let failure = loop {
            let next = tokio::select! {
                // The consumer is gone. Dropping the stream closes it at once
                // (so that nothing more is sent to it) and has the client
                // send the acknowledgements it holds and refuse the rest.
                _ = tx.closed() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok((message, handler))) => {
                    backoff = REOPEN_MIN;
                    let payload = Payload {
                        data: message.data.to_vec(),
                        attributes: message.attributes.into_iter().collect(),
                    };
                    let acker = PubSubAcker {
                        handler: Mutex::new(Some(handler)),
                    };
                    // A consumer gone meanwhile: the delivery comes back
                    // refused, and the next turn sees the channel closed.
                    let _ = tx.send(Delivery::new(payload, Box::new(acker)));
                }
                Some(Err(e)) => {
                    let operation = match topic {
                        Some(_) => Operation::Consume {
                            subscription: &path,
                        },
                        None => Operation::ConsumeGiven {
                            subscription: &path,
                        },
                    };
                    break explain(&e, &inner.config, operation);
                }
                None => break "the stream ended".to_owned(),
            }
        };
        tracing::error!(
            subscription = %path,
            error = %failure,
            retry_in_ms = backoff.as_millis() as u64,
            "consuming Pub/Sub subscription"
        );
        drop(stream);
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(REOPEN_MAX);
        let Some(topic) = topic else {
            continue;
        };
        let ready = async {
            inner.ensure_topic(topic).await?;
            inner.ensure_subscription(topic, &path).await
        };
        if let Err(e) = ready.await {
            tracing::warn!(subscription = %path, error = %e, "making Pub/Sub subscription again");
        }
    }
}

/// Answers one Pub/Sub delivery through the client's lease management.
#[derive(Debug)]
struct PubSubAcker {
    handler: Mutex<Option<Handler>>,
}

impl Acker for PubSubAcker {
    fn ack(&self) {
        if let Some(h) = lock(&self.handler).take() {
            h.ack();
        }
    }

    fn nack(&self) {
        if let Some(h) = lock(&self.handler).take() {
            h.nack();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn duration(d: Duration) -> google_cloud_wkt::Duration {
    google_cloud_wkt::Duration::clamp(d.as_secs() as i64, d.subsec_nanos() as i32)
}

/// The error's code, from gRPC's status or the HTTP status of REST calls.
fn code(error: &GaxError) -> Option<Code> {
    if let Some(status) = error.status() {
        return Some(status.code);
    }
    match error.http_status_code()? {
        400 => Some(Code::InvalidArgument),
        401 => Some(Code::Unauthenticated),
        403 => Some(Code::PermissionDenied),
        404 => Some(Code::NotFound),
        409 => Some(Code::AlreadyExists),
        429 => Some(Code::ResourceExhausted),
        503 => Some(Code::Unavailable),
        _ => None,
    }
}

/// What the bus was doing when a call failed, to say what is missing.
#[derive(Debug, Clone, Copy)]
enum Operation<'a> {
    CreateTopic {
        topic: &'a str,
    },
    CreateSubscription {
        topic: &'a str,
        subscription: &'a str,
    },
    Publish {
        topic: &'a str,
    },
    Consume {
        subscription: &'a str,
    },
    /// A subscription ccd consumes but did not make.
    ConsumeGiven {
        subscription: &'a str,
    },
}

/// The error, and what to do about it.
fn explain(error: &GaxError, config: &PubSubConfig, operation: Operation<'_>) -> String {
    let project = &config.project;
    let advice = match code(error) {
        Some(Code::PermissionDenied) => match operation {
            Operation::CreateTopic { topic } => format!(
                "the credentials may not create topics in project {project}: grant them \
                 roles/pubsub.editor, or create {topic} beforehand (publishing then needs only \
                 roles/pubsub.publisher on it); is the Pub/Sub API enabled (gcloud services \
                 enable pubsub.googleapis.com --project {project})?"
            ),
            Operation::CreateSubscription {
                topic,
                subscription,
            } => format!(
                "the credentials may not create subscriptions in project {project}: grant them \
                 roles/pubsub.editor (pubsub.subscriptions.create, and \
                 pubsub.topics.attachSubscription on {topic}), or create {subscription} on \
                 {topic} beforehand (consuming then needs only roles/pubsub.subscriber on it); \
                 is the Pub/Sub API enabled (gcloud services enable pubsub.googleapis.com \
                 --project {project})?"
            ),
            Operation::Publish { topic } => format!(
                "the credentials may not publish: grant them roles/pubsub.publisher on {topic}"
            ),
            Operation::Consume { subscription } | Operation::ConsumeGiven { subscription } => {
                format!(
                    "the credentials may not consume: grant them roles/pubsub.subscriber on \
                     {subscription}"
                )
            }
        },
        Some(Code::Unauthenticated) => "the credentials were refused: check Application Default \
             Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default \
             login`, or the VM's service account and its scopes)"
            .to_owned(),
        Some(Code::NotFound) => match operation {
            Operation::CreateTopic { .. } => {
                format!("project {project} does not exist, or Pub/Sub is not enabled in it")
            }
            Operation::CreateSubscription { topic, .. } | Operation::Publish { topic } => format!(
                "topic {topic} does not exist and these credentials could not create it: \
                 create it, or grant roles/pubsub.editor"
            ),
            Operation::Consume { subscription } => format!(
                "subscription {subscription} does not exist (deleted, or expired after a day \
                 without a consumer): it is made again"
            ),
            Operation::ConsumeGiven { subscription } => format!(
                "subscription {subscription} does not exist: create it on the topic the bucket's \
                 notifications go to (gcloud pubsub subscriptions create SUBSCRIPTION --topic \
                 TOPIC; see deploy/README.md), or fix the name"
            ),
        },
        Some(Code::InvalidArgument) => match operation {
            Operation::CreateTopic { .. } | Operation::CreateSubscription { .. } => format!(
                "topic and subscription IDs are 3 to 255 letters, digits and - _ . ~ + %, \
                 starting with a letter (the prefix {:?} included), and project IDs are \
                 lowercase letters, digits and hyphens",
                config.prefix
            ),
            Operation::Publish { .. }
            | Operation::Consume { .. }
            | Operation::ConsumeGiven { .. } => return error.to_string(),
        },
        _ if error.is_authentication() => "no usable credentials: set up Application Default \
             Credentials (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default \
             login`, or a VM's service account), or set PUBSUB_EMULATOR_HOST for the emulator"
            .to_owned(),
        _ if error.is_connect() || error.is_io() || error.is_transport() || error.is_timeout() => {
            if config.is_emulator() {
                format!(
                    "is the emulator running at {}? (tests/scripts/pubsub-emulator.sh start)",
                    config.endpoint_or_default()
                )
            } else {
                format!(
                    "cannot reach {}: check the network (a VM without an external address needs \
                     Private Google Access)",
                    config.endpoint_or_default()
                )
            }
        }
        _ => return error.to_string(),
    };
    format!("{error}: {advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emulator_host_is_an_http_endpoint() {
        assert_eq!(
            emulator_endpoint("localhost:8085").as_deref(),
            Some("http://localhost:8085")
        );
        assert_eq!(
            emulator_endpoint(" [::1]:8085/ ").as_deref(),
            Some("http://[::1]:8085")
        );
        assert_eq!(
            emulator_endpoint("http://127.0.0.1:8085").as_deref(),
            Some("http://127.0.0.1:8085")
        );
        assert_eq!(emulator_endpoint(""), None);
        assert_eq!(emulator_endpoint("  "), None);
    }

    #[test]
    fn from_env_points_at_the_emulator_or_at_google() {
        let emulator = PubSubConfig::with_emulator_host("p", Some("127.0.0.1:8681"));
        assert_eq!(emulator.endpoint.as_deref(), Some("http://127.0.0.1:8681"));
        assert!(emulator.is_emulator());
        assert_eq!(emulator.prefix, "ccd-");
        let google = PubSubConfig::with_emulator_host("p", None);
        assert_eq!(google.endpoint, None);
        assert!(!google.is_emulator());
        assert_eq!(
            google.endpoint_or_default(),
            "https://pubsub.googleapis.com"
        );
    }

    fn denied() -> GaxError {
        GaxError::service(
            google_cloud_gax::error::rpc::Status::default()
                .set_code(Code::PermissionDenied)
                .set_message("User not authorized to perform this action."),
        )
    }

    #[test]
    fn permission_denied_names_the_missing_role() {
        let config = PubSubConfig::new("proj");
        let topic = "projects/proj/topics/ccd-agent-reports";
        let subscription = "projects/proj/subscriptions/ccd-agent-reports-health";
        let cases = [
            (
                Operation::Publish { topic },
                "roles/pubsub.publisher on projects/proj/topics/ccd-agent-reports",
            ),
            (
                Operation::Consume { subscription },
                "roles/pubsub.subscriber on projects/proj/subscriptions/ccd-agent-reports-health",
            ),
            (Operation::CreateTopic { topic }, "roles/pubsub.editor"),
            (
                Operation::CreateSubscription {
                    topic,
                    subscription,
                },
                "roles/pubsub.editor",
            ),
        ];
        for (operation, role) in cases {
            let message = explain(&denied(), &config, operation);
            assert!(message.contains(role), "{operation:?}: {message}");
            assert!(message.contains("not authorized"), "{message}");
        }
    }

    #[test]
    fn an_unreachable_endpoint_says_where_it_looked() {
        let refused = || {
            GaxError::connect(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        };
        let topic = "projects/p/topics/ccd-agent-alerts";
        let emulator = PubSubConfig::with_emulator_host("p", Some("127.0.0.1:9"));
        let message = explain(&refused(), &emulator, Operation::Publish { topic });
        assert!(
            message.contains("is the emulator running at http://127.0.0.1:9?"),
            "{message}"
        );
        let google = PubSubConfig::new("p");
        let message = explain(&refused(), &google, Operation::Publish { topic });
        assert!(
            message.contains("cannot reach https://pubsub.googleapis.com"),
            "{message}"
        );
    }
}
