//! Token-signing keys: generation on first start, encryption at rest,
//! rotation, the published JWK Set, and signing and verifying access
//! tokens.
//!
//! Life cycle (`latchkey_store::KeyState`): a key is generated and stored
//! encrypted ([`crypto`]); it becomes **active** (signs every new token);
//! when another key is activated it is **retired** with a `not_after` of
//! `now + access-token lifetime + reload interval`, the moment after which
//! no unexpired token can carry its signature, even one signed by an
//! instance that had not yet reloaded; until then it stays in the JWKS so
//! that tokens it signed still verify. The store's clean-up deletes it
//! afterwards.
//!
//! Invariants:
//! - exactly one active key exists once [`KeyManager::load_or_create`]
//!   returns: instances starting at once race on `insert_key`, the store
//!   lets one active key in, and the losers reload and use the winner's;
//! - only the active key's private half is ever decrypted, and a wrong
//!   server secret is reported as [`KeyError::WrongSecret`] at start-up,
//!   never as a panic or as a key that signs garbage;
//! - the signer for the active key is built once per load, not per token;
//! - the published JWKS never contains private key members.

pub mod crypto;
pub(crate) mod material;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, JwsSigner, JwsVerifier};
use latchkey_store::{KeyState, SigningKeyRecord, Store, StoreError};
use ring::rand::SystemRandom;
use time::OffsetDateTime;

use crate::clock::add;
use crate::config::SigningAlgorithm;
use crate::secrets::generate_identifier;
use crypto::{CryptoError, KeyEncryption};

/// The `typ` header of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The longest token [`KeyManager::verify`] looks at; Latchkey's tokens
/// are well under 2 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// How often, at most, an unknown `kid` triggers a reload of the keys
/// (another instance may have rotated): a flood of tokens with made-up key
/// ids must not become a flood of store reads.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// How a [`KeyManager`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    /// The algorithm of new keys (an existing active key of another
    /// algorithm keeps signing until the next rotation).
    pub algorithm: SigningAlgorithm,
    /// The access-token lifetime: how long a retired key stays published.
    pub access_token_lifetime: Duration,
    /// How often instances reload keys: added to the retirement window.
    pub reload_interval: Duration,
}

/// Why keys could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The active key does not decrypt under this server secret.
    #[error(
        "the server secret does not match the one the signing keys were encrypted with \
         (key {kid}): start with the original secret (--secret, LATCHKEY_SECRET or \
         <data-dir>/secret); every instance sharing a database must share it"
    )]
    WrongSecret {
        /// The key that did not decrypt.
        kid: String,
    },
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Key material could not be generated or read.
    #[error("signing key error: {0}")]
    Material(String),
    /// No active key exists (after creating one was attempted).
    #[error("no active signing key in the store")]
    NoActiveKey,
}

impl From<material::MaterialError> for KeyError {
    fn from(error: material::MaterialError) -> KeyError {
        KeyError::Material(error.0)
    }
}

/// A key as listed by `latchkey keys list`: no key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key id (`kid`).
    pub kid: String,
    /// The JWS algorithm.
    pub alg: String,
    /// Next, active or retired.
    pub state: KeyState,
    /// When it was generated.
    pub created_at: OffsetDateTime,
    /// When it became active.
    pub activated_at: Option<OffsetDateTime>,
    /// When it was retired.
    pub retired_at: Option<OffsetDateTime>,
    /// When it leaves the JWKS.
    pub not_after: Option<OffsetDateTime>,
}

impl From<&SigningKeyRecord> for KeyInfo {
    fn from(record: &SigningKeyRecord) -> KeyInfo {
        KeyInfo {
            kid: record.kid.clone(),
            alg: record.alg.clone(),
            state: record.state,
            created_at: record.created_at,
            activated_at: record.activated_at,
            retired_at: record.retired_at,
            not_after: record.not_after,
        }
    }
}

/// The active key, ready to sign.
struct ActiveKey {
    kid: String,
    signer: Box<dyn JwsSigner>,
}

/// A published key, ready to verify.
struct PublishedKey {
    kid: String,
    state: KeyState,
    not_after: Option<OffsetDateTime>,
    jwk: Jwk,
    verifier: Box<dyn JwsVerifier>,
}

/// Everything loaded from one `list_keys`.
struct KeyRing {
    /// What the ring was built from, to skip rebuilding when nothing
    /// changed.
    fingerprint: Vec<(String, KeyState, Option<OffsetDateTime>)>,
    active: ActiveKey,
    published: Vec<PublishedKey>,
}

/// What verifying a token's signature found.
pub(crate) enum Verification {
    /// The signature is valid and `typ` is `at+jwt`: the payload bytes.
    Valid(Vec<u8>),
    /// The token names a key this instance does not know (yet).
    UnknownKey,
    /// Anything else: malformed, bad signature, wrong type.
    Invalid,
}

/// Loads, rotates and uses the signing keys. Cheap to share (`Arc`).
pub struct KeyManager {
    store: Arc<dyn Store>,
    encryption: KeyEncryption,
    settings: KeySettings,
    random: SystemRandom,
    ring: RwLock<Arc<KeyRing>>,
    /// When the keys were last read from the store.
    loaded_at: Mutex<OffsetDateTime>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Loads the keys; on first start (no active key) generates one and
    /// stores it as active. If another instance stored one first, uses
    /// that one.
    pub async fn load_or_create(
        store: Arc<dyn Store>,
        encryption: KeyEncryption,
        settings: KeySettings,
        now: OffsetDateTime,
    ) -> Result<KeyManager, KeyError> {
        let random = SystemRandom::new();
        let mut records = store.list_keys().await?;
        if !records
            .iter()
            .any(|record| record.state == KeyState::Active)
        {
            let record = new_key_record(
                &encryption,
                &random,
                settings.algorithm,
                KeyState::Active,
                now,
            )
            .await?;
            match store.insert_key(&record).await {
                Ok(()) => {
                    tracing::info!(kid = %record.kid, alg = %record.alg, "generated the first signing key");
                }
                Err(StoreError::Conflict { .. }) => {
                    tracing::info!("another instance created the signing key first; using it");
                }
                Err(other) => return Err(other.into()),
            }
            records = store.list_keys().await?;
        }
        let ring = build_ring(&encryption, &records, None, now)?;
        let manager = KeyManager {
            store,
            encryption,
            settings,
            random,
            ring: RwLock::new(Arc::new(ring)),
            loaded_at: Mutex::new(now),
        };
        manager.warn_on_algorithm_change(&records);
        Ok(manager)
    }

    /// Lists every stored key, without loading any (`latchkey keys list`).
    pub async fn list(store: &dyn Store) -> Result<Vec<KeyInfo>, KeyError> {
        Ok(store.list_keys().await?.iter().map(KeyInfo::from).collect())
    }

    /// Reloads the keys from the store (another instance may have rotated).
    /// Returns whether anything changed.
    pub async fn reload(&self, now: OffsetDateTime) -> Result<bool, KeyError> {
        let records = self.store.list_keys().await?;
        *self
            .loaded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = now;
        let current = self.current();
        if fingerprint(&records) == current.fingerprint {
            return Ok(false);
        }
        let ring = build_ring(&self.encryption, &records, Some(&current), now)?;
        self.replace(Arc::new(ring));
        Ok(true)
    }

    /// Reloads if the keys were last loaded more than a few seconds ago:
    /// for tokens that name an unknown key.
    pub(crate) async fn reload_if_stale(&self, now: OffsetDateTime) -> Result<bool, KeyError> {
        let loaded_at = *self
            .loaded_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now - loaded_at < UNKNOWN_KID_RELOAD_INTERVAL {
            return Ok(false);
        }
        self.reload(now).await
    }

    /// Generates a new key with the configured algorithm and makes it the
    /// active one; the previous key is retired and stays published until
    /// `now + access-token lifetime + reload interval`.
    pub async fn rotate(&self, now: OffsetDateTime) -> Result<KeyInfo, KeyError> {
        let record = new_key_record(
            &self.encryption,
            &self.random,
            self.settings.algorithm,
            KeyState::Next,
            now,
        )
        .await?;
        self.store.insert_key(&record).await?;
        let retired_not_after = add(
            add(now, self.settings.access_token_lifetime),
            self.settings.reload_interval,
        );
        if !self
            .store
            .activate_key(&record.kid, now, retired_not_after)
            .await?
        {
            return Err(KeyError::NoActiveKey);
        }
        self.reload(now).await?;
        let activated = self
            .store
            .list_keys()
            .await?
            .iter()
            .find(|stored| stored.kid == record.kid)
            .map(KeyInfo::from)
            .ok_or(KeyError::NoActiveKey)?;
        tracing::info!(kid = %activated.kid, alg = %activated.alg, "rotated the signing key");
        Ok(activated)
    }

    /// The active key's id.
    pub fn active_kid(&self) -> String {
        self.current().active.kid.clone()
    }

    /// The JWK Set to publish at `now`: the active key, any next key, and
    /// retired keys whose `not_after` is still ahead.
    pub fn jwks(&self, now: OffsetDateTime) -> serde_json::Value {
        let ring = self.current();
        let keys: Vec<serde_json::Value> = ring
            .published
            .iter()
            .filter(|key| is_published(key.state, key.not_after, now))
            .map(|key| serde_json::Value::Object(key.jwk.as_ref().clone()))
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs `payload` (the JSON claims) with the active key, with header
    /// `typ: at+jwt`, `alg` and `kid`.
    pub(crate) fn sign(&self, payload: &[u8]) -> Result<String, KeyError> {
        let ring = self.current();
        let mut header = JwsHeader::new();
        header.set_token_type(ACCESS_TOKEN_TYPE);
        josekit::jws::serialize_compact(payload, &header, ring.active.signer.as_ref())
            .map_err(|error| KeyError::Material(format!("signing failed: {error}")))
    }

    /// Checks a token's signature against the loaded keys (retired ones
    /// included) and its `typ`. Claims are not looked at here.
    pub(crate) fn verify(&self, token: &str) -> Verification {
        if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Verification::Invalid;
        }
        let ring = self.current();
        let Some(kid) = header_kid(token) else {
            return Verification::Invalid;
        };
        let Some(key) = ring.published.iter().find(|key| key.kid == kid) else {
            return Verification::UnknownKey;
        };
        let verified = josekit::jws::deserialize_compact_with_selector(token, |header| {
            if header.claim("crit").is_some() {
                return Ok(None);
            }
            Ok(Some(key.verifier.as_ref()))
        });
        match verified {
            Ok((payload, header)) if header.token_type() == Some(ACCESS_TOKEN_TYPE) => {
                Verification::Valid(payload)
            }
            _ => Verification::Invalid,
        }
    }

    fn current(&self) -> Arc<KeyRing> {
        let guard = self
            .ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard)
    }

    fn replace(&self, ring: Arc<KeyRing>) {
        let mut guard = self
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *guard = ring;
    }

    fn warn_on_algorithm_change(&self, records: &[SigningKeyRecord]) {
        let active = records
            .iter()
            .find(|record| record.state == KeyState::Active);
        if let Some(active) = active
            && active.alg != self.settings.algorithm.as_str()
        {
            tracing::warn!(
                active_alg = %active.alg,
                configured_alg = %self.settings.algorithm,
                "the active signing key uses another algorithm than configured; \
                 run `latchkey keys rotate` to switch"
            );
        }
    }
}

/// Whether a key belongs in the JWKS at `now`.
fn is_published(state: KeyState, not_after: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    match state {
        KeyState::Active | KeyState::Next => true,
        KeyState::Retired => not_after.is_some_and(|not_after| not_after > now),
    }
}

/// The `kid` of a compact JWS header, without verifying anything.
fn header_kid(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    object.get("kid")?.as_str().map(str::to_owned)
}

fn fingerprint(records: &[SigningKeyRecord]) -> Vec<(String, KeyState, Option<OffsetDateTime>)> {
    records
        .iter()
        .map(|record| (record.kid.clone(), record.state, record.not_after))
        .collect()
}

/// Builds a ring from stored records: decrypts the active key (reusing the
/// previous ring's signer when the active key did not change) and loads a
/// verifier for every key still published.
fn build_ring(
    encryption: &KeyEncryption,
    records: &[SigningKeyRecord],
    previous: Option<&KeyRing>,
    now: OffsetDateTime,
) -> Result<KeyRing, KeyError> {
    let active_record = records
        .iter()
        .find(|record| record.state == KeyState::Active)
        .ok_or(KeyError::NoActiveKey)?;
    let active = match previous.filter(|ring| ring.active.kid == active_record.kid) {
        Some(ring) => ActiveKey {
            kid: ring.active.kid.clone(),
            signer: ring.active.signer.clone(),
        },
        None => {
            let algorithm = material::algorithm_of(&active_record.alg)?;
            let private_der = encryption
                .open(&active_record.kid, &active_record.private_key_encrypted)
                .map_err(|error| match error {
                    CryptoError::Decrypt => KeyError::WrongSecret {
                        kid: active_record.kid.clone(),
                    },
                    other => KeyError::Material(other.to_string()),
                })?;
            ActiveKey {
                kid: active_record.kid.clone(),
                signer: material::signer(algorithm, &active_record.kid, &private_der)?,
            }
        }
    };
    let mut published = Vec::new();
    for record in records {
        if !is_published(record.state, record.not_after, now) {
            continue;
        }
        let algorithm = material::algorithm_of(&record.alg)?;
        let (jwk, verifier) = material::verifier(algorithm, &record.public_jwk)?;
        published.push(PublishedKey {
            kid: record.kid.clone(),
            state: record.state,
            not_after: record.not_after,
            jwk,
            verifier,
        });
    }
    Ok(KeyRing {
        fingerprint: fingerprint(records),
        active,
        published,
    })
}

/// Generates a key (on a blocking thread: RSA generation is slow) and
/// seals its private half.
async fn new_key_record(
    encryption: &KeyEncryption,
    random: &SystemRandom,
    algorithm: SigningAlgorithm,
    state: KeyState,
    now: OffsetDateTime,
) -> Result<SigningKeyRecord, KeyError> {
    let kid = generate_identifier(random).map_err(|error| KeyError::Material(error.to_string()))?;
    let generating_kid = kid.clone();
    let generating_random = random.clone();
    let generated = tokio::task::spawn_blocking(move || {
        material::generate(algorithm, &generating_kid, &generating_random)
    })
    .await
    .map_err(|error| KeyError::Material(format!("key generation did not finish: {error}")))??;
    let private_key_encrypted = encryption
        .seal(random, &kid, &generated.private_der)
        .map_err(|error| KeyError::Material(error.to_string()))?;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    Ok(SigningKeyRecord {
        kid,
        alg: algorithm.as_str().to_owned(),
        private_key_encrypted,
        public_jwk: generated.public_jwk.to_string(),
        state,
        created_at: now,
        activated_at: (state == KeyState::Active).then_some(now),
        retired_at: None,
        not_after: None,
    })
}

#[cfg(test)]
mod tests;
