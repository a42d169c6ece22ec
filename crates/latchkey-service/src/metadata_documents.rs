//! Client ID Metadata Document clients (CIMD, the MCP specification's
//! preferred registration): a `client_id` that is an `https` URL is
//! resolved by fetching the JSON document at that URL, validating it with
//! `latchkey_protocol::client::validate_metadata_document`, and keeping it
//! as a [`ClientOrigin::MetadataDocument`] client record, so codes, refresh
//! tokens and consents reference it like any other client.
//!
//! Resolution, in order (docs/client-metadata-documents.md):
//! 1. the in-process client cache, while the document is fresh;
//! 2. the store: a record still fresh (`expires_at` in the future) is used
//!    as is, so several instances share one fetch;
//! 3. the in-process negative cache: a URL that failed recently fails again
//!    at once (for [`MetadataDocumentSettings::failure_cache`]);
//! 4. the per-host fetch limit ([`MetadataDocumentSettings::fetches_per_host_per_minute`]),
//!    so a hostile client cannot make the server a fetch amplifier;
//! 5. a fetch (`fetch`: SSRF-safe, bounded, no redirects), validation,
//!    and an upsert of the record with `created_at` = the fetch time and
//!    `expires_at` = the fetch time plus the response's `Cache-Control:
//!    max-age` clamped to `[min_cache, max_cache]`.
//!
//! When a re-fetch of a stale document fails (or is rate-limited), the last
//! good copy keeps being served until `max_cache` after it was fetched, and
//! then the client fails. Every failure is a [`MetadataDocumentError`] whose
//! message is safe to show (it never contains the document or library
//! text).

pub mod address;
mod fetch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use latchkey_protocol::OAuthError;
use latchkey_protocol::client::{
    ClientIdUrl, ClientIdUrlError, ClientMetadataError, MAX_METADATA_DOCUMENT_LEN,
    validate_metadata_document,
};
use latchkey_store::{ClientOrigin, ClientRecord};
use time::OffsetDateTime;

use crate::Service;
use crate::clients::Client;
use crate::clock::add;
use crate::config::MetadataDocumentSettings;
use crate::error::FlowError;
use crate::ratelimit::{Decision, SlidingWindowLimiter};

pub(crate) use fetch::DocumentFetcher;

/// The most failures remembered by the negative cache.
pub const MAX_REMEMBERED_FAILURES: usize = 10_000;
/// The most hosts the per-host fetch limit tracks.
const MAX_TRACKED_HOSTS: usize = 10_000;
/// The window of the per-host fetch limit.
const FETCH_WINDOW: Duration = Duration::from_secs(60);

/// Why a metadata-document client could not be used. The messages are
/// shown to users and clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataDocumentError {
    /// The `client_id` is not a valid client-id URL.
    #[error("{0}")]
    InvalidUrl(ClientIdUrlError),
    /// The host resolves only to addresses that may not be fetched.
    #[error(
        "the client metadata document's host {host} resolves to an address that may not be fetched ({reason})"
    )]
    RefusedAddress {
        /// The host of the URL.
        host: String,
        /// The kind of address (`private (RFC 1918)`, `loopback`, …).
        reason: &'static str,
    },
    /// The deadline passed before the whole document arrived.
    #[error("fetching the client metadata document timed out")]
    Timeout,
    /// The body is larger than the limit.
    #[error("the client metadata document is larger than {0} bytes")]
    TooLarge(usize),
    /// The server answered with a redirect, which is not followed.
    #[error(
        "the client metadata document URL answered with a redirect (HTTP {0}); redirects are not followed"
    )]
    Redirect(u16),
    /// The server answered with another non-success status.
    #[error("the client metadata document URL answered with HTTP {0}")]
    Status(u16),
    /// The connection failed (DNS, TCP, TLS).
    #[error("the client metadata document could not be fetched (connection failed)")]
    Connect,
    /// Too many fetches from this host recently.
    #[error(
        "too many client metadata documents were fetched from {0} recently; try again in a minute"
    )]
    RateLimited(String),
    /// The document is not a valid client metadata document.
    #[error("the client metadata document is not valid: {0}")]
    Invalid(ClientMetadataError),
}

impl MetadataDocumentError {
    /// The OAuth error for the token, revocation and introspection
    /// endpoints: `invalid_client` with this message.
    pub fn to_oauth(&self) -> OAuthError {
        OAuthError::invalid_client(self.to_string())
    }
}

/// The outcome of looking a client up.
#[derive(Debug)]
pub(crate) enum ClientLookup {
    /// The client.
    Found(Arc<Client>),
    /// No such client.
    Unknown,
    /// A metadata-document client that cannot be used.
    Document(MetadataDocumentError),
}

/// The in-process state of metadata-document resolution: the fetcher, the
/// negative cache and the per-host fetch limit.
#[derive(Debug)]
pub(crate) struct MetadataDocuments {
    fetcher: DocumentFetcher,
    failures: Mutex<HashMap<String, (MetadataDocumentError, OffsetDateTime)>>,
    fetch_limiter: SlidingWindowLimiter<String>,
}

impl MetadataDocuments {
    pub(crate) fn new(
        settings: &MetadataDocumentSettings,
    ) -> Result<MetadataDocuments, reqwest::Error> {
        Ok(MetadataDocuments {
            fetcher: DocumentFetcher::new(
                settings.fetch_timeout,
                MAX_METADATA_DOCUMENT_LEN,
                settings.allow_insecure,
            )?,
            failures: Mutex::new(HashMap::new()),
            fetch_limiter: SlidingWindowLimiter::new(
                settings.fetches_per_host_per_minute.max(1),
                FETCH_WINDOW,
                MAX_TRACKED_HOSTS,
            ),
        })
    }

    fn recent_failure(
        &self,
        client_id: &str,
        now: OffsetDateTime,
    ) -> Option<MetadataDocumentError> {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures
            .get(client_id)
            .filter(|(_, until)| *until > now)
            .map(|(error, _)| error.clone())
    }

    fn remember_failure(
        &self,
        client_id: &str,
        error: &MetadataDocumentError,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_REMEMBERED_FAILURES {
            failures.retain(|_, (_, expiry)| *expiry > now);
            if failures.len() >= MAX_REMEMBERED_FAILURES {
                return;
            }
        }
        failures.insert(client_id.to_owned(), (error.clone(), until));
    }

    fn forget_failure(&self, client_id: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(client_id);
    }
}

impl Service {
    /// The client-id URL `client_id` stands for, if it is one: `https://…`
    /// always; `http://` on a loopback host only with the development
    /// setting on. `None` for ordinary identifiers.
    pub(crate) fn metadata_document_url(
        &self,
        client_id: &str,
    ) -> Option<Result<ClientIdUrl, MetadataDocumentError>> {
        if ClientIdUrl::looks_like_url(client_id) {
            return Some(ClientIdUrl::parse(client_id).map_err(MetadataDocumentError::InvalidUrl));
        }
        if self.config().metadata_documents.allow_insecure && client_id.starts_with("http://") {
            return Some(
                ClientIdUrl::parse_allowing_loopback_http(client_id)
                    .map_err(MetadataDocumentError::InvalidUrl),
            );
        }
        None
    }

    /// Whether a metadata-document client's host is on the operator's
    /// allow-list (`--trusted-client-host`).
    pub fn is_trusted_client_host(&self, host: &str) -> bool {
        self.config()
            .metadata_documents
            .trusted_hosts
            .iter()
            .any(|trusted| trusted.eq_ignore_ascii_case(host))
    }

    /// Resolves a metadata-document client (steps in the module docs).
    #[tracing::instrument(skip_all, fields(client_id = %url))]
    pub(crate) async fn resolve_metadata_document(
        &self,
        url: &ClientIdUrl,
    ) -> Result<ClientLookup, FlowError> {
        let client_id = url.as_str();
        let now = self.now();
        let settings = &self.config().metadata_documents;
        let documents = &self.inner.metadata_documents;

        let record = self.inner.store.find_client(client_id).await?;
        let record = match record {
            Some(record) if record.origin != ClientOrigin::MetadataDocument => {
                // An identifier an operator chose that happens to be a URL.
                let client = Arc::new(Client::from_record(&record)?);
                self.inner.clients.put(Arc::clone(&client), now);
                return Ok(ClientLookup::Found(client));
            }
            other => other,
        };
        if let Some(record) = &record
            && record.expires_at.is_some_and(|expires_at| expires_at > now)
        {
            let client = Arc::new(Client::from_record(record)?);
            self.inner.clients.put(Arc::clone(&client), now);
            return Ok(ClientLookup::Found(client));
        }
        // Stale (or absent): the last good copy may stand in for a failed
        // re-fetch until `max_cache` after it was fetched.
        let stand_in = record
            .as_ref()
            .filter(|record| add(record.created_at, settings.max_cache) > now);
        let serve_stale_or = |error: MetadataDocumentError| -> Result<ClientLookup, FlowError> {
            match stand_in {
                Some(record) => {
                    tracing::warn!(%error, "serving the last good copy of a client metadata document");
                    Ok(ClientLookup::Found(Arc::new(Client::from_record(record)?)))
                }
                None => Ok(ClientLookup::Document(error)),
            }
        };

        if let Some(error) = documents.recent_failure(client_id, now) {
            return serve_stale_or(error);
        }
        if let Decision::Limited { .. } = documents.fetch_limiter.check(&url.host().to_owned(), now)
        {
            tracing::warn!(
                host = url.host(),
                "per-host metadata-document fetch limit reached"
            );
            return serve_stale_or(MetadataDocumentError::RateLimited(url.host().to_owned()));
        }

        let outcome = match documents.fetcher.fetch(url).await {
            Ok(fetched) => validate_metadata_document(url, &fetched.body)
                .map(|validated| (validated, fetched.max_age))
                .map_err(MetadataDocumentError::Invalid),
            Err(error) => Err(error),
        };
        // The fetch took time: expiry is counted from its end.
        let now = self.now();
        match outcome {
            Ok((validated, max_age)) => {
                let fresh_for = max_age
                    .map(Duration::from_secs)
                    .unwrap_or(settings.min_cache)
                    .clamp(settings.min_cache, settings.max_cache);
                let record = ClientRecord {
                    client_id: client_id.to_owned(),
                    secret_hash: None,
                    origin: ClientOrigin::MetadataDocument,
                    metadata: validated.to_json(),
                    created_at: now,
                    expires_at: Some(add(now, fresh_for)),
                };
                self.inner.store.upsert_client(&record).await?;
                documents.forget_failure(client_id);
                tracing::info!(
                    fresh_for_seconds = fresh_for.as_secs(),
                    "fetched a client metadata document"
                );
                let client = Arc::new(Client::from_record(&record)?);
                self.inner.clients.put(Arc::clone(&client), now);
                Ok(ClientLookup::Found(client))
            }
            Err(error) => {
                tracing::info!(%error, "a client metadata document could not be used");
                documents.remember_failure(
                    client_id,
                    &error,
                    add(now, settings.failure_cache),
                    now,
                );
                serve_stale_or(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
