//! Random identifiers and secrets, all drawn from `ring`'s `SystemRandom`.
//!
//! Secrets (authorization codes, refresh tokens, client secrets) are 256
//! random bits, base64url without padding (43 characters), behind a short
//! prefix naming their kind: `lkc_` for codes, `lkr_` for refresh tokens,
//! `lks_` for client secrets. The prefix lets secret scanners recognise a
//! leaked Latchkey credential and lets revocation and introspection tell a
//! refresh token from a JWT without a database lookup. Only their SHA-256
//! (`latchkey_store::SecretHash`) is ever stored.
//!
//! Identifiers (client ids, JWT `jti`s, refresh-token families, key ids)
//! are 128 random bits, base64url (22 characters). A base64url string
//! never contains `:` or `/`, so a generated client id can never be
//! mistaken for a Client ID Metadata Document URL (`https://…`), which
//! the MCP specification requires.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_protocol::secret::SecretString;
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::FlowError;

/// The prefix of authorization codes.
pub const CODE_PREFIX: &str = "lkc_";
/// The prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "lkr_";
/// The prefix of client secrets.
pub const CLIENT_SECRET_PREFIX: &str = "lks_";

/// What a generated secret is for; decides its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// An authorization code (`lkc_`).
    AuthorizationCode,
    /// A refresh token (`lkr_`).
    RefreshToken,
    /// A client secret (`lks_`).
    ClientSecret,
}

impl SecretKind {
    /// The prefix of secrets of this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            SecretKind::AuthorizationCode => CODE_PREFIX,
            SecretKind::RefreshToken => REFRESH_TOKEN_PREFIX,
            SecretKind::ClientSecret => CLIENT_SECRET_PREFIX,
        }
    }
}

/// `N` random bytes.
pub(crate) fn random_bytes<const N: usize>(random: &SystemRandom) -> Result<[u8; N], FlowError> {
    let mut bytes = [0_u8; N];
    random
        .fill(&mut bytes)
        .map_err(|_| FlowError::Internal("the system random number generator failed".to_owned()))?;
    Ok(bytes)
}

/// A new 256-bit secret of the given kind: prefix + 43 base64url characters.
pub fn generate_secret(random: &SystemRandom, kind: SecretKind) -> Result<SecretString, FlowError> {
    let bytes: [u8; 32] = random_bytes(random)?;
    Ok(SecretString::new(format!(
        "{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(bytes)
    )))
}

/// A new 128-bit identifier: 22 base64url characters.
pub fn generate_identifier(random: &SystemRandom) -> Result<String, FlowError> {
    let bytes: [u8; 16] = random_bytes(random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new server secret: 32 random bytes, base64url (43 characters). The
/// binary writes it to `<data-dir>/secret` on first start.
pub fn generate_server_secret(random: &SystemRandom) -> Result<SecretString, FlowError> {
    let bytes: [u8; 32] = random_bytes(random)?;
    Ok(SecretString::new(URL_SAFE_NO_PAD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_carry_their_prefix_and_256_bits() {
        let random = SystemRandom::new();
        for kind in [
            SecretKind::AuthorizationCode,
            SecretKind::RefreshToken,
            SecretKind::ClientSecret,
        ] {
            let secret = generate_secret(&random, kind).unwrap();
            let value = secret.expose();
            let encoded = value.strip_prefix(kind.prefix()).unwrap();
            assert_eq!(encoded.len(), 43);
            assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap().len(), 32);
        }
        let first = generate_secret(&random, SecretKind::RefreshToken).unwrap();
        let second = generate_secret(&random, SecretKind::RefreshToken).unwrap();
        assert_ne!(first.expose(), second.expose());
    }

    #[test]
    fn identifiers_are_22_url_safe_characters_and_never_urls() {
        let random = SystemRandom::new();
        for _ in 0..200 {
            let id = generate_identifier(&random).unwrap();
            assert_eq!(id.len(), 22);
            assert!(
                id.bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'),
                "{id}"
            );
            assert!(!id.starts_with("https://"));
        }
    }

    #[test]
    fn server_secrets_are_32_bytes() {
        let secret = generate_server_secret(&SystemRandom::new()).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(secret.expose()).unwrap().len(), 32);
    }
}
