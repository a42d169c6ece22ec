//! The tower layer: [`GuardLayer`] wraps any service over
//! `http::Request<B>` in a [`Guard`] that admits only requests with a valid
//! access token carrying the scopes the request needs.
//!
//! For each request the guard, in order:
//! 1. removes headers that would spoof an identity: every `x-latchkey-*`
//!    header and any extra name configured (the identity headers a proxy
//!    sets), so the inner service can trust what it finds there;
//! 2. lets CORS preflights (`OPTIONS` with `Origin` and
//!    `Access-Control-Request-Method`) through without a token, because a
//!    browser never sends credentials on a preflight (the inner service
//!    answers them, and sees no identity);
//! 3. reads the token from `Authorization: Bearer` only: `access_token`
//!    query or form parameters are ignored (MCP forbids tokens in URLs),
//!    another scheme counts as no token, two `Authorization` headers are a
//!    400;
//! 4. validates it with the [`TokenValidator`];
//! 5. computes the scopes the request needs from the [`ScopePolicy`]
//!    (buffering a `POST` body only if the policy has method or tool rules,
//!    then passing the same bytes on) and checks the token covers them
//!    under the scope hierarchy;
//! 6. removes `Authorization` (the token never reaches the inner service
//!    unless configured otherwise) and inserts the [`Identity`] as a
//!    request extension.
//!
//! The responses for each refusal are described in the `rejection` module
//! docs. Sessions are not bound to tokens: a refreshed token with the same
//! `Mcp-Session-Id` passes like any other.
//!
//! The inner service receives `Request<axum::body::Body>` and its response
//! body is boxed into the same type, which is what an axum `Router` (or any
//! tower HTTP service taking a boxed body) expects.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::OriginalUri;
use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_LENGTH, HeaderName, ORIGIN,
};
use http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use latchkey_protocol::metadata::ProtectedResourceMetadata;
use latchkey_protocol::scope::ScopeSet;
use tower::{Layer, Service};

use crate::error::ConfigError;
use crate::identity::Identity;
use crate::metadata::{MetadataEndpoint, MetadataOptions, OFFLINE_ACCESS};
use crate::policy::ScopePolicy;
use crate::rejection::Rejection;
use crate::validator::TokenValidator;

/// Boxed errors, as tower and axum use them.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The prefix of headers that only the guard may set.
pub const RESERVED_HEADER_PREFIX: &str = "x-latchkey-";

/// The default limit on a buffered `POST` body: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What a guard enforces.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    validator: TokenValidator,
    policy: ScopePolicy,
    metadata: MetadataOptions,
    strip_headers: Vec<HeaderName>,
    body_limit: usize,
    retain_authorization: bool,
}

impl GuardConfig {
    /// A guard needing a valid token and no particular scope.
    pub fn new(validator: TokenValidator) -> GuardConfig {
        GuardConfig {
            validator,
            policy: ScopePolicy::default(),
            metadata: MetadataOptions::default(),
            strip_headers: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            retain_authorization: false,
        }
    }

    /// Sets the scope policy.
    pub fn scope_policy(mut self, policy: ScopePolicy) -> GuardConfig {
        self.policy = policy;
        self
    }

    /// Sets the optional fields of the protected resource metadata.
    pub fn metadata(mut self, options: MetadataOptions) -> GuardConfig {
        self.metadata = options;
        self
    }

    /// Also removes this header from incoming requests (besides every
    /// `x-latchkey-*` header).
    pub fn strip_header(mut self, name: HeaderName) -> GuardConfig {
        if !self.strip_headers.contains(&name) {
            self.strip_headers.push(name);
        }
        self
    }

    /// The largest `POST` body buffered for method or tool rules; larger
    /// bodies get 413 (default [`DEFAULT_BODY_LIMIT`]).
    pub fn body_limit(mut self, limit: usize) -> GuardConfig {
        self.body_limit = limit;
        self
    }

    /// Keeps the `Authorization` header for the inner service (default:
    /// removed). Only for a service that itself exchanges the token (RFC
    /// 8693); MCP forbids passing it on to anything else.
    pub fn retain_authorization(mut self, retain: bool) -> GuardConfig {
        self.retain_authorization = retain;
        self
    }

    /// The validator.
    pub fn validator(&self) -> &TokenValidator {
        &self.validator
    }

    /// The scope policy.
    pub fn policy(&self) -> &ScopePolicy {
        &self.policy
    }
}

#[derive(Debug)]
struct GuardState {
    validator: TokenValidator,
    policy: ScopePolicy,
    metadata: MetadataEndpoint,
    strip_headers: Vec<HeaderName>,
    body_limit: usize,
    retain_authorization: bool,
}

/// A tower layer putting a [`Guard`] in front of a service.
///
/// ```no_run
/// use axum::{Extension, Router, routing::post};
/// use latchkey_protocol::{resource::ResourceUri, scope::ScopeSet};
/// use latchkey_resource::{GuardConfig, GuardLayer, Identity, ScopePolicy, TokenValidator, TrustedIssuer};
///
/// # fn example() -> Result<Router, Box<dyn std::error::Error>> {
/// let validator = TokenValidator::builder(ResourceUri::parse("https://mcp.example.com/mcp")?)
///     .trust(TrustedIssuer::latchkey("https://auth.example.com"))
///     .build()?;
/// let guard = GuardLayer::new(
///     GuardConfig::new(validator).scope_policy(ScopePolicy::new(ScopeSet::parse("mcp")?)),
/// )?;
/// let app = Router::new()
///     .route("/mcp", post(|Extension(identity): Extension<Identity>| async move {
///         format!("hello {}", identity.subject)
///     }))
///     .layer(guard.clone())
///     // Merged after `layer`, so the metadata stays public.
///     .merge(guard.metadata_router());
/// # Ok(app)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct GuardLayer {
    state: Arc<GuardState>,
}

impl GuardLayer {
    /// Builds the layer and its protected resource metadata.
    pub fn new(config: GuardConfig) -> Result<GuardLayer, ConfigError> {
        let metadata = MetadataEndpoint::new(
            config.validator.resource().as_str(),
            config.validator.issuers().map(str::to_owned).collect(),
            &config.policy.default,
            &config.metadata,
        )?;
        Ok(GuardLayer {
            state: Arc::new(GuardState {
                validator: config.validator,
                policy: config.policy,
                metadata,
                strip_headers: config.strip_headers,
                body_limit: config.body_limit,
                retain_authorization: config.retain_authorization,
            }),
        })
    }

    /// The protected resource metadata document.
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.state.metadata.document
    }

    /// The URL of the metadata (RFC 9728 §3.1), as sent in
    /// `resource_metadata`.
    pub fn metadata_url(&self) -> &str {
        &self.state.metadata.url
    }

    /// The request paths at which the metadata is served: the RFC 9728
    /// §3.1 location and the root fallback.
    pub fn metadata_paths(&self) -> &[String] {
        &self.state.metadata.paths
    }

    /// A router serving the metadata at [`GuardLayer::metadata_paths`],
    /// unauthenticated, with CORS. Merge it next to the guarded routes,
    /// outside the guard.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        self.state.metadata.router()
    }

    /// The validator.
    pub fn validator(&self) -> &TokenValidator {
        &self.state.validator
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

/// The guarding service (see the module docs).
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
    state: Arc<GuardState>,
}

impl<S, B, ResponseBody> Service<Request<B>> for Guard<S>
where
    S: Service<Request<Body>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResponseBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The service that was polled ready handles this request; a fresh
        // clone takes its place for the next one (tower's usual pattern).
        let replacement = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, replacement);
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            match admit(&state, request).await {
                Ok(request) => inner
                    .call(request)
                    .await
                    .map(|response| response.map(Body::new)),
                Err(rejection) => Ok(rejection.into_response(&state.metadata.url)),
            }
        })
    }
}

/// What the `Authorization` header holds.
enum Presented {
    Nothing,
    Token(String),
    Malformed,
    Ambiguous,
}

/// Reads the bearer token (RFC 6750 §2.1): the scheme is case-insensitive,
/// the credentials are one token68.
fn presented_token(headers: &http::HeaderMap) -> Presented {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Presented::Nothing;
    };
    if values.next().is_some() {
        return Presented::Ambiguous;
    }
    let Ok(value) = value.to_str() else {
        return Presented::Malformed;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is no bearer token at all (RFC 6750 §3.1).
        return Presented::Nothing;
    }
    let token = rest.trim_matches(' ');
    let body = token.trim_end_matches('=');
    let token68 = !body.is_empty()
        && body
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte));
    if token68 {
        Presented::Token(token.to_owned())
    } else {
        Presented::Malformed
    }
}

/// Whether the request is a CORS preflight.
fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(ORIGIN)
        && request
            .headers()
            .contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Removes `x-latchkey-*` and the configured headers.
fn strip_spoofing_headers(state: &GuardState, headers: &mut http::HeaderMap) {
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(RESERVED_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in reserved.iter().chain(&state.strip_headers) {
        headers.remove(name);
    }
}

/// Steps 1–6 of the module docs.
async fn admit<B>(state: &GuardState, mut request: Request<B>) -> Result<Request<Body>, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    strip_spoofing_headers(state, request.headers_mut());
    if is_preflight(&request) {
        request.headers_mut().remove(AUTHORIZATION);
        return Ok(request.map(Body::new));
    }

    let path = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |original| original.path());
    let route_scopes = state.policy.for_path(path);

    let token = match presented_token(request.headers()) {
        Presented::Token(token) => token,
        Presented::Nothing => {
            return Err(Rejection::MissingToken {
                scope: route_scopes,
            });
        }
        Presented::Ambiguous => return Err(Rejection::AmbiguousAuthorization),
        Presented::Malformed => {
            return Err(Rejection::InvalidToken {
                error: crate::ValidationError::Malformed,
                scope: route_scopes,
            });
        }
    };
    let identity = match state.validator.validate(&token).await {
        Ok(identity) => identity,
        Err(error) => {
            return Err(Rejection::InvalidToken {
                error,
                scope: route_scopes,
            });
        }
    };

    let (needed, mut request) = if state.policy.needs_body() && request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let bytes = buffer_body(&parts.headers, body, state.body_limit).await?;
        let body_scopes = state
            .policy
            .for_jsonrpc(&bytes)
            .map_err(|_| Rejection::NotJsonRpc)?;
        (
            route_scopes.union(&body_scopes),
            Request::from_parts(parts, Body::from(bytes)),
        )
    } else {
        (route_scopes, request.map(Body::new))
    };

    let missing = state.validator.missing_scopes(&identity.scopes, &needed);
    if !missing.is_empty() {
        return Err(Rejection::InsufficientScope {
            scope: step_up_scope(&needed, &identity.scopes),
        });
    }

    if !state.retain_authorization {
        request.headers_mut().remove(AUTHORIZATION);
    }
    request.extensions_mut().insert::<Identity>(identity);
    Ok(request)
}

/// The `scope` of a 403: every scope the request needs, then the scopes the
/// token already has (minus `offline_access`, which a resource must not
/// ask for). MCP clients that replace their scope with the challenge's
/// (TypeScript SDK 1.x) then keep what they had; those that take the union
/// (2.x) lose nothing either.
fn step_up_scope(needed: &ScopeSet, granted: &ScopeSet) -> ScopeSet {
    let kept: ScopeSet = granted
        .iter()
        .filter(|scope| scope.as_str() != OFFLINE_ACCESS)
        .cloned()
        .collect();
    needed.union(&kept)
}

/// Buffers a body up to `limit` bytes.
async fn buffer_body<B>(
    headers: &http::HeaderMap,
    body: B,
    limit: usize,
) -> Result<Bytes, Rejection>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(Rejection::BodyTooLarge);
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(Rejection::BodyTooLarge)
        }
        Err(_) => Err(Rejection::BodyUnreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert!(matches!(presented_token(&headers(&[])), Presented::Nothing));
        assert!(matches!(
            presented_token(&headers(&["Basic dXNlcjpwYXNz"])),
            Presented::Nothing
        ));
        assert!(
            matches!(presented_token(&headers(&["bearer abc.def-_~+/=="])), Presented::Token(t) if t == "abc.def-_~+/==")
        );
        assert!(
            matches!(presented_token(&headers(&["Bearer   spaced  "])), Presented::Token(t) if t == "spaced")
        );
        for malformed in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ===",
        ] {
            assert!(
                matches!(
                    presented_token(&headers(&[malformed])),
                    Presented::Malformed
                ),
                "{malformed}"
            );
        }
        assert!(matches!(
            presented_token(&headers(&["Bearer a", "Bearer b"])),
            Presented::Ambiguous
        ));
    }

    #[test]
    fn step_up_lists_needed_then_granted_without_offline_access() {
        let needed = ScopeSet::parse("mcp tools:call").unwrap();
        let granted = ScopeSet::parse("mcp files offline_access").unwrap();
        assert_eq!(
            step_up_scope(&needed, &granted).to_string(),
            "mcp tools:call files"
        );
    }
}
