//! An adapter that lets object_store's GCS client upload to fake-gcs-server.
//!
//! object_store uploads with the XML API (`PUT /<bucket>/<object>`, precondition in the
//! `x-goog-if-generation-match` header). fake-gcs-server 1.54 routes that PUT to its JSON
//! insert handler, which answers "400 invalid uploadType"; its JSON multipart upload, on the
//! other hand, works and honours `ifGenerationMatch` (its plain media upload ignores it).
//! So this HTTP layer, used only when a config asks for it, turns each such PUT into
//! `POST /upload/storage/v1/b/<bucket>/o?uploadType=multipart[&ifGenerationMatch=N]` and turns
//! the JSON answer back into the headers object_store reads (`ETag`, `x-goog-generation`).
//! Every other request (GET, list, DELETE) goes to the emulator unchanged.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, HeaderValue};
use http::{Method, Request};
use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    HttpResponse, HttpResponseBody, HttpService, ReqwestConnector,
};
use percent_encoding::percent_decode_str;

/// XML API header carrying a generation precondition.
const IF_GENERATION_MATCH: &str = "x-goog-if-generation-match";
/// XML API header that turns a PUT into a server-side copy.
const COPY_SOURCE: &str = "x-goog-copy-source";

#[derive(Debug)]
pub(crate) struct FakeGcsConnector {
    endpoint: String,
    bucket: String,
}

impl FakeGcsConnector {
    pub(crate) fn new(endpoint: String, bucket: String) -> Self {
        Self { endpoint, bucket }
    }
}

impl HttpConnector for FakeGcsConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(FakeGcsUploads {
            inner,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
        }))
    }
}

#[derive(Debug)]
struct FakeGcsUploads {
    inner: HttpClient,
    endpoint: String,
    bucket: String,
}

#[async_trait::async_trait]
impl HttpService for FakeGcsUploads {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        // Plain object uploads only: multipart parts carry a query, copies a source header.
        let upload = request.method() == Method::PUT
            && request.uri().query().is_none()
            && !request.headers().contains_key(COPY_SOURCE);
        let object = upload
            .then(|| self.object_of(request.uri().path()))
            .flatten();
        match object {
            Some(object) => self.upload(request, object).await,
            None => self.inner.execute(request).await,
        }
    }
}

impl FakeGcsUploads {
    /// The object name of an XML API object path, `/<bucket>/<object>`, when it is in our
    /// bucket. object_store percent-encodes both parts, `/` inside the name included.
    fn object_of(&self, path: &str) -> Option<String> {
        let (bucket, object) = path.strip_prefix('/')?.split_once('/')?;
        let decode = |raw| percent_decode_str(raw).decode_utf8().ok();
        (decode(bucket)? == self.bucket && !object.is_empty())
            .then(|| decode(object).map(|o| o.into_owned()))
            .flatten()
    }

    async fn upload(
        &self,
        request: HttpRequest,
        object: String,
    ) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let data = body.collect().await?.to_bytes();
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream");
        let mut url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=multipart",
            self.endpoint, self.bucket
        );
        if let Some(generation) = parts.headers.get(IF_GENERATION_MATCH) {
            let generation = generation.to_str().map_err(decode_error)?;
            url.push_str("&ifGenerationMatch=");
            url.push_str(generation);
        }
        let metadata = serde_json::json!({ "name": object, "contentType": content_type });
        let (boundary, body) = multipart_related(&metadata.to_string(), &data);
        let upload = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(
                CONTENT_TYPE,
                format!("multipart/related; boundary={boundary}"),
            )
            .body(HttpRequestBody::from(body))
            .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let response = self.inner.execute(upload).await?;
        if !response.status().is_success() {
            // 412 stays 412, which object_store reports as a failed precondition.
            return Ok(response);
        }
        let (mut parts, body) = response.into_parts();
        let resource: serde_json::Value =
            serde_json::from_slice(&body.bytes().await?).map_err(decode_error)?;
        for (header, field) in [(ETAG.as_str(), "etag"), ("x-goog-generation", "generation")] {
            let value = resource
                .get(field)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| decode_error(format!("upload answer lacks {field:?}")))?;
            let value = match header {
                "etag" => format!("\"{value}\""),
                _ => value.to_owned(),
            };
            parts.headers.insert(
                http::HeaderName::from_static(header),
                HeaderValue::from_str(&value).map_err(decode_error)?,
            );
        }
        Ok(HttpResponse::from_parts(
            parts,
            HttpResponseBody::from(Bytes::new()),
        ))
    }
}

/// A `multipart/related` body (JSON metadata, then the media) and its boundary, chosen so it
/// does not occur in the data.
fn multipart_related(metadata: &str, data: &[u8]) -> (String, Vec<u8>) {
    let mut n = 0u64;
    let boundary = loop {
        let candidate = format!("ccd-store-boundary-{n}");
        if !data
            .windows(candidate.len())
            .any(|w| w == candidate.as_bytes())
        {
            break candidate;
        }
        n += 1;
    };
    let mut body = Vec::with_capacity(data.len() + metadata.len() + 256);
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(b"Content-Type: application/json; charset=UTF-8\r\n\r\n");
    body.extend_from_slice(metadata.as_bytes());
    body.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
    body.extend_from_slice(b"Content-Type: application/octet-stream\r\n\r\n");
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

fn decode_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> HttpError {
    HttpError::new_boxed(HttpErrorKind::Decode, e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_avoids_the_data() {
        let (boundary, body) = multipart_related("{}", b"x ccd-store-boundary-0 y");
        assert_eq!(boundary, "ccd-store-boundary-1");
        assert!(body.ends_with(b"\r\n--ccd-store-boundary-1--\r\n"));
    }
}
