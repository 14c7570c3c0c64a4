use std::io;

/// Why a service could not be provisioned or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The spec asks for something the rules refuse: the field and the fix.
    #[error("{0}")]
    Invalid(String),
    /// The provider could not be reached.
    #[error("cannot reach {service} at {address}: {source}")]
    Unreachable {
        service: &'static str,
        address: String,
        #[source]
        source: io::Error,
    },
    /// The provider answered with an error.
    #[error("{service} refused {what}: {message}")]
    Refused {
        service: &'static str,
        what: String,
        message: String,
    },
    /// The provider's answer was not what its protocol allows.
    #[error("{service} answered something unexpected to {what}: {detail}")]
    Protocol {
        service: &'static str,
        what: String,
        detail: String,
    },
}
