//! Sending one request to a backend of a service: selection, pooled connections, and retries
//! on other backends as the route's policy allows.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::outlier::Outcome;
use super::{Backend, BackendService};
use crate::request_body::RequestBody;
use crate::retry::{Failure, RetryPolicy};
use crate::upstream::{ConnectError, UpstreamSender};

/// How long opening a connection to a backend may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend's response headers, and what to do once its body has been relayed.
#[derive(Debug)]
pub(crate) struct Dispatched {
    pub(crate) response: Response<Incoming>,
    pub(crate) exchange: Exchange,
}

/// An exchange in progress with a backend: keeps the request counted as outstanding and
/// returns the connection to its pool once the response has been read to its end.
#[derive(Debug)]
pub(crate) struct Exchange {
    sender: UpstreamSender,
    /// Epoch of the pool the connection belongs to.
    epoch: u64,
    in_flight: super::backend::InFlight,
}

impl Exchange {
    /// The response body was read to its end: the connection can carry another request.
    pub(crate) fn complete(self) {
        self.in_flight
            .backend()
            .connection_done(self.sender, self.epoch);
    }

    pub(crate) fn backend(&self) -> &Backend {
        self.in_flight.backend()
    }
}

/// Why no response came back from any backend.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DispatchError {
    #[error("no healthy backend")]
    NoHealthyBackend,
    #[error("cannot connect to backend {backend}: {source}")]
    Connect {
        backend: String,
        source: ConnectError,
    },
    #[error("backend {backend} failed: {source}")]
    Upstream {
        backend: String,
        source: hyper::Error,
    },
    #[error("backend {backend} did not respond within {timeout:?}")]
    Timeout { backend: String, timeout: Duration },
}

/// Why one try on one backend failed.
enum TryError {
    /// The request never left: it may go to another backend as it is.
    NotSent {
        request: Box<Request<RequestBody>>,
        source: ConnectError,
    },
    /// It was sent and no response came.
    Failed(DispatchError),
}

impl BackendService {
    /// Sends `request` to a serving backend, and again to others as `policy` allows: each try
    /// bounded by its per-try timeout, all of them by the service's timeout. Without a policy,
    /// a request that could not be sent is tried once more on another backend.
    pub(crate) async fn dispatch(
        &self,
        mut request: Request<RequestBody>,
        policy: Option<&RetryPolicy>,
    ) -> Result<Dispatched, DispatchError> {
        let timeout = self.inner.settings.load().timeout;
        let deadline = Instant::now() + timeout;
        let mut retries = policy.map_or(1, |p| p.num_retries);
        // Filled only when a retry follows: the common request allocates nothing here.
        let mut tried: Vec<Arc<Backend>> = Vec::new();
        let mut last: Option<DispatchError> = None;
        // A backend whose connection failed is counted only if no other try follows.
        let mut unsent_on: Option<Arc<Backend>> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let picked = if remaining.is_zero() {
                None
            } else {
                self.pick(&tried)
            };
            let Some(backend) = picked else {
                if let Some(backend) = unsent_on {
                    backend.count_5xx();
                }
                return Err(last.unwrap_or(DispatchError::NoHealthyBackend));
            };
            unsent_on = None;
            let per_try = policy
                .and_then(|p| p.per_try_timeout)
                .map_or(remaining, |t| t.min(remaining));
            // A copy for the next try, made only when one may follow.
            let replay = (retries > 0 && policy.is_some())
                .then(|| replay(&request))
                .flatten();
            let failure = match self.try_on(Arc::clone(&backend), request, per_try).await {
                Ok(dispatched) => {
                    let status = dispatched.response.status();
                    self.record(&backend, Outcome::of_status(status));
                    let retried = policy.is_some_and(|p| p.retries(Failure::Status(status)));
                    match replay {
                        // Only when another backend can answer: this response is kept otherwise.
                        Some(next) if retried && self.has_untried(&tried, &backend) => {
                            // Discarded unread: its connection closes rather than going back.
                            backend.count_5xx();
                            drop(dispatched);
                            request = next;
                            Failure::Status(status)
                        }
                        _ => return Ok(dispatched),
                    }
                }
                Err(TryError::NotSent {
                    request: unsent,
                    source,
                }) => {
                    self.record(&backend, Outcome::GatewayFailure);
                    let error = DispatchError::Connect {
                        backend: backend.id.clone(),
                        source,
                    };
                    if retries == 0 || policy.is_some_and(|p| !p.retries(Failure::Connect)) {
                        backend.count_5xx();
                        return Err(error);
                    }
                    request = *unsent;
                    unsent_on = Some(Arc::clone(&backend));
                    last = Some(error);
                    Failure::Connect
                }
                Err(TryError::Failed(error)) => {
                    self.record(&backend, Outcome::GatewayFailure);
                    let retried = policy.is_some_and(|p| p.retries(Failure::NoResponse));
                    match replay {
                        Some(next) if retried => {
                            request = next;
                            last = Some(error);
                            Failure::NoResponse
                        }
                        _ => return Err(error),
                    }
                }
            };
            retries -= 1;
            tried.push(Arc::clone(&backend));
            tracing::warn!(
                service = %self.name(),
                backend = %backend.id,
                ?failure,
                retries_left = retries,
                "try failed; retrying on another backend"
            );
        }
    }

    /// Whether a serving backend is left that is neither `current` nor tried before.
    fn has_untried(&self, tried: &[Arc<Backend>], current: &Arc<Backend>) -> bool {
        self.inner.backends.load().iter().any(|b| {
            b.is_serving() && !Arc::ptr_eq(b, current) && !tried.iter().any(|t| Arc::ptr_eq(b, t))
        })
    }

    /// One try on one backend, bounded by `timeout`.
    async fn try_on(
        &self,
        backend: Arc<Backend>,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Dispatched, TryError> {
        let in_flight = backend.start_request();
        let backend = in_flight.backend();
        match tokio::time::timeout(timeout, self.send(backend, request)).await {
            Ok(Ok((response, sender, epoch))) => Ok(Dispatched {
                response,
                exchange: Exchange {
                    sender,
                    epoch,
                    in_flight,
                },
            }),
            Ok(Err(SendError::NotSent { request, source })) => {
                Err(TryError::NotSent { request, source })
            }
            Ok(Err(SendError::Failed(error))) => {
                backend.count_5xx();
                Err(TryError::Failed(error))
            }
            Err(_elapsed) => {
                // Counted here: the send was cut short before it could count the request.
                backend.count_request();
                backend.count_5xx();
                Err(TryError::Failed(DispatchError::Timeout {
                    backend: backend.id.clone(),
                    timeout,
                }))
            }
        }
    }

    async fn send(
        &self,
        backend: &Backend,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, UpstreamSender, u64), SendError> {
        // Pooled connections first; one the backend closed meanwhile hands the request back.
        loop {
            let (idle, epoch) = backend.idle_connection();
            let Some(mut sender) = idle else {
                break;
            };
            if sender.ready().await.is_err() {
                continue;
            }
            match self.send_on(backend, &mut sender, request).await {
                Ok(response) => return Ok((response, sender, epoch)),
                Err(SendOutcome::Unsent(returned)) => request = *returned,
                Err(SendOutcome::Failed(error)) => return Err(SendError::Failed(error)),
            }
        }

        let network = &self.inner.network;
        if !network
            .policy
            .allows(network.proxy_source, &backend.id, backend.addr)
        {
            backend.count_denied();
            tracing::warn!(
                source = %network.proxy_source,
                backend = %backend.id,
                address = %backend.addr,
                "connection policy denied proxy connection"
            );
            return Err(SendError::NotSent {
                request: Box::new(request),
                source: ConnectError::Denied,
            });
        }
        let pool = backend.upstream();
        let mut sender = match pool.connect(backend.addr, CONNECT_TIMEOUT).await {
            Ok(sender) => sender,
            Err(source) => {
                return Err(SendError::NotSent {
                    request: Box::new(request),
                    source,
                });
            }
        };
        match self.send_on(backend, &mut sender, request).await {
            Ok(response) => Ok((response, sender, pool.epoch())),
            Err(SendOutcome::Unsent(request)) => Err(SendError::NotSent {
                request,
                source: ConnectError::Closed,
            }),
            Err(SendOutcome::Failed(error)) => Err(SendError::Failed(error)),
        }
    }

    async fn send_on(
        &self,
        backend: &Backend,
        sender: &mut UpstreamSender,
        request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, SendOutcome> {
        match sender.try_send_request(request).await {
            Ok(response) => {
                backend.count_request();
                Ok(response)
            }
            Err(mut error) => match error.take_message() {
                Some(request) => Err(SendOutcome::Unsent(Box::new(request))),
                None => {
                    backend.count_request();
                    Err(SendOutcome::Failed(DispatchError::Upstream {
                        backend: backend.id.clone(),
                        source: error.into_error(),
                    }))
                }
            },
        }
    }
}

/// Why sending on one backend failed.
enum SendError {
    /// The request never left: it may go to another backend.
    NotSent {
        // Boxed: this is the rare path, and keeps the result small on the common one.
        request: Box<Request<RequestBody>>,
        source: ConnectError,
    },
    Failed(DispatchError),
}

enum SendOutcome {
    Unsent(Box<Request<RequestBody>>),
    Failed(DispatchError),
}

/// A copy of `request` to send again, if its body can be sent again.
fn replay(request: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    let mut copy = Request::new(request.body().replay()?);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}
