//! The request body sent to a backend: read whole when it is small, so that a failed try can
//! send it again; relayed as it comes when it is large, and then sent once only.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

/// Largest request body read whole before the first try. A larger body is streamed to the
/// backend as it arrives and its request is not retried once sent.
pub(crate) const RETRY_BUFFER_CAP: usize = 64 * 1024;

/// A request body on its way to a backend.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// All of it, in memory: can be sent any number of times.
    Whole {
        data: Option<Bytes>,
        trailers: Option<HeaderMap>,
    },
    /// What was read of it, then the rest from the client: can be sent once.
    Streamed { head: Option<Bytes>, rest: Incoming },
}

impl RequestBody {
    /// Relays `body` as it comes, without reading any of it first.
    pub(crate) fn streamed(body: Incoming) -> Self {
        Self::Streamed {
            head: None,
            rest: body,
        }
    }

    /// Reads `body` whole if it ends within `cap` bytes; otherwise keeps what was read and
    /// relays the rest.
    pub(crate) async fn buffer(mut body: Incoming, cap: usize) -> Result<Self, hyper::Error> {
        if body.is_end_stream() {
            return Ok(Self::empty());
        }
        // A declared length over the cap: no point reading any of it now.
        if body.size_hint().lower() > cap as u64 {
            return Ok(Self::streamed(body));
        }
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut read = 0;
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            match frame?.into_data() {
                Ok(data) => {
                    read += data.len();
                    chunks.push(data);
                    if read > cap {
                        return Ok(Self::Streamed {
                            head: Some(concat(chunks)),
                            rest: body,
                        });
                    }
                }
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        let data = (read > 0).then(|| concat(chunks));
        Ok(Self::Whole { data, trailers })
    }

    fn empty() -> Self {
        Self::Whole {
            data: None,
            trailers: None,
        }
    }

    /// A copy to send again, if the body can be sent again.
    pub(crate) fn replay(&self) -> Option<Self> {
        match self {
            Self::Whole { data, trailers } => Some(Self::Whole {
                data: data.clone(),
                trailers: trailers.clone(),
            }),
            Self::Streamed { .. } => None,
        }
    }
}

/// The chunks as one buffer, copied only when there are several.
fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in chunks {
        all.extend_from_slice(&chunk);
    }
    all.freeze()
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Whole { data, trailers } => Poll::Ready(match data.take() {
                Some(data) => Some(Ok(Frame::data(data))),
                None => trailers.take().map(|t| Ok(Frame::trailers(t))),
            }),
            Self::Streamed { head, rest } => match head.take() {
                Some(head) => Poll::Ready(Some(Ok(Frame::data(head)))),
                None => Pin::new(rest).poll_frame(cx),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Whole { data, trailers } => data.is_none() && trailers.is_none(),
            Self::Streamed { head, rest } => head.is_none() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let head = |head: &Option<Bytes>| head.as_ref().map_or(0, |h| h.len() as u64);
        match self {
            Self::Whole { data, .. } => SizeHint::with_exact(head(data)),
            Self::Streamed { head: first, rest } => {
                let rest = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + head(first));
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + head(first));
                }
                hint
            }
        }
    }
}
