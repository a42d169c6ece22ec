//! Token revocation (RFC 7009).
//!
//! The client authenticates as at the token endpoint (a public client by
//! its `client_id`). Then:
//! - a refresh token (recognised by its `lkr_` prefix, whatever the
//!   `token_type_hint` says) of this client has its whole family revoked,
//!   which also puts every unexpired access token issued from the family on
//!   the deny-list;
//! - an access token (a JWT this server signed, verified with its keys,
//!   retired ones included) issued to this client goes on the `jti`
//!   deny-list until it expires, so introspection reports it inactive from
//!   then on. Resource servers that verify JWTs locally keep accepting it
//!   until it expires (at most the access-token lifetime): revocation of
//!   self-contained tokens is only as immediate as the verifier's checks;
//! - anything else (unknown, expired, malformed, another client's token)
//!   changes nothing.
//!
//! The answer is the same in every case after authentication (200, empty),
//! so the endpoint tells a caller nothing about tokens it does not hold
//! (RFC 7009 §2.2).

use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_protocol::params::RevocationRequest;
use latchkey_store::SecretHash;

use crate::Service;
use crate::clients::Client;
use crate::error::FlowError;
use crate::secrets::REFRESH_TOKEN_PREFIX;

impl Service {
    /// Revokes a token (rules in the module docs). `Ok(())` whether or not
    /// anything was revoked.
    #[tracing::instrument(skip_all, fields(client_id = %credentials.client_id()))]
    pub async fn revoke(
        &self,
        credentials: &ClientCredentials,
        request: &RevocationRequest,
    ) -> Result<(), FlowError> {
        let client = self.authenticate(credentials).await?;
        let token = request.token.expose();
        if token.starts_with(REFRESH_TOKEN_PREFIX) {
            self.revoke_refresh_token(&client, token).await
        } else {
            self.revoke_access_token(&client, token).await
        }
    }

    async fn revoke_refresh_token(&self, client: &Client, token: &str) -> Result<(), FlowError> {
        let store = &self.inner.store;
        let Some(grant) = store.find_refresh(&SecretHash::of(token)).await? else {
            return Ok(());
        };
        if grant.family.client_id != client.client_id() {
            return Ok(());
        }
        if store
            .revoke_family(&grant.family.family_id, self.now())
            .await?
        {
            tracing::info!(family_id = %grant.family.family_id, "revoked a refresh-token family");
        }
        Ok(())
    }

    async fn revoke_access_token(&self, client: &Client, token: &str) -> Result<(), FlowError> {
        let Some(claims) = self.verify_access_token(token).await? else {
            return Ok(());
        };
        if claims.client_id != client.client_id() {
            return Ok(());
        }
        let now = self.now();
        if claims.exp <= now.unix_timestamp() {
            return Ok(());
        }
        let expires_at = time::OffsetDateTime::from_unix_timestamp(claims.exp)
            .map_err(|error| FlowError::Internal(format!("token expiry out of range: {error}")))?;
        self.inner
            .store
            .deny_access_token(&claims.jti, expires_at)
            .await?;
        tracing::info!(jti = %claims.jti, "revoked an access token");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{Fixture, basic, none, token_request};
    use latchkey_protocol::params::{FormParams, RevocationRequest};
    use latchkey_protocol::secret::SecretString;
    use std::time::Duration;

    fn revocation(token: &str) -> RevocationRequest {
        RevocationRequest {
            token: SecretString::new(token),
            token_type_hint: None,
        }
    }

    #[tokio::test]
    async fn an_access_token_goes_on_the_deny_list_until_it_expires() {
        let fixture = Fixture::new().await;
        let client = fixture.confidential_client("client_secret_basic").await;
        let credentials = basic(&client.client_id, client.secret());
        let response = fixture
            .service
            .token(
                &credentials,
                token_request(&[
                    ("grant_type", "client_credentials"),
                    ("resource", "https://mcp.example.com/mcp"),
                ]),
            )
            .await
            .unwrap();
        let claims = fixture
            .service
            .verify_access_token(&response.access_token)
            .await
            .unwrap()
            .unwrap();

        // Another client's revocation does nothing.
        let other = fixture.confidential_client("client_secret_basic").await;
        fixture
            .service
            .revoke(
                &basic(&other.client_id, other.secret()),
                &revocation(&response.access_token),
            )
            .await
            .unwrap();
        let now = fixture.clock_now();
        assert!(
            !fixture
                .store
                .is_access_token_denied(&claims.jti, now)
                .await
                .unwrap()
        );

        fixture
            .service
            .revoke(&credentials, &revocation(&response.access_token))
            .await
            .unwrap();
        assert!(
            fixture
                .store
                .is_access_token_denied(&claims.jti, now)
                .await
                .unwrap()
        );
        // The entry lasts exactly as long as the token.
        let expiry = time::OffsetDateTime::from_unix_timestamp(claims.exp).unwrap();
        assert!(
            !fixture
                .store
                .is_access_token_denied(&claims.jti, expiry)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_refresh_token_revokes_its_family() {
        let fixture = Fixture::new().await;
        let client = fixture.public_client().await;
        let tokens = fixture.code_grant_tokens(&client, "read").await;
        let refresh = tokens.refresh_token.clone().unwrap();
        fixture
            .service
            .revoke(&none(&client.client_id), &revocation(&refresh))
            .await
            .unwrap();
        let grant = fixture
            .store
            .find_refresh(&latchkey_store::SecretHash::of(&refresh))
            .await
            .unwrap()
            .unwrap();
        assert!(grant.family.revoked_at.is_some());
        // The access token issued with it is denied too.
        let claims = fixture
            .service
            .verify_access_token(&tokens.access_token)
            .await
            .unwrap()
            .unwrap();
        assert!(
            fixture
                .store
                .is_access_token_denied(&claims.jti, fixture.clock_now())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_expired_and_foreign_tokens_change_nothing() {
        let fixture = Fixture::new().await;
        let client = fixture.public_client().await;
        let tokens = fixture.code_grant_tokens(&client, "read").await;
        let other = fixture.public_client().await;
        for token in [
            "lkr_unknown",
            "garbage",
            "a.b.c",
            tokens.refresh_token.as_deref().unwrap(),
        ] {
            fixture
                .service
                .revoke(&none(&other.client_id), &revocation(token))
                .await
                .unwrap();
        }
        let grant = fixture
            .store
            .find_refresh(&latchkey_store::SecretHash::of(
                tokens.refresh_token.as_deref().unwrap(),
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(grant.family.revoked_at.is_none());

        // An expired access token is not listed (it is rejected anyway).
        fixture.clock.advance(Duration::from_secs(901));
        fixture
            .service
            .revoke(&none(&client.client_id), &revocation(&tokens.access_token))
            .await
            .unwrap();
        let claims = fixture
            .service
            .verify_access_token(&tokens.access_token)
            .await
            .unwrap()
            .unwrap();
        assert!(
            !fixture
                .store
                .is_access_token_denied(
                    &claims.jti,
                    fixture.clock_now() - time::Duration::seconds(5)
                )
                .await
                .unwrap()
        );
        // The request is parsed by the protocol crate; `token` is required.
        assert!(
            RevocationRequest::parse(&FormParams::parse(b"token_type_hint=refresh_token").unwrap())
                .is_err()
        );
    }
}
