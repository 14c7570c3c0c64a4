//! HTTP/1.1 written by hand on one kept-alive connection: any method, path,
//! header or body goes out byte for byte (a client library would refuse or
//! fix some), and each answer is read back whole, so the next request goes
//! on the same connection and a dropped connection shows.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// How long one answer may take before the test calls the server hung.
const HUNG: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Conn {
    stream: BufReader<TcpStream>,
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The server said it closes the connection after this answer.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// One request's bytes. `headers` go out as given (give `Host`); a
/// `Content-Length` is added when there is a body.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        Ok(Conn {
            stream: BufReader::new(TcpStream::connect(addr).await?),
        })
    }

    /// Sends `bytes` and reads the answer (`head`: the request was a HEAD,
    /// whose answer has no body whatever its length says).
    pub async fn send(&mut self, bytes: &[u8], head: bool) -> std::io::Result<Answer> {
        match tokio::time::timeout(HUNG, self.exchange(bytes, head)).await {
            Ok(answer) => answer,
            Err(_) => Err(std::io::Error::other("no answer: the server hung")),
        }
    }

    async fn exchange(&mut self, bytes: &[u8], head: bool) -> std::io::Result<Answer> {
        self.stream.get_mut().write_all(bytes).await?;
        let status_line = self.line().await?;
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("not a status line: {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("not a header: {line:?}")))?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(answer);
        }
        if answer
            .header("transfer-encoding")
            .is_some_and(|t| t.contains("chunked"))
        {
            answer.body = self.chunks().await?;
        } else if let Some(length) = answer.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| invalid(format!("bad length {length:?}")))?;
            answer.body = vec![0; length];
            self.stream.read_exact(&mut answer.body).await?;
        } else {
            return Err(invalid(
                "an answer without a length: the connection cannot be kept".to_owned(),
            ));
        }
        Ok(answer)
    }

    async fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    async fn chunks(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size = self.line().await?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| invalid(format!("bad chunk size {size:?}")))?;
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).await?;
            if size == 0 {
                return Ok(body);
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
