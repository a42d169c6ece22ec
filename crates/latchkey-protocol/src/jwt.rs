//! JWT access token claims (RFC 9068 §2.2) and their validation. Claims
//! only: signing and signature checks (and the `typ: at+jwt` header,
//! RFC 9068 §2.1) belong to the layer that holds the keys.
//!
//! Latchkey issues tokens with exactly one audience, written as a string.
//! Foreign tokens may carry `aud` as a string or an array (RFC 7519
//! §4.1.3); both deserialize.
//!
//! [`ClaimsValidation`] takes the current time as an argument (unix
//! seconds), so this crate never reads a clock and expiry tests are
//! deterministic.

use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, OAuthError};
use crate::resource::ResourceUri;
use crate::scope::{ScopeError, ScopeSet};

/// The `aud` claim: one or more audiences. Serializes as a plain string
/// when there is one, as an array otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// A single audience.
    pub fn single(audience: impl Into<String>) -> Audience {
        Audience(vec![audience.into()])
    }

    /// The audiences.
    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    /// Whether `audience` is among them (exact string comparison).
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|candidate| candidate == audience)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [single] => serializer.serialize_str(single),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Audience, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            One(String),
            Many(Vec<String>),
        }
        match Wire::deserialize(deserializer)? {
            Wire::One(single) => Ok(Audience(vec![single])),
            Wire::Many(many) if many.is_empty() => {
                Err(de::Error::custom("aud must not be an empty array"))
            }
            Wire::Many(many) => Ok(Audience(many)),
        }
    }
}

/// The claims of a JWT access token (RFC 9068 §2.2).
///
/// ```
/// use latchkey_protocol::jwt::{AccessTokenClaims, ClaimsValidation};
/// use latchkey_protocol::resource::ResourceUri;
///
/// let claims: AccessTokenClaims = serde_json::from_str(r#"{
///     "iss": "https://auth.example.com", "sub": "user-1",
///     "aud": ["https://mcp.example.com/mcp"], "client_id": "c1",
///     "scope": "mcp files:read", "iat": 1000, "exp": 1300, "jti": "j1"
/// }"#).unwrap();
/// let validation = ClaimsValidation {
///     issuers: vec!["https://auth.example.com".into()],
///     audience: ResourceUri::parse("https://mcp.example.com/mcp").unwrap(),
///     leeway_seconds: 30,
///     now: 1200,
/// };
/// assert!(validation.validate(&claims).is_ok());
/// assert_eq!(claims.scopes().unwrap().to_string(), "mcp files:read");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier.
    pub iss: String,
    /// The subject: the user, or the client for client_credentials.
    pub sub: String,
    /// The audience: the canonical resource URI.
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scopes, space-delimited (RFC 9068 §2.2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
    /// A unique token identifier.
    pub jti: String,
    /// Not valid before, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// When the user authenticated, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl AccessTokenClaims {
    /// The `scope` claim as a set; empty when the claim is absent.
    pub fn scopes(&self) -> Result<ScopeSet, ScopeError> {
        ScopeSet::parse(self.scope.as_deref().unwrap_or_default())
    }
}

/// Why claims were refused. Every variant is `invalid_token` (RFC 6750
/// §3.1); the messages are fixed strings, safe for `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// `iss` is not an accepted issuer.
    #[error("the token was issued by an untrusted issuer")]
    InvalidIssuer,
    /// `aud` does not contain this resource.
    #[error("the token is not intended for this resource")]
    InvalidAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
}

impl ClaimsError {
    /// Always `invalid_token`.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidToken
    }
}

impl From<ClaimsError> for OAuthError {
    fn from(error: ClaimsError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// What a resource server (or the authorization server, for
/// introspection) requires of a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsValidation {
    /// Accepted issuers, compared byte-for-byte (the `authorization_servers`
    /// of the protected resource metadata).
    pub issuers: Vec<String>,
    /// This resource's canonical URI; `aud` must contain it.
    pub audience: ResourceUri,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_seconds: u32,
    /// The current time, unix seconds.
    pub now: i64,
}

impl ClaimsValidation {
    /// Checks, in order: `iss` is accepted; `aud` contains the audience
    /// (each `aud` value is compared exactly and, if it parses as a
    /// resource URI, in canonical form, so a foreign token's
    /// `https://h/` matches `https://h`); `now < exp + leeway`
    /// (RFC 7519 §4.1.4); `now + leeway >= nbf` (RFC 7519 §4.1.5);
    /// `iat <= now + leeway`.
    pub fn validate(&self, claims: &AccessTokenClaims) -> Result<(), ClaimsError> {
        if !self.issuers.contains(&claims.iss) {
            return Err(ClaimsError::InvalidIssuer);
        }
        let expected = self.audience.as_str();
        let audience_matches = claims.aud.iter().any(|audience| {
            audience == expected
                || ResourceUri::parse(audience).is_ok_and(|parsed| parsed == self.audience)
        });
        if !audience_matches {
            return Err(ClaimsError::InvalidAudience);
        }
        let leeway = i64::from(self.leeway_seconds);
        if self.now >= claims.exp.saturating_add(leeway) {
            return Err(ClaimsError::Expired);
        }
        if let Some(not_before) = claims.nbf
            && self.now.saturating_add(leeway) < not_before
        {
            return Err(ClaimsError::NotYetValid);
        }
        if claims.iat > self.now.saturating_add(leeway) {
            return Err(ClaimsError::IssuedInFuture);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://auth.example.com".to_owned(),
            sub: "user-1".to_owned(),
            aud: Audience::single("https://mcp.example.com/mcp"),
            client_id: "client-1".to_owned(),
            scope: Some("mcp files:read".to_owned()),
            iat: 1_000,
            exp: 1_300,
            jti: "jti-1".to_owned(),
            nbf: None,
            auth_time: None,
        }
    }

    fn validation(now: i64) -> ClaimsValidation {
        ClaimsValidation {
            issuers: vec!["https://auth.example.com".to_owned()],
            audience: ResourceUri::parse("https://mcp.example.com/mcp").unwrap(),
            leeway_seconds: 10,
            now,
        }
    }

    #[test]
    fn serializes_rfc_9068_claims_with_a_string_audience() {
        let json = serde_json::to_value(claims()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "iss": "https://auth.example.com",
                "sub": "user-1",
                "aud": "https://mcp.example.com/mcp",
                "client_id": "client-1",
                "scope": "mcp files:read",
                "iat": 1000,
                "exp": 1300,
                "jti": "jti-1"
            })
        );
        let back: AccessTokenClaims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims());
    }

    #[test]
    fn audience_accepts_string_or_array() {
        let mut json = serde_json::to_value(claims()).unwrap();
        json["aud"] = serde_json::json!(["https://other.example", "https://mcp.example.com/mcp"]);
        let parsed: AccessTokenClaims = serde_json::from_value(json.clone()).unwrap();
        assert!(parsed.aud.contains("https://other.example"));
        assert_eq!(parsed.aud.iter().count(), 2);
        assert!(validation(1_100).validate(&parsed).is_ok());
        assert_eq!(
            serde_json::to_value(&parsed.aud).unwrap(),
            serde_json::json!(["https://other.example", "https://mcp.example.com/mcp"])
        );
        json["aud"] = serde_json::json!([]);
        assert!(serde_json::from_value::<AccessTokenClaims>(json.clone()).is_err());
        json["aud"] = serde_json::json!(42);
        assert!(serde_json::from_value::<AccessTokenClaims>(json).is_err());
    }

    #[test]
    fn valid_claims_pass() {
        assert_eq!(validation(1_100).validate(&claims()), Ok(()));
    }

    #[test]
    fn issuer_must_be_accepted_exactly() {
        let mut token = claims();
        token.iss = "https://auth.example.com/".to_owned();
        assert_eq!(
            validation(1_100).validate(&token),
            Err(ClaimsError::InvalidIssuer)
        );
    }

    #[test]
    fn audience_must_be_this_resource() {
        let mut token = claims();
        token.aud = Audience::single("https://mcp.example.com/other");
        assert_eq!(
            validation(1_100).validate(&token),
            Err(ClaimsError::InvalidAudience)
        );
        // A non-canonical spelling of the same resource is accepted.
        token.aud = Audience::single("HTTPS://MCP.example.com:443/mcp");
        assert_eq!(validation(1_100).validate(&token), Ok(()));
        let mut root = validation(1_100);
        root.audience = ResourceUri::parse("https://mcp.example.com").unwrap();
        token.aud = Audience::single("https://mcp.example.com/");
        assert_eq!(root.validate(&token), Ok(()));
    }

    #[test]
    fn expiry_honours_the_leeway() {
        let token = claims();
        assert_eq!(validation(1_299).validate(&token), Ok(()));
        assert_eq!(validation(1_309).validate(&token), Ok(()));
        assert_eq!(
            validation(1_310).validate(&token),
            Err(ClaimsError::Expired)
        );
        let mut strict = validation(1_300);
        strict.leeway_seconds = 0;
        assert_eq!(strict.validate(&token), Err(ClaimsError::Expired));
    }

    #[test]
    fn not_before_and_issued_at_honour_the_leeway() {
        let mut token = claims();
        token.nbf = Some(1_100);
        assert_eq!(validation(1_090).validate(&token), Ok(()));
        assert_eq!(
            validation(1_089).validate(&token),
            Err(ClaimsError::NotYetValid)
        );
        let mut token = claims();
        token.iat = 1_200;
        assert_eq!(validation(1_190).validate(&token), Ok(()));
        assert_eq!(
            validation(1_189).validate(&token),
            Err(ClaimsError::IssuedInFuture)
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut token = claims();
        token.exp = i64::MAX;
        token.iat = i64::MIN;
        let mut check = validation(i64::MAX - 1);
        check.leeway_seconds = u32::MAX;
        assert_eq!(check.validate(&token), Ok(()));
    }

    #[test]
    fn scopes_parse_from_the_claim() {
        let mut token = claims();
        assert_eq!(token.scopes().unwrap().len(), 2);
        token.scope = None;
        assert!(token.scopes().unwrap().is_empty());
    }

    #[test]
    fn errors_are_invalid_token() {
        let error = OAuthError::from(ClaimsError::Expired);
        assert_eq!(error.code(), ErrorCode::InvalidToken);
        assert_eq!(error.status(), 401);
    }
}
