//! Shared fixtures for the service's unit tests: a service on the
//! in-memory store with a test clock, two configured resources, and
//! helpers that make clients, users, codes and token requests.

use std::sync::Arc;

use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_protocol::params::{FormParams, TokenRequest};
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::secret::SecretString;
use latchkey_store::memory::MemoryStore;
use latchkey_store::{Store, UserRecord};
use time::OffsetDateTime;

use crate::admin::{ClientAdmin, NewClient};
use crate::config::{ConfiguredResource, ResourceRegistry, ServiceConfig};
use crate::grants::TokenResponse;
use crate::grants::code::ApprovedAuthorization;
use crate::{ServerSecret, Service, TestClock};

/// The server secret every fixture uses.
pub(crate) const SECRET: &str = "unit-test-server-secret-0123456789abcdef";
/// The main resource.
pub(crate) const MCP: &str = "https://mcp.example.com/mcp";
/// The second resource.
pub(crate) const FILES: &str = "https://files.example.com";

/// The fixture configuration: issuer `https://auth.example.com`, resources
/// `MCP` (scopes `read write`) and `FILES` (scope `files`).
pub(crate) fn config() -> ServiceConfig {
    let mut config = ServiceConfig::new("https://auth.example.com");
    config.resources = ResourceRegistry::new([
        ConfiguredResource::parse_spec(&format!("{MCP}=read,write")).unwrap(),
        ConfiguredResource::parse_spec(&format!("{FILES}=files")).unwrap(),
    ])
    .unwrap();
    config
}

/// A client made by a fixture, with what a test needs to use it.
#[derive(Debug, Clone)]
pub(crate) struct TestClient {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) redirect_uri: String,
}

impl TestClient {
    pub(crate) fn secret(&self) -> &str {
        self.client_secret.as_deref().unwrap()
    }

    pub(crate) fn credentials(&self) -> ClientCredentials {
        match &self.client_secret {
            Some(secret) => basic(&self.client_id, secret),
            None => none(&self.client_id),
        }
    }
}

/// A service, its store and its clock.
pub(crate) struct Fixture {
    pub(crate) service: Service,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<TestClock>,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
        Fixture::with(|_| {}).await
    }

    /// A fixture whose configuration `change` adjusts.
    pub(crate) async fn with(change: impl FnOnce(&mut ServiceConfig)) -> Fixture {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let clock = Arc::new(TestClock::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        ));
        let mut config = config();
        change(&mut config);
        let service = Service::start(
            config,
            Arc::clone(&store),
            clock.clone(),
            &ServerSecret::new(SECRET).unwrap(),
        )
        .await
        .unwrap();
        Fixture {
            service,
            store,
            clock,
        }
    }

    pub(crate) fn clock_now(&self) -> OffsetDateTime {
        self.service.now()
    }

    /// Another service on the same store, clock and secret, with another
    /// configuration (another instance, or this one after a restart).
    pub(crate) async fn sibling_with(&self, change: impl FnOnce(&mut ServiceConfig)) -> Service {
        let mut config = config();
        change(&mut config);
        Service::start(
            config,
            Arc::clone(&self.store),
            self.clock.clone(),
            &ServerSecret::new(SECRET).unwrap(),
        )
        .await
        .unwrap()
    }

    /// [`Fixture::sibling_with`] with another issuer.
    pub(crate) async fn sibling(&self, issuer: &str) -> Service {
        let issuer = issuer.to_owned();
        self.sibling_with(move |config| config.issuer = issuer)
            .await
    }

    fn admin(&self) -> ClientAdmin {
        ClientAdmin::new(Arc::clone(&self.store), self.clock.clone())
    }

    async fn add(&self, new: NewClient) -> TestClient {
        let redirect_uri = new.redirect_uris.first().cloned().unwrap_or_default();
        let added = self.admin().add(&new).await.unwrap();
        TestClient {
            client_id: added.client_id,
            client_secret: added.client_secret.map(|secret| secret.expose().to_owned()),
            redirect_uri,
        }
    }

    /// A public client with a loopback redirect, using the code and refresh
    /// grants.
    pub(crate) async fn public_client(&self) -> TestClient {
        self.add(NewClient {
            name: "public".to_owned(),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
            ..NewClient::default()
        })
        .await
    }

    /// A public client that did not register `refresh_token`.
    pub(crate) async fn public_client_without_refresh(&self) -> TestClient {
        self.add(NewClient {
            name: "no refresh".to_owned(),
            redirect_uris: vec!["http://127.0.0.1/callback".to_owned()],
            grant_types: vec!["authorization_code".to_owned()],
            ..NewClient::default()
        })
        .await
    }

    /// A confidential client using every grant, authenticating with
    /// `method`.
    pub(crate) async fn confidential_client(&self, method: &str) -> TestClient {
        self.add(NewClient {
            name: "confidential".to_owned(),
            confidential: true,
            redirect_uris: vec!["https://app.example.com/callback".to_owned()],
            grant_types: vec![
                "authorization_code".to_owned(),
                "refresh_token".to_owned(),
                "client_credentials".to_owned(),
            ],
            token_endpoint_auth_method: Some(method.to_owned()),
            ..NewClient::default()
        })
        .await
    }

    /// A new enabled user; returns its id.
    pub(crate) async fn user(&self) -> String {
        let user_id = crate::secrets::generate_identifier(self.service.random()).unwrap();
        self.store
            .insert_user(&UserRecord {
                user_id: user_id.clone(),
                email: format!("{user_id}@example.com"),
                password_hash: None,
                disabled: false,
                created_at: self.clock_now(),
            })
            .await
            .unwrap();
        user_id
    }

    /// Issues a code for `client` and `user` for the MCP resource; returns
    /// the code and its verifier.
    pub(crate) async fn code(
        &self,
        client: &TestClient,
        user_id: &str,
        scope: &str,
    ) -> (String, CodeVerifier) {
        let verifier = CodeVerifier::generate(self.service.random()).unwrap();
        let issued = self
            .service
            .issue_authorization_code(ApprovedAuthorization {
                client_id: client.client_id.clone(),
                user_id: user_id.to_owned(),
                redirect_uri: client.redirect_uri.clone(),
                code_challenge: CodeChallenge::s256(&verifier),
                scope: Some(latchkey_protocol::scope::ScopeSet::parse(scope).unwrap()),
                resource: Some(latchkey_protocol::resource::ResourceUri::parse(MCP).unwrap()),
                auth_time: self.clock_now(),
            })
            .await
            .unwrap();
        (issued.code.expose().to_owned(), verifier)
    }

    /// The token request exchanging `code`.
    pub(crate) fn exchange_request(
        client: &TestClient,
        code: &str,
        verifier: &CodeVerifier,
    ) -> TokenRequest {
        token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", &client.redirect_uri),
            ("resource", MCP),
        ])
    }

    /// A new user's code for `client`, exchanged: the tokens.
    pub(crate) async fn code_grant_tokens(
        &self,
        client: &TestClient,
        scope: &str,
    ) -> TokenResponse {
        let user = self.user().await;
        let (code, verifier) = self.code(client, &user, scope).await;
        self.service
            .token(
                &client.credentials(),
                Fixture::exchange_request(client, &code, &verifier),
            )
            .await
            .unwrap()
    }
}

/// Public-client identification.
pub(crate) fn none(client_id: &str) -> ClientCredentials {
    ClientCredentials::None {
        client_id: client_id.to_owned(),
    }
}

/// `client_secret_basic`.
pub(crate) fn basic(client_id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials::Basic {
        client_id: client_id.to_owned(),
        client_secret: SecretString::new(secret),
    }
}

/// `client_secret_post`.
pub(crate) fn post(client_id: &str, secret: &str) -> ClientCredentials {
    ClientCredentials::Post {
        client_id: client_id.to_owned(),
        client_secret: SecretString::new(secret),
    }
}

/// A token request from form pairs, parsed by the protocol crate as the
/// HTTP layer does.
pub(crate) fn token_request(pairs: &[(&str, &str)]) -> TokenRequest {
    let body = url_encode(pairs);
    TokenRequest::parse(&FormParams::parse(body.as_bytes()).unwrap()).unwrap()
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn url_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
