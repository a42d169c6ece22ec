//! Encryption of signing keys at rest: AES-256-GCM under a key derived
//! from the server secret.
//!
//! - The server secret is any string of at least [`MIN_SERVER_SECRET_LEN`]
//!   characters (the binary generates 32 random bytes, base64url). Every
//!   instance sharing a database must share it.
//! - The encryption key is HKDF-SHA-256 (RFC 5869) of the secret's bytes,
//!   with a fixed salt and an `info` naming the purpose and a version, so
//!   that the same secret can later derive other keys (cookie signing, …)
//!   without them ever being equal.
//! - Each private key is sealed with a fresh random 96-bit nonce and the
//!   key id as associated data (so a ciphertext moved to another key's row
//!   does not decrypt); the stored form is `nonce || ciphertext || tag`.
//!
//! Invariant: a wrong secret never yields garbage key material: GCM's tag
//! check fails, and the caller reports that the secret does not match.

use latchkey_protocol::secret::SecretString;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

/// The shortest server secret accepted, in bytes.
pub const MIN_SERVER_SECRET_LEN: usize = 32;

/// The HKDF salt: fixed, public, naming the application (RFC 5869 §3.1
/// allows a non-secret salt).
const HKDF_SALT: &[u8] = b"latchkey server secret v1";
/// The HKDF `info` for the signing-key encryption key.
const SIGNING_KEY_INFO: &[u8] = b"latchkey signing-key encryption AES-256-GCM v1";
/// The HKDF `info` for the key that signs the browser forms' CSRF tokens.
const CSRF_KEY_INFO: &[u8] = b"latchkey csrf HMAC-SHA256 v1";

/// The server secret, redacted in `Debug`.
#[derive(Clone)]
pub struct ServerSecret(SecretString);

impl ServerSecret {
    /// Wraps a secret; refuses one shorter than [`MIN_SERVER_SECRET_LEN`]
    /// bytes (whitespace around it is ignored, as a file may end in a
    /// newline).
    pub fn new(secret: &str) -> Result<ServerSecret, CryptoError> {
        let trimmed = secret.trim();
        if trimmed.len() < MIN_SERVER_SECRET_LEN {
            return Err(CryptoError::ShortSecret);
        }
        Ok(ServerSecret(SecretString::new(trimmed)))
    }

    /// The secret's bytes, for key derivation.
    fn bytes(&self) -> &[u8] {
        self.0.expose().as_bytes()
    }
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(<redacted>)")
    }
}

/// Why encryption or decryption failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The server secret is too short.
    #[error("the server secret must be at least {MIN_SERVER_SECRET_LEN} characters long")]
    ShortSecret,
    /// The tag did not verify: wrong secret, or a corrupted or moved row.
    #[error("the key does not decrypt: wrong server secret or corrupted data")]
    Decrypt,
    /// The random generator or the cipher failed.
    #[error("encryption failed")]
    Encrypt,
}

/// Derives the HMAC-SHA-256 key that signs CSRF tokens (see
/// `crate::sessions`): HKDF of the server secret with its own `info`, so it
/// is independent of the signing-key encryption key. Every instance sharing
/// the secret derives the same key, so a form rendered by one instance is
/// accepted by another.
pub(crate) fn derive_csrf_key(secret: &ServerSecret) -> Result<ring::hmac::Key, CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret.bytes());
    let info = [CSRF_KEY_INFO];
    let okm = prk
        .expand(&info, ring::hmac::HMAC_SHA256)
        .map_err(|_| CryptoError::Encrypt)?;
    Ok(ring::hmac::Key::from(okm))
}

/// The AES-256-GCM key that seals private signing keys.
pub struct KeyEncryption {
    key: LessSafeKey,
}

impl std::fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryption(<redacted>)")
    }
}

impl KeyEncryption {
    /// Derives the key from the server secret.
    pub fn derive(secret: &ServerSecret) -> Result<KeyEncryption, CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(secret.bytes());
        let info = [SIGNING_KEY_INFO];
        // `expand` fails only for outputs longer than 255 hash lengths;
        // 32 bytes never is.
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| CryptoError::Encrypt)?;
        Ok(KeyEncryption {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    /// Seals `plaintext` with `associated_data` (the key id): returns
    /// `nonce || ciphertext || tag`.
    pub fn seal(
        &self,
        random: &SystemRandom,
        associated_data: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce_bytes = [0_u8; NONCE_LEN];
        random
            .fill(&mut nonce_bytes)
            .map_err(|_| CryptoError::Encrypt)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(associated_data.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Encrypt)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`KeyEncryption::seal`] produced with the same associated
    /// data.
    pub fn open(&self, associated_data: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (nonce_bytes, ciphertext) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(CryptoError::Decrypt)?;
        let nonce =
            Nonce::try_assume_unique_for_key(nonce_bytes).map_err(|_| CryptoError::Decrypt)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(associated_data.as_bytes()), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> ServerSecret {
        ServerSecret::new(text).unwrap()
    }

    #[test]
    fn sealed_keys_open_with_the_same_secret_and_key_id_only() {
        let random = SystemRandom::new();
        let encryption = KeyEncryption::derive(&secret(&"a".repeat(43))).unwrap();
        let sealed = encryption.seal(&random, "kid-1", b"private key").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + b"private key".len() + 16);
        assert_eq!(encryption.open("kid-1", &sealed).unwrap(), b"private key");
        // The key id is authenticated.
        assert_eq!(encryption.open("kid-2", &sealed), Err(CryptoError::Decrypt));
        // Another secret derives another key.
        let other = KeyEncryption::derive(&secret(&"b".repeat(43))).unwrap();
        assert_eq!(other.open("kid-1", &sealed), Err(CryptoError::Decrypt));
        // Tampering and truncation are detected, never a panic.
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(
            encryption.open("kid-1", &tampered),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            encryption.open("kid-1", &sealed[..5]),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(encryption.open("kid-1", &[]), Err(CryptoError::Decrypt));
    }

    #[test]
    fn nonces_are_fresh() {
        let random = SystemRandom::new();
        let encryption = KeyEncryption::derive(&secret(&"a".repeat(43))).unwrap();
        let first = encryption.seal(&random, "k", b"same").unwrap();
        let second = encryption.seal(&random, "k", b"same").unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn short_secrets_are_refused_and_whitespace_ignored() {
        assert_eq!(
            ServerSecret::new("too short").unwrap_err(),
            CryptoError::ShortSecret
        );
        let padded = format!("{}\n", "s".repeat(32));
        let with_newline = KeyEncryption::derive(&secret(&padded)).unwrap();
        let without = KeyEncryption::derive(&secret(&"s".repeat(32))).unwrap();
        let sealed = with_newline.seal(&SystemRandom::new(), "k", b"x").unwrap();
        assert_eq!(without.open("k", &sealed).unwrap(), b"x");
        assert!(!format!("{:?}", secret(&padded)).contains("sss"));
    }
}
