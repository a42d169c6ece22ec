//! Protected resource metadata (RFC 9728): the document and its routes.
//!
//! The document says: `resource` is this resource's canonical URI (what
//! clients send back as `resource` and what tokens carry as `aud`);
//! `authorization_servers` lists the trusted issuers byte-for-byte in
//! configuration order (clients compare them with the `issuer` of the
//! authorization server metadata, and the MCP TypeScript SDK uses only the
//! first); `scopes_supported` is the minimal set for basic use, never
//! `offline_access` (MCP: broader scopes come through step-up);
//! `bearer_methods_supported` is `["header"]`.
//!
//! It is served, unauthenticated, as `200 application/json` at the RFC 9728
//! §3.1 location (`/.well-known/oauth-protected-resource` inserted before
//! the resource's path) and at the root `/.well-known/oauth-protected-resource`
//! that clients fall back to, with CORS open to any origin (browser-based
//! MCP clients send `MCP-Protocol-Version`, which makes their request
//! preflighted). The JSON is serialized once, at construction.

use axum::Router;
use axum::body::Body;
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, CONTENT_TYPE,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use latchkey_protocol::metadata::{
    PROTECTED_RESOURCE_SUFFIX, ProtectedResourceMetadata, well_known_path, well_known_url,
};
use latchkey_protocol::scope::ScopeSet;

use crate::error::ConfigError;

/// The scope that asks for refresh tokens; a resource must not advertise it.
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";

/// The request headers allowed in a CORS preflight when the browser does
/// not list its own.
const DEFAULT_ALLOWED_HEADERS: &str = "mcp-protocol-version, content-type";

/// What the operator may add to the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataOptions {
    /// `resource_name`: a human-readable name.
    pub resource_name: Option<String>,
    /// `resource_documentation`: a URL for developers.
    pub resource_documentation: Option<String>,
    /// `scopes_supported`; by default the policy's default scopes.
    pub scopes_supported: Option<ScopeSet>,
}

/// The built document, its URL and the paths it is served at.
#[derive(Debug, Clone)]
pub(crate) struct MetadataEndpoint {
    pub(crate) document: ProtectedResourceMetadata,
    pub(crate) url: String,
    pub(crate) paths: Vec<String>,
    json: Bytes,
}

impl MetadataEndpoint {
    pub(crate) fn new(
        resource: &str,
        issuers: Vec<String>,
        default_scopes: &ScopeSet,
        options: &MetadataOptions,
    ) -> Result<MetadataEndpoint, ConfigError> {
        let invalid = |error: latchkey_protocol::metadata::MetadataError| ConfigError::InvalidUrl {
            url: resource.to_owned(),
            reason: error.to_string(),
        };
        let url = well_known_url(resource, PROTECTED_RESOURCE_SUFFIX).map_err(invalid)?;
        let inserted = well_known_path(resource, PROTECTED_RESOURCE_SUFFIX).map_err(invalid)?;
        let root = format!("/.well-known/{PROTECTED_RESOURCE_SUFFIX}");
        let mut paths = vec![inserted];
        if !paths.contains(&root) {
            paths.push(root);
        }
        for path in &paths {
            check_route_path(path)?;
        }

        let advertised: Vec<String> = options
            .scopes_supported
            .as_ref()
            .unwrap_or(default_scopes)
            .iter()
            .map(|scope| scope.as_str().to_owned())
            .filter(|scope| scope != OFFLINE_ACCESS)
            .collect();
        let mut document = ProtectedResourceMetadata::new(resource);
        document.authorization_servers = Some(issuers);
        document.scopes_supported = (!advertised.is_empty()).then_some(advertised);
        document.bearer_methods_supported = Some(vec!["header".to_owned()]);
        document.resource_name = options.resource_name.clone();
        document.resource_documentation = options.resource_documentation.clone();
        let json = serde_json::to_vec(&document)
            .map(Bytes::from)
            .map_err(|error| ConfigError::InvalidUrl {
                url: resource.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(MetadataEndpoint {
            document,
            url,
            paths,
            json,
        })
    }

    /// An axum router answering `GET`/`HEAD` and CORS preflights at every
    /// metadata path.
    pub(crate) fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let mut router = Router::new();
        for path in &self.paths {
            let json = self.json.clone();
            let route: MethodRouter<S> = get(move || {
                let json = json.clone();
                async move { document_response(json) }
            })
            .options(|headers: HeaderMap| async move { preflight_response(&headers) });
            router = router.route(path, route);
        }
        router
    }
}

fn document_response(json: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::from(json));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn preflight_response(request: &HeaderMap) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let allowed_headers = request
        .get(ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_ALLOWED_HEADERS));
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    // The metadata is public and carries no credentials, so any header the
    // browser asks to send may be sent.
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allowed_headers);
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// Checks that axum can route `path` literally: it must start with `/` and
/// no segment may start with `:` or `*` or contain braces (route syntax).
pub(crate) fn check_route_path(path: &str) -> Result<(), ConfigError> {
    let literal = path.starts_with('/')
        && path.split('/').all(|segment| {
            !segment.starts_with(':')
                && !segment.starts_with('*')
                && !segment.contains('{')
                && !segment.contains('}')
        });
    if literal {
        Ok(())
    } else {
        Err(ConfigError::InvalidPath(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_for_a_resource_with_a_path() {
        let endpoint = MetadataEndpoint::new(
            "https://mcp.example.com/mcp",
            vec![
                "https://auth.example.com".to_owned(),
                "https://idp.example/".to_owned(),
            ],
            &ScopeSet::parse("mcp offline_access").unwrap(),
            &MetadataOptions {
                resource_name: Some("Example".to_owned()),
                ..MetadataOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            endpoint.url,
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            endpoint.paths,
            vec![
                "/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&endpoint.json).unwrap(),
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com", "https://idp.example/"],
                "scopes_supported": ["mcp"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example"
            })
        );
    }

    #[test]
    fn a_bare_origin_has_one_path_and_no_empty_scopes() {
        let endpoint = MetadataEndpoint::new(
            "https://mcp.example.com",
            vec!["https://auth.example.com".to_owned()],
            &ScopeSet::new(),
            &MetadataOptions::default(),
        )
        .unwrap();
        assert_eq!(
            endpoint.paths,
            vec!["/.well-known/oauth-protected-resource"]
        );
        assert_eq!(endpoint.document.scopes_supported, None);
    }

    #[test]
    fn route_syntax_in_paths_is_refused() {
        assert!(check_route_path("/.well-known/oauth-protected-resource/a:b").is_ok());
        for bad in ["/x/:id", "/x/*rest", "/x/{id}", "relative"] {
            assert_eq!(
                check_route_path(bad),
                Err(ConfigError::InvalidPath(bad.to_owned()))
            );
        }
    }
}
