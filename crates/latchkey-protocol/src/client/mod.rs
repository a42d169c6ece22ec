//! Client metadata (RFC 7591 §2, OIDC Registration `application_type`) and
//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document).
//!
//! Two shapes, parse-don't-validate style:
//! - [`ClientMetadata`] is the wire form: every RFC 7591 §2 field, with
//!   values kept as the client sent them (strings, lists of strings, raw
//!   JSON for `jwks`). Unknown fields are ignored, never rejected
//!   (RFC 7591 §2): real clients send fields Latchkey does not know (for
//!   example `resource`, or localized `client_name#fr`), and refusing them
//!   has broken popular MCP clients on other servers. Deserializing only
//!   fails on JSON that has the wrong *type* for a known field.
//! - [`ValidatedClient`] is what validation produces: typed, defaulted,
//!   bounded, with redirect URIs checked for the client's application type.
//!   It is built only by [`ClientMetadata::validate_registration`] and
//!   [`validate_metadata_document`].
//!
//! Validation rules and the decisions behind them are documented on
//! [`ClientMetadata::validate_registration`] and
//! [`validate_metadata_document`].

mod document;
mod validate;
mod validated;

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

pub(crate) use crate::error::echo;
use crate::error::{ErrorCode, OAuthError};
use crate::redirect::RedirectUriError;
use crate::scope::ScopeError;

pub use document::{
    ClientIdUrl, ClientIdUrlError, MAX_CLIENT_ID_URL_LEN, MAX_METADATA_DOCUMENT_LEN,
    validate_metadata_document,
};
pub use validate::{
    MAX_CONTACT_LEN, MAX_CONTACTS, MAX_JWKS_LEN, MAX_LIST_LEN, MAX_NAME_LEN, MAX_REDIRECT_URIS,
    MAX_URL_LEN,
};
pub use validated::ValidatedClient;

/// Client metadata as sent in a registration request (RFC 7591 §2) or
/// published in a Client ID Metadata Document.
///
/// Absent and `null` fields are `None`. Serializing skips `None` fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    /// Redirection URIs for redirect-based flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uris: Option<Vec<String>>,
    /// How the client authenticates at the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// The grant types the client will use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
    /// The response types the client will use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_types: Option<Vec<String>>,
    /// A human-readable name, shown on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// The client's home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// The client's logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Space-delimited scopes the client may request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Contact e-mail addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<String>>,
    /// The client's terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// The client's privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Where the client publishes its public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The client's public keys, inline (a JWK Set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// An identifier of the client software, stable across instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// The version of the client software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// `web` or `native` (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// The client identifier: required in a metadata document (where it is
    /// the document's own URL), ignored in a registration request (the
    /// server assigns identifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl ClientMetadata {
    /// Parses a registration request body. Fails only on invalid JSON, a
    /// non-object, or a known field of the wrong JSON type.
    ///
    /// ```
    /// use latchkey_protocol::client::ClientMetadata;
    ///
    /// let metadata = ClientMetadata::from_json(br#"{
    ///     "redirect_uris": ["http://localhost:6274/callback"],
    ///     "client_name": "MCP Inspector",
    ///     "resource": "https://mcp.example.com/mcp"
    /// }"#).unwrap();
    /// assert_eq!(metadata.client_name.as_deref(), Some("MCP Inspector"));
    /// ```
    pub fn from_json(body: &[u8]) -> Result<ClientMetadata, ClientMetadataError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|error| ClientMetadataError::InvalidJson(error.to_string()))?;
        ClientMetadata::from_value(value)
    }

    /// Like [`ClientMetadata::from_json`], from an already parsed value.
    pub fn from_value(value: serde_json::Value) -> Result<ClientMetadata, ClientMetadataError> {
        if !value.is_object() {
            return Err(ClientMetadataError::NotAnObject);
        }
        serde_json::from_value(value)
            .map_err(|error| ClientMetadataError::InvalidJson(error.to_string()))
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
///
/// Latchkey supports the three methods of RFC 6749 §2.3.1 and OAuth 2.1.
/// `client_secret_jwt`, `private_key_jwt`, `tls_client_auth` and
/// `self_signed_tls_client_auth` are recognised and refused as unsupported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenEndpointAuthMethod {
    /// A public client: no authentication, `client_id` in the body.
    None,
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// Registered methods Latchkey knows and deliberately does not support.
const RECOGNISED_UNSUPPORTED_AUTH_METHODS: [&str; 4] = [
    "client_secret_jwt",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
];

impl TokenEndpointAuthMethod {
    /// Parses a registered method name.
    pub fn parse(method: &str) -> Result<TokenEndpointAuthMethod, ClientMetadataError> {
        match method {
            "none" => Ok(TokenEndpointAuthMethod::None),
            "client_secret_basic" => Ok(TokenEndpointAuthMethod::ClientSecretBasic),
            "client_secret_post" => Ok(TokenEndpointAuthMethod::ClientSecretPost),
            recognised if RECOGNISED_UNSUPPORTED_AUTH_METHODS.contains(&recognised) => Err(
                ClientMetadataError::UnsupportedAuthMethod(recognised.to_owned()),
            ),
            unknown => Err(ClientMetadataError::UnknownAuthMethod(echo(unknown))),
        }
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::None => "none",
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    /// Whether the client holds a secret (a confidential client).
    pub fn is_confidential(self) -> bool {
        self != TokenEndpointAuthMethod::None
    }
}

impl fmt::Display for TokenEndpointAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TokenEndpointAuthMethod {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A grant type Latchkey supports (RFC 7591 §2). Implicit and password are
/// gone in OAuth 2.1; device, JWT-bearer and token-exchange grants are not
/// implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1, with PKCE.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
}

impl GrantType {
    /// Parses a `grant_type` value; `None` for anything unsupported.
    pub fn parse(grant_type: &str) -> Option<GrantType> {
        match grant_type {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            "client_credentials" => Some(GrantType::ClientCredentials),
            _ => None,
        }
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for GrantType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A response type Latchkey supports: only `code` (OAuth 2.1 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseType {
    /// The authorization code flow.
    Code,
}

impl ResponseType {
    /// Parses a `response_type` value; `None` for anything but `code`.
    pub fn parse(response_type: &str) -> Option<ResponseType> {
        match response_type {
            "code" => Some(ResponseType::Code),
            _ => None,
        }
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Code => "code",
        }
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResponseType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Why client metadata was refused. Each variant says precisely what is
/// wrong; [`ClientMetadataError::error_code`] gives the RFC 7591 §3.2.2 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientMetadataError {
    /// The body is not JSON, or a known field has the wrong JSON type.
    #[error("the client metadata is not valid: {0}")]
    InvalidJson(String),
    /// The JSON is not an object.
    #[error("the client metadata must be a JSON object")]
    NotAnObject,
    /// A metadata document larger than [`MAX_METADATA_DOCUMENT_LEN`].
    #[error("the client metadata document is larger than {MAX_METADATA_DOCUMENT_LEN} bytes")]
    DocumentTooLarge,
    /// `redirect_uris` is missing or empty but the client uses the
    /// authorization code grant (or is a metadata document).
    #[error("redirect_uris is required")]
    MissingRedirectUris,
    /// `redirect_uris` given to a client that never redirects.
    #[error("redirect_uris is only allowed for clients using the authorization_code grant")]
    UnexpectedRedirectUris,
    /// More than [`MAX_REDIRECT_URIS`] redirect URIs.
    #[error("at most {MAX_REDIRECT_URIS} redirect_uris are allowed")]
    TooManyRedirectUris,
    /// One redirect URI is invalid.
    #[error("redirect_uris[{index}]: {source}")]
    InvalidRedirectUri {
        /// The position in `redirect_uris`.
        index: usize,
        /// What is wrong with it.
        source: RedirectUriError,
    },
    /// A recognised authentication method Latchkey does not support.
    #[error(
        "token_endpoint_auth_method {0} is not supported: use none, client_secret_basic or client_secret_post"
    )]
    UnsupportedAuthMethod(String),
    /// An authentication method nobody registered.
    #[error(
        "token_endpoint_auth_method {0} is unknown: use none, client_secret_basic or client_secret_post"
    )]
    UnknownAuthMethod(String),
    /// A grant type other than authorization_code, refresh_token or
    /// client_credentials.
    #[error(
        "grant type {0} is not supported: use authorization_code, refresh_token or client_credentials"
    )]
    UnsupportedGrantType(String),
    /// A response type other than `code`.
    #[error("response type {0} is not supported: only code is")]
    UnsupportedResponseType(String),
    /// A list that must not be empty is empty.
    #[error("{0} must not be empty")]
    EmptyList(&'static str),
    /// A list with more than [`MAX_LIST_LEN`] (or [`MAX_CONTACTS`]) entries.
    #[error("{field} has more than {max} entries")]
    TooManyValues {
        /// The field name.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// `authorization_code` without `code`, or `code` without
    /// `authorization_code` (RFC 7591 §2.1).
    #[error(
        "grant_types and response_types disagree: authorization_code requires response type code and code requires authorization_code (RFC 7591 section 2.1)"
    )]
    GrantResponseMismatch,
    /// `refresh_token` without a grant that issues refresh tokens.
    #[error("the refresh_token grant requires the authorization_code grant")]
    RefreshTokenWithoutAuthorizationCode,
    /// `client_credentials` for a public client.
    #[error(
        "the client_credentials grant requires a confidential client (client_secret_basic or client_secret_post)"
    )]
    ClientCredentialsRequiresSecret,
    /// `application_type` other than `web` or `native`.
    #[error("application_type {0} is not supported: use web or native")]
    InvalidApplicationType(String),
    /// A string longer than its limit.
    #[error("{field} is longer than {max} characters")]
    FieldTooLong {
        /// The field name.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// A display string with control characters.
    #[error("{0} must not contain control characters")]
    ControlCharacters(&'static str),
    /// A contact that does not look like an e-mail address.
    #[error("contacts[{0}] is not an e-mail address")]
    InvalidContact(usize),
    /// A URL field that is not an https URL.
    #[error("{field} is invalid: {reason}")]
    InvalidUrl {
        /// The field name.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `scope` is not a valid scope string.
    #[error("scope is invalid: {0}")]
    InvalidScope(ScopeError),
    /// Both `jwks` and `jwks_uri` (RFC 7591 §2 forbids it).
    #[error("jwks and jwks_uri must not both be present (RFC 7591 section 2)")]
    JwksAndJwksUri,
    /// `jwks` is not a JWK Set.
    #[error("jwks is invalid: {0}")]
    InvalidJwks(&'static str),
    /// `jwks` carries private or symmetric key material.
    #[error("jwks must only contain public keys")]
    PrivateKeyMaterial,
    /// A required field is missing.
    #[error("{0} is required")]
    MissingField(&'static str),
    /// The document's `client_id` is not its own URL.
    #[error("the document's client_id must equal the URL it was fetched from")]
    ClientIdMismatch,
    /// A field a metadata document must not contain.
    #[error("a client metadata document must not contain {0}")]
    ForbiddenField(&'static str),
    /// A shared-secret method in a metadata document.
    #[error(
        "a client metadata document must not use the shared-secret method {0}: metadata-document clients are public"
    )]
    SharedSecretAuthMethod(String),
    /// The client id is not a valid Client ID Metadata Document URL.
    #[error("{0}")]
    InvalidClientIdUrl(ClientIdUrlError),
}

impl ClientMetadataError {
    /// `invalid_redirect_uri` for redirect URI problems, otherwise
    /// `invalid_client_metadata` (RFC 7591 §3.2.2).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ClientMetadataError::MissingRedirectUris
            | ClientMetadataError::UnexpectedRedirectUris
            | ClientMetadataError::TooManyRedirectUris
            | ClientMetadataError::InvalidRedirectUri { .. } => ErrorCode::InvalidRedirectUri,
            _ => ErrorCode::InvalidClientMetadata,
        }
    }
}

impl From<ClientMetadataError> for OAuthError {
    fn from(error: ClientMetadataError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

#[cfg(test)]
mod tests;
