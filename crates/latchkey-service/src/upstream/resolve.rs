//! Which local user an upstream identity signs in as.
//!
//! In this order, the first that applies deciding:
//! 1. an identity linked on `(issuer, subject)` signs in as its user;
//! 2. with `link_by_verified_email`, and only when the provider says
//!    `email_verified: true`, the identity is linked to the local user
//!    with that email (compared case-insensitively, as the store does);
//! 3. with `auto_provision`, and again only with a verified email, a user
//!    without a password is created and linked in one store transaction
//!    (`insert_user_with_identity`). An email that a local user has
//!    already is refused rather than linked: linking is step 2's decision
//!    alone. Requiring a verified email keeps an unverified address from
//!    being claimed now and linked by email from another provider later;
//! 4. otherwise the sign-in is refused.
//!
//! A disabled user is refused at every step. The raw `sub` is stored,
//! never derived from the email. Two concurrent first sign-ins of the same
//! identity both succeed: the loser of the unique `(issuer, subject)`
//! insert reads the winner's link.

use latchkey_store::{FederatedIdentityRecord, StoreError, UserRecord};
use time::OffsetDateTime;

use super::config::UpstreamProvider;
use super::oidc::UpstreamClaims;
use crate::Service;
use crate::accounts::normalize_email;
use crate::error::FlowError;
use crate::secrets::generate_identifier;

/// How an upstream identity was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// An existing link on `(issuer, subject)`.
    LinkedSubject,
    /// Newly linked to the local user with the verified email.
    LinkedEmail,
    /// A new user was created and linked.
    Provisioned,
}

impl Resolution {
    /// The name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::LinkedSubject => "linked_by_subject",
            Resolution::LinkedEmail => "linked_by_email",
            Resolution::Provisioned => "provisioned",
        }
    }
}

/// The result of resolution.
#[derive(Debug)]
pub(crate) enum Outcome {
    Resolved {
        user_id: String,
        resolution: Resolution,
    },
    NotAllowed,
    Disabled,
}

fn resolved(user: &UserRecord, resolution: Resolution) -> Outcome {
    if user.disabled {
        Outcome::Disabled
    } else {
        Outcome::Resolved {
            user_id: user.user_id.clone(),
            resolution,
        }
    }
}

impl Service {
    /// Resolves `claims` from `provider` to a local user (module docs).
    pub(crate) async fn resolve_upstream_identity(
        &self,
        provider: &UpstreamProvider,
        claims: &UpstreamClaims,
        now: OffsetDateTime,
    ) -> Result<Outcome, FlowError> {
        if let Some(outcome) = self.linked(provider, claims).await? {
            return Ok(outcome);
        }
        let verified_email = claims
            .email
            .as_deref()
            .filter(|_| claims.email_verified)
            .and_then(|email| normalize_email(email).ok());
        let Some(email) = verified_email else {
            return Ok(Outcome::NotAllowed);
        };
        let created_at = now.replace_nanosecond(0).unwrap_or(now);
        let identity = |user_id: &str| FederatedIdentityRecord {
            issuer: provider.issuer.clone(),
            subject: claims.subject.clone(),
            user_id: user_id.to_owned(),
            email: Some(email.clone()),
            created_at,
        };
        let store = &self.inner.store;
        if provider.link_by_verified_email
            && let Some(user) = store.find_user_by_email(&email).await?
        {
            if user.disabled {
                return Ok(Outcome::Disabled);
            }
            return match store.insert_identity(&identity(&user.user_id)).await {
                Ok(()) => Ok(resolved(&user, Resolution::LinkedEmail)),
                Err(StoreError::Conflict { .. }) => Ok(self
                    .linked(provider, claims)
                    .await?
                    .unwrap_or(Outcome::NotAllowed)),
                Err(StoreError::NotFound { .. }) => Ok(Outcome::NotAllowed),
                Err(other) => Err(other.into()),
            };
        }
        if !provider.auto_provision {
            return Ok(Outcome::NotAllowed);
        }
        let user = UserRecord {
            user_id: generate_identifier(self.random())?,
            email: email.clone(),
            password_hash: None,
            disabled: false,
            created_at,
        };
        match store
            .insert_user_with_identity(&user, &identity(&user.user_id))
            .await
        {
            Ok(()) => Ok(resolved(&user, Resolution::Provisioned)),
            Err(StoreError::Conflict { entity: "identity" }) => Ok(self
                .linked(provider, claims)
                .await?
                .unwrap_or(Outcome::NotAllowed)),
            // The email belongs to a local user whom this provider may not
            // link to (step 2 did not apply).
            Err(StoreError::Conflict { .. }) => Ok(Outcome::NotAllowed),
            Err(other) => Err(other.into()),
        }
    }

    /// The outcome for an existing link, if there is one.
    async fn linked(
        &self,
        provider: &UpstreamProvider,
        claims: &UpstreamClaims,
    ) -> Result<Option<Outcome>, FlowError> {
        let store = &self.inner.store;
        let Some(identity) = store
            .find_identity(&provider.issuer, &claims.subject)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(match store.find_user(&identity.user_id).await? {
            Some(user) => resolved(&user, Resolution::LinkedSubject),
            None => Outcome::NotAllowed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fixture;
    use latchkey_protocol::secret::SecretString;

    fn provider(link: bool, provision: bool) -> UpstreamProvider {
        let mut provider = UpstreamProvider::new(
            "corp",
            "https://idp.example.com",
            "latchkey",
            SecretString::new("s3cret"),
        );
        provider.link_by_verified_email = link;
        provider.auto_provision = provision;
        provider
    }

    fn claims(subject: &str, email: &str, verified: bool) -> UpstreamClaims {
        UpstreamClaims {
            subject: subject.to_owned(),
            email: Some(email.to_owned()),
            email_verified: verified,
        }
    }

    async fn local_user(fixture: &Fixture, email: &str) -> String {
        let user = UserRecord {
            user_id: format!("local-{email}"),
            email: email.to_owned(),
            password_hash: None,
            disabled: false,
            created_at: fixture.clock_now(),
        };
        fixture.service.store().insert_user(&user).await.unwrap();
        user.user_id
    }

    #[tokio::test]
    async fn resolution_follows_the_documented_order() {
        let fixture = Fixture::new().await;
        let service = &fixture.service;
        let now = fixture.clock_now();
        let ada = local_user(&fixture, "Ada@Example.org").await;

        // Nothing enabled: refused, even with a verified matching email.
        let refused = service
            .resolve_upstream_identity(
                &provider(false, false),
                &claims("s1", "ada@example.org", true),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(refused, Outcome::NotAllowed), "{refused:?}");

        // Linking by email needs email_verified.
        let unverified = service
            .resolve_upstream_identity(
                &provider(true, false),
                &claims("s1", "ada@example.org", false),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(unverified, Outcome::NotAllowed));

        let linked = service
            .resolve_upstream_identity(
                &provider(true, false),
                &claims("s1", "ada@example.org", true),
                now,
            )
            .await
            .unwrap();
        assert!(
            matches!(&linked, Outcome::Resolved { user_id, resolution: Resolution::LinkedEmail } if user_id == &ada),
            "{linked:?}"
        );
        // From now on the subject decides, whatever the flags and email.
        let again = service
            .resolve_upstream_identity(
                &provider(false, false),
                &claims("s1", "changed@example.org", false),
                now,
            )
            .await
            .unwrap();
        assert!(
            matches!(&again, Outcome::Resolved { user_id, resolution: Resolution::LinkedSubject } if user_id == &ada)
        );
        let stored = service
            .store()
            .find_identity("https://idp.example.com", "s1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.user_id, ada);

        // Auto-provisioning: a verified new email creates a user without
        // a password; an unverified one or a taken one is refused.
        let created = service
            .resolve_upstream_identity(
                &provider(false, true),
                &claims("s2", "new@example.org", true),
                now,
            )
            .await
            .unwrap();
        let Outcome::Resolved {
            user_id,
            resolution: Resolution::Provisioned,
        } = created
        else {
            panic!("{created:?}");
        };
        let user = service.store().find_user(&user_id).await.unwrap().unwrap();
        assert_eq!(user.email, "new@example.org");
        assert_eq!(user.password_hash, None);
        for refused in [
            claims("s3", "other@example.org", false),
            claims("s3", "ADA@example.org", true),
        ] {
            let outcome = service
                .resolve_upstream_identity(&provider(false, true), &refused, now)
                .await
                .unwrap();
            assert!(matches!(outcome, Outcome::NotAllowed), "{refused:?}");
        }
        assert_eq!(
            service
                .store()
                .find_identity("https://idp.example.com", "s3")
                .await
                .unwrap(),
            None
        );

        // A disabled user is refused however the identity resolves.
        service.store().set_user_disabled(&ada, true).await.unwrap();
        let disabled = service
            .resolve_upstream_identity(
                &provider(true, false),
                &claims("s1", "ada@example.org", true),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(disabled, Outcome::Disabled));
        let disabled = service
            .resolve_upstream_identity(
                &provider(true, false),
                &claims("s9", "ada@example.org", true),
                now,
            )
            .await
            .unwrap();
        assert!(matches!(disabled, Outcome::Disabled));
    }
}
