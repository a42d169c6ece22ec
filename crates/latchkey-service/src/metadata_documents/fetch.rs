//! Fetching a Client ID Metadata Document over the network, safely.
//!
//! Invariants:
//! - only `https` (plain `http` to a loopback host only with the
//!   development setting on);
//! - the connection goes only to addresses vetted *after* DNS resolution:
//!   [`VettingResolver`] resolves the name itself and hands reqwest only
//!   the allowed addresses, so there is no window between the check and the
//!   connection for a rebinding DNS server to exploit. An IP-literal host
//!   never reaches a resolver, so it is checked before the request;
//! - no proxy from the environment (it would connect on our behalf to
//!   wherever it likes), no redirects (a 3xx is a failure: the document
//!   must live at the client's own URL, CIMD §4), no cookies;
//! - bounded: one deadline for the whole exchange (connect, TLS, headers,
//!   body) and a byte limit enforced while reading, so a slow or endless
//!   body costs at most the deadline and the limit;
//! - the body is never logged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use latchkey_protocol::client::ClientIdUrl;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::MetadataDocumentError;
use super::address::{AddressClass, classify, is_allowed};
use crate::http_body::{BodyError, read_bounded};

/// What a resolver future fails with.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A fetched document: its bytes and the `Cache-Control` freshness it
/// declared.
#[derive(Debug)]
pub(crate) struct FetchedDocument {
    pub(crate) body: Vec<u8>,
    /// `max-age` in seconds; `Some(0)` for `no-store` / `no-cache`; `None`
    /// when the response says nothing.
    pub(crate) max_age: Option<u64>,
}

/// The HTTP client for documents.
#[derive(Debug, Clone)]
pub(crate) struct DocumentFetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_len: usize,
    allow_loopback: bool,
}

/// A DNS resolver that refuses special-purpose addresses (module docs).
#[derive(Debug, Clone, Copy)]
struct VettingResolver {
    allow_loopback: bool,
}

/// The error a refused name resolves to; found again in the error chain to
/// report it precisely.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses that may not be fetched ({reason})")]
struct RefusedAddress {
    host: String,
    reason: &'static str,
}

impl Resolve for VettingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(vet(name.as_str().to_owned(), self.allow_loopback))
    }
}

/// Resolves `host` and keeps only the addresses a fetch may connect to;
/// fails with [`RefusedAddress`] when none is left.
async fn vet(host: String, allow_loopback: bool) -> Result<Addrs, BoxError> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    let mut reason = "no address";
    let mut allowed: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
    for address in resolved {
        if is_allowed(address.ip(), allow_loopback) {
            allowed.push(address);
        } else {
            reason = refusal_reason(address.ip());
        }
    }
    if allowed.is_empty() {
        return Err(Box::new(RefusedAddress { host, reason }));
    }
    Ok(Box::new(allowed.into_iter()))
}

fn refusal_reason(address: IpAddr) -> &'static str {
    match classify(address) {
        AddressClass::Public => "public",
        AddressClass::Loopback => "loopback",
        AddressClass::Special(reason) => reason,
    }
}

impl DocumentFetcher {
    /// A fetcher with a total deadline of `timeout` and a body limit of
    /// `max_len` bytes.
    pub(crate) fn new(
        timeout: Duration,
        max_len: usize,
        allow_loopback: bool,
    ) -> Result<DocumentFetcher, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettingResolver { allow_loopback }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!allow_loopback)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(DocumentFetcher {
            client,
            timeout,
            max_len,
            allow_loopback,
        })
    }

    /// Fetches `url` (rules in the module docs).
    pub(crate) async fn fetch(
        &self,
        url: &ClientIdUrl,
    ) -> Result<FetchedDocument, MetadataDocumentError> {
        let parsed = url::Url::parse(url.as_str()).map_err(|_| MetadataDocumentError::Connect)?;
        // An IP literal is connected to directly, without a resolver.
        let literal = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(address) = literal
            && !is_allowed(address, self.allow_loopback)
        {
            return Err(MetadataDocumentError::RefusedAddress {
                host: url.host().to_owned(),
                reason: refusal_reason(address),
            });
        }
        match tokio::time::timeout(self.timeout, self.fetch_unbounded(parsed, url)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(MetadataDocumentError::Timeout),
        }
    }

    async fn fetch_unbounded(
        &self,
        parsed: url::Url,
        url: &ClientIdUrl,
    ) -> Result<FetchedDocument, MetadataDocumentError> {
        let mut response = self
            .client
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| request_error(&error, url))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(MetadataDocumentError::Redirect(status.as_u16()));
        }
        if !status.is_success() {
            return Err(MetadataDocumentError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|length| length > self.max_len as u64)
        {
            return Err(MetadataDocumentError::TooLarge(self.max_len));
        }
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(parse_max_age)
            .min();
        let body =
            read_bounded(&mut response, self.max_len)
                .await
                .map_err(|error| match error {
                    BodyError::TooLarge => MetadataDocumentError::TooLarge(self.max_len),
                    BodyError::Read(error) => request_error(&error, url),
                })?;
        Ok(FetchedDocument { body, max_age })
    }
}

/// Classifies a reqwest failure without echoing library text to clients.
fn request_error(error: &reqwest::Error, url: &ClientIdUrl) -> MetadataDocumentError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<RefusedAddress>() {
            return MetadataDocumentError::RefusedAddress {
                host: refused.host.clone(),
                reason: refused.reason,
            };
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return MetadataDocumentError::Timeout;
    }
    tracing::debug!(client_id = %url, %error, "fetching a client metadata document failed");
    MetadataDocumentError::Connect
}

/// The freshness one `Cache-Control` header value declares: the smallest
/// `max-age`, and 0 for `no-store` or `no-cache` (the most conservative
/// reading).
fn parse_max_age(value: &str) -> Option<u64> {
    value
        .split(',')
        .filter_map(|directive| {
            let directive = directive.trim();
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                Some(0)
            } else if name.eq_ignore_ascii_case("max-age") {
                argument.and_then(|seconds| seconds.parse::<u64>().ok())
            } else {
                None
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_table() {
        let cases = [
            ("max-age=600", Some(600)),
            ("public, max-age=3600", Some(3600)),
            ("MAX-AGE=\"60\"", Some(60)),
            ("no-store", Some(0)),
            ("max-age=600, no-cache", Some(0)),
            ("private", None),
            ("max-age=soon", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_max_age(header), expected, "{header}");
        }
    }
}
