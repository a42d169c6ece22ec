//! Dynamic client registration (RFC 7591) and the shared code that stores
//! a new client, dynamic or operator-made.
//!
//! Order of checks at `POST /register`:
//! 1. policy: `closed` refuses everything ([`FlowError::Forbidden`] with
//!    `access_denied`; the HTTP layer answers 403, as RFC 7591 §3 lets a
//!    server refuse registration); `token` requires
//!    `Authorization: Bearer <initial access token>`, compared in constant
//!    time, and answers `invalid_token` otherwise (RFC 7591 §3, RFC 6750
//!    §3.1);
//! 2. the per-address rate limit (sliding window, default 20 per hour;
//!    [`FlowError::RateLimited`] → 429 with `Retry-After`). Attempts are
//!    counted whether or not the metadata turns out valid, so invalid
//!    requests cannot probe without limit;
//! 3. the metadata, validated by `latchkey-protocol`
//!    (`invalid_client_metadata` / `invalid_redirect_uri`);
//! 4. the client is stored with a random 22-character id and, for
//!    confidential clients, a 256-bit `lks_` secret stored as SHA-256.
//!
//! The response ([`RegisteredClient::to_json`]) echoes every registered
//! field, defaults included, plus `client_id`, `client_id_issued_at` and,
//! for confidential clients, `client_secret` and
//! `client_secret_expires_at: 0` (never expires) (RFC 7591 §3.2.1).

use std::net::IpAddr;

use latchkey_protocol::OAuthError;
use latchkey_protocol::client::{ClientMetadata, ValidatedClient};
use latchkey_protocol::secret::{SecretString, constant_time_eq};
use latchkey_store::{ClientOrigin, ClientRecord, SecretHash, Store, StoreError};
use ring::rand::SystemRandom;
use serde_json::Value;
use time::OffsetDateTime;

use crate::Service;
use crate::config::RegistrationPolicy;
use crate::error::FlowError;
use crate::ratelimit::{Decision, address_key};
use crate::secrets::{SecretKind, generate_identifier, generate_secret};

/// A client just stored; its secret (if any) is shown this once.
#[derive(Clone)]
pub struct RegisteredClient {
    /// The new client id.
    pub client_id: String,
    /// The client secret, for confidential clients. Not stored anywhere in
    /// clear: this is the only chance to show it.
    pub client_secret: Option<SecretString>,
    /// When the client was registered.
    pub client_id_issued_at: OffsetDateTime,
    /// How it was registered.
    pub origin: ClientOrigin,
    /// The validated, defaulted metadata.
    pub metadata: ValidatedClient,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl RegisteredClient {
    /// The registration response body (RFC 7591 §3.2.1).
    pub fn to_json(&self) -> Value {
        let mut body = match self.metadata.to_json() {
            Value::Object(object) => object,
            _ => serde_json::Map::new(),
        };
        body.insert("client_id".to_owned(), Value::from(self.client_id.as_str()));
        body.insert(
            "client_id_issued_at".to_owned(),
            Value::from(self.client_id_issued_at.unix_timestamp()),
        );
        if let Some(secret) = &self.client_secret {
            body.insert("client_secret".to_owned(), Value::from(secret.expose()));
            body.insert("client_secret_expires_at".to_owned(), Value::from(0));
        }
        Value::Object(body)
    }
}

/// Stores a new client with a fresh id and, if confidential, a fresh secret.
pub(crate) async fn store_new_client(
    store: &dyn Store,
    random: &SystemRandom,
    metadata: ValidatedClient,
    origin: ClientOrigin,
    now: OffsetDateTime,
) -> Result<RegisteredClient, FlowError> {
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let client_secret = if metadata.token_endpoint_auth_method().is_confidential() {
        Some(generate_secret(random, SecretKind::ClientSecret)?)
    } else {
        None
    };
    // A 128-bit id colliding is astronomically unlikely; one retry covers
    // it anyway, so a collision never surfaces as an error.
    for _ in 0..2 {
        let client_id = generate_identifier(random)?;
        let record = ClientRecord {
            client_id: client_id.clone(),
            secret_hash: client_secret
                .as_ref()
                .map(|secret| SecretHash::of(secret.expose())),
            origin,
            metadata: metadata.to_json(),
            created_at: now,
            expires_at: None,
        };
        match store.insert_client(&record).await {
            Ok(()) => {
                return Ok(RegisteredClient {
                    client_id,
                    client_secret,
                    client_id_issued_at: now,
                    origin,
                    metadata,
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(FlowError::Internal(
        "two client id collisions in a row".to_owned(),
    ))
}

/// The token of an `Authorization: Bearer <token>` header value, if that
/// is what it is.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Service {
    /// Registers a client from a JSON registration request (RFC 7591 §3.1).
    ///
    /// `authorization` is the request's `Authorization` header, if any (the
    /// initial access token under the `token` policy); `client_address` the
    /// address registrations are rate-limited by.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn register(
        &self,
        body: &[u8],
        authorization: Option<&str>,
        client_address: IpAddr,
    ) -> Result<RegisteredClient, FlowError> {
        match &self.config().registration {
            RegistrationPolicy::Open => {}
            RegistrationPolicy::Closed => {
                return Err(FlowError::Forbidden(OAuthError::access_denied(
                    "dynamic client registration is closed on this server: ask its operator for a client",
                )));
            }
            RegistrationPolicy::Token(expected) => {
                let presented = authorization.and_then(bearer_token);
                let valid = presented.is_some_and(|token| {
                    constant_time_eq(token.as_bytes(), expected.expose().as_bytes())
                });
                if !valid {
                    return Err(FlowError::OAuth(OAuthError::invalid_token(
                        "a valid initial access token is required to register (RFC 7591 section 3)",
                    )));
                }
            }
        }
        let now = self.now();
        if let Some(limiter) = &self.inner.registration_limiter
            && let Decision::Limited { retry_after } =
                limiter.check(&address_key(client_address), now)
        {
            return Err(FlowError::RateLimited {
                error: OAuthError::temporarily_unavailable(format!(
                    "too many client registrations from this address; retry in {} seconds",
                    retry_after.as_secs()
                )),
                retry_after,
            });
        }
        let metadata = ClientMetadata::from_json(body)
            .and_then(ClientMetadata::validate_registration)
            .map_err(|error| FlowError::OAuth(OAuthError::from(error)))?;
        let registered = store_new_client(
            self.inner.store.as_ref(),
            self.random(),
            metadata,
            ClientOrigin::Dynamic,
            now,
        )
        .await?;
        tracing::Span::current().record("client_id", registered.client_id.as_str());
        tracing::info!(
            auth_method = %registered.metadata.token_endpoint_auth_method(),
            "registered a client"
        );
        Ok(registered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimitSettings;
    use crate::testing::Fixture;
    use latchkey_protocol::ErrorCode;
    use std::time::Duration;

    const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn code(outcome: Result<RegisteredClient, FlowError>) -> ErrorCode {
        match outcome {
            Err(FlowError::OAuth(error)) => error.code(),
            other => panic!("expected an OAuth error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn public_and_confidential_clients_register() {
        let fixture = Fixture::new().await;
        let public = fixture
            .service
            .register(
                br#"{"redirect_uris":["http://127.0.0.1:3000/callback"],"client_name":"CLI","application_type":"native","unknown_field":1}"#,
                None,
                LOCALHOST,
            )
            .await
            .unwrap();
        let json = public.to_json();
        assert_eq!(json["client_id"], public.client_id.as_str());
        assert_eq!(
            json["redirect_uris"],
            serde_json::json!(["http://127.0.0.1:3000/callback"])
        );
        assert_eq!(json["token_endpoint_auth_method"], "none");
        assert_eq!(
            json["grant_types"],
            serde_json::json!(["authorization_code"])
        );
        assert_eq!(
            json["client_id_issued_at"],
            fixture.clock_now().unix_timestamp()
        );
        assert!(json.get("client_secret").is_none());
        assert!(json.get("unknown_field").is_none());

        let confidential = fixture
            .service
            .register(
                br#"{"token_endpoint_auth_method":"client_secret_post","grant_types":["client_credentials"]}"#,
                None,
                LOCALHOST,
            )
            .await
            .unwrap();
        let json = confidential.to_json();
        let secret = json["client_secret"].as_str().unwrap();
        assert!(secret.starts_with("lks_"));
        assert_eq!(json["client_secret_expires_at"], 0);
        // Only the hash is stored.
        let record = fixture
            .store
            .find_client(&confidential.client_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.secret_hash, Some(SecretHash::of(secret)));
        assert_eq!(record.origin, ClientOrigin::Dynamic);
        assert!(!record.metadata.to_string().contains(secret));
        assert!(!format!("{confidential:?}").contains(secret));
    }

    #[tokio::test]
    async fn invalid_metadata_is_refused_with_the_rfc_7591_codes() {
        let fixture = Fixture::new().await;
        let cases: [(&[u8], ErrorCode); 6] = [
            (br#"{"redirect_uris":["http://evil.example/cb"]}"#, ErrorCode::InvalidRedirectUri),
            (br#"{"redirect_uris":[]}"#, ErrorCode::InvalidRedirectUri),
            (
                br#"{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                br#"{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"],"response_types":["code"]}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (
                br#"{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}"#,
                ErrorCode::InvalidClientMetadata,
            ),
            (b"{not json", ErrorCode::InvalidClientMetadata),
        ];
        for (body, expected) in cases {
            assert_eq!(
                code(fixture.service.register(body, None, LOCALHOST).await),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(fixture.store.list_clients().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_closed_policy_refuses_everyone() {
        let fixture =
            Fixture::with(|config| config.registration = RegistrationPolicy::Closed).await;
        let outcome = fixture
            .service
            .register(
                br#"{"redirect_uris":["https://a.example/cb"]}"#,
                None,
                LOCALHOST,
            )
            .await;
        assert!(matches!(
            outcome,
            Err(FlowError::Forbidden(error)) if error.code() == ErrorCode::AccessDenied
        ));
    }

    #[tokio::test]
    async fn the_token_policy_needs_the_initial_access_token() {
        let token = "initial-access-token-0123456789";
        let fixture = Fixture::with(|config| {
            config.registration = RegistrationPolicy::Token(SecretString::new(token));
        })
        .await;
        let body = br#"{"redirect_uris":["https://a.example/cb"]}"#;
        for authorization in [
            None,
            Some("Bearer wrong-token-0123456789012"),
            Some("Basic aW5pdGlhbDp4"),
            Some("Bearer"),
        ] {
            assert_eq!(
                code(
                    fixture
                        .service
                        .register(body, authorization, LOCALHOST)
                        .await
                ),
                ErrorCode::InvalidToken,
                "{authorization:?}"
            );
        }
        let header = format!("bearer {token}");
        assert!(
            fixture
                .service
                .register(body, Some(&header), LOCALHOST)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn registrations_are_rate_limited_per_address() {
        let fixture = Fixture::with(|config| {
            config.registration_rate_limit = Some(RateLimitSettings {
                max: 2,
                window: Duration::from_secs(3600),
            });
        })
        .await;
        let body = br#"{"redirect_uris":["https://a.example/cb"]}"#;
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(
            fixture
                .service
                .register(body, None, LOCALHOST)
                .await
                .is_ok()
        );
        // Invalid requests count too.
        assert!(
            fixture
                .service
                .register(b"[]", None, LOCALHOST)
                .await
                .is_err()
        );
        match fixture.service.register(body, None, LOCALHOST).await {
            Err(FlowError::RateLimited { error, retry_after }) => {
                assert_eq!(error.code(), ErrorCode::TemporarilyUnavailable);
                assert!(retry_after >= Duration::from_secs(1));
            }
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(fixture.service.register(body, None, other).await.is_ok());
        // Two windows later the address may register again.
        fixture.clock.advance(Duration::from_secs(7200));
        assert!(
            fixture
                .service
                .register(body, None, LOCALHOST)
                .await
                .is_ok()
        );
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
