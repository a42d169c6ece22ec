//! The reverse proxy behind `latchkey guard`: the [`GuardLayer`] in front
//! of an MCP server written in any language.
//!
//! [`GuardProxy`] answers on one MCP path (the resource's path unless
//! configured otherwise) and at the protected resource metadata paths;
//! [`serve`] adds a 404 for everything else. Requests that pass the guard
//! are forwarded to the upstream with hyper's pooled client:
//! - bodies stream both ways, never buffered (except a `POST` body the
//!   scope policy must read, which is then sent on unchanged), so
//!   Streamable HTTP and long-lived `text/event-stream` responses reach
//!   the client event by event; there is a connect timeout but no timeout
//!   on a response once it started;
//! - every method passes (`POST`, `GET` for the SSE stream, `DELETE` to end
//!   a session), with all end-to-end headers: `Mcp-Session-Id`,
//!   `MCP-Protocol-Version`, `Last-Event-ID`, `Accept`, `Content-Type`, …
//!   Sessions are not bound to tokens: after a refresh the client keeps its
//!   `Mcp-Session-Id` and sends a new token, and that passes;
//! - hop-by-hop headers (RFC 9110 §7.6.1: `Connection` and the headers it
//!   names, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`,
//!   `Upgrade`) are removed in both directions;
//! - `Authorization` is removed: the client's token never goes upstream
//!   (MCP forbids token passthrough; the upstream learns who is calling
//!   from the identity headers instead);
//! - the identity goes upstream in headers ([`IdentityHeaders`]; default
//!   `X-Latchkey-Subject`, `-Client-Id`, `-Scope`, `-Issuer`), which the
//!   guard first removes from the incoming request, so the upstream can
//!   trust them as long as only the guard can reach it;
//! - `Host` is the upstream's own authority by default, because MCP
//!   servers built with the official SDKs refuse unexpected `Host` values
//!   (DNS-rebinding protection); see [`HostPolicy`];
//! - `X-Forwarded-For` gets the client's address appended;
//!   `X-Forwarded-Proto` and `X-Forwarded-Host` are set from the public
//!   resource URI (authoritative, not copied from the client);
//! - an unreachable upstream is a 502 with a small JSON body.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::any;
use http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, HeaderName, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::ConfigError;
use crate::identity::Identity;
use crate::layer::{GuardConfig, GuardLayer};
use crate::metadata::check_route_path;

/// The request headers carrying the caller's identity upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    /// The subject (`sub`).
    pub subject: HeaderName,
    /// The client id; omitted when the token names none.
    pub client_id: HeaderName,
    /// The granted scopes, space-delimited.
    pub scope: HeaderName,
    /// The issuer: subjects are unique per issuer only.
    pub issuer: HeaderName,
}

impl Default for IdentityHeaders {
    fn default() -> IdentityHeaders {
        IdentityHeaders {
            subject: HeaderName::from_static("x-latchkey-subject"),
            client_id: HeaderName::from_static("x-latchkey-client-id"),
            scope: HeaderName::from_static("x-latchkey-scope"),
            issuer: HeaderName::from_static("x-latchkey-issuer"),
        }
    }
}

impl IdentityHeaders {
    fn names(&self) -> [&HeaderName; 4] {
        [&self.subject, &self.client_id, &self.scope, &self.issuer]
    }
}

/// The `Host` header sent upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostPolicy {
    /// The upstream's own authority (`127.0.0.1:3000`): what an MCP server
    /// with DNS-rebinding protection expects.
    #[default]
    Upstream,
    /// The client's `Host`, for upstreams that build absolute URLs from it.
    Preserve,
    /// A fixed value.
    Fixed(HeaderValue),
}

/// Builds a [`GuardProxy`].
#[derive(Debug)]
pub struct GuardProxyBuilder {
    upstream: String,
    guard: GuardConfig,
    identity_headers: Option<IdentityHeaders>,
    host: HostPolicy,
    mcp_path: Option<String>,
    forwarded_headers: bool,
    connect_timeout: Duration,
}

impl GuardProxyBuilder {
    /// Sets the identity headers; `None` sends no identity upstream.
    pub fn identity_headers(mut self, headers: Option<IdentityHeaders>) -> GuardProxyBuilder {
        self.identity_headers = headers;
        self
    }

    /// Sets the `Host` policy.
    pub fn host_policy(mut self, policy: HostPolicy) -> GuardProxyBuilder {
        self.host = policy;
        self
    }

    /// Serves the MCP endpoint at this path instead of the resource's.
    pub fn mcp_path(mut self, path: impl Into<String>) -> GuardProxyBuilder {
        self.mcp_path = Some(path.into());
        self
    }

    /// Whether to send `X-Forwarded-For/-Proto/-Host` (default yes).
    pub fn forwarded_headers(mut self, enabled: bool) -> GuardProxyBuilder {
        self.forwarded_headers = enabled;
        self
    }

    /// The timeout for connecting to the upstream (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> GuardProxyBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Checks the configuration and builds the proxy.
    pub fn build(self) -> Result<GuardProxy, ConfigError> {
        let invalid_upstream = |reason: &str| ConfigError::InvalidUrl {
            url: self.upstream.clone(),
            reason: reason.to_owned(),
        };
        let upstream: Uri = self
            .upstream
            .parse()
            .map_err(|_| invalid_upstream("not a URI"))?;
        let scheme = upstream
            .scheme()
            .filter(|scheme| **scheme == Scheme::HTTP || **scheme == Scheme::HTTPS)
            .cloned()
            .ok_or_else(|| invalid_upstream("the upstream must be an http or https URL"))?;
        let authority = upstream
            .authority()
            .filter(|authority| !authority.as_str().contains('@'))
            .cloned()
            .ok_or_else(|| invalid_upstream("the upstream needs a host and no userinfo"))?;
        if upstream.query().is_some() {
            return Err(invalid_upstream("the upstream must not have a query"));
        }
        let upstream_path = match upstream.path() {
            "" | "/" => None,
            path => Some(path.to_owned()),
        };

        let resource = self.guard.validator().resource().clone();
        let public =
            url::Url::parse(resource.as_str()).map_err(|error| ConfigError::InvalidUrl {
                url: resource.to_string(),
                reason: error.to_string(),
            })?;
        let mcp_path = self
            .mcp_path
            .clone()
            .unwrap_or_else(|| public.path().to_owned());
        check_route_path(&mcp_path)?;
        let public_proto = HeaderValue::from_str(public.scheme())
            .map_err(|_| ConfigError::InvalidHeader("X-Forwarded-Proto".to_owned()))?;
        let public_host = HeaderValue::from_str(&resource_authority(&public))
            .map_err(|_| ConfigError::InvalidHeader("X-Forwarded-Host".to_owned()))?;

        let mut guard = self.guard;
        if let Some(identity_headers) = &self.identity_headers {
            for name in identity_headers.names() {
                guard = guard.strip_header(name.clone());
            }
        }
        let layer = GuardLayer::new(guard)?;
        let client = upstream_client(self.connect_timeout)?;
        Ok(GuardProxy {
            layer,
            mcp_path,
            state: Arc::new(ProxyState {
                scheme,
                authority,
                upstream_path,
                client,
                identity_headers: self.identity_headers,
                host: self.host,
                forwarded: self.forwarded_headers,
                public_proto,
                public_host,
            }),
        })
    }
}

/// `host[:port]` of the public resource URL.
fn resource_authority(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

type UpstreamClient = Client<HttpsConnector<HttpConnector>, Body>;

fn upstream_client(connect_timeout: Duration) -> Result<UpstreamClient, ConfigError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let tls = native_tls::TlsConnector::new()
        .map_err(|error| ConfigError::HttpClient(error.to_string()))?;
    let connector = HttpsConnector::from((http, tls.into()));
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .build(connector))
}

/// A configured guard proxy.
#[derive(Debug, Clone)]
pub struct GuardProxy {
    layer: GuardLayer,
    mcp_path: String,
    state: Arc<ProxyState>,
}

#[derive(Debug)]
struct ProxyState {
    scheme: Scheme,
    authority: Authority,
    upstream_path: Option<String>,
    client: UpstreamClient,
    identity_headers: Option<IdentityHeaders>,
    host: HostPolicy,
    forwarded: bool,
    public_proto: HeaderValue,
    public_host: HeaderValue,
}

impl GuardProxy {
    /// Starts a proxy to `upstream` (an http or https URL; with a path,
    /// requests go to that path, otherwise to the request's own path)
    /// enforcing `guard`.
    pub fn builder(upstream: impl Into<String>, guard: GuardConfig) -> GuardProxyBuilder {
        GuardProxyBuilder {
            upstream: upstream.into(),
            guard,
            identity_headers: Some(IdentityHeaders::default()),
            host: HostPolicy::Upstream,
            mcp_path: None,
            forwarded_headers: true,
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// The guard layer (its metadata, validator, …).
    pub fn layer(&self) -> &GuardLayer {
        &self.layer
    }

    /// The path the MCP endpoint is served at.
    pub fn mcp_path(&self) -> &str {
        &self.mcp_path
    }
}

/// The proxy's routes: the guarded MCP path and the metadata paths. It has
/// no fallback, so the `latchkey` binary can merge it into the
/// authorization server's router (all-in-one mode); [`serve`] adds a 404.
pub fn router(proxy: &GuardProxy) -> Router {
    let state = Arc::clone(&proxy.state);
    let forward_route = any(move |request: Request<Body>| {
        let state = Arc::clone(&state);
        async move { forward(&state, request).await }
    })
    .layer(proxy.layer.clone());
    Router::new()
        .route(&proxy.mcp_path, forward_route)
        .merge(proxy.layer.metadata_router())
}

/// Serves the proxy on `listener` until `shutdown` completes, then stops
/// accepting and waits for open requests. Long-lived SSE streams keep the
/// wait going, so bound it with a timeout in the caller if needed.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    proxy: GuardProxy,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = router(&proxy).fallback(|| async {
        json_response(
            StatusCode::NOT_FOUND,
            r#"{"error":"not_found","error_description":"no such endpoint"}"#,
        )
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn json_response(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn bad_gateway() -> Response<Body> {
    json_response(
        StatusCode::BAD_GATEWAY,
        r#"{"error":"bad_gateway","error_description":"the upstream MCP server is unavailable"}"#,
    )
}

/// Forwards one admitted request (see the module docs).
async fn forward(state: &ProxyState, request: Request<Body>) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    let identity = parts.extensions.remove::<Identity>();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());

    let query = parts.uri.query();
    let path = state
        .upstream_path
        .as_deref()
        .unwrap_or_else(|| parts.uri.path());
    let path_and_query = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let Ok(path_and_query) = PathAndQuery::try_from(path_and_query) else {
        return bad_gateway();
    };
    let Ok(uri) = Uri::builder()
        .scheme(state.scheme.clone())
        .authority(state.authority.clone())
        .path_and_query(path_and_query)
        .build()
    else {
        return bad_gateway();
    };

    let headers = &mut parts.headers;
    remove_hop_by_hop(headers);
    headers.remove(AUTHORIZATION);
    if let Some(names) = &state.identity_headers {
        for name in names.names() {
            headers.remove(name);
        }
        if let Some(identity) = &identity {
            headers.insert(names.subject.clone(), header_text(&identity.subject));
            if let Some(client_id) = &identity.client_id {
                headers.insert(names.client_id.clone(), header_text(client_id));
            }
            headers.insert(
                names.scope.clone(),
                header_text(&identity.scopes.to_string()),
            );
            headers.insert(names.issuer.clone(), header_text(&identity.issuer));
        }
    }
    match &state.host {
        HostPolicy::Upstream => {
            if let Ok(value) = HeaderValue::from_str(state.authority.as_str()) {
                headers.insert(HOST, value);
            }
        }
        HostPolicy::Preserve => {}
        HostPolicy::Fixed(value) => {
            headers.insert(HOST, value.clone());
        }
    }
    if state.forwarded {
        add_forwarded(state, headers, peer);
    }

    parts.uri = uri;
    parts.version = Version::HTTP_11;
    let upstream_request = Request::from_parts(parts, body);
    match state.client.request(upstream_request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Err(error) => {
            tracing::warn!(upstream = %state.authority, %error, "upstream MCP server unavailable");
            bad_gateway()
        }
    }
}

/// Sets `X-Forwarded-For` (the existing chain plus the client's address),
/// `X-Forwarded-Proto` and `X-Forwarded-Host` (the public resource's).
fn add_forwarded(state: &ProxyState, headers: &mut HeaderMap, peer: Option<std::net::IpAddr>) {
    let forwarded_for = HeaderName::from_static("x-forwarded-for");
    let mut chain: Vec<String> = headers
        .get_all(&forwarded_for)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(str::to_owned)
        .collect();
    if let Some(peer) = peer {
        chain.push(peer.to_string());
    }
    headers.remove(&forwarded_for);
    if let Ok(value) = HeaderValue::from_str(&chain.join(", "))
        && !chain.is_empty()
    {
        headers.insert(forwarded_for, value);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        state.public_proto.clone(),
    );
    headers.insert(
        HeaderName::from_static("x-forwarded-host"),
        state.public_host.clone(),
    );
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named in
/// `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        HeaderName::from_static("keep-alive"),
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        HeaderName::from_static("proxy-connection"),
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// A header value for identity text: printable ASCII as is; `%` and every
/// other byte percent-encoded (UTF-8), so any subject fits a header and
/// decodes back unambiguously.
fn header_text(text: &str) -> HeaderValue {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    // Only printable ASCII remains, which is always a valid header value.
    HeaderValue::from_str(&encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_text_is_percent_encoded_outside_printable_ascii() {
        assert_eq!(header_text("auth0|abc-123"), "auth0|abc-123");
        assert_eq!(header_text("100%"), "100%25");
        assert_eq!(header_text("Zoë\r\n"), "Zo%C3%AB%0D%0A");
    }

    #[test]
    fn hop_by_hop_headers_go_including_those_connection_names() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic x"),
            ("mcp-session-id", "abc"),
            ("last-event-id", "7"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        remove_hop_by_hop(&mut headers);
        let left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, vec!["mcp-session-id", "last-event-id"]);
    }

    #[test]
    fn public_authority_keeps_explicit_ports() {
        let url = url::Url::parse("http://127.0.0.1:8080/mcp").unwrap();
        assert_eq!(resource_authority(&url), "127.0.0.1:8080");
        let url = url::Url::parse("https://mcp.example.com/mcp").unwrap();
        assert_eq!(resource_authority(&url), "mcp.example.com");
    }
}
