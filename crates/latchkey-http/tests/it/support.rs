//! The test harness: a real router on a real loopback port, over a real
//! SQLite file or Postgres database, driven with reqwest.
//!
//! [`TestApp::builder`] picks the backend and adjusts the configuration;
//! the issuer is `http://127.0.0.1:{port}` (plus an optional path), the
//! port being the one the listener got. The clock is a [`TestClock`]
//! starting at the current time, so that tokens look real to an outside
//! verifier and tests can still move time forward. [`backend_tests!`] runs
//! each scenario once per backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_http::{AppState, HttpConfig, router, serve};
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use latchkey_service::config::{ConfiguredResource, ResourceRegistry, ServiceConfig};
use latchkey_service::grants::code::ApprovedAuthorization;
use latchkey_service::{ServerSecret, Service, TestClock};
use latchkey_store::{Store, UserRecord};
use latchkey_store_diesel::testing::{TestDatabase, TestSqlite};
use latchkey_store_diesel::{PgStore, PoolOptions, SqliteStore};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use tokio::sync::oneshot;

/// The server secret every test app uses.
pub(crate) const SECRET: &str = "http-test-server-secret-0123456789abcdef";
/// The introspection secret every test app accepts.
pub(crate) const INTROSPECTION_SECRET: &str = "http-test-introspection-secret-01234";
/// The main protected resource.
pub(crate) const MCP: &str = "https://mcp.example.com/mcp";
/// A second protected resource.
pub(crate) const FILES: &str = "https://files.example.com";
/// A registered loopback redirect URI.
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:33418/callback";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// An SQLite file in a temporary directory.
    Sqlite,
    /// A fresh Postgres database.
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each scenario function
/// (an `async fn(Backend)` in the calling module).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// The database behind an app, kept alive as long as the app.
enum Database {
    Sqlite {
        _file: Arc<TestSqlite>,
        store: Arc<SqliteStore>,
    },
    Postgres {
        _database: Arc<TestDatabase>,
        store: Arc<PgStore>,
    },
}

impl Database {
    async fn create(backend: Backend, pool: &PoolOptions) -> Database {
        match backend {
            Backend::Sqlite => {
                let file = TestSqlite::create().unwrap();
                let store = file.open(pool).await.unwrap();
                Database::Sqlite {
                    _file: Arc::new(file),
                    store: Arc::new(store),
                }
            }
            Backend::Postgres => {
                let database = TestDatabase::create()
                    .await
                    .expect("Postgres must be running (see DATABASE_URL)");
                let store = database.connect(pool).await.unwrap();
                Database::Postgres {
                    _database: Arc::new(database),
                    store: Arc::new(store),
                }
            }
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite { store, .. } => store.clone(),
            Database::Postgres { store, .. } => store.clone(),
        }
    }

    fn share(&self) -> Database {
        match self {
            Database::Sqlite { _file, store } => Database::Sqlite {
                _file: _file.clone(),
                store: store.clone(),
            },
            Database::Postgres { _database, store } => Database::Postgres {
                _database: _database.clone(),
                store: store.clone(),
            },
        }
    }
}

/// A change to the service configuration.
type ConfigChange = Box<dyn FnOnce(&mut ServiceConfig) + Send>;

/// Builds a [`TestApp`].
pub(crate) struct TestAppBuilder {
    backend: Backend,
    issuer_path: String,
    https_issuer: bool,
    pool: PoolOptions,
    http: HttpConfig,
    changes: Vec<ConfigChange>,
    database: Option<Database>,
    clock: Option<Arc<TestClock>>,
    listener: Option<tokio::net::TcpListener>,
}

impl TestAppBuilder {
    /// Serves on this listener (bound by the test, which then knows the
    /// issuer before the app starts: the upstream provider tests register
    /// the callback URL at the provider first).
    pub(crate) fn listener(mut self, listener: tokio::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serves the issuer with this path (`/tenant1`).
    pub(crate) fn issuer_path(mut self, path: &str) -> Self {
        self.issuer_path = path.to_owned();
        self
    }

    /// Makes the issuer `https://127.0.0.1:{port}` although the tests talk
    /// plain http to the loopback port: the cookies and the Origin check
    /// then follow the https rules (`__Host-`, `Secure`).
    pub(crate) fn https_issuer(mut self) -> Self {
        self.https_issuer = true;
        self
    }

    /// Adjusts the service configuration.
    pub(crate) fn configure(
        mut self,
        change: impl FnOnce(&mut ServiceConfig) + Send + 'static,
    ) -> Self {
        self.changes.push(Box::new(change));
        self
    }

    /// Adjusts the HTTP configuration.
    pub(crate) fn http(mut self, change: impl FnOnce(&mut HttpConfig)) -> Self {
        change(&mut self.http);
        self
    }

    /// Uses these pool options for the store.
    pub(crate) fn pool(mut self, pool: PoolOptions) -> Self {
        self.pool = pool;
        self
    }

    /// Starts the app.
    pub(crate) async fn start(self) -> TestApp {
        let listener = match self.listener {
            Some(listener) => listener,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let address: SocketAddr = listener.local_addr().unwrap();
        let scheme = if self.https_issuer { "https" } else { "http" };
        let issuer = format!("{scheme}://{address}{}", self.issuer_path);
        let database = match self.database {
            Some(database) => database,
            None => Database::create(self.backend, &self.pool).await,
        };
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(TestClock::starting_now()));
        let mut config = ServiceConfig::new(issuer.clone());
        config.resources = ResourceRegistry::new([
            ConfiguredResource::parse_spec(&format!("{MCP}=read,write")).unwrap(),
            ConfiguredResource::parse_spec(&format!("{FILES}=files")).unwrap(),
        ])
        .unwrap();
        config.introspection_secret = Some(latchkey_protocol::secret::SecretString::new(
            INTROSPECTION_SECRET,
        ));
        // Every test registers from 127.0.0.1; the registration tests set
        // their own limit.
        config.registration_rate_limit = Some(latchkey_service::config::RateLimitSettings {
            max: 1000,
            window: Duration::from_secs(3600),
        });
        for change in self.changes {
            change(&mut config);
        }
        let service = Service::start(
            config,
            database.store(),
            clock.clone(),
            &ServerSecret::new(SECRET).unwrap(),
        )
        .await
        .unwrap();
        let app = router(AppState::new(service.clone(), self.http).unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, app, async move {
            let _ = stopped.await;
        }));
        TestApp {
            base: format!("http://{address}"),
            issuer,
            service,
            clock,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            backend: self.backend,
            database,
            stop: Some(stop),
            server: Some(server),
        }
    }
}

/// A running app.
pub(crate) struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub(crate) base: String,
    /// The issuer, byte-for-byte as configured.
    pub(crate) issuer: String,
    /// The service behind the router.
    pub(crate) service: Service,
    /// The service's clock.
    pub(crate) clock: Arc<TestClock>,
    /// An HTTP client.
    pub(crate) http: reqwest::Client,
    backend: Backend,
    database: Database,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A registered client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
}

/// The basic-auth header value for an id and secret (RFC 6749 §2.3.1:
/// form-urlencoded first; ours need no encoding).
pub(crate) fn basic(client_id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
    )
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
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

/// A response's status and JSON body (`Value::Null` when not JSON).
pub(crate) async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Asserts an OAuth error response: status, `error`, JSON content type and
/// no caching.
pub(crate) async fn assert_oauth_error(
    response: reqwest::Response,
    status: u16,
    error: &str,
) -> Value {
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cache_control = header(&response, "cache-control");
    let (actual, body) = json(response).await;
    assert_eq!(
        (actual, body["error"].as_str()),
        (status, Some(error)),
        "{body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(cache_control.as_deref(), Some("no-store"));
    if let Some(description) = body.get("error_description") {
        assert!(description.is_string(), "{body}");
    }
    body
}

/// A response header as text.
pub(crate) fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl TestApp {
    /// A builder for `backend`.
    pub(crate) fn builder(backend: Backend) -> TestAppBuilder {
        TestAppBuilder {
            backend,
            issuer_path: String::new(),
            https_issuer: false,
            pool: PoolOptions::default(),
            http: HttpConfig::default(),
            changes: Vec::new(),
            database: None,
            clock: None,
            listener: None,
        }
    }

    /// Starts an app with the defaults.
    pub(crate) async fn start(backend: Backend) -> TestApp {
        TestApp::builder(backend).start().await
    }

    /// A builder for another app on the same database and clock (another
    /// instance, or this one restarted with another configuration).
    pub(crate) fn sibling(&self) -> TestAppBuilder {
        TestAppBuilder {
            database: Some(self.database.share()),
            clock: Some(self.clock.clone()),
            ..TestApp::builder(self.backend)
        }
    }

    /// The store.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        self.database.store()
    }

    /// Holds the store's only pooled connection (with a pool of one) until
    /// the returned guard is dropped: every store operation then times out
    /// as unavailable.
    pub(crate) async fn exhaust_pool<T>(&self, while_held: impl AsyncFnOnce() -> T) -> T {
        match &self.database {
            Database::Sqlite { store, .. } => {
                let _held = store.hold_connection().await.unwrap();
                while_held().await
            }
            Database::Postgres { store, .. } => {
                let _held = store.hold_connection().await.unwrap();
                while_held().await
            }
        }
    }

    /// `{base}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A POST with a form body to `path`.
    pub(crate) fn post_form(&self, path: &str, body: impl Into<String>) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body.into())
    }

    /// A registration request with `metadata`.
    pub(crate) async fn register(&self, metadata: Value) -> reqwest::Response {
        self.http
            .post(self.url("/register"))
            .json(&metadata)
            .send()
            .await
            .unwrap()
    }

    /// Registers a confidential client for every grant it can use.
    pub(crate) async fn confidential_client(&self) -> Client {
        let (status, body) = json(
            self.register(serde_json::json!({
                "client_name": "test confidential",
                "redirect_uris": [REDIRECT_URI],
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            }))
            .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        Client {
            client_id: body["client_id"].as_str().unwrap().to_owned(),
            client_secret: Some(body["client_secret"].as_str().unwrap().to_owned()),
        }
    }

    /// Registers a public client using the code and refresh grants.
    pub(crate) async fn public_client(&self) -> Client {
        let (status, body) = json(
            self.register(serde_json::json!({
                "client_name": "test public",
                "redirect_uris": [REDIRECT_URI],
                "application_type": "native",
                "grant_types": ["authorization_code", "refresh_token"],
            }))
            .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        Client {
            client_id: body["client_id"].as_str().unwrap().to_owned(),
            client_secret: None,
        }
    }

    /// An operator-made confidential client (trusted for introspection).
    pub(crate) async fn admin_client(&self) -> Client {
        let admin = latchkey_service::admin::ClientAdmin::new(self.store(), self.clock.clone());
        let added = admin
            .add(&latchkey_service::admin::NewClient {
                name: "resource server".to_owned(),
                confidential: true,
                ..Default::default()
            })
            .await
            .unwrap();
        Client {
            client_id: added.client_id,
            client_secret: added.client_secret.map(|secret| secret.expose().to_owned()),
        }
    }

    /// A client-credentials token for `client` (Basic auth) and `resource`.
    pub(crate) async fn client_credentials(
        &self,
        client: &Client,
        extra: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut pairs = vec![("grant_type", "client_credentials"), ("resource", MCP)];
        pairs.extend_from_slice(extra);
        self.post_form("/token", form(&pairs))
            .header(
                AUTHORIZATION,
                basic(&client.client_id, client.client_secret.as_deref().unwrap()),
            )
            .send()
            .await
            .unwrap()
    }

    /// A new enabled user.
    pub(crate) async fn user(&self) -> String {
        let user_id = format!("user-{}", random_suffix());
        self.store()
            .insert_user(&UserRecord {
                user_id: user_id.clone(),
                email: format!("{user_id}@example.com"),
                password_hash: None,
                disabled: false,
                created_at: self.service.now(),
            })
            .await
            .unwrap();
        user_id
    }

    /// A code for `client` and a new user, issued by the service (the
    /// authorization endpoint does not exist yet); returns the code and
    /// the verifier.
    pub(crate) async fn code(&self, client: &Client, scope: &str) -> (String, String) {
        let user = self.user().await;
        let verifier = CodeVerifier::generate(&ring::rand::SystemRandom::new()).unwrap();
        let issued = self
            .service
            .issue_authorization_code(ApprovedAuthorization {
                client_id: client.client_id.clone(),
                user_id: user,
                redirect_uri: REDIRECT_URI.to_owned(),
                code_challenge: CodeChallenge::s256(&verifier),
                scope: Some(ScopeSet::parse(scope).unwrap()),
                resource: Some(ResourceUri::parse(MCP).unwrap()),
                auth_time: self.service.now(),
            })
            .await
            .unwrap();
        (
            issued.code.expose().to_owned(),
            verifier.as_str().to_owned(),
        )
    }

    /// Sends a token request for `client`: Basic for confidential clients,
    /// `client_id` in the body for public ones.
    pub(crate) async fn token(&self, client: &Client, pairs: &[(&str, &str)]) -> reqwest::Response {
        let mut pairs = pairs.to_vec();
        let request = match &client.client_secret {
            Some(secret) => self
                .post_form("/token", form(&pairs))
                .header(AUTHORIZATION, basic(&client.client_id, secret)),
            None => {
                pairs.push(("client_id", &client.client_id));
                self.post_form("/token", form(&pairs))
            }
        };
        request.send().await.unwrap()
    }

    /// Exchanges a fresh code for `client`: the token response body.
    pub(crate) async fn code_grant(&self, client: &Client, scope: &str) -> Value {
        let (code, verifier) = self.code(client, scope).await;
        let (status, body) = json(
            self.token(
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("code_verifier", &verifier),
                    ("redirect_uri", REDIRECT_URI),
                    ("resource", MCP),
                ],
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Introspects `token` with the introspection secret.
    pub(crate) async fn introspect(&self, token: &str) -> Value {
        let response = self
            .post_form("/introspect", form(&[("token", token)]))
            .header(AUTHORIZATION, format!("Bearer {INTROSPECTION_SECRET}"))
            .send()
            .await
            .unwrap();
        let (status, body) = json(response).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Verifies `token` against the published `/jwks.json` with josekit,
    /// independently of the service's own verification, and returns the
    /// header and claims.
    pub(crate) async fn verify_with_jwks(&self, token: &str) -> (Value, Value) {
        let (status, jwks) =
            json(self.http.get(self.url("/jwks.json")).send().await.unwrap()).await;
        assert_eq!(status, 200);
        verify_with(&jwks, token)
    }
}

/// Verifies `token` with the key named by its `kid` in `jwks`.
pub(crate) fn verify_with(jwks: &Value, token: &str) -> (Value, Value) {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in {jwks}"));
    let jwk = josekit::jwk::Jwk::from_map(key.as_object().unwrap().clone()).unwrap();
    let verifier: Box<dyn josekit::jws::JwsVerifier> = match header["alg"].as_str().unwrap() {
        "ES256" => Box::new(josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap()),
        "RS256" => Box::new(josekit::jws::RS256.verifier_from_jwk(&jwk).unwrap()),
        "EdDSA" => Box::new(josekit::jws::EdDSA.verifier_from_jwk(&jwk).unwrap()),
        other => panic!("unexpected alg {other}"),
    };
    let (payload, _) = josekit::jws::deserialize_compact(token, verifier.as_ref()).unwrap();
    (header, serde_json::from_slice(&payload).unwrap())
}

/// A short random suffix for names.
pub(crate) fn random_suffix() -> String {
    let mut bytes = [0_u8; 6];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}
