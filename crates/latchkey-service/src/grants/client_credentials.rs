//! The `client_credentials` grant (RFC 6749 §4.4): a confidential client
//! gets a token for itself, for machine-to-machine calls and benchmarks.
//!
//! The client has authenticated with its secret (public clients cannot
//! register this grant, which the protocol crate enforces). The token's
//! `sub` is the client id; no refresh token is issued (RFC 6749 §4.4.3).
//! Nothing is written to the store: with the client cached, issuing costs
//! one signature and no database round trip.

use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;

use super::TokenResponse;
use super::policy::{resolve_resource, resolve_scopes};
use crate::Service;
use crate::clients::Client;
use crate::error::FlowError;
use crate::tokens::AccessTokenGrant;

impl Service {
    /// Issues a client-credentials token for an authenticated client.
    pub(crate) fn client_credentials(
        &self,
        client: &Client,
        scope: Option<&ScopeSet>,
        resource: Option<&ResourceUri>,
    ) -> Result<TokenResponse, FlowError> {
        let configured = resolve_resource(self.config(), resource)?;
        let scopes = resolve_scopes(scope, configured, client.metadata().scope())?;
        let access_token = self.issue_access_token(
            AccessTokenGrant {
                subject: client.client_id(),
                client_id: client.client_id(),
                audience: &configured.uri,
                scopes: &scopes,
                auth_time: None,
            },
            self.now(),
        )?;
        Ok(TokenResponse::new(access_token, &scopes, None))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::FlowError;
    use crate::testing::{Fixture, basic, token_request};
    use latchkey_protocol::ErrorCode;

    #[tokio::test]
    async fn a_confidential_client_gets_a_token_for_itself() {
        let fixture = Fixture::new().await;
        let client = fixture.confidential_client("client_secret_basic").await;
        let response = fixture
            .service
            .token(
                &basic(&client.client_id, client.secret()),
                token_request(&[
                    ("grant_type", "client_credentials"),
                    ("resource", "https://mcp.example.com/mcp"),
                    ("scope", "read"),
                ]),
            )
            .await
            .unwrap();
        assert_eq!(response.token_type, "Bearer");
        assert_eq!(response.expires_in, 900);
        assert_eq!(response.scope.as_deref(), Some("read"));
        assert!(response.refresh_token.is_none());
        let claims = fixture
            .service
            .verify_access_token(&response.access_token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims.sub, client.client_id);
        assert_eq!(claims.client_id, client.client_id);
        assert!(claims.aud.contains("https://mcp.example.com/mcp"));
    }

    #[tokio::test]
    async fn the_hot_path_reads_no_client_from_the_store_once_cached() {
        let fixture = Fixture::new().await;
        let client = fixture.confidential_client("client_secret_basic").await;
        let request = || {
            token_request(&[
                ("grant_type", "client_credentials"),
                ("resource", "https://mcp.example.com/mcp"),
            ])
        };
        let credentials = basic(&client.client_id, client.secret());
        fixture
            .service
            .token(&credentials, request())
            .await
            .unwrap();
        // The record is gone from the store, but the cache still serves it:
        // proof that the second request did not read it.
        fixture
            .store
            .delete_client(&client.client_id)
            .await
            .unwrap();
        let response = fixture
            .service
            .token(&credentials, request())
            .await
            .unwrap();
        // Without a scope, the resource's allowed scopes are granted.
        assert_eq!(response.scope.as_deref(), Some("read write"));
    }

    #[tokio::test]
    async fn resource_and_scope_policy_apply() {
        let fixture = Fixture::new().await;
        let client = fixture.confidential_client("client_secret_post").await;
        let credentials = basic(&client.client_id, client.secret());
        let cases = [
            (
                vec![("grant_type", "client_credentials")],
                ErrorCode::InvalidTarget,
            ),
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("resource", "https://unknown.example.com/mcp"),
                ],
                ErrorCode::InvalidTarget,
            ),
            (
                vec![
                    ("grant_type", "client_credentials"),
                    ("resource", "https://mcp.example.com/mcp"),
                    ("scope", "read admin"),
                ],
                ErrorCode::InvalidScope,
            ),
        ];
        for (params, expected) in cases {
            let outcome = fixture
                .service
                .token(&credentials, token_request(&params))
                .await;
            assert!(
                matches!(&outcome, Err(FlowError::OAuth(error)) if error.code() == expected),
                "{params:?}: {outcome:?}"
            );
        }
    }
}
