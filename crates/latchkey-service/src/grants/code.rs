//! Authorization codes: issuing them once the user approved (the
//! authorization endpoint calls [`Service::issue_authorization_code`]) and
//! exchanging them at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6,
//! RFC 8707 §2.2).
//!
//! Exchange, in order:
//! 1. `find_code` by hash; unknown → `invalid_grant`;
//! 2. consumed before → a replay: revoke the family the first exchange
//!    started (`revoke_family`, which also denies the access tokens
//!    recorded under it) and deny the access token recorded on the code
//!    itself (there is no family when no refresh token was issued); then
//!    `invalid_grant` (RFC 6749 §4.1.2, RFC 9700 §4.5). This happens for
//!    whoever presents the code: a replayed code is a leaked code;
//! 3. expired → `invalid_grant`;
//! 4. issued to another client → `invalid_grant`;
//! 5. `redirect_uri` missing → `invalid_request`; different from the one
//!    in the authorization request (byte-for-byte) → `invalid_grant`;
//! 6. the PKCE verifier must hash to the stored S256 challenge
//!    → `invalid_grant` (every code has a challenge: PKCE is required for
//!    every client, confidential ones included, per OAuth 2.1);
//! 7. `resource`, if sent, must equal the code's (canonically)
//!    → `invalid_target`; the code's resource must still be served
//!    → `invalid_grant`;
//! 8. the user must still exist and be enabled → `invalid_grant`;
//! 9. the access token is signed first, then `consume_code` consumes the
//!    code and creates the refresh-token family (if the client registered
//!    `refresh_token`) in one transaction. Losing a race to a concurrent
//!    exchange is a replay, handled as in step 2.

use latchkey_protocol::OAuthError;
use latchkey_protocol::client::GrantType;
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use latchkey_protocol::secret::SecretString;
use latchkey_store::{
    AuthorizationCodeRecord, CodeConsumption, CodeRedemption, FirstRefreshToken, SecretHash,
};
use time::OffsetDateTime;

use super::policy::{resolve_resource, resolve_scopes, scopes_from_store, scopes_to_store};
use super::{TokenResponse, require_grant};
use crate::Service;
use crate::clients::Client;
use crate::clock::add;
use crate::error::FlowError;
use crate::secrets::{SecretKind, generate_identifier, generate_secret};
use crate::tokens::AccessTokenGrant;

/// An approved authorization request, ready to become a code.
#[derive(Debug, Clone)]
pub struct ApprovedAuthorization {
    /// The client.
    pub client_id: String,
    /// The user who approved.
    pub user_id: String,
    /// The redirect URI of the request, exactly as sent (or the only
    /// registered one when the request had none).
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: CodeChallenge,
    /// The requested scopes, if any.
    pub scope: Option<ScopeSet>,
    /// The requested resource, if any.
    pub resource: Option<ResourceUri>,
    /// When the user authenticated.
    pub auth_time: OffsetDateTime,
}

/// A code just issued. `Debug` hides the code.
#[derive(Clone)]
pub struct IssuedCode {
    /// The code, to put in the redirect.
    pub code: SecretString,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The resource the grant is bound to.
    pub resource: ResourceUri,
    /// When the code stops being exchangeable.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for IssuedCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCode")
            .field("code", &self.code)
            .field("scopes", &self.scopes)
            .field("resource", &self.resource)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn invalid_grant(description: &str) -> FlowError {
    FlowError::OAuth(OAuthError::invalid_grant(description))
}

impl Service {
    /// Issues an authorization code for an approved request: the client
    /// must exist, use the code grant and have registered the redirect
    /// URI; resource and scopes follow [`super::policy`]; the user must
    /// exist and be enabled.
    pub async fn issue_authorization_code(
        &self,
        approved: ApprovedAuthorization,
    ) -> Result<IssuedCode, FlowError> {
        let client = self
            .client(&approved.client_id)
            .await?
            .ok_or_else(|| FlowError::OAuth(OAuthError::invalid_client("unknown client")))?;
        require_grant(&client, GrantType::AuthorizationCode)?;
        if client
            .metadata()
            .match_redirect_uri(&approved.redirect_uri)
            .is_none()
        {
            return Err(FlowError::OAuth(OAuthError::invalid_request(
                "the redirect_uri is not registered for this client",
            )));
        }
        let configured = resolve_resource(self.config(), approved.resource.as_ref())?;
        let scopes = resolve_scopes(
            approved.scope.as_ref(),
            configured,
            client.metadata().scope(),
        )?;
        match self.inner.store.find_user(&approved.user_id).await? {
            Some(user) if !user.disabled => {}
            _ => {
                return Err(FlowError::OAuth(OAuthError::access_denied(
                    "the user account does not exist or is disabled",
                )));
            }
        }

        let now = self.now();
        let code = generate_secret(self.random(), SecretKind::AuthorizationCode)?;
        let expires_at = add(now, self.config().lifetimes.authorization_code);
        let record = AuthorizationCodeRecord {
            code_hash: SecretHash::of(code.expose()),
            client_id: client.client_id().to_owned(),
            user_id: approved.user_id,
            redirect_uri: approved.redirect_uri,
            code_challenge: approved.code_challenge.as_str().to_owned(),
            scopes: scopes_to_store(&scopes),
            resource: Some(configured.uri.as_str().to_owned()),
            family_id: generate_identifier(self.random())?,
            auth_time: approved.auth_time,
            issued_at: now,
            expires_at,
            consumed_at: None,
            access_token: None,
        };
        self.inner.store.insert_code(&record).await?;
        Ok(IssuedCode {
            code,
            scopes,
            resource: configured.uri.clone(),
            expires_at,
        })
    }

    /// Fails with `invalid_grant` unless the user exists and is enabled.
    pub(crate) async fn require_enabled_user(&self, user_id: &str) -> Result<(), FlowError> {
        match self.inner.store.find_user(user_id).await? {
            Some(user) if !user.disabled => Ok(()),
            _ => Err(invalid_grant(
                "the user this grant was issued for is disabled or no longer exists",
            )),
        }
    }

    /// Revokes everything a code's first exchange issued.
    async fn revoke_code_grant(
        &self,
        record: &AuthorizationCodeRecord,
        now: OffsetDateTime,
    ) -> Result<(), FlowError> {
        self.inner
            .store
            .revoke_family(&record.family_id, now)
            .await?;
        if let Some(access_token) = &record.access_token
            && access_token.expires_at > now
        {
            self.inner
                .store
                .deny_access_token(&access_token.jti, access_token.expires_at)
                .await?;
        }
        tracing::warn!(
            client_id = %record.client_id,
            family_id = %record.family_id,
            "an authorization code was presented again; revoked what it issued"
        );
        Ok(())
    }

    /// Exchanges a code (rules in the module docs).
    pub(crate) async fn exchange_code(
        &self,
        client: &Client,
        code: &SecretString,
        redirect_uri: Option<&str>,
        verifier: &CodeVerifier,
        resource: Option<&ResourceUri>,
    ) -> Result<TokenResponse, FlowError> {
        let now = self.now();
        let code_hash = SecretHash::of(code.expose());
        let Some(record) = self.inner.store.find_code(&code_hash).await? else {
            return Err(invalid_grant("the authorization code is invalid"));
        };
        if record.consumed_at.is_some() {
            self.revoke_code_grant(&record, now).await?;
            return Err(invalid_grant(
                "the authorization code was already used; the tokens it issued are revoked",
            ));
        }
        if record.expires_at <= now {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if record.client_id != client.client_id() {
            return Err(invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
        let Some(redirect_uri) = redirect_uri else {
            return Err(FlowError::OAuth(OAuthError::invalid_request(
                "the redirect_uri parameter is required",
            )));
        };
        if redirect_uri != record.redirect_uri {
            return Err(invalid_grant(
                "the redirect_uri does not match the authorization request",
            ));
        }
        let challenge = CodeChallenge::parse(&record.code_challenge).map_err(|error| {
            FlowError::Internal(format!("a stored code challenge does not parse: {error}"))
        })?;
        if challenge.verify(verifier).is_err() {
            return Err(invalid_grant(
                "the code_verifier does not match the code_challenge",
            ));
        }
        let Some(bound_resource) = record.resource.as_deref() else {
            return Err(invalid_grant(
                "the authorization code is not bound to a resource",
            ));
        };
        if let Some(requested) = resource
            && requested.as_str() != bound_resource
        {
            return Err(FlowError::OAuth(OAuthError::invalid_target(
                "the resource differs from the one the authorization was granted for",
            )));
        }
        let Some(configured) = self.config().resources.get_canonical(bound_resource) else {
            return Err(invalid_grant(
                "the resource this grant was for is no longer served",
            ));
        };
        self.require_enabled_user(&record.user_id).await?;

        let scopes = scopes_from_store(&record.scopes)?;
        let access_token = self.issue_access_token(
            AccessTokenGrant {
                subject: &record.user_id,
                client_id: client.client_id(),
                audience: &configured.uri,
                scopes: &scopes,
                auth_time: Some(record.auth_time),
            },
            now,
        )?;
        let refresh_token = if client.metadata().allows_grant(GrantType::RefreshToken) {
            Some(generate_secret(self.random(), SecretKind::RefreshToken)?)
        } else {
            None
        };
        let lifetimes = &self.config().lifetimes;
        let absolute_expires_at = add(now, lifetimes.refresh_absolute);
        let redemption = CodeRedemption {
            access_token: access_token.issued()?,
            refresh_token: refresh_token.as_ref().map(|token| FirstRefreshToken {
                token_hash: SecretHash::of(token.expose()),
                idle_expires_at: add(now, lifetimes.refresh_idle).min(absolute_expires_at),
                absolute_expires_at,
            }),
        };
        match self
            .inner
            .store
            .consume_code(&code_hash, &redemption, now)
            .await?
        {
            CodeConsumption::Consumed(_) => {
                Ok(TokenResponse::new(access_token, &scopes, refresh_token))
            }
            CodeConsumption::Reused(consumed) => {
                self.revoke_code_grant(&consumed, now).await?;
                Err(invalid_grant(
                    "the authorization code was already used; the tokens it issued are revoked",
                ))
            }
            CodeConsumption::Expired => Err(invalid_grant("the authorization code has expired")),
            CodeConsumption::Unknown => Err(invalid_grant("the authorization code is invalid")),
        }
    }
}

#[cfg(test)]
mod tests;
