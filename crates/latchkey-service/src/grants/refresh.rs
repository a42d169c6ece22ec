//! The `refresh_token` grant (RFC 6749 §6) with rotation on every use, for
//! every client, and reuse detection (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
//!
//! In order:
//! 1. `find_refresh` by hash; unknown → `invalid_grant`;
//! 2. issued to another client → `invalid_grant`;
//! 3. used before → reuse: the family is revoked (with every access token
//!    recorded under it) and the answer is `invalid_grant`. This is checked
//!    before anything else about the request, so a replay is detected even
//!    when the rest of the request is wrong;
//! 4. family revoked, token or family expired → `invalid_grant`;
//! 5. the family's resource must still be configured, else
//!    `invalid_grant` ("no longer served"): MCP SDK clients answer
//!    `invalid_grant` by authorizing again, while `invalid_target` on a
//!    refresh makes them give up; a `resource` sent with the request must
//!    equal the bound one (`invalid_target`);
//! 6. a requested `scope` may only narrow the scopes granted at
//!    authorization (the family's), else `invalid_scope`; without one the
//!    family's scopes apply, minus any the resource no longer allows. The
//!    new refresh token keeps the family's scopes, so a later refresh can
//!    widen back up to them; only the access token is narrowed;
//! 7. the user must still exist and be enabled → `invalid_grant`;
//! 8. `rotate_refresh` marks the token used and stores its successor in
//!    one transaction; if it finds the token used after all (a concurrent
//!    refresh won), that is reuse and the family is revoked.
//!
//! Concurrent refreshes of one token are therefore strict: exactly one
//! succeeds, the other is treated as reuse, and the family, the winner's
//! new tokens included, is revoked. There is no grace window: any window
//! in which a used token still works is a window in which a stolen token
//! works too. Clients must serialise refreshes (the MCP SDKs do).

use latchkey_protocol::OAuthError;
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use latchkey_protocol::secret::SecretString;
use latchkey_store::{NextRefreshToken, RefreshGrant, Rotation, SecretHash};
use time::OffsetDateTime;

use super::TokenResponse;
use super::policy::{permitted_scopes, scopes_from_store};
use crate::Service;
use crate::clients::Client;
use crate::clock::add;
use crate::error::FlowError;
use crate::secrets::{SecretKind, generate_secret};
use crate::tokens::AccessTokenGrant;

fn invalid_grant(description: &str) -> FlowError {
    FlowError::OAuth(OAuthError::invalid_grant(description))
}

const REUSED: &str = "the refresh token was already used; the grant it belongs to is revoked";

/// Whether a token (or its family) has expired at `now`.
fn expired(grant: &RefreshGrant, now: OffsetDateTime) -> bool {
    grant.token.idle_expires_at <= now || grant.family.absolute_expires_at <= now
}

impl Service {
    /// Exchanges a refresh token (rules in the module docs).
    pub(crate) async fn refresh(
        &self,
        client: &Client,
        refresh_token: &SecretString,
        requested_scope: Option<&ScopeSet>,
        requested_resource: Option<&ResourceUri>,
    ) -> Result<TokenResponse, FlowError> {
        let now = self.now();
        let store = &self.inner.store;
        let token_hash = SecretHash::of(refresh_token.expose());
        let Some(grant) = store.find_refresh(&token_hash).await? else {
            return Err(invalid_grant("the refresh token is invalid"));
        };
        let family = &grant.family;
        if family.client_id != client.client_id() {
            return Err(invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        if grant.token.used_at.is_some() {
            store.revoke_family(&family.family_id, now).await?;
            tracing::warn!(
                client_id = %family.client_id,
                family_id = %family.family_id,
                "a rotated refresh token was presented again; revoked its family"
            );
            return Err(invalid_grant(REUSED));
        }
        if family.revoked_at.is_some() {
            return Err(invalid_grant("the refresh token has been revoked"));
        }
        if expired(&grant, now) {
            return Err(invalid_grant("the refresh token has expired"));
        }

        let Some(bound) = family.resource.as_deref() else {
            return Err(invalid_grant(
                "the refresh token is not bound to a resource",
            ));
        };
        let Some(configured) = self.config().resources.get_canonical(bound) else {
            return Err(invalid_grant(
                "the resource this grant was for is no longer served",
            ));
        };
        if let Some(requested) = requested_resource
            && requested.as_str() != bound
        {
            return Err(FlowError::OAuth(OAuthError::invalid_target(
                "the resource differs from the one the refresh token is bound to",
            )));
        }

        let family_scopes = scopes_from_store(&family.scopes)?;
        let still_permitted = permitted_scopes(configured, None);
        let scopes = match requested_scope {
            Some(requested) if !requested.is_empty() => {
                let beyond_grant = requested.difference(&family_scopes);
                if !beyond_grant.is_empty() {
                    return Err(FlowError::OAuth(OAuthError::invalid_scope(format!(
                        "a refresh may only narrow the granted scope; not granted: {beyond_grant}"
                    ))));
                }
                let withdrawn = requested.difference(&still_permitted);
                if !withdrawn.is_empty() {
                    return Err(FlowError::OAuth(OAuthError::invalid_scope(format!(
                        "scope no longer allowed for this resource: {withdrawn}"
                    ))));
                }
                requested.clone()
            }
            _ => family_scopes.intersection(&still_permitted),
        };
        self.require_enabled_user(&family.user_id).await?;

        let access_token = self.issue_access_token(
            AccessTokenGrant {
                subject: &family.user_id,
                client_id: client.client_id(),
                audience: &configured.uri,
                scopes: &scopes,
                auth_time: None,
            },
            now,
        )?;
        let next_token = generate_secret(self.random(), SecretKind::RefreshToken)?;
        let next = NextRefreshToken {
            token_hash: SecretHash::of(next_token.expose()),
            scopes: family.scopes.clone(),
            idle_expires_at: add(now, self.config().lifetimes.refresh_idle)
                .min(family.absolute_expires_at),
            access_token: Some(access_token.issued()?),
        };
        match store.rotate_refresh(&token_hash, &next, now).await? {
            Rotation::Rotated(_) => Ok(TokenResponse::new(access_token, &scopes, Some(next_token))),
            Rotation::Reused { family_id } => {
                tracing::warn!(
                    client_id = %client.client_id(),
                    family_id = %family_id,
                    "a refresh token was rotated concurrently; revoked its family"
                );
                Err(invalid_grant(REUSED))
            }
            Rotation::Revoked => Err(invalid_grant("the refresh token has been revoked")),
            Rotation::Expired => Err(invalid_grant("the refresh token has expired")),
            Rotation::Unknown => Err(invalid_grant("the refresh token is invalid")),
        }
    }
}

#[cfg(test)]
mod tests;
