//! Real servers for the integration tests, all on loopback: a token issuer
//! (RFC 8414 or OpenID Connect discovery, a JWKS that counts its requests
//! and can rotate or fail, an introspection endpoint), an MCP-like upstream
//! (echoes what it received, streams SSE behind a gate the test opens,
//! answers DELETE), and the guard proxy in front of it.
//!
//! Keys are generated fresh with josekit for every issuer; tokens are
//! signed by hand so a test can put anything in the header.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::{Jwk, KeyPair};
use josekit::jws::{ES256, EdDSA, JwsSigner, RS256};
use latchkey_protocol::resource::ResourceUri;
use latchkey_resource::proxy::{self, GuardProxy, GuardProxyBuilder};
use latchkey_resource::{Algorithm, GuardConfig, TokenValidator, TokenValidatorBuilder};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// The current Unix time.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Binds a loopback listener on a free port.
pub(crate) async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// A task that is aborted when dropped, so no server outlives its test.
pub(crate) struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Task {
    /// Serves `app` on `listener` until dropped.
    pub(crate) fn spawn_router(listener: TcpListener, app: Router) -> Task {
        spawn_app(listener, app)
    }
}

fn spawn_app(listener: TcpListener, app: Router) -> Task {
    Task(tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    }))
}

/// A signing key with its public JWK.
pub(crate) struct TestKey {
    pub(crate) kid: String,
    pub(crate) algorithm: Algorithm,
    pub(crate) signer: Box<dyn JwsSigner>,
    pub(crate) public: Jwk,
    pub(crate) public_pem: Vec<u8>,
}

impl TestKey {
    pub(crate) fn generate(algorithm: Algorithm, kid: &str) -> TestKey {
        let (signer, mut public, public_pem): (Box<dyn JwsSigner>, Jwk, Vec<u8>) = match algorithm {
            Algorithm::Es256 => {
                let pair = ES256.generate_key_pair().unwrap();
                (
                    Box::new(ES256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
                    pair.to_jwk_public_key(),
                    pair.to_pem_public_key(),
                )
            }
            Algorithm::Rs256 => {
                let pair = RS256.generate_key_pair(2048).unwrap();
                (
                    Box::new(RS256.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
                    pair.to_jwk_public_key(),
                    pair.to_pem_public_key(),
                )
            }
            Algorithm::EdDsa => {
                let pair = EdDSA.generate_key_pair(josekit::jwk::Ed25519).unwrap();
                (
                    Box::new(EdDSA.signer_from_jwk(&pair.to_jwk_key_pair()).unwrap()),
                    pair.to_jwk_public_key(),
                    pair.to_pem_public_key(),
                )
            }
        };
        public.set_key_id(kid);
        TestKey {
            kid: kid.to_owned(),
            algorithm,
            signer,
            public,
            public_pem,
        }
    }

    /// The public JWK as JSON.
    pub(crate) fn public_json(&self) -> Value {
        Value::Object(self.public.as_ref().clone())
    }
}

/// Signs `header` and `claims` with a signing function, as a compact JWS.
pub(crate) fn compact(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Signs with a key, with the standard Latchkey header (`typ: at+jwt`,
/// `alg` of the key, `kid`).
pub(crate) fn sign(key: &TestKey, claims: &Value) -> String {
    let header = json!({"alg": key.algorithm.as_str(), "typ": "at+jwt", "kid": key.kid});
    sign_with_header(key, &header, claims)
}

/// Signs with a key and an arbitrary header.
pub(crate) fn sign_with_header(key: &TestKey, header: &Value, claims: &Value) -> String {
    compact(header, claims, |input| key.signer.sign(input).unwrap())
}

/// How the issuer publishes its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Discovery {
    /// RFC 8414 `oauth-authorization-server`.
    OAuth,
    /// Only OpenID Connect `openid-configuration` (path-inserted).
    OpenId,
}

struct IssuerState {
    issuer: String,
    base: String,
    keys: Mutex<Vec<Arc<TestKey>>>,
    jwks_requests: AtomicUsize,
    jwks_failing: AtomicBool,
    metadata_issuer: Mutex<Option<String>>,
    introspection_requests: AtomicUsize,
    introspection_answers: Mutex<HashMap<String, Value>>,
    introspection_authorization: String,
}

/// A real token issuer on loopback.
pub(crate) struct TestIssuer {
    pub(crate) issuer: String,
    pub(crate) base: String,
    state: Arc<IssuerState>,
    _task: Task,
}

/// The Basic credentials the test introspection endpoint accepts.
pub(crate) const INTROSPECTION_CLIENT: (&str, &str) = ("guard", "introspection secret");

impl TestIssuer {
    /// An issuer at `http://127.0.0.1:port{path}` publishing `keys`.
    pub(crate) async fn start(path: &str, discovery: Discovery, keys: Vec<TestKey>) -> TestIssuer {
        let (listener, address) = listener().await;
        let base = format!("http://{address}");
        let issuer = format!("{base}{path}");
        let basic = format!(
            "{}:{}",
            url::form_urlencoded::byte_serialize(INTROSPECTION_CLIENT.0.as_bytes())
                .collect::<String>(),
            url::form_urlencoded::byte_serialize(INTROSPECTION_CLIENT.1.as_bytes())
                .collect::<String>()
        );
        let state = Arc::new(IssuerState {
            issuer: issuer.clone(),
            base: base.clone(),
            keys: Mutex::new(keys.into_iter().map(Arc::new).collect()),
            jwks_requests: AtomicUsize::new(0),
            jwks_failing: AtomicBool::new(false),
            metadata_issuer: Mutex::new(None),
            introspection_requests: AtomicUsize::new(0),
            introspection_answers: Mutex::new(HashMap::new()),
            introspection_authorization: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(basic)
            ),
        });
        let suffix = match discovery {
            Discovery::OAuth => "oauth-authorization-server",
            Discovery::OpenId => "openid-configuration",
        };
        let app = Router::new()
            .route(
                &format!("/.well-known/{suffix}{path}"),
                get(issuer_metadata),
            )
            .route("/jwks.json", get(issuer_jwks))
            .route("/introspect", post(issuer_introspect))
            .with_state(Arc::clone(&state));
        TestIssuer {
            issuer,
            base,
            state,
            _task: spawn_app(listener, app),
        }
    }

    /// An RFC 8414 issuer without a path and one ES256 key `es-1`.
    pub(crate) async fn latchkey() -> TestIssuer {
        TestIssuer::start(
            "",
            Discovery::OAuth,
            vec![TestKey::generate(Algorithm::Es256, "es-1")],
        )
        .await
    }

    /// The key with this `kid`.
    pub(crate) fn key(&self, kid: &str) -> Arc<TestKey> {
        let keys = self.state.keys.lock().unwrap();
        Arc::clone(keys.iter().find(|key| key.kid == kid).unwrap())
    }

    /// The first published key.
    pub(crate) fn first_key(&self) -> Arc<TestKey> {
        Arc::clone(&self.state.keys.lock().unwrap()[0])
    }

    /// Publishes another key.
    pub(crate) fn publish(&self, key: TestKey) {
        self.state.keys.lock().unwrap().push(Arc::new(key));
    }

    /// The JWKS as served.
    pub(crate) fn jwks(&self) -> Value {
        jwks_json(&self.state)
    }

    /// How many times the JWKS was fetched.
    pub(crate) fn jwks_requests(&self) -> usize {
        self.state.jwks_requests.load(Ordering::SeqCst)
    }

    /// Makes the JWKS endpoint answer 500 (or recover).
    pub(crate) fn set_jwks_failing(&self, failing: bool) {
        self.state.jwks_failing.store(failing, Ordering::SeqCst);
    }

    /// Makes the metadata document name another issuer.
    pub(crate) fn set_metadata_issuer(&self, issuer: &str) {
        *self.state.metadata_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    /// Registers the introspection answer for an opaque token.
    pub(crate) fn set_introspection(&self, token: &str, answer: Value) {
        self.state
            .introspection_answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }

    /// How many introspection requests arrived.
    pub(crate) fn introspection_requests(&self) -> usize {
        self.state.introspection_requests.load(Ordering::SeqCst)
    }

    /// Standard Latchkey access-token claims for `resource`, valid for five
    /// minutes from now.
    pub(crate) fn claims(&self, resource: &str, scope: &str) -> Value {
        let now = now();
        json!({
            "iss": self.issuer,
            "sub": "user-1",
            "aud": resource,
            "client_id": "client-1",
            "scope": scope,
            "iat": now,
            "exp": now + 300,
            "jti": format!("jti-{now}-{scope}"),
        })
    }

    /// A valid token from the first key.
    pub(crate) fn token(&self, resource: &str, scope: &str) -> String {
        sign(&self.first_key(), &self.claims(resource, scope))
    }
}

fn jwks_json(state: &IssuerState) -> Value {
    let keys: Vec<Value> = state
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|key| key.public_json())
        .collect();
    json!({ "keys": keys })
}

async fn issuer_metadata(State(state): State<Arc<IssuerState>>) -> Response {
    let issuer = state
        .metadata_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| state.issuer.clone());
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{}/authorize", state.base),
        "token_endpoint": format!("{}/token", state.base),
        "jwks_uri": format!("{}/jwks.json", state.base),
        "introspection_endpoint": format!("{}/introspect", state.base),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
    .into_response()
}

async fn issuer_jwks(State(state): State<Arc<IssuerState>>) -> Response {
    state.jwks_requests.fetch_add(1, Ordering::SeqCst);
    if state.jwks_failing.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    axum::Json(jwks_json(&state)).into_response()
}

async fn issuer_introspect(
    State(state): State<Arc<IssuerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.introspection_requests.fetch_add(1, Ordering::SeqCst);
    let authorized = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        == Some(state.introspection_authorization.as_str());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    assert_eq!(
        form.get("token_type_hint").map(String::as_str),
        Some("access_token")
    );
    let answer = form
        .get("token")
        .and_then(|token| {
            state
                .introspection_answers
                .lock()
                .unwrap()
                .get(token)
                .cloned()
        })
        .unwrap_or_else(|| json!({"active": false}));
    axum::Json(answer).into_response()
}

/// An MCP-like upstream server.
pub(crate) struct Upstream {
    pub(crate) address: SocketAddr,
    /// Opened by the test to let the SSE stream send its second event.
    pub(crate) gate: Arc<Notify>,
    _task: Task,
}

#[derive(Clone)]
struct UpstreamState {
    gate: Arc<Notify>,
}

/// The request as the upstream saw it.
fn echo(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Value {
    let mut seen: serde_json::Map<String, Value> = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<Value> = headers
            .get_all(name)
            .iter()
            .map(|value| Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        seen.insert(name.as_str().to_owned(), Value::Array(values));
    }
    json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "headers": seen,
        "body": String::from_utf8_lossy(body),
    })
}

/// A response body fed from a channel: each message is one frame, sent as
/// soon as it is written.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(context)
            .map(|message| message.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}

async fn upstream_handler(
    State(state): State<UpstreamState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = headers
        .get("mcp-session-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("session-from-upstream")
        .to_owned();
    let seen = echo(&method, &uri, &headers, &body);
    match method {
        Method::GET => {
            let (sender, receiver) = mpsc::channel::<Bytes>(4);
            let gate = Arc::clone(&state.gate);
            tokio::spawn(async move {
                let first = format!("id: 1\nevent: message\ndata: {seen}\n\n");
                sender.send(Bytes::from(first)).await.ok();
                // The second event waits until the test has read the first:
                // proof that nothing between them buffers the stream.
                tokio::time::timeout(Duration::from_secs(10), gate.notified())
                    .await
                    .ok();
                sender
                    .send(Bytes::from_static(
                        b"id: 2\nevent: message\ndata: {\"n\":2}\n\n",
                    ))
                    .await
                    .ok();
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .header("mcp-session-id", session)
                .body(Body::new(ChannelBody(receiver)))
                .unwrap()
        }
        Method::DELETE => Response::builder()
            .status(StatusCode::NO_CONTENT)
            .header("x-deleted-session", session)
            .body(Body::empty())
            .unwrap(),
        _ => Response::builder()
            .header("content-type", "application/json")
            .header("mcp-session-id", session)
            .header("connection", "x-upstream-private")
            .header("x-upstream-private", "hop-by-hop")
            .body(Body::from(seen.to_string()))
            .unwrap(),
    }
}

impl Upstream {
    pub(crate) async fn start() -> Upstream {
        let (listener, address) = listener().await;
        let gate = Arc::new(Notify::new());
        let app = Router::new()
            .fallback(any(upstream_handler))
            .with_state(UpstreamState {
                gate: Arc::clone(&gate),
            });
        Upstream {
            address,
            gate,
            _task: spawn_app(listener, app),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

/// A running guard proxy.
pub(crate) struct RunningProxy {
    pub(crate) base: String,
    /// The resource URI (`{base}/mcp`).
    pub(crate) resource: String,
    pub(crate) metadata_url: String,
    _shutdown: oneshot::Sender<()>,
    _task: Task,
}

impl RunningProxy {
    pub(crate) fn mcp(&self) -> String {
        self.resource.clone()
    }
}

/// The validator builder for a resource, trusting `issuer` as Latchkey.
pub(crate) fn validator_for(resource: &str, issuer: &TestIssuer) -> TokenValidatorBuilder {
    TokenValidator::builder(ResourceUri::parse(resource).unwrap())
        .trust(latchkey_resource::TrustedIssuer::latchkey(&issuer.issuer))
}

/// Starts a guard proxy at `http://127.0.0.1:port/mcp`; `configure` gets the
/// resource URI and returns the proxy builder.
pub(crate) async fn start_proxy(configure: impl FnOnce(&str) -> GuardProxyBuilder) -> RunningProxy {
    let (listener, address) = listener().await;
    let base = format!("http://{address}");
    let resource = format!("{base}/mcp");
    let proxy: GuardProxy = configure(&resource).build().unwrap();
    let metadata_url = proxy.layer().metadata_url().to_owned();
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = Task(tokio::spawn(async move {
        proxy::serve(listener, proxy, async {
            signal.await.ok();
        })
        .await
        .unwrap();
    }));
    RunningProxy {
        base,
        resource,
        metadata_url,
        _shutdown: shutdown,
        _task: task,
    }
}

/// A proxy to `upstream` trusting `issuer`, with `configure_guard` applied
/// to the guard configuration.
pub(crate) async fn simple_proxy(
    issuer: &TestIssuer,
    upstream: &Upstream,
    configure_guard: impl FnOnce(GuardConfig) -> GuardConfig,
) -> RunningProxy {
    let upstream_url = upstream.url();
    start_proxy(|resource| {
        let validator = validator_for(resource, issuer).build().unwrap();
        GuardProxy::builder(upstream_url, configure_guard(GuardConfig::new(validator)))
    })
    .await
}

/// An HTTP client that never follows redirects.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
