//! SHA-256 digests of high-entropy secrets, the only form in which codes,
//! refresh tokens, client secrets and session ids are stored.
//!
//! A fast hash is right for these values: they carry 256 bits of entropy, so
//! there is nothing to brute-force, and lookups by hash stay index-fast.
//! Passwords are the exception and are slow-hashed by the service.

use std::fmt;

/// The SHA-256 digest of a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes a secret as presented on the wire.
    pub fn of(secret: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut bytes = [0_u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }

    /// Rebuilds a hash from stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// The digest bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares with another hash in constant time.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        // Fold every byte so the time taken does not depend on where the
        // first difference is.
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0_u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Debug for SecretHash {
    /// Shows a short prefix only: enough to correlate log lines, useless to
    /// an attacker (the value is a hash anyway).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash(")?;
        for byte in self.0.iter().take(4) {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_sha256() {
        // SHA-256("abc"), FIPS 180-2 Appendix B.1.
        let hash = SecretHash::of("abc");
        assert_eq!(
            hash.as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "unexpected digest {hash:?}"
        );
        assert_eq!(SecretHash::from_slice(hash.as_bytes()), Some(hash));
        assert_eq!(SecretHash::from_slice(&[0; 31]), None);
    }

    #[test]
    fn constant_time_equality_agrees_with_eq() {
        let a = SecretHash::of("a");
        let b = SecretHash::of("b");
        assert!(a.ct_eq(&a));
        assert!(!a.ct_eq(&b));
        assert_eq!(format!("{a:?}").len(), "SecretHash(…)".len() + 8);
    }
}
