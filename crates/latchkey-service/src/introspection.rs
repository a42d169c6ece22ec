//! Token introspection (RFC 7662).
//!
//! Who may call (RFC 7662 §2.1 requires authentication; anonymous callers
//! get `invalid_client`, never an answer):
//! - the holder of the configured introspection secret
//!   (`Authorization: Bearer <secret>`): any token;
//! - a confidential client created by the operator (`latchkey client add
//!   --confidential`, origin `admin`), which is how a resource server gets
//!   credentials: any token;
//! - any other confidential client: only tokens issued to itself; other
//!   tokens look inactive (RFC 7662 §2.2 lets the server decide what a
//!   caller may learn, and §4 warns against token scanning);
//! - public clients: no (`invalid_client`); they have no secret to prove
//!   who they are.
//!
//! What is active:
//! - an access token this server signed (signature, `typ`, `iss`), not
//!   expired, not on the deny-list: `active`, `scope`, `client_id`, `sub`,
//!   `aud`, `iss`, `exp`, `iat`, `jti`, `token_type: Bearer`;
//! - a refresh token that is unused, unexpired and of an unrevoked family:
//!   `active`, `scope`, `client_id`, `sub`, `aud`, `iss`, `exp` (the
//!   earlier of its idle and absolute expiry), `iat`, and
//!   `token_type: refresh_token`, so that a resource server introspecting
//!   whatever it was handed never mistakes it for an access token;
//! - anything else is `{"active": false}` and nothing more.

use latchkey_protocol::OAuthError;
use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_protocol::params::IntrospectionRequest;
use latchkey_protocol::secret::SecretString;
use latchkey_store::{ClientOrigin, SecretHash};
use serde::Serialize;

use crate::Service;
use crate::error::FlowError;
use crate::grants::TOKEN_TYPE;
use crate::secrets::REFRESH_TOKEN_PREFIX;

/// The `token_type` reported for refresh tokens.
pub const REFRESH_TOKEN_TYPE: &str = "refresh_token";

/// How an introspection request authenticated.
#[derive(Debug, Clone)]
pub enum IntrospectionCaller {
    /// `Authorization: Bearer <introspection secret>`.
    Secret(SecretString),
    /// Client credentials, as at the token endpoint.
    Client(ClientCredentials),
}

/// An introspection response (RFC 7662 §2.2). Inactive tokens serialize
/// as `{"active": false}` alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntrospectionResponse {
    /// Whether the token is active.
    pub active: bool,
    /// Space-separated scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The audience: the canonical resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Expiry, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// The access token's `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl IntrospectionResponse {
    /// `{"active": false}`.
    pub fn inactive() -> IntrospectionResponse {
        IntrospectionResponse::default()
    }
}

/// Which tokens a caller may learn about.
enum Visibility {
    Any,
    IssuedTo(String),
}

impl Visibility {
    fn allows(&self, client_id: &str) -> bool {
        match self {
            Visibility::Any => true,
            Visibility::IssuedTo(caller) => caller == client_id,
        }
    }
}

fn refused(description: &str) -> FlowError {
    FlowError::OAuth(OAuthError::invalid_client(description))
}

impl Service {
    /// Introspects a token (rules in the module docs).
    #[tracing::instrument(skip_all)]
    pub async fn introspect(
        &self,
        caller: &IntrospectionCaller,
        request: &IntrospectionRequest,
    ) -> Result<IntrospectionResponse, FlowError> {
        let visibility = self.introspection_visibility(caller).await?;
        let token = request.token.expose();
        if token.starts_with(REFRESH_TOKEN_PREFIX) {
            self.introspect_refresh_token(token, &visibility).await
        } else {
            self.introspect_access_token(token, &visibility).await
        }
    }

    async fn introspection_visibility(
        &self,
        caller: &IntrospectionCaller,
    ) -> Result<Visibility, FlowError> {
        match caller {
            IntrospectionCaller::Secret(presented) => match &self.config().introspection_secret {
                Some(expected) if presented.constant_time_eq(expected.expose()) => {
                    Ok(Visibility::Any)
                }
                _ => Err(refused("the introspection credentials are not valid")),
            },
            IntrospectionCaller::Client(credentials) => {
                let client = self.authenticate(credentials).await?;
                if !client.is_confidential() {
                    return Err(refused(
                        "introspection requires a confidential client or the introspection secret",
                    ));
                }
                Ok(if client.origin() == ClientOrigin::Admin {
                    Visibility::Any
                } else {
                    Visibility::IssuedTo(client.client_id().to_owned())
                })
            }
        }
    }

    async fn introspect_access_token(
        &self,
        token: &str,
        visibility: &Visibility,
    ) -> Result<IntrospectionResponse, FlowError> {
        let Some(claims) = self.verify_access_token(token).await? else {
            return Ok(IntrospectionResponse::inactive());
        };
        let now = self.now();
        if claims.exp <= now.unix_timestamp() || !visibility.allows(&claims.client_id) {
            return Ok(IntrospectionResponse::inactive());
        }
        if self
            .inner
            .store
            .is_access_token_denied(&claims.jti, now)
            .await?
        {
            return Ok(IntrospectionResponse::inactive());
        }
        Ok(IntrospectionResponse {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            aud: claims.aud.iter().next().cloned(),
            iss: Some(claims.iss),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            jti: Some(claims.jti),
            token_type: Some(TOKEN_TYPE),
        })
    }

    async fn introspect_refresh_token(
        &self,
        token: &str,
        visibility: &Visibility,
    ) -> Result<IntrospectionResponse, FlowError> {
        let Some(grant) = self
            .inner
            .store
            .find_refresh(&SecretHash::of(token))
            .await?
        else {
            return Ok(IntrospectionResponse::inactive());
        };
        let now = self.now();
        let expires_at = grant
            .token
            .idle_expires_at
            .min(grant.family.absolute_expires_at);
        let live =
            grant.token.used_at.is_none() && grant.family.revoked_at.is_none() && expires_at > now;
        if !live || !visibility.allows(&grant.family.client_id) {
            return Ok(IntrospectionResponse::inactive());
        }
        Ok(IntrospectionResponse {
            active: true,
            scope: Some(grant.token.scopes.join(" ")).filter(|scope| !scope.is_empty()),
            client_id: Some(grant.family.client_id),
            sub: Some(grant.family.user_id),
            aud: grant.family.resource,
            iss: Some(self.config().issuer.clone()),
            exp: Some(expires_at.unix_timestamp()),
            iat: Some(grant.token.issued_at.unix_timestamp()),
            jti: None,
            token_type: Some(REFRESH_TOKEN_TYPE),
        })
    }
}

#[cfg(test)]
mod tests;
