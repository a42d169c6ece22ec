//! The token endpoint (RFC 6749 §3.2): client authentication, then one of
//! the three grants.
//!
//! - [`code`]: `authorization_code` with PKCE S256 (and issuing codes, for
//!   the authorization endpoint);
//! - [`refresh`]: `refresh_token` with rotation on every use and reuse
//!   detection;
//! - [`client_credentials`]: for confidential machine clients;
//! - [`policy`]: which resource and scopes a grant gets.
//!
//! A client may only use the grant types it registered
//! (`unauthorized_client` otherwise, RFC 6749 §5.2). Every success is a
//! [`TokenResponse`] with `token_type: Bearer` and an exact `expires_in`.

pub mod client_credentials;
pub mod code;
pub mod policy;
pub mod refresh;

use latchkey_protocol::OAuthError;
use latchkey_protocol::client::GrantType;
use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_protocol::params::TokenRequest;
use latchkey_protocol::scope::ScopeSet;
use latchkey_protocol::secret::SecretString;
use serde::Serialize;

use crate::Service;
use crate::clients::Client;
use crate::error::FlowError;
use crate::tokens::SignedAccessToken;

/// The token type of every access token (RFC 6750).
pub const TOKEN_TYPE: &str = "Bearer";

/// A successful token response (RFC 6749 §5.1). `Debug` hides the tokens.
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires: exactly `exp - iat`.
    pub expires_in: i64,
    /// The granted scopes; omitted when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// A new refresh token, when one is issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    pub(crate) fn new(
        access_token: SignedAccessToken,
        scopes: &ScopeSet,
        refresh_token: Option<SecretString>,
    ) -> TokenResponse {
        TokenResponse {
            expires_in: access_token.expires_in(),
            access_token: access_token.token,
            token_type: TOKEN_TYPE,
            scope: (!scopes.is_empty()).then(|| scopes.to_string()),
            refresh_token: refresh_token.map(|token| token.expose().to_owned()),
        }
    }
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Refuses a grant type the client did not register.
pub(crate) fn require_grant(client: &Client, grant_type: GrantType) -> Result<(), FlowError> {
    if client.metadata().allows_grant(grant_type) {
        Ok(())
    } else {
        Err(FlowError::OAuth(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {grant_type} grant"
        ))))
    }
}

impl Service {
    /// Handles a token request: authenticates the client, then runs the
    /// grant.
    #[tracing::instrument(
        skip_all,
        fields(client_id = %credentials.client_id(), grant_type = %request.grant_type())
    )]
    pub async fn token(
        &self,
        credentials: &ClientCredentials,
        request: TokenRequest,
    ) -> Result<TokenResponse, FlowError> {
        let client = self.authenticate(credentials).await?;
        require_grant(&client, request.grant_type())?;
        match request {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
                client_id: _,
            } => {
                self.exchange_code(
                    &client,
                    &code,
                    redirect_uri.as_deref(),
                    &code_verifier,
                    resource.as_ref(),
                )
                .await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
                client_id: _,
            } => {
                self.refresh(&client, &refresh_token, scope.as_ref(), resource.as_ref())
                    .await
            }
            TokenRequest::ClientCredentials {
                scope,
                resource,
                client_id: _,
            } => self.client_credentials(&client, scope.as_ref(), resource.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, none};
    use latchkey_protocol::ErrorCode;
    use latchkey_protocol::params::FormParams;

    #[tokio::test]
    async fn unregistered_grant_types_are_unauthorized_client() {
        let fixture = Fixture::new().await;
        let public = fixture.public_client().await;
        let request = TokenRequest::parse(
            &FormParams::parse(
                b"grant_type=client_credentials&resource=https%3A%2F%2Fmcp.example.com%2Fmcp",
            )
            .unwrap(),
        )
        .unwrap();
        let outcome = fixture
            .service
            .token(&none(&public.client_id), request)
            .await;
        assert!(matches!(
            outcome,
            Err(FlowError::OAuth(error)) if error.code() == ErrorCode::UnauthorizedClient
        ));
    }

    #[test]
    fn debug_hides_tokens() {
        let response = TokenResponse {
            access_token: "eyJsecret".to_owned(),
            token_type: TOKEN_TYPE,
            expires_in: 900,
            scope: None,
            refresh_token: Some("lkr_secret".to_owned()),
        };
        let shown = format!("{response:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        assert!(json.get("scope").is_none());
    }
}
