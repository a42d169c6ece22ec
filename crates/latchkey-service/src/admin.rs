//! The operator's client commands (`latchkey client add|list|show|remove`).
//!
//! [`ClientAdmin`] needs only the store and a clock, not the signing keys,
//! so the commands work without the server secret. Clients made here have
//! origin `admin`, which makes a confidential one a trusted resource server
//! for introspection (it may introspect any token, see
//! [`crate::introspection`]).
//!
//! Defaults for `client add` (each overridable): a client with redirect
//! URIs uses `authorization_code` and `refresh_token`; a confidential
//! client without redirect URIs uses `client_credentials` (machine to
//! machine, benchmarks); confidential clients authenticate with
//! `client_secret_basic` (`client_secret_post` is accepted too); the
//! application type is `native` when a redirect URI is not `https`
//! (loopback or a private-use scheme), `web` otherwise.
//!
//! Removing a client deletes its codes, refresh tokens and consents (the
//! store cascades). A running server that cached the client keeps
//! accepting it for at most the client cache TTL (30 s by default).

use std::sync::Arc;

use latchkey_protocol::OAuthError;
use latchkey_protocol::client::{ClientMetadata, GrantType};
use latchkey_store::{ClientOrigin, Store};
use ring::rand::SystemRandom;
use time::OffsetDateTime;

use crate::clients::Client;
use crate::clock::Clock;
use crate::error::FlowError;
use crate::registration::{RegisteredClient, store_new_client};

/// What `latchkey client add` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewClient {
    /// The client's display name.
    pub name: String,
    /// Whether the client gets a secret.
    pub confidential: bool,
    /// Redirect URIs (for the authorization code grant).
    pub redirect_uris: Vec<String>,
    /// Grant types; empty means the defaults in the module docs.
    pub grant_types: Vec<String>,
    /// The scopes the client may request (space-separated); `None` for no
    /// restriction beyond each resource's.
    pub scope: Option<String>,
    /// `client_secret_basic` (default for confidential clients) or
    /// `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
}

impl NewClient {
    /// The registration metadata these options stand for.
    pub fn to_metadata(&self) -> ClientMetadata {
        let grant_types = if !self.grant_types.is_empty() {
            self.grant_types.clone()
        } else if !self.redirect_uris.is_empty() {
            vec![
                GrantType::AuthorizationCode.as_str().to_owned(),
                GrantType::RefreshToken.as_str().to_owned(),
            ]
        } else if self.confidential {
            vec![GrantType::ClientCredentials.as_str().to_owned()]
        } else {
            // A public client without redirect URIs can do nothing; let
            // validation say that redirect_uris is required.
            vec![GrantType::AuthorizationCode.as_str().to_owned()]
        };
        let auth_method = match (&self.token_endpoint_auth_method, self.confidential) {
            (Some(method), _) => method.clone(),
            (None, true) => "client_secret_basic".to_owned(),
            (None, false) => "none".to_owned(),
        };
        let native = self
            .redirect_uris
            .iter()
            .any(|uri| !uri.to_ascii_lowercase().starts_with("https://"));
        ClientMetadata {
            redirect_uris: (!self.redirect_uris.is_empty()).then(|| self.redirect_uris.clone()),
            token_endpoint_auth_method: Some(auth_method),
            grant_types: Some(grant_types),
            client_name: Some(self.name.clone()).filter(|name| !name.trim().is_empty()),
            scope: self.scope.clone(),
            application_type: Some(if native { "native" } else { "web" }.to_owned()),
            ..ClientMetadata::default()
        }
    }
}

/// A client as `latchkey client list|show` prints it.
#[derive(Debug, Clone)]
pub struct ClientSummary {
    /// The parsed client.
    pub client: Client,
    /// The stored metadata (what a registration response would echo).
    pub metadata: serde_json::Value,
}

/// The operator's view of the clients.
#[derive(Clone)]
pub struct ClientAdmin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    random: SystemRandom,
}

impl std::fmt::Debug for ClientAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAdmin").finish_non_exhaustive()
    }
}

impl ClientAdmin {
    /// Client administration on `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> ClientAdmin {
        ClientAdmin {
            store,
            clock,
            random: SystemRandom::new(),
        }
    }

    /// Creates a client; the returned secret is shown once and never again.
    pub async fn add(&self, new: &NewClient) -> Result<RegisteredClient, FlowError> {
        let metadata = new
            .to_metadata()
            .validate_registration()
            .map_err(|error| FlowError::OAuth(OAuthError::from(error)))?;
        store_new_client(
            self.store.as_ref(),
            &self.random,
            metadata,
            ClientOrigin::Admin,
            self.now(),
        )
        .await
    }

    /// Every client, oldest first. A client whose stored metadata no longer
    /// validates is reported as an error rather than skipped.
    pub async fn list(&self) -> Result<Vec<ClientSummary>, FlowError> {
        let records = self.store.list_clients().await?;
        records
            .iter()
            .map(|record| {
                Ok(ClientSummary {
                    client: Client::from_record(record)?,
                    metadata: record.metadata.clone(),
                })
            })
            .collect()
    }

    /// One client.
    pub async fn show(&self, client_id: &str) -> Result<Option<ClientSummary>, FlowError> {
        let Some(record) = self.store.find_client(client_id).await? else {
            return Ok(None);
        };
        Ok(Some(ClientSummary {
            client: Client::from_record(&record)?,
            metadata: record.metadata,
        }))
    }

    /// Deletes a client and its grants. Returns whether it existed.
    pub async fn remove(&self, client_id: &str) -> Result<bool, FlowError> {
        Ok(self.store.delete_client(client_id).await?)
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestClock;
    use latchkey_protocol::ErrorCode;
    use latchkey_protocol::client::TokenEndpointAuthMethod;
    use latchkey_store::memory::MemoryStore;

    fn admin() -> ClientAdmin {
        ClientAdmin::new(
            Arc::new(MemoryStore::new()),
            Arc::new(TestClock::new(
                OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            )),
        )
    }

    #[tokio::test]
    async fn a_confidential_client_without_redirects_is_machine_to_machine() {
        let admin = admin();
        let added = admin
            .add(&NewClient {
                name: "bench".to_owned(),
                confidential: true,
                ..NewClient::default()
            })
            .await
            .unwrap();
        assert!(
            added
                .client_secret
                .as_ref()
                .unwrap()
                .expose()
                .starts_with("lks_")
        );
        assert_eq!(added.origin, ClientOrigin::Admin);
        assert_eq!(added.metadata.grant_types(), [GrantType::ClientCredentials]);
        assert_eq!(
            added.metadata.token_endpoint_auth_method(),
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        let listed = admin.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].client.client_id(), added.client_id);
        assert!(listed[0].client.is_confidential());
    }

    #[tokio::test]
    async fn a_public_client_with_a_loopback_redirect_is_native_and_refreshes() {
        let admin = admin();
        let added = admin
            .add(&NewClient {
                name: "desktop".to_owned(),
                redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
                scope: Some("read".to_owned()),
                ..NewClient::default()
            })
            .await
            .unwrap();
        assert!(added.client_secret.is_none());
        assert_eq!(
            added.metadata.grant_types(),
            [GrantType::AuthorizationCode, GrantType::RefreshToken]
        );
        assert_eq!(added.metadata.application_type().as_str(), "native");
        let shown = admin.show(&added.client_id).await.unwrap().unwrap();
        assert_eq!(shown.metadata["scope"], "read");
        assert!(admin.remove(&added.client_id).await.unwrap());
        assert!(!admin.remove(&added.client_id).await.unwrap());
        assert!(admin.show(&added.client_id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn invalid_options_are_refused_with_the_reason() {
        let admin = admin();
        let public_without_redirect = admin
            .add(&NewClient {
                name: "x".to_owned(),
                ..NewClient::default()
            })
            .await;
        assert!(matches!(
            public_without_redirect,
            Err(FlowError::OAuth(error)) if error.code() == ErrorCode::InvalidRedirectUri
        ));
        let public_client_credentials = admin
            .add(&NewClient {
                name: "x".to_owned(),
                grant_types: vec!["client_credentials".to_owned()],
                ..NewClient::default()
            })
            .await;
        assert!(matches!(
            public_client_credentials,
            Err(FlowError::OAuth(error)) if error.code() == ErrorCode::InvalidClientMetadata
        ));
        assert!(admin.list().await.unwrap().is_empty());
    }
}
