//! A client of Redis's protocol (RESP2), as small as ccd needs: one
//! connection, one command at a time, every reply bounded. Provisioning
//! sends a handful of commands, so this beats a client library's surface.
//!
//! An error reply is a [`Reply::Error`], not an `Err`: a refusal (`NOPERM`)
//! is an answer a caller checks. `Err` is for the connection and the
//! protocol.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::ServiceError;

/// The longest a command may take, reply included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest bulk string read; ccd's own commands get short answers.
const MAX_BULK: usize = 16 * 1024 * 1024;
const MAX_ARRAY: usize = 1_000_000;
const MAX_DEPTH: usize = 8;
const MAX_LINE: usize = 64 * 1024;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    /// `-ERR ...`, `-NOPERM ...`: the whole line.
    Error(String),
    Integer(i64),
    /// `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `None` for the null array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// An error reply's first word (`NOPERM`, `WRONGPASS`, `ERR`).
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Reply::Error(line) => line.split(' ').next(),
            _ => None,
        }
    }

    /// `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Simple(s) if s == "OK")
    }
}

/// One connection to a Redis server.
#[derive(Debug)]
pub struct Connection {
    stream: BufReader<TcpStream>,
    address: String,
}

impl Connection {
    /// Connects to `host:port`.
    pub async fn connect(address: &str) -> Result<Self, ServiceError> {
        let unreachable = |source| ServiceError::Unreachable {
            service: "redis",
            address: address.to_owned(),
            source,
        };
        let stream = tokio::time::timeout(CALL_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| unreachable(std::io::ErrorKind::TimedOut.into()))?
            .map_err(unreachable)?;
        Ok(Connection {
            stream: BufReader::new(stream),
            address: address.to_owned(),
        })
    }

    /// `AUTH user password`; a refusal is an error naming the user.
    pub async fn auth(&mut self, user: &str, password: &str) -> Result<(), ServiceError> {
        match self.call(&["AUTH", user, password]).await? {
            r if r.is_ok() => Ok(()),
            Reply::Error(message) => Err(ServiceError::Refused {
                service: "redis",
                what: format!("the password of user {user}"),
                message,
            }),
            other => Err(self.protocol("AUTH", format!("{other:?}"))),
        }
    }

    /// Sends one command and reads its reply. The first argument names the
    /// command in errors; no argument (a password) is ever put in one.
    pub async fn call(&mut self, args: &[&str]) -> Result<Reply, ServiceError> {
        let what = args.first().copied().unwrap_or_default().to_owned();
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        let exchange = async {
            self.stream.get_mut().write_all(&request).await?;
            read_reply(&mut self.stream, 0).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(Failure::Io(source))) => Err(ServiceError::Unreachable {
                service: "redis",
                address: self.address.clone(),
                source,
            }),
            Ok(Err(Failure::Protocol(detail))) => Err(self.protocol(&what, detail)),
            Err(_) => Err(self.protocol(&what, format!("no reply within {CALL_TIMEOUT:?}"))),
        }
    }

    fn protocol(&self, what: &str, detail: String) -> ServiceError {
        ServiceError::Protocol {
            service: "redis",
            what: what.to_owned(),
            detail,
        }
    }
}

enum Failure {
    Io(std::io::Error),
    Protocol(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Io(e)
    }
}

type Reading<'a> = Pin<Box<dyn Future<Output = Result<Reply, Failure>> + Send + 'a>>;

fn read_reply(stream: &mut BufReader<TcpStream>, depth: usize) -> Reading<'_> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(Failure::Protocol("replies nested too deep".into()));
        }
        let line = read_line(stream).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| Failure::Protocol(format!("not a number: {rest:?}")))
        };
        match kind {
            "+" => Ok(Reply::Simple(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => Ok(Reply::Integer(number()?)),
            "$" => {
                let Ok(len) = usize::try_from(number()?) else {
                    return Ok(Reply::Bulk(None));
                };
                if len > MAX_BULK {
                    return Err(Failure::Protocol(format!("a bulk string of {len} bytes")));
                }
                let mut bytes = vec![0; len + 2];
                stream.read_exact(&mut bytes).await?;
                if !bytes.ends_with(b"\r\n") {
                    return Err(Failure::Protocol("a bulk string without its CRLF".into()));
                }
                bytes.truncate(len);
                Ok(Reply::Bulk(Some(bytes)))
            }
            "*" => {
                let Ok(len) = usize::try_from(number()?) else {
                    return Ok(Reply::Array(None));
                };
                if len > MAX_ARRAY {
                    return Err(Failure::Protocol(format!("an array of {len} replies")));
                }
                let mut items = Vec::with_capacity(len.min(1024));
                for _ in 0..len {
                    items.push(read_reply(stream, depth + 1).await?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(Failure::Protocol(format!("a reply starting {kind:?}"))),
        }
    })
}

/// One CRLF-terminated line, without it, at most `MAX_LINE` bytes.
async fn read_line(stream: &mut BufReader<TcpStream>) -> Result<String, Failure> {
    let mut line = Vec::new();
    let read = (&mut *stream)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(Failure::Protocol("a line without CRLF, or too long".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| Failure::Protocol("a line that is not UTF-8".into()))
}
