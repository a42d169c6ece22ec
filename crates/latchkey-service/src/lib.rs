//! Latchkey's authorization-server flows, independent of HTTP and of any
//! database.
//!
//! [`Service`] is the one entry point: built from a [`ServiceConfig`], an
//! `Arc<dyn latchkey_store::Store>` and a [`Clock`], it implements
//! - client authentication ([`clients`]) and dynamic registration
//!   ([`registration`], RFC 7591), plus the operator's client commands
//!   ([`admin`]);
//! - the token endpoint ([`grants`]): `authorization_code` with PKCE S256,
//!   `refresh_token` with rotation and reuse detection, and
//!   `client_credentials`;
//! - revocation ([`revocation`], RFC 7009) and introspection
//!   ([`introspection`], RFC 7662);
//! - signing keys ([`keys`]) and RFC 9068 JWT access tokens ([`tokens`]);
//! - the RFC 8414 metadata document ([`metadata`]);
//! - the browser half of the code flow: the authorization endpoint
//!   ([`authorize`]), local accounts and sign-in ([`accounts`]), browser
//!   sessions and CSRF tokens ([`sessions`]), and remembered consent and
//!   connected apps ([`consent`]);
//! - Client ID Metadata Document clients, fetched safely and cached
//!   ([`metadata_documents`]).
//! - sign-in through upstream OpenID Connect providers ([`upstream`]):
//!   Latchkey is the relying party (discovery, PKCE, `state`, `nonce`, ID
//!   token validation) and resolves the upstream identity to a local user.
//!
//! Architecture invariants:
//! - no axum, no diesel, no HTTP status codes: errors are [`FlowError`]s
//!   carrying the OAuth error code, and `latchkey-http` decides responses;
//! - every wire rule (PKCE, scopes, resources, redirect URIs, client
//!   metadata, parameters, claims) comes from `latchkey-protocol`;
//! - every operation that must be atomic is one store call
//!   (`consume_code`, `rotate_refresh`, `revoke_family`, …);
//! - time comes from the [`Clock`] once per request; randomness from
//!   `ring::rand::SystemRandom`;
//! - nothing secret is logged: codes, tokens and client secrets are
//!   `SecretString`s and only their SHA-256 is stored.

#![warn(missing_docs)]

pub mod accounts;
pub mod admin;
pub mod authorize;
pub mod clients;
pub mod clock;
pub mod config;
pub mod consent;
pub mod error;
pub mod grants;
mod http_body;
pub mod introspection;
pub mod keys;
pub mod metadata;
pub mod metadata_documents;
pub mod ratelimit;
pub mod registration;
pub mod revocation;
pub mod secrets;
pub mod sessions;
pub mod tokens;
pub mod upstream;

#[cfg(test)]
mod testing;

use std::net::IpAddr;
use std::sync::Arc;

use latchkey_store::{CleanupReport, Store};
use ring::rand::SystemRandom;
use time::OffsetDateTime;

pub use clock::{Clock, SystemClock, TestClock};
pub use config::{ConfigError, ServiceConfig};
pub use error::FlowError;
pub use keys::crypto::{KeyEncryption, ServerSecret};
pub use keys::{KeyError, KeyManager, KeySettings};

use clients::ClientCache;
use metadata_documents::MetadataDocuments;
use ratelimit::SlidingWindowLimiter;

/// How many expired rows of each kind one clean-up round deletes.
pub const CLEANUP_BATCH: u32 = 1000;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The server secret is unusable.
    #[error("{0}")]
    Secret(#[from] keys::crypto::CryptoError),
    /// The signing keys could not be loaded or created.
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// The HTTP client for metadata documents could not be built (TLS).
    #[error("the HTTP client for client metadata documents: {0}")]
    Http(String),
    /// The HTTP client for upstream providers could not be built.
    #[error("{0}")]
    Upstream(String),
}

/// The authorization server's flows. Cheap to clone: everything is behind
/// one `Arc`.
#[derive(Clone, Debug)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    config: ServiceConfig,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keys: KeyManager,
    clients: ClientCache,
    metadata_documents: MetadataDocuments,
    registration_limiter: Option<SlidingWindowLimiter<IpAddr>>,
    login_account_limiter: Option<SlidingWindowLimiter<String>>,
    login_address_limiter: Option<SlidingWindowLimiter<IpAddr>>,
    csrf_key: ring::hmac::Key,
    random: SystemRandom,
    upstreams: upstream::Upstreams,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Validates the configuration, loads the signing keys (generating the
    /// first one on a fresh store) and returns the service.
    pub async fn start(
        config: ServiceConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        secret: &ServerSecret,
    ) -> Result<Service, StartError> {
        config.validate()?;
        let encryption = KeyEncryption::derive(secret)?;
        let csrf_key = keys::crypto::derive_csrf_key(secret)?;
        let keys = KeyManager::load_or_create(
            Arc::clone(&store),
            encryption,
            KeySettings {
                algorithm: config.signing_algorithm,
                access_token_lifetime: config.lifetimes.access_token,
                reload_interval: config.key_reload_interval,
            },
            clock.now(),
        )
        .await?;
        let registration_limiter = config.registration_rate_limit.map(|limit| {
            SlidingWindowLimiter::new(limit.max, limit.window, ratelimit::DEFAULT_MAX_KEYS)
        });
        let login_account_limiter = limiter(config.login_rate_limits.per_account);
        let login_address_limiter = limiter(config.login_rate_limits.per_address);
        let metadata_documents = MetadataDocuments::new(&config.metadata_documents)
            .map_err(|error| StartError::Http(error.to_string()))?;
        let upstreams =
            upstream::Upstreams::new(&config.upstreams).map_err(StartError::Upstream)?;
        Ok(Service {
            inner: Arc::new(Inner {
                clients: ClientCache::new(config.client_cache_ttl),
                metadata_documents,
                config,
                store,
                clock,
                keys,
                registration_limiter,
                login_account_limiter,
                login_address_limiter,
                csrf_key,
                random: SystemRandom::new(),
                upstreams,
            }),
        })
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// The store (for the operator commands and tests).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The current time on the service's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeyManager {
        &self.inner.keys
    }

    /// The JWK Set to publish now.
    pub fn jwks(&self) -> serde_json::Value {
        self.inner.keys.jwks(self.now())
    }

    /// Whether the store answers (readiness).
    pub async fn ready(&self) -> Result<(), FlowError> {
        self.inner.store.ping().await.map_err(FlowError::from)
    }

    /// Reloads the signing keys from the store, picking up a rotation done
    /// elsewhere. Returns whether anything changed.
    pub async fn reload_keys(&self) -> Result<bool, FlowError> {
        self.inner.keys.reload(self.now()).await.map_err(key_error)
    }

    /// Deletes expired codes, tokens, deny-list entries, sessions, pending
    /// interactions and retired keys, in bounded batches until none is left.
    pub async fn cleanup(&self) -> Result<CleanupReport, FlowError> {
        latchkey_store::cleanup_until_done(self.inner.store.as_ref(), self.now(), CLEANUP_BATCH)
            .await
            .map_err(FlowError::from)
    }

    /// The random generator.
    pub(crate) fn random(&self) -> &SystemRandom {
        &self.inner.random
    }
}

/// A sliding-window limiter for `settings`, or none when it is off.
fn limiter<K: Eq + std::hash::Hash + Clone>(
    settings: Option<config::RateLimitSettings>,
) -> Option<SlidingWindowLimiter<K>> {
    settings.map(|limit| {
        SlidingWindowLimiter::new(limit.max, limit.window, ratelimit::DEFAULT_MAX_KEYS)
    })
}

/// A key error met while serving a request: the store's unavailability is
/// reported as such, everything else is internal.
pub(crate) fn key_error(error: KeyError) -> FlowError {
    match error {
        KeyError::Store(store) => FlowError::from(store),
        other => FlowError::Internal(other.to_string()),
    }
}
