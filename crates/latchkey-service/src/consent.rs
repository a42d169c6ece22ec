//! Remembered consent and the signed-in user's connected apps.
//!
//! Consent is remembered per (user, client, canonical resource) for
//! `consent_ttl` (default 30 days). The consent page is skipped only when
//! the remembered consent is unexpired, covers every scope of the request
//! (compared flat, as the scope policy does), and the request did not say
//! `prompt=consent`; a request for more scopes asks again, and approving it
//! remembers the union of what was consented before (if unexpired) and what
//! was just approved. A consent that lets an authorization through is
//! touched (`last_used_at`).
//!
//! Connected apps ([`Service::connected_apps`]) are the user's consents,
//! expired ones included (their refresh tokens may still live); revoking
//! one ([`Service::disconnect_app`]) is `GrantStore::revoke_for`: every
//! refresh-token family of that client for the user is revoked (with the
//! access tokens recorded under them denied) and the consents for that
//! client deleted, in one transaction.

use latchkey_protocol::scope::ScopeSet;
use latchkey_store::ConsentRecord;
use time::OffsetDateTime;

use crate::Service;
use crate::clock::add;
use crate::error::FlowError;
use crate::grants::policy::{scopes_from_store, scopes_to_store};

/// One row of the connected-apps page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    /// The client.
    pub client_id: String,
    /// Its registered name, if any.
    pub client_name: Option<String>,
    /// Whether an operator created it (dynamically registered and
    /// metadata-document clients are unverified).
    pub verified: bool,
    /// The canonical resource the consent is for.
    pub resource: String,
    /// The resource's configured display name, if any.
    pub resource_name: Option<String>,
    /// The consented scopes.
    pub scopes: Vec<String>,
    /// When consent was (last) given.
    pub granted_at: OffsetDateTime,
    /// When the consent last let an authorization through without asking.
    pub last_used_at: Option<OffsetDateTime>,
    /// When the consent must be asked for again.
    pub expires_at: OffsetDateTime,
}

impl ConnectedApp {
    /// Whether the consent has expired at `now` (the app will ask again).
    pub fn expired_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at <= now
    }
}

impl Service {
    /// Whether `user_id` has an unexpired consent for `client_id` and
    /// `resource` covering `scopes`; if so it is touched.
    pub(crate) async fn use_remembered_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &ScopeSet,
        now: OffsetDateTime,
    ) -> Result<bool, FlowError> {
        let store = &self.inner.store;
        let Some(consent) = store.find_consent(user_id, client_id, resource).await? else {
            return Ok(false);
        };
        if consent.expires_at <= now {
            return Ok(false);
        }
        let remembered = scopes_from_store(&consent.scopes)?;
        if !scopes.is_subset_of(&remembered) {
            return Ok(false);
        }
        store
            .touch_consent(user_id, client_id, resource, now)
            .await?;
        Ok(true)
    }

    /// Remembers that `user_id` approved `scopes` for `client_id` and
    /// `resource`, adding to an unexpired earlier consent.
    pub(crate) async fn remember_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        scopes: &ScopeSet,
        now: OffsetDateTime,
    ) -> Result<(), FlowError> {
        let store = &self.inner.store;
        let earlier = store.find_consent(user_id, client_id, resource).await?;
        let union = match earlier {
            Some(consent) if consent.expires_at > now => {
                scopes_from_store(&consent.scopes)?.union(scopes)
            }
            _ => scopes.clone(),
        };
        let now = now.replace_nanosecond(0).unwrap_or(now);
        store
            .upsert_consent(&ConsentRecord {
                user_id: user_id.to_owned(),
                client_id: client_id.to_owned(),
                resource: resource.to_owned(),
                scopes: scopes_to_store(&union),
                granted_at: now,
                expires_at: add(now, self.config().consent_ttl),
                last_used_at: None,
            })
            .await?;
        Ok(())
    }

    /// The apps `user_id` has consented to, oldest first.
    pub async fn connected_apps(&self, user_id: &str) -> Result<Vec<ConnectedApp>, FlowError> {
        let consents = self.inner.store.list_consents(user_id).await?;
        let mut apps = Vec::with_capacity(consents.len());
        for consent in consents {
            let client = match self.stored_client(&consent.client_id).await {
                Ok(client) => client,
                // A client whose stored metadata no longer validates is
                // still listed, by id, so the user can revoke it.
                Err(FlowError::Internal(cause)) => {
                    tracing::warn!(%cause, "a connected app's client does not load");
                    None
                }
                Err(other) => return Err(other),
            };
            let resource_name = self
                .config()
                .resources
                .get_canonical(&consent.resource)
                .and_then(|resource| resource.name.clone());
            apps.push(ConnectedApp {
                client_name: client
                    .as_ref()
                    .and_then(|client| client.metadata().client_name().map(str::to_owned)),
                verified: client
                    .as_ref()
                    .is_some_and(|client| self.is_client_verified(client)),
                client_id: consent.client_id,
                resource: consent.resource,
                resource_name,
                scopes: consent.scopes,
                granted_at: consent.granted_at,
                last_used_at: consent.last_used_at,
                expires_at: consent.expires_at,
            });
        }
        Ok(apps)
    }

    /// Disconnects an app: revokes its refresh tokens for the user and
    /// deletes the consents. Returns how many token families were revoked.
    #[tracing::instrument(skip_all, fields(user_id = %user_id, client_id = %client_id))]
    pub async fn disconnect_app(&self, user_id: &str, client_id: &str) -> Result<u64, FlowError> {
        let revoked = self
            .inner
            .store
            .revoke_for(user_id, client_id, self.now())
            .await?;
        tracing::info!(families = revoked, "disconnected an app");
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, MCP};
    use std::time::Duration;

    fn scopes(raw: &str) -> ScopeSet {
        ScopeSet::parse(raw).unwrap()
    }

    #[tokio::test]
    async fn consent_is_remembered_grows_and_expires() {
        let fixture = Fixture::new().await;
        let client = fixture.public_client().await;
        let user = fixture.user().await;
        let service = &fixture.service;
        let now = fixture.clock_now();
        assert!(
            !service
                .use_remembered_consent(&user, &client.client_id, MCP, &scopes("read"), now)
                .await
                .unwrap()
        );
        service
            .remember_consent(&user, &client.client_id, MCP, &scopes("read"), now)
            .await
            .unwrap();
        assert!(
            service
                .use_remembered_consent(&user, &client.client_id, MCP, &scopes("read"), now)
                .await
                .unwrap()
        );
        assert!(
            !service
                .use_remembered_consent(&user, &client.client_id, MCP, &scopes("read write"), now)
                .await
                .unwrap(),
            "more scopes ask again"
        );
        assert!(
            !service
                .use_remembered_consent(
                    &user,
                    &client.client_id,
                    "https://files.example.com",
                    &scopes("read"),
                    now
                )
                .await
                .unwrap(),
            "another resource asks again"
        );
        let touched = fixture
            .store
            .find_consent(&user, &client.client_id, MCP)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(touched.last_used_at, Some(now));

        // Approving more keeps what was approved before.
        service
            .remember_consent(&user, &client.client_id, MCP, &scopes("write"), now)
            .await
            .unwrap();
        assert!(
            service
                .use_remembered_consent(&user, &client.client_id, MCP, &scopes("read write"), now)
                .await
                .unwrap()
        );

        // Thirty days later it is gone, and what is approved then starts afresh.
        let later = now + time::Duration::days(30);
        fixture.clock.advance(Duration::from_secs(30 * 24 * 3600));
        assert!(
            !service
                .use_remembered_consent(&user, &client.client_id, MCP, &scopes("read"), later)
                .await
                .unwrap()
        );
        service
            .remember_consent(&user, &client.client_id, MCP, &scopes("read"), later)
            .await
            .unwrap();
        assert!(
            !service
                .use_remembered_consent(&user, &client.client_id, MCP, &scopes("write"), later)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn connected_apps_are_listed_and_disconnected() {
        let fixture = Fixture::new().await;
        let client = fixture.public_client().await;
        let user = fixture.user().await;
        let service = &fixture.service;
        let now = fixture.clock_now();
        service
            .remember_consent(&user, &client.client_id, MCP, &scopes("read"), now)
            .await
            .unwrap();
        let (code, verifier) = fixture.code(&client, &user, "read offline_access").await;
        let tokens = service
            .token(
                &client.credentials(),
                Fixture::exchange_request(&client, &code, &verifier),
            )
            .await
            .unwrap();

        let apps = service.connected_apps(&user).await.unwrap();
        assert_eq!(apps.len(), 1);
        let app = &apps[0];
        assert_eq!(app.client_id, client.client_id);
        assert_eq!(app.client_name.as_deref(), Some("public"));
        assert!(app.verified, "admin-made clients are verified");
        assert_eq!(app.resource, MCP);
        assert_eq!(app.scopes, ["read"]);
        assert!(!app.expired_at(now));

        assert_eq!(
            service
                .disconnect_app(&user, &client.client_id)
                .await
                .unwrap(),
            1
        );
        assert!(service.connected_apps(&user).await.unwrap().is_empty());
        let refresh = crate::testing::token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token.as_deref().unwrap()),
        ]);
        let refused = service.token(&client.credentials(), refresh).await;
        assert!(matches!(
            refused,
            Err(FlowError::OAuth(error)) if error.code() == latchkey_protocol::ErrorCode::InvalidGrant
        ));
    }
}
