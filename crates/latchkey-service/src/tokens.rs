//! JWT access tokens (RFC 9068): issuing them and recognising our own.
//!
//! Every access token is a JWS signed with the active key, header
//! `typ: at+jwt`, `alg` and `kid`, with the claims of
//! [`AccessTokenClaims`]: `iss` (the configured issuer, byte-for-byte),
//! `sub` (the user, or the client for `client_credentials`), `aud` (one
//! canonical resource URI, as a string), `client_id`, `scope` (omitted when
//! empty), `iat`, `exp`, `jti` (128 random bits) and `auth_time` when a user
//! authenticated. `expires_in` in the token response is exactly
//! `exp - iat`.
//!
//! Recognising a token ([`Service::verify_access_token`]) checks the
//! signature against the published keys (retired ones included), the `typ`
//! and the `iss`; expiry and the deny-list are the caller's business
//! (revocation must act on unexpired tokens only; introspection reports
//! both).

use latchkey_protocol::jwt::{AccessTokenClaims, Audience};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use time::OffsetDateTime;

use crate::clock::whole_seconds;
use crate::error::FlowError;
use crate::keys::Verification;
use crate::secrets::generate_identifier;
use crate::{Service, key_error};

/// What an access token is for.
#[derive(Debug, Clone, Copy)]
pub struct AccessTokenGrant<'a> {
    /// `sub`: the user, or the client itself.
    pub subject: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// `aud`: the canonical resource.
    pub audience: &'a ResourceUri,
    /// `scope`.
    pub scopes: &'a ScopeSet,
    /// `auth_time`, when a user authenticated.
    pub auth_time: Option<OffsetDateTime>,
}

/// A signed access token and what the store needs to deny it later.
#[derive(Clone)]
pub struct SignedAccessToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `iat`, unix seconds.
    pub issued_at: i64,
    /// Its `exp`, unix seconds.
    pub expires_at: i64,
}

impl SignedAccessToken {
    /// `exp - iat`: the `expires_in` of the token response.
    pub fn expires_in(&self) -> i64 {
        self.expires_at - self.issued_at
    }

    /// `exp` as an instant, for the store's deny-list records.
    pub fn expiry(&self) -> Result<OffsetDateTime, FlowError> {
        OffsetDateTime::from_unix_timestamp(self.expires_at)
            .map_err(|error| FlowError::Internal(format!("token expiry out of range: {error}")))
    }

    /// The record a code exchange or rotation stores with the grant, so
    /// that revoking the grant can deny this token.
    pub fn issued(&self) -> Result<latchkey_store::IssuedAccessToken, FlowError> {
        Ok(latchkey_store::IssuedAccessToken {
            jti: self.jti.clone(),
            expires_at: self.expiry()?,
        })
    }
}

impl std::fmt::Debug for SignedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedAccessToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Signs a new access token for `grant`, issued at `now`.
    pub fn issue_access_token(
        &self,
        grant: AccessTokenGrant<'_>,
        now: OffsetDateTime,
    ) -> Result<SignedAccessToken, FlowError> {
        let issued_at = now.unix_timestamp();
        let expires_at =
            issued_at.saturating_add(whole_seconds(self.config().lifetimes.access_token));
        let jti = generate_identifier(self.random())?;
        let claims = AccessTokenClaims {
            iss: self.config().issuer.clone(),
            sub: grant.subject.to_owned(),
            aud: Audience::single(grant.audience.as_str()),
            client_id: grant.client_id.to_owned(),
            scope: (!grant.scopes.is_empty()).then(|| grant.scopes.to_string()),
            iat: issued_at,
            exp: expires_at,
            jti: jti.clone(),
            nbf: None,
            auth_time: grant.auth_time.map(OffsetDateTime::unix_timestamp),
        };
        let payload = serde_json::to_vec(&claims)
            .map_err(|error| FlowError::Internal(format!("claims do not serialize: {error}")))?;
        let token = self.inner.keys.sign(&payload).map_err(key_error)?;
        Ok(SignedAccessToken {
            token,
            jti,
            issued_at,
            expires_at,
        })
    }

    /// The claims of `token` if it is an access token this server signed
    /// (signature, `typ` and `iss` checked; not expiry or revocation). A
    /// token naming an unknown key triggers one reload of the keys (another
    /// instance may have rotated), at most every few seconds.
    pub async fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<Option<AccessTokenClaims>, FlowError> {
        let keys = &self.inner.keys;
        let payload = match keys.verify(token) {
            Verification::Valid(payload) => payload,
            Verification::Invalid => return Ok(None),
            Verification::UnknownKey => {
                if !keys.reload_if_stale(self.now()).await.map_err(key_error)? {
                    return Ok(None);
                }
                match keys.verify(token) {
                    Verification::Valid(payload) => payload,
                    Verification::Invalid | Verification::UnknownKey => return Ok(None),
                }
            }
        };
        let Ok(claims) = serde_json::from_slice::<AccessTokenClaims>(&payload) else {
            return Ok(None);
        };
        Ok((claims.iss == self.config().issuer).then_some(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fixture;

    #[tokio::test]
    async fn tokens_carry_the_rfc_9068_claims() {
        let fixture = Fixture::new().await;
        let service = &fixture.service;
        let audience = ResourceUri::parse("https://mcp.example.com/mcp").unwrap();
        let scopes = ScopeSet::parse("read write").unwrap();
        let now = fixture.clock_now();
        let signed = service
            .issue_access_token(
                AccessTokenGrant {
                    subject: "user-1",
                    client_id: "client-1",
                    audience: &audience,
                    scopes: &scopes,
                    auth_time: Some(now - time::Duration::seconds(30)),
                },
                now,
            )
            .unwrap();
        assert_eq!(signed.expires_in(), 900);
        let claims = service
            .verify_access_token(&signed.token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims.iss, "https://auth.example.com");
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.client_id, "client-1");
        assert_eq!(claims.scope.as_deref(), Some("read write"));
        assert_eq!(claims.iat, now.unix_timestamp());
        assert_eq!(claims.exp, now.unix_timestamp() + 900);
        assert_eq!(claims.auth_time, Some(now.unix_timestamp() - 30));
        assert_eq!(claims.jti, signed.jti);
        assert_eq!(claims.jti.len(), 22);
        // `aud` is a plain string, not an array.
        let payload = signed.token.split('.').nth(1).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(raw["aud"], "https://mcp.example.com/mcp");
        assert!(raw.get("nbf").is_none());
    }

    #[tokio::test]
    async fn empty_scopes_are_omitted_and_foreign_issuers_refused() {
        let fixture = Fixture::new().await;
        let audience = ResourceUri::parse("https://mcp.example.com/mcp").unwrap();
        let signed = fixture
            .service
            .issue_access_token(
                AccessTokenGrant {
                    subject: "c",
                    client_id: "c",
                    audience: &audience,
                    scopes: &ScopeSet::new(),
                    auth_time: None,
                },
                fixture.clock_now(),
            )
            .unwrap();
        let claims = fixture
            .service
            .verify_access_token(&signed.token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims.scope, None);
        assert_eq!(claims.auth_time, None);

        // Same store and keys, another issuer: its tokens are not ours.
        let other = fixture.sibling("https://other.example.com").await;
        assert!(
            other
                .verify_access_token(&signed.token)
                .await
                .unwrap()
                .is_none()
        );
    }
}
