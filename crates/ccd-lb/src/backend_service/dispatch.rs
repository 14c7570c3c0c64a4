//! Sending one request to a backend of a service: selection, pooled connections, one retry.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;

use super::{Backend, BackendService};
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

/// Why one attempt on one backend failed.
enum AttemptError {
    /// The request never left: it may go to another backend.
    NotSent {
        request: Box<Request<Incoming>>,
        source: ConnectError,
        backend: Arc<Backend>,
    },
    Failed(DispatchError),
}

impl BackendService {
    /// Sends `request` to a serving backend. If connecting fails before the request was sent,
    /// tries once more on another backend.
    pub(crate) async fn dispatch(
        &self,
        request: Request<Incoming>,
    ) -> Result<Dispatched, DispatchError> {
        let first = self.pick(None).ok_or(DispatchError::NoHealthyBackend)?;
        let (request, first_error, first) = match self.attempt(first, request).await {
            Ok(dispatched) => return Ok(dispatched),
            Err(AttemptError::Failed(error)) => return Err(error),
            Err(AttemptError::NotSent {
                request,
                source,
                backend,
            }) => (request, source, backend),
        };
        tracing::warn!(
            service = %self.name(),
            backend = %first.id,
            error = %first_error,
            "cannot reach backend; retrying on another"
        );
        let Some(second) = self.pick(Some(&first)) else {
            first.count_5xx();
            return Err(DispatchError::Connect {
                backend: first.id.clone(),
                source: first_error,
            });
        };
        match self.attempt(second, *request).await {
            Ok(dispatched) => Ok(dispatched),
            Err(AttemptError::Failed(error)) => Err(error),
            Err(AttemptError::NotSent {
                source, backend, ..
            }) => {
                backend.count_5xx();
                Err(DispatchError::Connect {
                    backend: backend.id.clone(),
                    source,
                })
            }
        }
    }

    /// One attempt on one backend, bounded by the service's timeout.
    async fn attempt(
        &self,
        backend: Arc<Backend>,
        request: Request<Incoming>,
    ) -> Result<Dispatched, AttemptError> {
        let timeout = self.inner.settings.load().timeout;
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
            Ok(Err(SendError::NotSent { request, source })) => Err(AttemptError::NotSent {
                request,
                source,
                backend: Arc::clone(backend),
            }),
            Ok(Err(SendError::Failed(error))) => {
                backend.count_5xx();
                Err(AttemptError::Failed(error))
            }
            Err(_elapsed) => {
                backend.count_5xx();
                Err(AttemptError::Failed(DispatchError::Timeout {
                    backend: backend.id.clone(),
                    timeout,
                }))
            }
        }
    }

    async fn send(
        &self,
        backend: &Backend,
        mut request: Request<Incoming>,
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
        request: Request<Incoming>,
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
        request: Box<Request<Incoming>>,
        source: ConnectError,
    },
    Failed(DispatchError),
}

enum SendOutcome {
    Unsent(Box<Request<Incoming>>),
    Failed(DispatchError),
}
