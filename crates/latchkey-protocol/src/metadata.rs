//! Discovery documents: authorization server metadata (RFC 8414) and
//! protected resource metadata (RFC 9728), plus well-known URL construction.
//!
//! The document types are plain serde structs with public fields; optional
//! fields are `None` by default and skipped when serializing, so a document
//! only advertises what the server actually does. Unknown fields are ignored
//! when deserializing a foreign document.
//!
//! Well-known URLs insert `/.well-known/{suffix}` between the host and the
//! path (RFC 8414 §3.1, RFC 9728 §3.1) rather than appending it: the
//! metadata of issuer `https://a.example/tenant1` lives at
//! `https://a.example/.well-known/oauth-authorization-server/tenant1`.
//! The issuer or resource is taken byte-for-byte, because clients compare
//! the `issuer` in the document with the string they built the URL from
//! (RFC 8414 §3.3).

use serde::{Deserialize, Serialize};

use crate::uri;

/// The RFC 8414 well-known suffix.
pub const AUTHORIZATION_SERVER_SUFFIX: &str = "oauth-authorization-server";
/// The OpenID Connect Discovery well-known suffix.
pub const OPENID_CONFIGURATION_SUFFIX: &str = "openid-configuration";
/// The RFC 9728 well-known suffix.
pub const PROTECTED_RESOURCE_SUFFIX: &str = "oauth-protected-resource";

/// Authorization server metadata (RFC 8414 §2, with RFC 9207, RFC 8707 and
/// Client ID Metadata Document additions).
///
/// ```
/// use latchkey_protocol::metadata::AuthorizationServerMetadata;
///
/// let mut metadata = AuthorizationServerMetadata::new("https://auth.example.com");
/// metadata.authorization_endpoint = Some("https://auth.example.com/authorize".into());
/// metadata.token_endpoint = Some("https://auth.example.com/token".into());
/// metadata.code_challenge_methods_supported = Some(vec!["S256".into()]);
/// let json = serde_json::to_value(&metadata).unwrap();
/// assert_eq!(json["response_types_supported"], serde_json::json!(["code"]));
/// assert!(json.get("registration_endpoint").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    /// The issuer identifier: https, no query, no fragment. Must be
    /// byte-identical to the issuer clients derived the metadata URL from.
    pub issuer: String,
    /// The authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// The token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The JWK Set of the keys that sign tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The dynamic client registration endpoint (RFC 7591).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// Scopes clients may request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// Supported `response_type` values (required; `["code"]`).
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    /// Supported `response_mode` values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_modes_supported: Option<Vec<String>>,
    /// Supported grant types (the RFC 8414 default is code and implicit, so
    /// publish it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types_supported: Option<Vec<String>>,
    /// Supported token endpoint authentication methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// JWS algorithms for JWT-based token endpoint authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// Human-readable documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_documentation: Option<String>,
    /// Supported UI locales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales_supported: Option<Vec<String>>,
    /// The server's policy on client data use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_policy_uri: Option<String>,
    /// The server's terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_tos_uri: Option<String>,
    /// The revocation endpoint (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Authentication methods accepted at the revocation endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// JWS algorithms for JWT-based revocation endpoint authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// The introspection endpoint (RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Authentication methods accepted at the introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// JWS algorithms for JWT-based introspection endpoint authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// PKCE methods (`["S256"]`): MCP clients refuse a server without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Whether `iss` is sent in authorization responses (RFC 9207 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// Whether URL client identifiers with metadata documents are accepted
    /// (MCP clients use them only when this is exactly `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
}

impl AuthorizationServerMetadata {
    /// Metadata with the issuer and `response_types_supported: ["code"]`;
    /// every optional field `None`.
    pub fn new(issuer: impl Into<String>) -> AuthorizationServerMetadata {
        AuthorizationServerMetadata {
            issuer: issuer.into(),
            response_types_supported: vec!["code".to_owned()],
            ..AuthorizationServerMetadata::default()
        }
    }
}

/// Protected resource metadata (RFC 9728 §2).
///
/// ```
/// use latchkey_protocol::metadata::ProtectedResourceMetadata;
///
/// let mut metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp");
/// metadata.authorization_servers = Some(vec!["https://auth.example.com".into()]);
/// metadata.bearer_methods_supported = Some(vec!["header".into()]);
/// let json = serde_json::to_value(&metadata).unwrap();
/// assert_eq!(json["resource"], "https://mcp.example.com/mcp");
/// assert!(json.get("jwks_uri").is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// The resource identifier: exactly the URL clients use (RFC 9728 §3.3).
    pub resource: String,
    /// Issuer identifiers of the authorization servers for this resource,
    /// each byte-identical to that server's metadata `issuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_servers: Option<Vec<String>>,
    /// The resource's own JWK Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scopes used to access the resource (the minimal set for basic use;
    /// MCP says not to list `offline_access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// How bearer tokens may be sent: `["header"]` for MCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_methods_supported: Option<Vec<String>>,
    /// JWS algorithms the resource uses to sign responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_signing_alg_values_supported: Option<Vec<String>>,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// The resource's data-use policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// The resource's terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// Whether mutual-TLS certificate-bound tokens are supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Supported RFC 9396 authorization details types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details_types_supported: Option<Vec<String>>,
    /// JWS algorithms accepted for DPoP proofs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// Whether DPoP-bound tokens are always required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
}

impl ProtectedResourceMetadata {
    /// Metadata for a resource with every optional field `None`.
    pub fn new(resource: impl Into<String>) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata {
            resource: resource.into(),
            ..ProtectedResourceMetadata::default()
        }
    }
}

/// Why a well-known URL could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The base is not an absolute http(s) URL with a host.
    #[error("the base must be an absolute http or https URL with a host")]
    InvalidBase,
    /// The base has a fragment (RFC 8414 §2, RFC 9728 §2 forbid it).
    #[error("the base must not contain a fragment")]
    Fragment,
    /// The base has a query, which an issuer must not (RFC 8414 §2).
    #[error("an issuer must not contain a query")]
    Query,
    /// The suffix is not a single well-known name.
    #[error("the well-known suffix must be a non-empty name without slashes")]
    InvalidSuffix,
}

/// Builds the well-known metadata URL for an issuer or resource
/// identifier: `/.well-known/{suffix}` goes between the host and the path,
/// and a path of `/` counts as no path (RFC 8414 §3.1, RFC 9728 §3.1). A
/// query (possible for a resource, RFC 9728 §3.1) is kept after the path.
///
/// ```
/// use latchkey_protocol::metadata::well_known_url;
///
/// assert_eq!(
///     well_known_url("https://a.example/tenant1", "oauth-authorization-server").unwrap(),
///     "https://a.example/.well-known/oauth-authorization-server/tenant1"
/// );
/// assert_eq!(
///     well_known_url("https://a.example/", "oauth-authorization-server").unwrap(),
///     "https://a.example/.well-known/oauth-authorization-server"
/// );
/// assert_eq!(
///     well_known_url("https://mcp.example.com/public/mcp", "oauth-protected-resource").unwrap(),
///     "https://mcp.example.com/.well-known/oauth-protected-resource/public/mcp"
/// );
/// ```
pub fn well_known_url(base: &str, suffix: &str) -> Result<String, MetadataError> {
    let parts = split_base(base, suffix)?;
    let mut url = format!(
        "{}/.well-known/{suffix}{}",
        parts.origin,
        parts.path_suffix()
    );
    if let Some(query) = parts.query {
        url.push('?');
        url.push_str(query);
    }
    Ok(url)
}

/// The request path at which a server must answer for the well-known
/// metadata of `base`: what the HTTP layer routes. The inverse of
/// [`well_known_url`] without origin or query.
///
/// ```
/// use latchkey_protocol::metadata::well_known_path;
///
/// assert_eq!(
///     well_known_path("https://a.example/tenant1", "oauth-authorization-server").unwrap(),
///     "/.well-known/oauth-authorization-server/tenant1"
/// );
/// assert_eq!(
///     well_known_path("https://a.example", "oauth-authorization-server").unwrap(),
///     "/.well-known/oauth-authorization-server"
/// );
/// ```
pub fn well_known_path(base: &str, suffix: &str) -> Result<String, MetadataError> {
    let parts = split_base(base, suffix)?;
    Ok(format!("/.well-known/{suffix}{}", parts.path_suffix()))
}

/// Checks an issuer identifier (RFC 8414 §2): an absolute https URL (or
/// http on a loopback host, for development) with a host and no query or
/// fragment. Returns it unchanged: the issuer is compared byte-for-byte.
///
/// ```
/// use latchkey_protocol::metadata::{validate_issuer, MetadataError};
///
/// assert!(validate_issuer("https://auth.example.com/tenant1").is_ok());
/// assert!(validate_issuer("http://localhost:8080").is_ok());
/// assert_eq!(validate_issuer("https://auth.example.com?x=1"), Err(MetadataError::Query));
/// assert_eq!(validate_issuer("http://auth.example.com"), Err(MetadataError::InvalidBase));
/// ```
pub fn validate_issuer(issuer: &str) -> Result<&str, MetadataError> {
    let parts = split_base(issuer, AUTHORIZATION_SERVER_SUFFIX)?;
    if parts.query.is_some() {
        return Err(MetadataError::Query);
    }
    if parts.scheme == "http" && !uri::is_loopback_host(parts.host) {
        return Err(MetadataError::InvalidBase);
    }
    Ok(issuer)
}

/// An identifier split for well-known URL construction.
struct BaseParts<'a> {
    scheme: String,
    host: &'a str,
    origin: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl BaseParts<'_> {
    /// The path to append after the well-known segment: empty for no path
    /// or `/`, otherwise the path as written.
    fn path_suffix(&self) -> &str {
        if self.path == "/" { "" } else { self.path }
    }
}

fn split_base<'a>(base: &'a str, suffix: &str) -> Result<BaseParts<'a>, MetadataError> {
    if suffix.is_empty()
        || !suffix
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'))
    {
        return Err(MetadataError::InvalidSuffix);
    }
    if !uri::has_only_uri_characters(base) {
        return Err(MetadataError::InvalidBase);
    }
    let parts = uri::split(base).map_err(|_| MetadataError::InvalidBase)?;
    if parts.fragment.is_some() {
        return Err(MetadataError::Fragment);
    }
    let scheme = parts.scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(MetadataError::InvalidBase);
    }
    let authority = parts
        .authority
        .filter(|authority| !authority.host.is_empty() && authority.userinfo.is_none())
        .ok_or(MetadataError::InvalidBase)?;
    let origin_len = base.len() - parts.path.len() - parts.query.map_or(0, |query| query.len() + 1);
    let origin = base.get(..origin_len).ok_or(MetadataError::InvalidBase)?;
    Ok(BaseParts {
        scheme,
        host: authority.host,
        origin,
        path: parts.path,
        query: parts.query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_url_table() {
        let table = [
            (
                "https://a.example",
                AUTHORIZATION_SERVER_SUFFIX,
                "https://a.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://a.example/",
                AUTHORIZATION_SERVER_SUFFIX,
                "https://a.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://a.example/tenant1",
                AUTHORIZATION_SERVER_SUFFIX,
                "https://a.example/.well-known/oauth-authorization-server/tenant1",
            ),
            (
                "https://a.example:8443/t/1/",
                OPENID_CONFIGURATION_SUFFIX,
                "https://a.example:8443/.well-known/openid-configuration/t/1/",
            ),
            (
                "https://mcp.example.com/mcp?x=1",
                PROTECTED_RESOURCE_SUFFIX,
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp?x=1",
            ),
            (
                "http://localhost:3000/mcp",
                PROTECTED_RESOURCE_SUFFIX,
                "http://localhost:3000/.well-known/oauth-protected-resource/mcp",
            ),
        ];
        for (base, suffix, expected) in table {
            assert_eq!(well_known_url(base, suffix).unwrap(), expected, "{base}");
        }
    }

    #[test]
    fn well_known_path_is_the_route() {
        assert_eq!(
            well_known_path("https://a.example/", PROTECTED_RESOURCE_SUFFIX).unwrap(),
            "/.well-known/oauth-protected-resource"
        );
        assert_eq!(
            well_known_path(
                "https://mcp.example.com/public/mcp?x",
                PROTECTED_RESOURCE_SUFFIX
            )
            .unwrap(),
            "/.well-known/oauth-protected-resource/public/mcp"
        );
    }

    #[test]
    fn bad_bases_and_suffixes_are_refused() {
        assert_eq!(
            well_known_url("https://a.example/#x", AUTHORIZATION_SERVER_SUFFIX),
            Err(MetadataError::Fragment)
        );
        for base in [
            "/tenant",
            "urn:x:y",
            "https://",
            "https://u@a.example",
            "https://a b",
        ] {
            assert_eq!(
                well_known_url(base, AUTHORIZATION_SERVER_SUFFIX),
                Err(MetadataError::InvalidBase),
                "{base}"
            );
        }
        for suffix in ["", "a/b", "a b", "../x"] {
            assert_eq!(
                well_known_url("https://a.example", suffix),
                Err(MetadataError::InvalidSuffix),
                "{suffix}"
            );
        }
    }

    #[test]
    fn issuers_are_checked_and_kept_verbatim() {
        assert_eq!(
            validate_issuer("https://auth.example.com/"),
            Ok("https://auth.example.com/")
        );
        assert_eq!(validate_issuer("https://a#b"), Err(MetadataError::Fragment));
        assert_eq!(
            validate_issuer("ftp://auth.example.com"),
            Err(MetadataError::InvalidBase)
        );
        assert!(validate_issuer("http://127.0.0.1:9000").is_ok());
    }

    #[test]
    fn authorization_server_metadata_serializes_only_what_is_set() {
        let mut metadata = AuthorizationServerMetadata::new("https://auth.example.com");
        metadata.authorization_endpoint = Some("https://auth.example.com/authorize".to_owned());
        metadata.token_endpoint = Some("https://auth.example.com/token".to_owned());
        metadata.registration_endpoint = Some("https://auth.example.com/register".to_owned());
        metadata.revocation_endpoint = Some("https://auth.example.com/revoke".to_owned());
        metadata.introspection_endpoint = Some("https://auth.example.com/introspect".to_owned());
        metadata.jwks_uri = Some("https://auth.example.com/jwks".to_owned());
        metadata.scopes_supported = Some(vec!["mcp".to_owned()]);
        metadata.grant_types_supported = Some(vec![
            "authorization_code".to_owned(),
            "refresh_token".to_owned(),
        ]);
        metadata.token_endpoint_auth_methods_supported = Some(vec![
            "none".to_owned(),
            "client_secret_basic".to_owned(),
            "client_secret_post".to_owned(),
        ]);
        metadata.revocation_endpoint_auth_methods_supported = Some(vec!["none".to_owned()]);
        metadata.introspection_endpoint_auth_methods_supported =
            Some(vec!["client_secret_basic".to_owned()]);
        metadata.code_challenge_methods_supported = Some(vec!["S256".to_owned()]);
        metadata.authorization_response_iss_parameter_supported = Some(true);
        metadata.client_id_metadata_document_supported = Some(true);
        metadata.service_documentation = Some("https://docs.example.com".to_owned());
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "issuer": "https://auth.example.com",
                "authorization_endpoint": "https://auth.example.com/authorize",
                "token_endpoint": "https://auth.example.com/token",
                "jwks_uri": "https://auth.example.com/jwks",
                "registration_endpoint": "https://auth.example.com/register",
                "scopes_supported": ["mcp"],
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
                "service_documentation": "https://docs.example.com",
                "revocation_endpoint": "https://auth.example.com/revoke",
                "revocation_endpoint_auth_methods_supported": ["none"],
                "introspection_endpoint": "https://auth.example.com/introspect",
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
                "client_id_metadata_document_supported": true
            })
        );
        let back: AuthorizationServerMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, metadata);
    }

    #[test]
    fn foreign_metadata_with_unknown_fields_deserializes() {
        let metadata: AuthorizationServerMetadata = serde_json::from_str(
            r#"{"issuer":"https://idp.example","response_types_supported":["code","id_token"],
                "subject_types_supported":["public"],"userinfo_endpoint":"https://idp.example/u"}"#,
        )
        .unwrap();
        assert_eq!(metadata.issuer, "https://idp.example");
        assert_eq!(metadata.token_endpoint, None);
    }

    #[test]
    fn protected_resource_metadata_round_trips() {
        let mut metadata = ProtectedResourceMetadata::new("https://mcp.example.com/mcp");
        metadata.authorization_servers = Some(vec!["https://auth.example.com".to_owned()]);
        metadata.scopes_supported = Some(vec!["mcp:tools".to_owned()]);
        metadata.bearer_methods_supported = Some(vec!["header".to_owned()]);
        metadata.resource_name = Some("Example MCP".to_owned());
        metadata.resource_documentation = Some("https://docs.example.com/mcp".to_owned());
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["mcp:tools"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Example MCP",
                "resource_documentation": "https://docs.example.com/mcp"
            })
        );
        let back: ProtectedResourceMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, metadata);
    }
}
