use std::io;
use std::path::PathBuf;

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
    /// A file or folder ccd keeps could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `ccd logs` for an app with nothing shipped.
    #[error(
        "no logs were shipped for app {app} (looked in {}): its spec needs \
         `services: {{logs: {{retention: 7d}}}}`, or its instances have written nothing yet",
        dir.display()
    )]
    NoLogs { app: String, dir: PathBuf },
}
