//! Latchkey's HTTP layer: the axum router in front of
//! `latchkey_service::Service`.
//!
//! Routes (`{base}` is the issuer's path without a trailing slash, empty
//! for an issuer without a path):
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/.well-known/oauth-authorization-server{issuer path}` | RFC 8414 metadata |
//! | GET | `{base}/jwks.json` | the JWK Set |
//! | POST | `{base}/register` | RFC 7591 registration |
//! | POST | `{base}/token` | token endpoint |
//! | POST | `{base}/revoke` | RFC 7009 revocation |
//! | POST | `{base}/introspect` | RFC 7662 introspection |
//! | GET, POST | `{base}/authorize` | the authorization endpoint (pages: see `browser`) |
//! | POST | `{base}/login`, `{base}/consent`, `{base}/logout`, `{base}/account/revoke` | the pages' forms |
//! | POST | `{base}/login/upstream/{id}` | start a sign-in at an upstream provider |
//! | GET | `{base}/login/upstream/{id}/callback` | the upstream provider's redirect back |
//! | GET | `{base}/consent`, `{base}/account`, `{base}/static/latchkey.css` | pages and the stylesheet |
//! | GET | `/healthz`, `/readyz` | liveness, readiness |
//!
//! Invariants:
//! - this crate alone knows status codes and response shapes; every error
//!   goes through `error.rs`;
//! - metadata is served at the path computed from the issuer by RFC 8414
//!   §3.1 insertion, and nowhere else: an issuer with a path has no
//!   document at the plain well-known path (404), because a client that
//!   finds one there would see an `issuer` that differs from the URL it
//!   derived it from;
//! - CORS (any origin, no credentials) covers every API route except
//!   introspection, which browsers have no business calling; unknown paths
//!   get CORS too, so that a browser-based client probing discovery URLs
//!   sees a 404 and not a network error. The pages (authorize, login,
//!   consent, account) get no CORS: they are navigated to, never fetched;
//! - every HTML page carries the security headers of `security`, and every
//!   response `X-Content-Type-Options: nosniff`;
//! - one log line per request: method, matched route, status and latency,
//!   never the query string, a header or the body.

#![warn(missing_docs)]

pub mod error;
pub mod extract;
pub mod pages;
pub mod security;

mod browser;
mod discovery;
mod oauth;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use latchkey_protocol::metadata::{AUTHORIZATION_SERVER_SUFFIX, well_known_path};
use latchkey_service::Service;
use latchkey_service::metadata::{
    AUTHORIZE_PATH, INTROSPECTION_PATH, JWKS_PATH, REGISTRATION_PATH, REVOCATION_PATH, TOKEN_PATH,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The default request body limit: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// HTTP-level settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The largest request body accepted, in bytes (413 beyond).
    pub body_limit: usize,
    /// Whether to take the client address for rate limits from the last
    /// `X-Forwarded-For` entry instead of the socket. Only safe behind a
    /// proxy that sets that header: otherwise any client can claim any
    /// address and escape the registration and sign-in rate limits.
    pub trust_forwarded_for: bool,
    /// A directory whose files replace the embedded templates and
    /// stylesheet of the same names (`login.html`, `latchkey.css`, …).
    pub templates_dir: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            body_limit: DEFAULT_BODY_LIMIT,
            trust_forwarded_for: false,
            templates_dir: None,
        }
    }
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The flows.
    pub service: Service,
    /// HTTP settings.
    pub config: Arc<HttpConfig>,
    /// The templates and stylesheet.
    pub pages: Arc<pages::Pages>,
    /// The paths served for the issuer.
    pub paths: Arc<Paths>,
    /// The cookie names and attributes for the issuer's scheme.
    pub cookies: security::CookieNames,
    /// The issuer's origin, which form posts' `Origin` must equal.
    pub issuer_origin: String,
}

impl AppState {
    /// State for `service` with `config`; loads the pages (embedded, or
    /// overridden from `config.templates_dir`).
    pub fn new(service: Service, config: HttpConfig) -> Result<AppState, pages::PagesError> {
        let pages = pages::Pages::load(config.templates_dir.as_deref())?;
        let service_config = service.config();
        let paths = Paths::for_issuer(&service_config.issuer);
        let cookies = security::CookieNames::new(service_config.issuer_is_https());
        let issuer_origin = service_config.issuer_origin();
        Ok(AppState {
            service,
            config: Arc::new(config),
            pages: Arc::new(pages),
            paths: Arc::new(paths),
            cookies,
            issuer_origin,
        })
    }
}

/// The paths the router serves for an issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The RFC 8414 metadata document.
    pub metadata: String,
    /// The JWK Set.
    pub jwks: String,
    /// Registration.
    pub register: String,
    /// Token endpoint.
    pub token: String,
    /// Revocation.
    pub revoke: String,
    /// Introspection.
    pub introspect: String,
    /// The issuer's path without a trailing slash ("" for none): the
    /// prefix of every page link.
    pub base: String,
    /// The authorization endpoint.
    pub authorize: String,
    /// The sign-in form's target.
    pub login: String,
    /// The consent page and form.
    pub consent: String,
    /// The connected-apps page.
    pub account: String,
    /// Disconnecting an app.
    pub account_revoke: String,
    /// Signing out.
    pub logout: String,
    /// The stylesheet.
    pub stylesheet: String,
    /// Starting an upstream sign-in (axum pattern, `{id}` the provider).
    pub upstream_start_pattern: String,
    /// An upstream provider's callback (axum pattern).
    pub upstream_callback_pattern: String,
}

impl Paths {
    /// The path that starts a sign-in at provider `id`.
    pub fn upstream_start(&self, id: &str) -> String {
        self.upstream_start_pattern.replace("{id}", id)
    }

    /// The paths for `issuer` (which the service configuration has
    /// validated).
    pub fn for_issuer(issuer: &str) -> Paths {
        let metadata = well_known_path(issuer, AUTHORIZATION_SERVER_SUFFIX)
            .unwrap_or_else(|_| format!("/.well-known/{AUTHORIZATION_SERVER_SUFFIX}"));
        let prefix = format!("/.well-known/{AUTHORIZATION_SERVER_SUFFIX}");
        let base = metadata
            .strip_prefix(&prefix)
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        let under = |path: &str| format!("{base}{path}");
        Paths {
            jwks: under(JWKS_PATH),
            register: under(REGISTRATION_PATH),
            token: under(TOKEN_PATH),
            revoke: under(REVOCATION_PATH),
            introspect: under(INTROSPECTION_PATH),
            authorize: under(AUTHORIZE_PATH),
            login: under("/login"),
            consent: under("/consent"),
            account: under("/account"),
            account_revoke: under("/account/revoke"),
            logout: under("/logout"),
            stylesheet: under("/static/latchkey.css"),
            upstream_start_pattern: under("/login/upstream/{id}"),
            upstream_callback_pattern: under(latchkey_service::upstream::config::CALLBACK_PATH),
            base,
            metadata,
        }
    }
}

/// The CORS policy for browser-based MCP clients: any origin, no
/// credentials, the headers they send.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("mcp-protocol-version"),
        ])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}

/// The router for `state`.
pub fn router(state: AppState) -> Router {
    let paths = Paths::for_issuer(&state.service.config().issuer);
    let public = Router::new()
        .route(&paths.metadata, get(discovery::metadata))
        .route(&paths.jwks, get(discovery::jwks))
        .route(&paths.register, post(discovery::register))
        .route(&paths.token, post(oauth::token))
        .route(&paths.revoke, post(oauth::revoke))
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::readyz))
        .fallback(discovery::not_found)
        .layer(cors());
    let pages = Router::new()
        .route(
            &paths.authorize,
            get(browser::authorize_get).post(browser::authorize_post),
        )
        .route(&paths.login, post(browser::login_post))
        .route(
            &paths.consent,
            get(browser::consent_get).post(browser::consent_post),
        )
        .route(&paths.account, get(browser::account_get))
        .route(&paths.account_revoke, post(browser::account_revoke_post))
        .route(&paths.logout, post(browser::logout_post))
        .route(&paths.upstream_start_pattern, post(upstream::start_post))
        .route(
            &paths.upstream_callback_pattern,
            get(upstream::callback_get),
        )
        .route(&paths.stylesheet, get(browser::stylesheet));
    Router::new()
        .route(&paths.introspect, post(oauth::introspect))
        .merge(pages)
        .merge(public)
        .layer(middleware::from_fn(security::nosniff))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Logs one line per request: method, matched route, status, latency.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let latency = started.elapsed();
    tracing::info!(
        method = %method,
        route = route.as_deref().unwrap_or("(unmatched)"),
        status = response.status().as_u16(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting connections and waits for the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_issuer_path() {
        let plain = Paths::for_issuer("https://auth.example.com");
        assert_eq!(plain.metadata, "/.well-known/oauth-authorization-server");
        assert_eq!(plain.token, "/token");
        assert_eq!(plain.jwks, "/jwks.json");
        let slash = Paths::for_issuer("http://127.0.0.1:8080/");
        assert_eq!(slash, plain);
        let tenant = Paths::for_issuer("https://auth.example.com/tenant1");
        assert_eq!(
            tenant.metadata,
            "/.well-known/oauth-authorization-server/tenant1"
        );
        assert_eq!(tenant.register, "/tenant1/register");
        assert_eq!(tenant.introspect, "/tenant1/introspect");
        let trailing = Paths::for_issuer("https://auth.example.com/a/b/");
        assert_eq!(
            trailing.metadata,
            "/.well-known/oauth-authorization-server/a/b/"
        );
        assert_eq!(trailing.revoke, "/a/b/revoke");
        assert_eq!(plain.authorize, "/authorize");
        assert_eq!(plain.base, "");
        assert_eq!(tenant.account_revoke, "/tenant1/account/revoke");
        assert_eq!(tenant.stylesheet, "/tenant1/static/latchkey.css");
        assert_eq!(trailing.base, "/a/b");
        assert_eq!(
            tenant.upstream_callback_pattern,
            "/tenant1/login/upstream/{id}/callback"
        );
        assert_eq!(
            tenant.upstream_start("corp"),
            "/tenant1/login/upstream/corp"
        );
    }
}
