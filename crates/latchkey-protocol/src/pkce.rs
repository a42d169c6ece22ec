//! Proof Key for Code Exchange (RFC 7636), S256 only.
//!
//! Invariants:
//! - a [`CodeVerifier`] is 43 to 128 characters of
//!   ALPHA / DIGIT / "-" / "." / "_" / "~" (RFC 7636 §4.1);
//! - a [`CodeChallenge`] is an S256 challenge: exactly 43 base64url
//!   characters without padding that decode to a 32-byte SHA-256 digest
//!   (RFC 7636 §4.2);
//! - the `plain` method is refused: OAuth 2.1 §4.1.1 lets servers refuse it
//!   and the MCP specification requires S256, so only S256 is advertised
//!   and accepted. A missing `code_challenge_method` means `plain`
//!   (RFC 7636 §4.3), so it is refused the same way.
//!
//! Verification compares digests in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;

use crate::error::{ErrorCode, OAuthError};
use crate::secret::fixed_length_constant_time_eq;

/// The shortest code verifier allowed (RFC 7636 §4.1).
pub const MIN_VERIFIER_LEN: usize = 43;
/// The longest code verifier allowed (RFC 7636 §4.1).
pub const MAX_VERIFIER_LEN: usize = 128;
/// The length of an S256 code challenge: 32 bytes in unpadded base64url.
pub const S256_CHALLENGE_LEN: usize = 43;

/// Why a PKCE value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// The verifier is shorter than 43 or longer than 128 characters.
    #[error(
        "code_verifier must be {MIN_VERIFIER_LEN} to {MAX_VERIFIER_LEN} characters long (RFC 7636 section 4.1), got {length}"
    )]
    VerifierLength {
        /// The length received, in bytes.
        length: usize,
    },
    /// The verifier contains a character outside the unreserved set.
    #[error(
        "code_verifier may only contain ALPHA, DIGIT, '-', '.', '_' and '~' (RFC 7636 section 4.1)"
    )]
    VerifierCharacter,
    /// The challenge is not 43 unpadded base64url characters of a SHA-256
    /// digest.
    #[error(
        "code_challenge must be the unpadded base64url SHA-256 of the code_verifier: exactly 43 characters (RFC 7636 section 4.2)"
    )]
    MalformedChallenge,
    /// `code_challenge_method=plain`, or no method (which means plain).
    #[error("code_challenge_method plain is not supported: use S256 (RFC 7636 section 4.2)")]
    PlainNotSupported,
    /// A method other than S256 or plain.
    #[error("code_challenge_method is not supported: use S256")]
    UnsupportedMethod,
    /// The verifier does not hash to the stored challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
    /// The random number generator failed.
    #[error("the system random number generator failed")]
    RandomFailed,
}

impl PkceError {
    /// The OAuth error code this failure maps to.
    ///
    /// A verifier that does not match is `invalid_grant` (RFC 7636 §4.6);
    /// a random-generator failure is `server_error`; every malformed or
    /// unsupported value is `invalid_request` (RFC 7636 §4.4.1).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            PkceError::Mismatch => ErrorCode::InvalidGrant,
            PkceError::RandomFailed => ErrorCode::ServerError,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

impl From<PkceError> for OAuthError {
    fn from(error: PkceError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// The only supported `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CodeChallengeMethod {
    /// `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2).
    #[default]
    S256,
}

impl CodeChallengeMethod {
    /// Parses a `code_challenge_method` value (case-sensitive, as registered).
    ///
    /// ```
    /// use latchkey_protocol::pkce::{CodeChallengeMethod, PkceError};
    ///
    /// assert_eq!(CodeChallengeMethod::parse("S256"), Ok(CodeChallengeMethod::S256));
    /// assert_eq!(CodeChallengeMethod::parse("plain"), Err(PkceError::PlainNotSupported));
    /// assert_eq!(CodeChallengeMethod::parse("s256"), Err(PkceError::UnsupportedMethod));
    /// ```
    pub fn parse(method: &str) -> Result<CodeChallengeMethod, PkceError> {
        match method {
            "S256" => Ok(CodeChallengeMethod::S256),
            "plain" => Err(PkceError::PlainNotSupported),
            _ => Err(PkceError::UnsupportedMethod),
        }
    }

    /// Parses the method of an authorization request, where absence means
    /// `plain` (RFC 7636 §4.3) and is therefore refused.
    pub fn parse_optional(method: Option<&str>) -> Result<CodeChallengeMethod, PkceError> {
        match method {
            Some(method) => CodeChallengeMethod::parse(method),
            None => Err(PkceError::PlainNotSupported),
        }
    }

    /// The registered name, `"S256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeChallengeMethod::S256 => "S256",
        }
    }
}

impl fmt::Display for CodeChallengeMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PKCE code verifier. Its `Debug` is redacted: it is a secret until the
/// code has been redeemed.
#[derive(Clone, Eq)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// Parses a verifier received in a token request (RFC 7636 §4.1).
    ///
    /// ```
    /// use latchkey_protocol::pkce::CodeVerifier;
    ///
    /// assert!(CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").is_ok());
    /// assert!(CodeVerifier::parse("too-short").is_err());
    /// ```
    pub fn parse(verifier: &str) -> Result<CodeVerifier, PkceError> {
        if !(MIN_VERIFIER_LEN..=MAX_VERIFIER_LEN).contains(&verifier.len()) {
            return Err(PkceError::VerifierLength {
                length: verifier.len(),
            });
        }
        if !verifier.bytes().all(is_unreserved) {
            return Err(PkceError::VerifierCharacter);
        }
        Ok(CodeVerifier(verifier.to_owned()))
    }

    /// Generates a verifier from 32 random bytes, base64url-encoded to 43
    /// characters as RFC 7636 §4.1 recommends, for when Latchkey is itself
    /// an OAuth client.
    ///
    /// ```
    /// use latchkey_protocol::pkce::CodeVerifier;
    ///
    /// let verifier = CodeVerifier::generate(&ring::rand::SystemRandom::new()).unwrap();
    /// assert_eq!(verifier.as_str().len(), 43);
    /// ```
    pub fn generate(random: &dyn SecureRandom) -> Result<CodeVerifier, PkceError> {
        let mut bytes = [0_u8; 32];
        random
            .fill(&mut bytes)
            .map_err(|_| PkceError::RandomFailed)?;
        Ok(CodeVerifier(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The verifier, to send in a token request.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for CodeVerifier {
    /// Constant-time: a verifier is a secret.
    fn eq(&self, other: &CodeVerifier) -> bool {
        crate::secret::constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier(<redacted>)")
    }
}

/// An S256 code challenge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Parses a `code_challenge` received in an authorization request.
    ///
    /// The value must be exactly what an S256 challenge can be: 43 base64url
    /// characters, no padding, decoding to 32 bytes with no stray trailing
    /// bits. Anything else could never match a verifier, so it is refused up
    /// front with a precise error instead of failing later at the token
    /// endpoint.
    pub fn parse(challenge: &str) -> Result<CodeChallenge, PkceError> {
        if challenge.len() != S256_CHALLENGE_LEN {
            return Err(PkceError::MalformedChallenge);
        }
        match URL_SAFE_NO_PAD.decode(challenge) {
            Ok(digest) if digest.len() == 32 => Ok(CodeChallenge(challenge.to_owned())),
            _ => Err(PkceError::MalformedChallenge),
        }
    }

    /// Computes the S256 challenge of a verifier (RFC 7636 §4.2).
    ///
    /// ```
    /// use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
    ///
    /// // RFC 7636 Appendix B.
    /// let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
    /// let challenge = CodeChallenge::s256(&verifier);
    /// assert_eq!(challenge.as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    /// assert!(challenge.verify(&verifier).is_ok());
    /// ```
    pub fn s256(verifier: &CodeVerifier) -> CodeChallenge {
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.0.as_bytes());
        CodeChallenge(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    /// Checks that `verifier` hashes to this challenge, comparing the
    /// digests in constant time (RFC 7636 §4.6).
    pub fn verify(&self, verifier: &CodeVerifier) -> Result<(), PkceError> {
        let expected = URL_SAFE_NO_PAD
            .decode(&self.0)
            .map_err(|_| PkceError::MalformedChallenge)?;
        let actual = ring::digest::digest(&ring::digest::SHA256, verifier.0.as_bytes());
        if fixed_length_constant_time_eq(&expected, actual.as_ref()) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }

    /// The challenge as sent by the client, for storage with the code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The RFC 3986 unreserved set, which RFC 7636 §4.1 allows in a verifier.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    const APPENDIX_B_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const APPENDIX_B_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_appendix_b_vector() {
        let verifier = CodeVerifier::parse(APPENDIX_B_VERIFIER).unwrap();
        let challenge = CodeChallenge::s256(&verifier);
        assert_eq!(challenge.as_str(), APPENDIX_B_CHALLENGE);
        let parsed = CodeChallenge::parse(APPENDIX_B_CHALLENGE).unwrap();
        assert_eq!(parsed, challenge);
        assert_eq!(parsed.verify(&verifier), Ok(()));
    }

    #[test]
    fn verifier_length_bounds_are_43_and_128() {
        assert!(CodeVerifier::parse(&"a".repeat(43)).is_ok());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_ok());
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(42)),
            Err(PkceError::VerifierLength { length: 42 })
        );
        assert_eq!(
            CodeVerifier::parse(&"a".repeat(129)),
            Err(PkceError::VerifierLength { length: 129 })
        );
        assert_eq!(
            CodeVerifier::parse(""),
            Err(PkceError::VerifierLength { length: 0 })
        );
    }

    #[test]
    fn verifier_characters_are_the_unreserved_set() {
        let base = "a".repeat(42);
        for allowed in ['-', '.', '_', '~', 'Z', '0'] {
            assert!(
                CodeVerifier::parse(&format!("{base}{allowed}")).is_ok(),
                "{allowed}"
            );
        }
        for refused in ['+', '/', '=', ' ', '%', '!', '*'] {
            assert_eq!(
                CodeVerifier::parse(&format!("{base}{refused}")),
                Err(PkceError::VerifierCharacter),
                "{refused}"
            );
        }
        // 43 bytes but not 43 ASCII characters.
        assert!(CodeVerifier::parse(&format!("{}é", "a".repeat(41))).is_err());
    }

    #[test]
    fn challenges_must_be_canonical_s256() {
        // Padding, wrong length, the standard alphabet and non-canonical
        // trailing bits are all refused.
        for refused in [
            "",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN",
            &"a".repeat(128),
        ] {
            assert_eq!(
                CodeChallenge::parse(refused),
                Err(PkceError::MalformedChallenge),
                "{refused}"
            );
        }
    }

    #[test]
    fn methods_accept_only_s256() {
        assert_eq!(
            CodeChallengeMethod::parse("S256"),
            Ok(CodeChallengeMethod::S256)
        );
        assert_eq!(
            CodeChallengeMethod::parse("plain"),
            Err(PkceError::PlainNotSupported)
        );
        assert_eq!(
            CodeChallengeMethod::parse_optional(None),
            Err(PkceError::PlainNotSupported)
        );
        assert_eq!(
            CodeChallengeMethod::parse_optional(Some("S256")),
            Ok(CodeChallengeMethod::S256)
        );
        for unknown in ["s256", "SHA256", "S512", ""] {
            assert_eq!(
                CodeChallengeMethod::parse(unknown),
                Err(PkceError::UnsupportedMethod)
            );
        }
        assert_eq!(CodeChallengeMethod::S256.to_string(), "S256");
    }

    #[test]
    fn a_different_verifier_does_not_verify() {
        let challenge = CodeChallenge::parse(APPENDIX_B_CHALLENGE).unwrap();
        let other = CodeVerifier::parse(&"b".repeat(43)).unwrap();
        assert_eq!(challenge.verify(&other), Err(PkceError::Mismatch));
    }

    #[test]
    fn generated_verifiers_are_valid_distinct_and_verify() {
        let random = ring::rand::SystemRandom::new();
        let first = CodeVerifier::generate(&random).unwrap();
        let second = CodeVerifier::generate(&random).unwrap();
        assert_ne!(first, second);
        assert_eq!(CodeVerifier::parse(first.as_str()).unwrap(), first);
        assert!(CodeChallenge::s256(&first).verify(&first).is_ok());
    }

    #[test]
    fn verifier_debug_is_redacted() {
        let verifier = CodeVerifier::parse(APPENDIX_B_VERIFIER).unwrap();
        assert!(!format!("{verifier:?}").contains("dBjf"));
    }

    #[test]
    fn errors_map_to_rfc_codes() {
        assert_eq!(PkceError::Mismatch.error_code(), ErrorCode::InvalidGrant);
        assert_eq!(
            PkceError::PlainNotSupported.error_code(),
            ErrorCode::InvalidRequest
        );
        let error = OAuthError::from(PkceError::PlainNotSupported);
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
        assert!(error.description().unwrap().contains("S256"));
    }
}
