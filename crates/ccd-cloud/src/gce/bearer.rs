//! Credentials for ccd's local cloud: its API token (the data folder's
//! `token` file), sent as `Authorization: Bearer TOKEN` on every call, through
//! google-cloud-auth's `CredentialsProvider` so the official clients send it
//! as they send a Google access token.

use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{Extensions, HeaderMap, HeaderValue};

use crate::CloudError;

/// A local cloud's API token. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointToken(String);

impl EndpointToken {
    /// The token as the local cloud wrote it (surrounding whitespace dropped).
    pub fn new(token: &str) -> Self {
        EndpointToken(token.trim().to_owned())
    }

    /// The token itself, for a client that is not Google's (`Bearer` it).
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// `Bearer TOKEN`, marked sensitive so that HTTP logs leave it out.
    pub fn header(&self) -> Result<HeaderValue, CloudError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            CloudError::Invalid {
                resource: "GceConfig".to_owned(),
                message: "the endpoint token has characters a header cannot carry".to_owned(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::fmt::Debug for EndpointToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EndpointToken(..)")
    }
}

/// The same headers on every call; they never change, so one entity tag.
#[derive(Debug)]
struct Bearer {
    headers: HeaderMap,
    tag: EntityTag,
}

impl CredentialsProvider for Bearer {
    async fn headers(
        &self,
        extensions: Extensions,
    ) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        Ok(match extensions.get::<EntityTag>() {
            Some(tag) if *tag == self.tag => CacheableResource::NotModified,
            _ => CacheableResource::New {
                entity_tag: self.tag.clone(),
                data: self.headers.clone(),
            },
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// Credentials that send `token` as a bearer token.
pub fn credentials(token: &EndpointToken) -> Result<Credentials, CloudError> {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, token.header()?);
    Ok(Credentials::from(Bearer {
        headers,
        tag: EntityTag::new(),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn every_call_carries_the_bearer_header_and_debug_hides_it() {
        let token = EndpointToken::new(" abc123\n");
        assert_eq!(format!("{token:?}"), "EndpointToken(..)");
        let creds = credentials(&token).unwrap();
        for _ in 0..2 {
            let CacheableResource::New { data, .. } =
                creds.headers(Extensions::new()).await.unwrap()
            else {
                panic!("headers without a tag are new");
            };
            assert_eq!(data[http::header::AUTHORIZATION], "Bearer abc123");
            assert!(data[http::header::AUTHORIZATION].is_sensitive());
        }
        assert!(EndpointToken::new("a\nb").header().is_err());
    }
}
