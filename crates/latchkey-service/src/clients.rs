//! Registered clients: loading them (through a short-lived in-process
//! cache) and authenticating them at the token, revocation and
//! introspection endpoints (RFC 6749 §2.3).
//!
//! Cache: `/token` must not be bound by a database round trip per request,
//! so a loaded client is kept in memory for `client_cache_ttl` (30 s by
//! default). A client removed through this instance is forgotten at once;
//! one removed on another instance keeps working here for at most the TTL.
//! Unknown client ids are not cached (a flood of made-up ids costs one
//! indexed lookup each, and a client registered on another instance is
//! usable here immediately). The cache holds at most
//! [`MAX_CACHED_CLIENTS`] entries.
//!
//! Authentication rules (see docs/tokens.md):
//! - exactly one method per request (the protocol crate refuses Basic and
//!   a body secret together, with `invalid_request`);
//! - a public client (`token_endpoint_auth_method: none`) identifies
//!   itself with `client_id` only and must not send a secret;
//! - a confidential client must present its secret; **either**
//!   `client_secret_basic` or `client_secret_post` is accepted whichever it
//!   registered: both prove possession of the same 256-bit secret over the
//!   same TLS connection, so neither is a downgrade of the other, and
//!   accepting both spares scripts and SDKs that pick the other one;
//! - secrets are compared as SHA-256 digests in constant time;
//! - every failure is `invalid_client` with a fixed description that does
//!   not say whether the client exists.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use latchkey_protocol::OAuthError;
use latchkey_protocol::client::{
    ClientIdUrl, ClientMetadata, ValidatedClient, validate_metadata_document,
};
use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_store::{ClientOrigin, ClientRecord, SecretHash};
use time::OffsetDateTime;

use crate::Service;
use crate::clock::add;
use crate::error::FlowError;
use crate::metadata_documents::ClientLookup;

/// The most clients kept in the cache.
pub const MAX_CACHED_CLIENTS: usize = 10_000;

/// A registered client, parsed and validated.
#[derive(Debug, Clone)]
pub struct Client {
    client_id: String,
    origin: ClientOrigin,
    metadata: ValidatedClient,
    secret_hash: Option<SecretHash>,
    created_at: OffsetDateTime,
    /// For a metadata-document client: when the document goes stale and
    /// must be read (or fetched) again.
    fresh_until: Option<OffsetDateTime>,
    /// For a metadata-document client: the document URL's host, the only
    /// part of its identity the server has checked.
    document_host: Option<String>,
}

impl Client {
    /// Parses a stored record, re-validating its metadata as it was
    /// validated when registered.
    pub fn from_record(record: &ClientRecord) -> Result<Client, FlowError> {
        let invalid = |error: &dyn std::fmt::Display| {
            FlowError::Internal(format!(
                "the stored metadata of client {} is no longer valid: {error}",
                record.client_id
            ))
        };
        let (metadata, document_host) = match record.origin {
            ClientOrigin::Admin | ClientOrigin::Dynamic => (
                ClientMetadata::from_value(record.metadata.clone())
                    .and_then(ClientMetadata::validate_registration)
                    .map_err(|error| invalid(&error))?,
                None,
            ),
            ClientOrigin::MetadataDocument => {
                // A stored document was fetched under the settings of the
                // time; whether an http URL may be *used* now is decided
                // before the store is read (`Service::client`).
                let url = ClientIdUrl::parse_allowing_loopback_http(&record.client_id)
                    .map_err(|error| invalid(&error))?;
                let document =
                    serde_json::to_vec(&record.metadata).map_err(|error| invalid(&error))?;
                let metadata =
                    validate_metadata_document(&url, &document).map_err(|error| invalid(&error))?;
                (metadata, Some(url.host().to_owned()))
            }
        };
        Ok(Client {
            client_id: record.client_id.clone(),
            origin: record.origin,
            metadata,
            secret_hash: record.secret_hash,
            created_at: record.created_at,
            fresh_until: match record.origin {
                ClientOrigin::MetadataDocument => record.expires_at,
                ClientOrigin::Admin | ClientOrigin::Dynamic => None,
            },
            document_host,
        })
    }

    /// The client identifier.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How the client was registered.
    pub fn origin(&self) -> ClientOrigin {
        self.origin
    }

    /// The validated metadata.
    pub fn metadata(&self) -> &ValidatedClient {
        &self.metadata
    }

    /// When the client was registered.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// For a metadata-document client, the host of its document URL.
    pub fn document_host(&self) -> Option<&str> {
        self.document_host.as_deref()
    }

    /// Whether the client authenticates with a secret.
    pub fn is_confidential(&self) -> bool {
        self.metadata.token_endpoint_auth_method().is_confidential()
    }
}

/// One cached client.
#[derive(Debug, Clone)]
struct CacheEntry {
    client: Arc<Client>,
    loaded_at: OffsetDateTime,
}

/// The client cache: client id to parsed client, for `ttl`.
#[derive(Debug)]
pub(crate) struct ClientCache {
    ttl: Duration,
    entries: RwLock<HashMap<String, CacheEntry>>,
}

impl ClientCache {
    pub(crate) fn new(ttl: Duration) -> ClientCache {
        ClientCache {
            ttl,
            entries: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, client_id: &str, now: OffsetDateTime) -> Option<Arc<Client>> {
        let entries = self
            .entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.get(client_id)?;
        let fresh = add(entry.loaded_at, self.ttl) > now
            && entry
                .client
                .fresh_until
                .is_none_or(|fresh_until| fresh_until > now);
        fresh.then(|| Arc::clone(&entry.client))
    }

    pub(crate) fn put(&self, client: Arc<Client>, now: OffsetDateTime) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_CACHED_CLIENTS {
            let ttl = self.ttl;
            entries.retain(|_, entry| add(entry.loaded_at, ttl) > now);
            if entries.len() >= MAX_CACHED_CLIENTS {
                // Everything is fresh: serve this one uncached rather than
                // grow without bound.
                return;
            }
        }
        entries.insert(
            client.client_id.clone(),
            CacheEntry {
                client,
                loaded_at: now,
            },
        );
    }

    pub(crate) fn forget(&self, client_id: &str) {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(client_id);
    }
}

/// The description of every authentication failure: the same whether the
/// client is unknown, the secret wrong, or the method unsuitable, so that
/// the endpoint cannot be used to probe which client ids exist.
const AUTHENTICATION_FAILED: &str = "client authentication failed";

fn authentication_failed() -> FlowError {
    FlowError::OAuth(OAuthError::invalid_client(AUTHENTICATION_FAILED))
}

impl Service {
    /// The client `client_id`, from the cache or the store; `None` if no
    /// such client exists. A metadata-document client is resolved (and
    /// fetched when needed); when its document cannot be used this is
    /// `invalid_client` saying why.
    pub async fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, FlowError> {
        match self.lookup_client(client_id).await? {
            ClientLookup::Found(client) => Ok(Some(client)),
            ClientLookup::Unknown => Ok(None),
            ClientLookup::Document(error) => Err(FlowError::OAuth(error.to_oauth())),
        }
    }

    /// [`Service::client`], keeping a metadata-document failure apart so
    /// the authorization endpoint can show it on a page.
    pub(crate) async fn lookup_client(&self, client_id: &str) -> Result<ClientLookup, FlowError> {
        let now = self.now();
        if let Some(client) = self.inner.clients.get(client_id, now) {
            return Ok(ClientLookup::Found(client));
        }
        match self.metadata_document_url(client_id) {
            Some(Ok(url)) => return self.resolve_metadata_document(&url).await,
            Some(Err(error)) => return Ok(ClientLookup::Document(error)),
            None => {}
        }
        let Some(record) = self.inner.store.find_client(client_id).await? else {
            return Ok(ClientLookup::Unknown);
        };
        if record.origin == ClientOrigin::MetadataDocument {
            // An http document stored while the development setting was on.
            return Ok(ClientLookup::Unknown);
        }
        let client = Arc::new(Client::from_record(&record)?);
        self.inner.clients.put(Arc::clone(&client), now);
        Ok(ClientLookup::Found(client))
    }

    /// The client as stored, without fetching a metadata document: for
    /// listing connected apps, which must not reach out to the network.
    pub async fn stored_client(&self, client_id: &str) -> Result<Option<Arc<Client>>, FlowError> {
        if let Some(client) = self.inner.clients.get(client_id, self.now()) {
            return Ok(Some(client));
        }
        match self.inner.store.find_client(client_id).await? {
            Some(record) => Ok(Some(Arc::new(Client::from_record(&record)?))),
            None => Ok(None),
        }
    }

    /// Whether the consent page may call the client verified: an operator
    /// created it, or it is a metadata-document client whose host is on the
    /// allow-list (`--trusted-client-host`). Dynamically registered clients
    /// never are: their metadata is their own claim.
    pub fn is_client_verified(&self, client: &Client) -> bool {
        match client.origin() {
            ClientOrigin::Admin => true,
            ClientOrigin::Dynamic => false,
            ClientOrigin::MetadataDocument => client
                .document_host()
                .is_some_and(|host| self.is_trusted_client_host(host)),
        }
    }

    /// Drops a client from this instance's cache (after removing or
    /// changing it).
    pub fn forget_client(&self, client_id: &str) {
        self.inner.clients.forget(client_id);
    }

    /// Authenticates the client of a token, revocation or introspection
    /// request (rules in the module docs).
    pub async fn authenticate(
        &self,
        credentials: &ClientCredentials,
    ) -> Result<Arc<Client>, FlowError> {
        let Some(client) = self.client(credentials.client_id()).await? else {
            return Err(authentication_failed());
        };
        match (client.is_confidential(), credentials.secret()) {
            (false, None) => Ok(client),
            (false, Some(_)) | (true, None) => Err(authentication_failed()),
            (true, Some(presented)) => {
                let Some(stored) = client.secret_hash else {
                    return Err(authentication_failed());
                };
                if SecretHash::of(presented.expose()).ct_eq(&stored) {
                    Ok(client)
                } else {
                    Err(authentication_failed())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, basic, none, post};

    #[tokio::test]
    async fn the_authentication_table() {
        let fixture = Fixture::new().await;
        let public = fixture.public_client().await;
        let confidential = fixture.confidential_client("client_secret_basic").await;
        let post_client = fixture.confidential_client("client_secret_post").await;
        let service = &fixture.service;

        let cases: Vec<(&str, ClientCredentials, bool)> = vec![
            ("public, no secret", none(&public.client_id), true),
            (
                "public with a secret",
                post(&public.client_id, "lks_x"),
                false,
            ),
            (
                "public with Basic",
                basic(&public.client_id, "lks_x"),
                false,
            ),
            (
                "confidential, Basic",
                basic(&confidential.client_id, confidential.secret()),
                true,
            ),
            (
                "confidential, post although it registered Basic",
                post(&confidential.client_id, confidential.secret()),
                true,
            ),
            (
                "post client, Basic",
                basic(&post_client.client_id, post_client.secret()),
                true,
            ),
            (
                "confidential without a secret",
                none(&confidential.client_id),
                false,
            ),
            (
                "confidential, wrong secret",
                basic(&confidential.client_id, "lks_wrong"),
                false,
            ),
            (
                "confidential, another client's secret",
                basic(&confidential.client_id, post_client.secret()),
                false,
            ),
            ("unknown client", none("no-such-client"), false),
            ("unknown client with a secret", basic("nobody", "x"), false),
        ];
        for (name, credentials, accepted) in cases {
            let outcome = service.authenticate(&credentials).await;
            match (accepted, outcome) {
                (true, Ok(client)) => {
                    assert_eq!(client.client_id(), credentials.client_id(), "{name}")
                }
                (false, Err(FlowError::OAuth(error))) => {
                    assert_eq!(
                        error.code(),
                        latchkey_protocol::ErrorCode::InvalidClient,
                        "{name}"
                    );
                    assert_eq!(error.description(), Some(AUTHENTICATION_FAILED), "{name}");
                }
                (_, other) => panic!("{name}: unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn clients_are_cached_for_the_ttl() {
        let fixture = Fixture::new().await;
        let client = fixture.public_client().await;
        let service = &fixture.service;
        assert!(service.client(&client.client_id).await.unwrap().is_some());

        // Deleted behind the service's back: still served until the TTL ends.
        assert!(
            fixture
                .store
                .delete_client(&client.client_id)
                .await
                .unwrap()
        );
        fixture.clock.advance(Duration::from_secs(29));
        assert!(service.client(&client.client_id).await.unwrap().is_some());
        fixture.clock.advance(Duration::from_secs(1));
        assert!(service.client(&client.client_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn forgetting_a_client_takes_effect_at_once() {
        let fixture = Fixture::new().await;
        let client = fixture.public_client().await;
        let service = &fixture.service;
        assert!(service.client(&client.client_id).await.unwrap().is_some());
        fixture
            .store
            .delete_client(&client.client_id)
            .await
            .unwrap();
        service.forget_client(&client.client_id);
        assert!(service.client(&client.client_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn invalid_stored_metadata_is_an_internal_error() {
        let fixture = Fixture::new().await;
        fixture
            .store
            .insert_client(&ClientRecord {
                client_id: "broken".to_owned(),
                secret_hash: None,
                origin: ClientOrigin::Dynamic,
                metadata: serde_json::json!({"redirect_uris": ["javascript:alert(1)"]}),
                created_at: fixture.clock_now(),
                expires_at: None,
            })
            .await
            .unwrap();
        assert!(matches!(
            fixture.service.client("broken").await,
            Err(FlowError::Internal(_))
        ));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ClientCache::new(Duration::from_secs(30));
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let metadata = ClientMetadata::from_json(br#"{"redirect_uris":["https://a.example/cb"]}"#)
            .unwrap()
            .validate_registration()
            .unwrap();
        for index in 0..(MAX_CACHED_CLIENTS + 10) {
            cache.put(
                Arc::new(Client {
                    client_id: format!("c{index}"),
                    origin: ClientOrigin::Dynamic,
                    metadata: metadata.clone(),
                    secret_hash: None,
                    created_at: now,
                    fresh_until: None,
                    document_host: None,
                }),
                now,
            );
        }
        let len = cache.entries.read().unwrap().len();
        assert_eq!(len, MAX_CACHED_CLIENTS);
        // Once entries expire they make room again.
        let later = now + time::Duration::seconds(31);
        cache.put(
            Arc::new(Client {
                client_id: "fresh".to_owned(),
                origin: ClientOrigin::Dynamic,
                metadata,
                secret_hash: None,
                created_at: later,
                fresh_until: None,
                document_host: None,
            }),
            later,
        );
        assert!(cache.get("fresh", later).is_some());
        assert!(cache.get("c0", later).is_none());
    }
}
