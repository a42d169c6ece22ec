//! The errors of the resource side.
//!
//! - [`ValidationError`]: why a presented access token was refused. Its
//!   `Display` is a fixed, safe sentence per variant, because it goes into
//!   the `error_description` of a `WWW-Authenticate` challenge (RFC 6750
//!   §3): never library text, never a quote or backslash (MCP clients parse
//!   the header with naive regular expressions), never anything from the
//!   token. Internal causes are logged where they happen, not carried here.
//! - [`KeySourceError`]: why signing keys (or metadata) could not be
//!   fetched. Logged, never shown to a client.
//! - [`ConfigError`]: a guard that cannot be built; reported at startup.

use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::jwt::ClaimsError;
use latchkey_protocol::scope::ScopeSet;

/// Why an access token was refused.
///
/// Every variant except [`ValidationError::Unavailable`] is an
/// `invalid_token` (RFC 6750 §3.1) answered with 401; `Unavailable` means
/// the token could not be checked at all (no signing keys, introspection
/// endpoint down) and is answered with 503, so that a client does not throw
/// away a good token and start a new authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ValidationError {
    /// Not a compact JWS, bad base64url, a header or payload that is not a
    /// JSON object, or longer than the size limit.
    #[error("the access token is malformed")]
    Malformed,
    /// `alg` is `none`, an HMAC, unknown, or not on the issuer's allow-list,
    /// or the header has extensions this resource does not understand.
    #[error("the access token uses a signing algorithm this resource does not accept")]
    UnsupportedAlgorithm,
    /// The JOSE `typ` header is missing or is not the one the issuer must
    /// use (RFC 9068 §2.1 `at+jwt`).
    #[error("the access token has the wrong type")]
    WrongType,
    /// `iss` is not one of the trusted issuers.
    #[error("the access token was issued by an untrusted issuer")]
    UntrustedIssuer,
    /// No key of the issuer has this `kid` (after a refetch, or the refetch
    /// was rate-limited) or fits this algorithm.
    #[error("the access token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the access token signature is invalid")]
    BadSignature,
    /// `aud` does not contain this resource (RFC 8707; MCP forbids
    /// accepting tokens issued for anything else).
    #[error("the access token is not intended for this resource")]
    WrongAudience,
    /// `exp` has passed, beyond the leeway.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future, beyond the leeway.
    #[error("the access token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future, beyond the leeway.
    #[error("the access token was issued in the future")]
    IssuedInFuture,
    /// A claim the issuer's profile requires is missing or has the wrong
    /// type (RFC 9068 §2.2: `iss`, `exp`, `aud`, `sub`, `client_id`, `iat`,
    /// `jti`).
    #[error("the access token lacks a required claim")]
    MissingClaim,
    /// The `scope` claim is not a valid scope string (RFC 6749 §3.3).
    #[error("the access token has a malformed scope claim")]
    InvalidScopeClaim,
    /// The token is bound to a key (`cnf`, RFC 7800 / RFC 9449) and this
    /// resource accepts bearer tokens only.
    #[error("the access token is bound to a key and cannot be used as a bearer token")]
    KeyBound,
    /// Introspection said the token is not active (RFC 7662 §2.2).
    #[error("the access token is not active")]
    Inactive,
    /// The token could not be checked: the issuer's keys or the
    /// introspection endpoint are unreachable.
    #[error("the access token cannot be validated right now")]
    Unavailable,
}

impl ValidationError {
    /// Every variant, for exhaustive tests of what clients can be told.
    pub const ALL: [ValidationError; 15] = [
        ValidationError::Malformed,
        ValidationError::UnsupportedAlgorithm,
        ValidationError::WrongType,
        ValidationError::UntrustedIssuer,
        ValidationError::UnknownKey,
        ValidationError::BadSignature,
        ValidationError::WrongAudience,
        ValidationError::Expired,
        ValidationError::NotYetValid,
        ValidationError::IssuedInFuture,
        ValidationError::MissingClaim,
        ValidationError::InvalidScopeClaim,
        ValidationError::KeyBound,
        ValidationError::Inactive,
        ValidationError::Unavailable,
    ];

    /// Whether the token could not be checked at all (503), as opposed to
    /// being refused (401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ValidationError::Unavailable)
    }

    /// The HTTP status for this refusal: 503 for
    /// [`ValidationError::Unavailable`], 401 otherwise (RFC 6750 §3.1).
    pub fn status(&self) -> http::StatusCode {
        if self.is_unavailable() {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else {
            http::StatusCode::UNAUTHORIZED
        }
    }

    /// The `WWW-Authenticate` challenge for this refusal:
    /// `error="invalid_token"`, this variant's fixed description, the
    /// scopes the request needs and the protected resource metadata URL
    /// (RFC 9728 §5.1).
    pub fn challenge(&self, resource_metadata: &str, scope: &ScopeSet) -> BearerChallenge {
        BearerChallenge::invalid_token(&self.to_string(), resource_metadata).with_scope(scope)
    }
}

impl From<ClaimsError> for ValidationError {
    fn from(error: ClaimsError) -> ValidationError {
        match error {
            ClaimsError::InvalidIssuer => ValidationError::UntrustedIssuer,
            ClaimsError::InvalidAudience => ValidationError::WrongAudience,
            ClaimsError::Expired => ValidationError::Expired,
            ClaimsError::NotYetValid => ValidationError::NotYetValid,
            ClaimsError::IssuedInFuture => ValidationError::IssuedInFuture,
        }
    }
}

/// Why a key set (or a discovery document) could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The request failed: connection, timeout, TLS.
    #[error("request to {url} failed: {source}")]
    Request {
        /// The URL requested.
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status other than 200.
    #[error("{url} answered with status {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The response body exceeded the size limit.
    #[error("{url} sent more than {limit} bytes")]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The response is not the expected JSON document.
    #[error("{url} sent an invalid document: {reason}")]
    InvalidDocument {
        /// The URL requested.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// No discovery document of the issuer names a usable `jwks_uri`.
    #[error("no metadata document of issuer {issuer} names a usable jwks_uri")]
    Discovery {
        /// The issuer.
        issuer: String,
    },
    /// The key set has no key this resource can use.
    #[error("the key set has no usable signing key")]
    NoUsableKeys,
    /// An in-process key source failed.
    #[error("the key source failed: {0}")]
    Source(String),
}

/// Why a validator, guard or proxy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No trusted issuer was configured.
    #[error("at least one trusted issuer is required")]
    NoIssuer,
    /// An issuer identifier is not a valid RFC 8414 issuer.
    #[error("invalid issuer {issuer}: {reason}")]
    InvalidIssuer {
        /// The issuer as configured.
        issuer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The same issuer was configured twice.
    #[error("issuer {0} is configured twice")]
    DuplicateIssuer(String),
    /// An issuer allows no algorithm.
    #[error("issuer {0} allows no signing algorithm")]
    NoAlgorithm(String),
    /// A URL the guard fetches from or forwards to is unusable.
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path cannot be routed (it must start with `/`, and no segment may
    /// start with `:` or `*` or contain braces, which the router reserves).
    #[error("path {0} cannot be routed")]
    InvalidPath(String),
    /// A header name or value is invalid.
    #[error("invalid header {0}")]
    InvalidHeader(String),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_description_is_header_safe_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for error in ValidationError::ALL {
            let text = error.to_string();
            assert!(
                text.chars()
                    .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')),
                "{text}"
            );
            assert!(seen.insert(text));
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(ValidationError::Expired.status(), 401);
        assert_eq!(ValidationError::Unavailable.status(), 503);
        assert!(ValidationError::Unavailable.is_unavailable());
    }

    #[test]
    fn claims_errors_map_one_to_one() {
        assert_eq!(
            ValidationError::from(ClaimsError::InvalidAudience),
            ValidationError::WrongAudience
        );
        assert_eq!(
            ValidationError::from(ClaimsError::InvalidIssuer),
            ValidationError::UntrustedIssuer
        );
        assert_eq!(
            ValidationError::from(ClaimsError::IssuedInFuture),
            ValidationError::IssuedInFuture
        );
    }
}
