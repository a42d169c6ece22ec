//! Signing keys: where they come from ([`KeySource`]) and how they are
//! cached per issuer.
//!
//! A [`KeySource`] yields an issuer's JWK Set (RFC 7517 §5). Two ship here:
//! [`HttpKeySource`] fetches it from a `jwks_uri`, given or discovered from
//! the issuer's RFC 8414 metadata (falling back to OpenID Connect
//! Discovery); [`StaticKeySource`] holds a set in memory, which is how the
//! `latchkey` binary feeds the authorization server's own keys to the guard
//! when both run in one process (no HTTP call to itself). Implement the
//! trait for anything else.
//!
//! The per-issuer cache (crate-internal `KeyCache`) keeps the last good set
//! and turns each usable JWK into a ready verifier once. It refetches when
//! a token names an unknown `kid` or the set is older than its maximum age,
//! but never more than once per refetch interval per issuer (a flood of
//! tokens with made-up `kid`s must not become a flood of requests to the
//! authorization server); fetches are serialised, so concurrent requests
//! wait for one fetch instead of each starting their own. A failed fetch
//! keeps the old set in service.
//!
//! Which keys are usable: `use` absent or `sig`; `key_ops`, if present,
//! containing `verify`; and a type that fixes exactly one algorithm this
//! crate supports: EC P-256 for ES256, RSA of at least 2048 bits for RS256,
//! OKP Ed25519 for EdDSA. A JWK `alg`, if present, must name that same
//! algorithm. A token is then checked only with keys whose algorithm equals
//! its header `alg` (RFC 8725 §3.1: no algorithm confusion, never an HMAC
//! with a public key). Everything else in the set is skipped, not fatal.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsVerifier, RS256};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::clock::Clock;
use crate::error::KeySourceError;
use crate::fetch;
use latchkey_protocol::metadata::{
    AUTHORIZATION_SERVER_SUFFIX, AuthorizationServerMetadata, OPENID_CONFIGURATION_SUFFIX,
    well_known_url,
};

/// The most keys taken from one JWK Set.
const MAX_KEYS: usize = 64;

/// A JWS algorithm the validator can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256: Latchkey's default.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: what most identity providers use.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::Es256, Algorithm::Rs256, Algorithm::EdDsa];

    /// The JOSE name (`alg`, RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// The algorithm with this exact JOSE name (names are case-sensitive,
    /// RFC 7515 §4.1.1); `None` for `none`, HMACs and anything unsupported.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JWK Set document (RFC 7517 §5): the JSON served at a `jwks_uri`.
/// Each key is kept as its JSON object; unusable keys are skipped when the
/// set is loaded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl Jwks {
    /// Parses a JWK Set document.
    pub fn from_slice(bytes: &[u8]) -> Result<Jwks, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Where an issuer's signing keys come from.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The issuer's current JWK Set.
    async fn fetch_keys(&self) -> Result<Jwks, KeySourceError>;
}

/// An in-memory JWK Set, replaceable at any time: how a process that
/// issues tokens hands its own public keys to the validator. Call
/// [`StaticKeySource::replace`] on key rotation, then
/// [`TokenValidator::refresh_keys`](crate::TokenValidator::refresh_keys).
#[derive(Debug, Default)]
pub struct StaticKeySource {
    keys: RwLock<Jwks>,
}

impl StaticKeySource {
    /// A source holding `keys`.
    pub fn new(keys: Jwks) -> StaticKeySource {
        StaticKeySource {
            keys: RwLock::new(keys),
        }
    }

    /// Replaces the set.
    pub fn replace(&self, keys: Jwks) {
        // A poisoned lock only means a writer panicked mid-assignment of a
        // whole value; the data is still a complete set.
        let mut guard = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = keys;
    }
}

#[async_trait::async_trait]
impl KeySource for StaticKeySource {
    async fn fetch_keys(&self) -> Result<Jwks, KeySourceError> {
        let guard = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(guard.clone())
    }
}

/// Fetches a JWK Set over HTTP: from a fixed `jwks_uri`, or from the one the
/// issuer's discovery document names.
///
/// Discovery tries, in order, the RFC 8414 URL
/// (`/.well-known/oauth-authorization-server` inserted before the issuer's
/// path), the OpenID Connect URL inserted the same way, and the OpenID
/// Connect Discovery 1.0 form appended to the issuer; the first document
/// whose `issuer` equals the configured issuer byte-for-byte (RFC 8414 §3.3)
/// and which names a fetchable `jwks_uri` wins. The result is remembered;
/// a failed key fetch forgets it, so a moved `jwks_uri` is found again.
#[derive(Debug)]
pub struct HttpKeySource {
    client: reqwest::Client,
    location: Location,
}

#[derive(Debug)]
enum Location {
    Fixed(Url),
    Discover {
        issuer: String,
        resolved: tokio::sync::Mutex<Option<Url>>,
    },
}

impl HttpKeySource {
    /// Fetches from a known `jwks_uri`.
    pub fn new(client: reqwest::Client, jwks_uri: Url) -> HttpKeySource {
        HttpKeySource {
            client,
            location: Location::Fixed(jwks_uri),
        }
    }

    /// Discovers the `jwks_uri` from the issuer's metadata on first use.
    pub fn discover(client: reqwest::Client, issuer: impl Into<String>) -> HttpKeySource {
        HttpKeySource {
            client,
            location: Location::Discover {
                issuer: issuer.into(),
                resolved: tokio::sync::Mutex::new(None),
            },
        }
    }

    async fn fetch_from(&self, url: &Url) -> Result<Jwks, KeySourceError> {
        let body = fetch::get_document(&self.client, url, fetch::MAX_DOCUMENT_BYTES).await?;
        Jwks::from_slice(&body).map_err(|error| KeySourceError::InvalidDocument {
            url: url.to_string(),
            reason: error.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl KeySource for HttpKeySource {
    async fn fetch_keys(&self) -> Result<Jwks, KeySourceError> {
        match &self.location {
            Location::Fixed(url) => self.fetch_from(url).await,
            Location::Discover { issuer, resolved } => {
                let mut resolved = resolved.lock().await;
                let url = match resolved.as_ref() {
                    Some(url) => url.clone(),
                    None => {
                        let url = discover_jwks_uri(&self.client, issuer).await?;
                        *resolved = Some(url.clone());
                        url
                    }
                };
                let result = self.fetch_from(&url).await;
                if result.is_err() {
                    *resolved = None;
                }
                result
            }
        }
    }
}

/// The discovery URLs of an issuer, in the order MCP clients probe them
/// (RFC 8414 §3.1, then OpenID Connect Discovery 1.0 in both forms).
pub(crate) fn discovery_urls(issuer: &str) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for suffix in [AUTHORIZATION_SERVER_SUFFIX, OPENID_CONFIGURATION_SUFFIX] {
        if let Ok(url) = well_known_url(issuer, suffix) {
            urls.push(url);
        }
    }
    let appended = format!(
        "{}/.well-known/{OPENID_CONFIGURATION_SUFFIX}",
        issuer.trim_end_matches('/')
    );
    if !urls.contains(&appended) {
        urls.push(appended);
    }
    urls
}

/// Finds the issuer's `jwks_uri` (see [`HttpKeySource`]).
async fn discover_jwks_uri(client: &reqwest::Client, issuer: &str) -> Result<Url, KeySourceError> {
    for candidate in discovery_urls(issuer) {
        let Ok(url) = Url::parse(&candidate) else {
            continue;
        };
        let body = match fetch::get_document(client, &url, fetch::MAX_DOCUMENT_BYTES).await {
            Ok(body) => body,
            Err(error) => {
                tracing::debug!(%issuer, %error, "discovery document not available");
                continue;
            }
        };
        let metadata: AuthorizationServerMetadata = match serde_json::from_slice(&body) {
            Ok(metadata) => metadata,
            Err(error) => {
                tracing::warn!(%issuer, url = %url, %error, "discovery document is not valid JSON metadata");
                continue;
            }
        };
        if metadata.issuer != issuer {
            tracing::warn!(
                %issuer,
                url = %url,
                advertised = %metadata.issuer,
                "discovery document names another issuer; ignored (RFC 8414 section 3.3)"
            );
            continue;
        }
        let Some(jwks_uri) = metadata
            .jwks_uri
            .as_deref()
            .and_then(|raw| Url::parse(raw).ok())
        else {
            tracing::warn!(%issuer, url = %url, "discovery document has no usable jwks_uri");
            continue;
        };
        if let Err(error) = fetch::check_fetch_url(&jwks_uri) {
            tracing::warn!(%issuer, %error, "jwks_uri refused");
            continue;
        }
        return Ok(jwks_uri);
    }
    Err(KeySourceError::Discovery {
        issuer: issuer.to_owned(),
    })
}

/// One usable public key, ready to verify.
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: Algorithm,
    pub(crate) verifier: Box<dyn JwsVerifier>,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWK Set, and when it was loaded.
#[derive(Debug)]
pub(crate) struct KeySet {
    keys: Vec<VerificationKey>,
    loaded_at: Duration,
}

impl KeySet {
    /// Loads the usable keys of a set (see the module docs); an error when
    /// none is usable.
    pub(crate) fn load(jwks: &Jwks, loaded_at: Duration) -> Result<KeySet, KeySourceError> {
        let mut keys = Vec::new();
        for object in jwks.keys.iter().take(MAX_KEYS) {
            if let Some(key) = usable_key(object) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(KeySourceError::NoUsableKeys);
        }
        Ok(KeySet { keys, loaded_at })
    }

    /// The keys that may verify a token with this `kid` (any key when the
    /// token names none) and algorithm.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        algorithm: Algorithm,
    ) -> impl Iterator<Item = &'a VerificationKey> + 'a {
        self.keys.iter().filter(move |key| {
            key.algorithm == algorithm
                && kid.is_none_or(|wanted| key.kid.as_deref() == Some(wanted))
        })
    }

    /// How many keys are usable.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The one algorithm a JWK may be used with, if it is usable at all.
fn key_algorithm(object: &serde_json::Map<String, serde_json::Value>) -> Option<Algorithm> {
    let text = |name: &str| object.get(name).and_then(serde_json::Value::as_str);
    if object.get("use").is_some() && text("use") != Some("sig") {
        return None;
    }
    let by_type = match (text("kty")?, text("crv")) {
        ("EC", Some("P-256")) => Algorithm::Es256,
        ("RSA", _) => Algorithm::Rs256,
        ("OKP", Some("Ed25519")) => Algorithm::EdDsa,
        _ => return None,
    };
    match object.get("alg") {
        None => Some(by_type),
        Some(declared) => {
            (declared.as_str().and_then(Algorithm::parse) == Some(by_type)).then_some(by_type)
        }
    }
}

/// Builds the verifier for a usable key; `None` for anything josekit
/// refuses (short RSA keys, wrong `key_ops`, bad coordinates).
fn usable_key(object: &serde_json::Map<String, serde_json::Value>) -> Option<VerificationKey> {
    let algorithm = key_algorithm(object)?;
    let jwk = Jwk::from_map(object.clone()).ok()?;
    let verifier: Box<dyn JwsVerifier> = match algorithm {
        Algorithm::Es256 => Box::new(ES256.verifier_from_jwk(&jwk).ok()?),
        Algorithm::Rs256 => Box::new(RS256.verifier_from_jwk(&jwk).ok()?),
        Algorithm::EdDsa => Box::new(EdDSA.verifier_from_jwk(&jwk).ok()?),
    };
    Some(VerificationKey {
        kid: jwk.key_id().map(str::to_owned),
        algorithm,
        verifier,
    })
}

/// Timing of the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachePolicy {
    /// At most one fetch per issuer per this interval.
    pub(crate) refetch_interval: Duration,
    /// A set older than this is refetched (rate-limited like any fetch).
    pub(crate) max_age: Duration,
}

/// The cached keys of one issuer (see the module docs).
#[derive(Debug)]
pub(crate) struct KeyCache {
    issuer: String,
    source: Arc<dyn KeySource>,
    clock: Arc<dyn Clock>,
    policy: CachePolicy,
    current: RwLock<Option<Arc<KeySet>>>,
    /// When the last fetch started; the async mutex also serialises fetches.
    last_attempt: tokio::sync::Mutex<Option<Duration>>,
}

impl KeyCache {
    pub(crate) fn new(
        issuer: String,
        source: Arc<dyn KeySource>,
        clock: Arc<dyn Clock>,
        policy: CachePolicy,
    ) -> KeyCache {
        KeyCache {
            issuer,
            source,
            clock,
            policy,
            current: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key set to verify a token with this `kid` and algorithm: the
    /// cached one if it is fresh and has a candidate, otherwise whatever a
    /// (rate-limited) refetch leaves. `None` when no set was ever loaded.
    pub(crate) async fn keys_for(
        &self,
        kid: Option<&str>,
        algorithm: Algorithm,
    ) -> Option<Arc<KeySet>> {
        if let Some(set) = self.snapshot() {
            let age = self.clock.now().saturating_sub(set.loaded_at);
            let has_candidate = set.candidates(kid, algorithm).next().is_some();
            if has_candidate && age < self.policy.max_age {
                return Some(set);
            }
        }
        self.refresh(false).await.ok();
        self.snapshot()
    }

    /// Fetches the set unless one was fetched within the refetch interval
    /// (`force` skips that check). Returns how many keys are usable now.
    pub(crate) async fn refresh(&self, force: bool) -> Result<usize, KeySourceError> {
        let mut last_attempt = self.last_attempt.lock().await;
        let now = self.clock.now();
        let recently = last_attempt
            .and_then(|last| now.checked_sub(last))
            .is_some_and(|elapsed| elapsed < self.policy.refetch_interval);
        if recently && !force {
            return Ok(self.snapshot().map_or(0, |set| set.len()));
        }
        *last_attempt = Some(now);
        let loaded = match self.source.fetch_keys().await {
            Ok(jwks) => KeySet::load(&jwks, now),
            Err(error) => Err(error),
        };
        match loaded {
            Ok(set) => {
                let count = set.len();
                tracing::debug!(issuer = %self.issuer, keys = count, "signing keys loaded");
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(set));
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    %error,
                    "signing keys could not be refreshed; the previous set stays in use"
                );
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn algorithm_names_are_exact() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::parse(algorithm.as_str()), Some(algorithm));
        }
        for refused in ["none", "HS256", "es256", "RS384", "PS256", ""] {
            assert_eq!(Algorithm::parse(refused), None, "{refused}");
        }
    }

    #[test]
    fn key_algorithm_follows_type_and_declared_alg() {
        assert_eq!(
            key_algorithm(&object(json!({"kty": "EC", "crv": "P-256"}))),
            Some(Algorithm::Es256)
        );
        assert_eq!(
            key_algorithm(&object(json!({"kty": "RSA", "alg": "RS256", "use": "sig"}))),
            Some(Algorithm::Rs256)
        );
        assert_eq!(
            key_algorithm(&object(json!({"kty": "OKP", "crv": "Ed25519"}))),
            Some(Algorithm::EdDsa)
        );
        for unusable in [
            json!({"kty": "EC", "crv": "P-384"}),
            json!({"kty": "RSA", "alg": "PS256"}),
            json!({"kty": "RSA", "alg": "HS256"}),
            json!({"kty": "EC", "crv": "P-256", "alg": "RS256"}),
            json!({"kty": "RSA", "use": "enc"}),
            json!({"kty": "oct", "k": "c2VjcmV0"}),
            json!({"kty": "OKP", "crv": "X25519"}),
            json!({"crv": "P-256"}),
        ] {
            assert_eq!(key_algorithm(&object(unusable.clone())), None, "{unusable}");
        }
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        let jwks = Jwks {
            keys: vec![object(json!({"kty": "oct", "k": "c2VjcmV0"}))],
        };
        assert!(matches!(
            KeySet::load(&jwks, Duration::ZERO),
            Err(KeySourceError::NoUsableKeys)
        ));
    }

    #[test]
    fn discovery_urls_insert_then_append() {
        assert_eq!(
            discovery_urls("https://a.example/tenant"),
            vec![
                "https://a.example/.well-known/oauth-authorization-server/tenant",
                "https://a.example/.well-known/openid-configuration/tenant",
                "https://a.example/tenant/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            discovery_urls("https://a.example"),
            vec![
                "https://a.example/.well-known/oauth-authorization-server",
                "https://a.example/.well-known/openid-configuration",
            ]
        );
    }
}
