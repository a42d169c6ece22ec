//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document,
//! the MCP specification's preferred client registration).
//!
//! A client identifies itself with an https URL; the authorization server
//! fetches the JSON document at that URL and validates it here. Fetching
//! (SSRF protection, no redirects, size and time limits, caching) is the
//! caller's job; this module only decides what a URL and a document must
//! look like.
//!
//! Latchkey treats every metadata-document client as public
//! (`token_endpoint_auth_method` `none`): shared secrets cannot be published
//! in a public document (CIMD §4.1), and `private_key_jwt` would need RFC 7523
//! client assertions, which Latchkey does not implement, so it is refused as
//! unsupported rather than silently downgraded.

use std::fmt;

use serde_json::Value;

use super::validate::{Origin, has_private_key_material, validate};
use super::{ClientMetadata, ClientMetadataError, ValidatedClient, echo};
use crate::error::{ErrorCode, OAuthError};
use crate::uri;

/// The largest metadata document accepted, in bytes (CIMD §7 suggests
/// about 5 KB).
pub const MAX_METADATA_DOCUMENT_LEN: usize = 5 * 1024;
/// The longest client-id URL accepted, in characters.
pub const MAX_CLIENT_ID_URL_LEN: usize = 2000;

/// Shared-secret methods a public document must not declare (CIMD §4.1).
const SHARED_SECRET_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "client_secret_jwt",
];

/// Why a `client_id` is not a valid Client Identifier URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdUrlError {
    /// Longer than [`MAX_CLIENT_ID_URL_LEN`].
    #[error("the client_id URL is longer than {MAX_CLIENT_ID_URL_LEN} characters")]
    TooLong,
    /// Characters a URL cannot contain.
    #[error("the client_id URL contains characters that are not allowed in a URL")]
    InvalidCharacter,
    /// Not `https://`.
    #[error("the client_id URL must use the https scheme")]
    NotHttps,
    /// No host.
    #[error("the client_id URL has no host")]
    MissingHost,
    /// Userinfo in the authority.
    #[error("the client_id URL must not contain userinfo")]
    Userinfo,
    /// An empty path or a path of `/`.
    #[error("the client_id URL must have a path other than /")]
    RootPath,
    /// A `.` or `..` path segment, possibly percent-encoded.
    #[error("the client_id URL must not contain . or .. path segments")]
    DotSegment,
    /// A query component.
    #[error("the client_id URL must not contain a query")]
    Query,
    /// A fragment component.
    #[error("the client_id URL must not contain a fragment")]
    Fragment,
    /// The URL parser refused it, or its host is not in canonical form.
    #[error("the client_id URL is not a valid URL")]
    Malformed,
}

impl ClientIdUrlError {
    /// `invalid_client`: the identifier names no usable client. At the
    /// authorization endpoint this must be shown to the user, never
    /// redirected (RFC 6749 §4.1.2.1).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidClient
    }
}

impl From<ClientIdUrlError> for OAuthError {
    fn from(error: ClientIdUrlError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// A `client_id` that is a Client ID Metadata Document URL.
///
/// Kept and compared as the exact string (CIMD §3: no normalization, so
/// `https://x:443/c` and `https://x/c` are different clients).
///
/// ```
/// use latchkey_protocol::client::{ClientIdUrl, ClientIdUrlError};
///
/// let url = ClientIdUrl::parse("https://app.example.com/oauth/client.json").unwrap();
/// assert_eq!(url.host(), "app.example.com");
/// assert_eq!(ClientIdUrl::parse("https://app.example.com/"), Err(ClientIdUrlError::RootPath));
/// assert!(ClientIdUrl::looks_like_url("https://app.example.com/c"));
/// assert!(!ClientIdUrl::looks_like_url("3f2a9c"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientIdUrl {
    raw: String,
    host: String,
}

impl ClientIdUrl {
    /// Whether a `client_id` should be treated as a metadata-document URL
    /// at all: it starts with `https://`. Identifiers the server generates
    /// must never start with `https://` (MCP trust policies).
    pub fn looks_like_url(client_id: &str) -> bool {
        client_id.starts_with("https://")
    }

    /// Validates a client-id URL (CIMD §3): `https` (lowercase, as
    /// written), a host, no userinfo, a path other than `/` with no `.` or
    /// `..` segments (also when percent-encoded), no query (the draft says
    /// SHOULD NOT; Latchkey refuses, since a query invites per-request
    /// identities), no fragment; a port is allowed.
    pub fn parse(raw: &str) -> Result<ClientIdUrl, ClientIdUrlError> {
        ClientIdUrl::parse_with(raw, false)
    }

    /// [`ClientIdUrl::parse`], also accepting `http://` when the host is
    /// `127.0.0.1`, `[::1]` or `localhost`. For development and tests only
    /// (a server's "allow insecure metadata documents" setting): a document
    /// served over plain http proves nothing about who wrote it.
    ///
    /// ```
    /// use latchkey_protocol::client::{ClientIdUrl, ClientIdUrlError};
    ///
    /// assert!(ClientIdUrl::parse_allowing_loopback_http("http://127.0.0.1:8080/client.json").is_ok());
    /// assert_eq!(
    ///     ClientIdUrl::parse_allowing_loopback_http("http://app.example.com/client.json"),
    ///     Err(ClientIdUrlError::NotHttps)
    /// );
    /// assert_eq!(ClientIdUrl::parse("http://127.0.0.1/c"), Err(ClientIdUrlError::NotHttps));
    /// ```
    pub fn parse_allowing_loopback_http(raw: &str) -> Result<ClientIdUrl, ClientIdUrlError> {
        ClientIdUrl::parse_with(raw, true)
    }

    fn parse_with(raw: &str, allow_loopback_http: bool) -> Result<ClientIdUrl, ClientIdUrlError> {
        if raw.len() > MAX_CLIENT_ID_URL_LEN {
            return Err(ClientIdUrlError::TooLong);
        }
        if !uri::has_only_uri_characters(raw) {
            return Err(ClientIdUrlError::InvalidCharacter);
        }
        let is_http = allow_loopback_http && raw.starts_with("http://");
        if !raw.starts_with("https://") && !is_http {
            return Err(ClientIdUrlError::NotHttps);
        }
        let parts = uri::split(raw).map_err(|_| ClientIdUrlError::Malformed)?;
        if parts.fragment.is_some() {
            return Err(ClientIdUrlError::Fragment);
        }
        if parts.query.is_some() {
            return Err(ClientIdUrlError::Query);
        }
        let authority = parts.authority.ok_or(ClientIdUrlError::MissingHost)?;
        if authority.userinfo.is_some() {
            return Err(ClientIdUrlError::Userinfo);
        }
        if authority.host.is_empty() {
            return Err(ClientIdUrlError::MissingHost);
        }
        if is_http && !uri::is_loopback_host(authority.host) {
            return Err(ClientIdUrlError::NotHttps);
        }
        if parts.path.is_empty() || parts.path == "/" {
            return Err(ClientIdUrlError::RootPath);
        }
        if parts.path.split('/').any(is_dot_segment) {
            return Err(ClientIdUrlError::DotSegment);
        }
        let parsed = url::Url::parse(raw).map_err(|_| ClientIdUrlError::Malformed)?;
        let host = authority.host.to_ascii_lowercase();
        if parsed.host_str() != Some(host.as_str()) {
            return Err(ClientIdUrlError::Malformed);
        }
        Ok(ClientIdUrl {
            raw: raw.to_owned(),
            host,
        })
    }

    /// The URL exactly as given: the client identifier.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The host, lowercased: the consent page shows it next to the client
    /// name, because it is the only part of the identity the server has
    /// verified (CIMD §7).
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for ClientIdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `.` or `..`, with any of the dots percent-encoded (`%2e`, `%2E`).
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.replace("%2e", ".").replace("%2E", ".");
    decoded == "." || decoded == ".."
}

/// Validates a fetched Client ID Metadata Document.
///
/// Beyond the registration rules of
/// [`ClientMetadata::validate_registration`]:
/// - at most [`MAX_METADATA_DOCUMENT_LEN`] bytes of JSON, an object;
/// - `client_id` equals the URL exactly (CIMD §4);
/// - `client_name` and `redirect_uris` are present and non-empty (MCP);
/// - no `client_secret` or `client_secret_expires_at`, no shared-secret
///   `token_endpoint_auth_method`, no private key material in `jwks`
///   (CIMD §4.1); `private_key_jwt` is refused as unsupported;
/// - a missing `token_endpoint_auth_method` means `none`;
/// - a missing `application_type` is inferred: `native` when every
///   redirect URI is an http loopback or private-use-scheme URI, otherwise
///   `web`. Documents are written once by app authors who often omit it,
///   and the redirect URIs already say which kind of app this is;
/// - unknown fields are ignored.
///
/// ```
/// use latchkey_protocol::client::{validate_metadata_document, ClientIdUrl};
/// use latchkey_protocol::redirect::ApplicationType;
///
/// let url = ClientIdUrl::parse("https://app.example.com/client.json").unwrap();
/// let document = br#"{
///     "client_id": "https://app.example.com/client.json",
///     "client_name": "Example App",
///     "redirect_uris": ["http://127.0.0.1:8123/callback"]
/// }"#;
/// let client = validate_metadata_document(&url, document).unwrap();
/// assert_eq!(client.client_id(), Some("https://app.example.com/client.json"));
/// assert_eq!(client.application_type(), ApplicationType::Native);
/// assert!(client.is_public());
/// ```
pub fn validate_metadata_document(
    url: &ClientIdUrl,
    document: &[u8],
) -> Result<ValidatedClient, ClientMetadataError> {
    if document.len() > MAX_METADATA_DOCUMENT_LEN {
        return Err(ClientMetadataError::DocumentTooLarge);
    }
    let value: Value = serde_json::from_slice(document)
        .map_err(|error| ClientMetadataError::InvalidJson(error.to_string()))?;
    let object = value.as_object().ok_or(ClientMetadataError::NotAnObject)?;

    match object.get("client_id") {
        None | Some(Value::Null) => return Err(ClientMetadataError::MissingField("client_id")),
        Some(Value::String(client_id)) if client_id == url.as_str() => {}
        Some(_) => return Err(ClientMetadataError::ClientIdMismatch),
    }
    for forbidden in ["client_secret", "client_secret_expires_at"] {
        if object.contains_key(forbidden) {
            return Err(ClientMetadataError::ForbiddenField(forbidden));
        }
    }
    // Missing, null and empty are "missing"; a value of the wrong JSON
    // type is reported precisely by deserialization below.
    match object.get("client_name") {
        None | Some(Value::Null) => return Err(ClientMetadataError::MissingField("client_name")),
        Some(Value::String(name)) if name.is_empty() => {
            return Err(ClientMetadataError::MissingField("client_name"));
        }
        Some(_) => {}
    }
    match object.get("redirect_uris") {
        None | Some(Value::Null) => {
            return Err(ClientMetadataError::MissingField("redirect_uris"));
        }
        Some(Value::Array(uris)) if uris.is_empty() => {
            return Err(ClientMetadataError::MissingField("redirect_uris"));
        }
        Some(_) => {}
    }
    if let Some(method) = object
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        && SHARED_SECRET_METHODS.contains(&method)
    {
        return Err(ClientMetadataError::SharedSecretAuthMethod(echo(method)));
    }
    if object.get("jwks").is_some_and(has_private_key_material) {
        return Err(ClientMetadataError::PrivateKeyMaterial);
    }

    let metadata = ClientMetadata::from_value(value)?;
    validate(metadata, Origin::Document(url))
}
