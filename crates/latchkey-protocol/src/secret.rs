//! Secret strings that never show up in logs, and constant-time comparison.
//!
//! Authorization codes, refresh tokens, access tokens presented for
//! revocation or introspection, and client secrets travel through request
//! types as [`SecretString`]. Its `Debug` prints only a redaction marker, so
//! a `tracing` field or a `{:?}` in an error cannot leak the value; reading
//! it takes an explicit [`SecretString::expose`].
//!
//! [`constant_time_eq`] compares secrets without leaking, through timing,
//! how long a common prefix is or how long the expected value is.

use std::fmt;

use std::hint::black_box;

/// A string that must never be logged: a code, a token or a client secret.
///
/// ```
/// use latchkey_protocol::secret::SecretString;
///
/// let secret = SecretString::new("s3cr3t");
/// assert_eq!(format!("{secret:?}"), "SecretString(<redacted>)");
/// assert_eq!(secret.expose(), "s3cr3t");
/// assert!(secret.constant_time_eq("s3cr3t"));
/// ```
#[derive(Clone, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> SecretString {
        SecretString(value.into())
    }

    /// The secret itself. Call this only where the value is used (hashed,
    /// compared, looked up), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in constant time (see [`constant_time_eq`]).
    pub fn constant_time_eq(&self, other: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), other.as_bytes())
    }
}

impl PartialEq for SecretString {
    /// Constant-time, so that `==` on secrets is never a timing oracle.
    fn eq(&self, other: &SecretString) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Compares two byte strings in time that depends on neither their contents
/// nor their lengths.
///
/// Both sides are first hashed with SHA-256, which maps any length to 32
/// bytes, and the digests are then folded byte by byte without an early exit.
/// A match of the digests means a match of the inputs (SHA-256 is collision
/// resistant). This is for secrets compared against a presented value; when
/// the stored form is already a fixed-length digest, hashing again is
/// harmless.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    let left_digest = ring::digest::digest(&ring::digest::SHA256, left);
    let right_digest = ring::digest::digest(&ring::digest::SHA256, right);
    fixed_length_constant_time_eq(left_digest.as_ref(), right_digest.as_ref())
}

/// Folds two equally long slices without branching on their contents;
/// slices of different lengths compare unequal (lengths are public here).
pub(crate) fn fixed_length_constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let difference = left
        .iter()
        .zip(right.iter())
        .fold(0_u8, |accumulator, (a, b)| black_box(accumulator | (a ^ b)));
    black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = SecretString::new("refresh-token-value");
        let debug = format!("{secret:?}");
        assert!(!debug.contains("refresh"), "{debug}");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: SecretString,
        }
        let holder = format!("{:?}", Holder { token: secret });
        assert!(!holder.contains("refresh"), "{holder}");
    }

    #[test]
    fn constant_time_eq_agrees_with_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(SecretString::new("x").constant_time_eq("x"));
        assert!(!SecretString::new("x").constant_time_eq("y"));
    }

    #[test]
    fn fixed_length_comparison_refuses_other_lengths() {
        assert!(fixed_length_constant_time_eq(&[1, 2], &[1, 2]));
        assert!(!fixed_length_constant_time_eq(&[1, 2], &[1, 3]));
        assert!(!fixed_length_constant_time_eq(&[1, 2], &[1]));
    }
}
