//! Bounded HTTP fetches of the documents the validator trusts: JWK Sets,
//! RFC 8414 / OpenID Connect discovery documents, introspection responses.
//!
//! Invariants: every fetch has a timeout (set on the shared client), follows
//! no redirects (a metadata URL that redirects is a misconfiguration, and
//! RFC 8414 §3.3 makes clients compare the `issuer` with the URL they
//! built), and reads at most a fixed number of bytes, so a hostile or broken
//! server cannot exhaust memory. Only https URLs, or http on a loopback
//! host for development, are fetched: keys travelling over plain http could
//! be swapped by anyone on the path.

use std::time::Duration;

use reqwest::header::{ACCEPT, HeaderValue};
use url::Url;

use crate::error::{ConfigError, KeySourceError};

/// The largest JWK Set or discovery document read, in bytes.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Builds the client used for key, discovery and introspection fetches.
pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("latchkey-resource/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| ConfigError::HttpClient(error.to_string()))
}

/// Whether the validator may fetch from `url`: https, or http on a loopback
/// host (`127.0.0.1`, `[::1]`, `localhost`), with no userinfo or fragment.
pub(crate) fn check_fetch_url(url: &Url) -> Result<(), ConfigError> {
    let refuse = |reason: &str| ConfigError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_owned(),
    };
    if url.fragment().is_some() {
        return Err(refuse("a fragment is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("userinfo is not allowed"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(refuse("plain http is allowed for loopback hosts only")),
        _ => Err(refuse("only https (or http on loopback) is supported")),
    }
}

/// Whether the URL's host is a loopback name or address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(address)) => address.is_loopback(),
        Some(url::Host::Ipv6(address)) => address.is_loopback(),
        None => false,
    }
}

/// GETs `url` expecting `200` and a JSON body of at most `limit` bytes.
pub(crate) async fn get_document(
    client: &reqwest::Client,
    url: &Url,
    limit: usize,
) -> Result<Vec<u8>, KeySourceError> {
    let response = client
        .get(url.clone())
        .header(
            ACCEPT,
            HeaderValue::from_static("application/json, application/jwk-set+json"),
        )
        .send()
        .await
        .map_err(|source| KeySourceError::Request {
            url: url.to_string(),
            source,
        })?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(KeySourceError::Status {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    read_bounded(response, url, limit).await
}

/// Reads a response body, refusing more than `limit` bytes before they are
/// buffered.
pub(crate) async fn read_bounded(
    mut response: reqwest::Response,
    url: &Url,
    limit: usize,
) -> Result<Vec<u8>, KeySourceError> {
    let too_large = || KeySourceError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if response
        .content_length()
        .is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(too_large());
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| KeySourceError::Request {
            url: url.to_string(),
            source,
        })?
    {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_urls_must_be_https_or_loopback_http() {
        for allowed in [
            "https://auth.example.com/jwks.json",
            "http://127.0.0.1:8080/jwks.json",
            "http://[::1]/jwks",
            "http://LOCALHOST:1/x",
        ] {
            assert!(
                check_fetch_url(&Url::parse(allowed).unwrap()).is_ok(),
                "{allowed}"
            );
        }
        for refused in [
            "http://auth.example.com/jwks.json",
            "ftp://127.0.0.1/jwks",
            "https://user:pw@auth.example.com/jwks",
            "https://auth.example.com/jwks#x",
            "http://127.0.0.1.example.com/jwks",
        ] {
            assert!(
                check_fetch_url(&Url::parse(refused).unwrap()).is_err(),
                "{refused}"
            );
        }
    }
}
