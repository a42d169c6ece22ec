//! Validation of client metadata into a [`ValidatedClient`], shared by
//! dynamic registration (RFC 7591) and Client ID Metadata Documents.
//!
//! Invariant: every `ValidatedClient` built here satisfies all the rules
//! listed on [`ClientMetadata::validate_registration`]; this is the only
//! place that builds one.

use serde_json::Value;

use super::{
    ClientIdUrl, ClientMetadata, ClientMetadataError, GrantType, ResponseType,
    TokenEndpointAuthMethod, ValidatedClient, echo,
};
use crate::redirect::{ApplicationType, RedirectUri};
use crate::scope::ScopeSet;
use crate::uri;

/// The most redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 20;
/// The most entries in `grant_types` or `response_types`.
pub const MAX_LIST_LEN: usize = 8;
/// The longest `client_name`, `software_id` or `software_version`.
pub const MAX_NAME_LEN: usize = 200;
/// The longest URL field (`client_uri`, `logo_uri`, `tos_uri`,
/// `policy_uri`, `jwks_uri`).
pub const MAX_URL_LEN: usize = 2000;
/// The most `contacts`.
pub const MAX_CONTACTS: usize = 10;
/// The longest contact address (RFC 5321 §4.5.3.1.3 path limit).
pub const MAX_CONTACT_LEN: usize = 254;
/// The largest inline `jwks`, serialized, in bytes.
pub const MAX_JWKS_LEN: usize = 8192;

/// JWK members that hold private or symmetric key material (RFC 7518 §6).
const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// Where the metadata came from, which changes a few rules.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin<'a> {
    /// A dynamic registration request.
    Registration,
    /// A Client ID Metadata Document fetched from this URL.
    Document(&'a ClientIdUrl),
}

impl ClientMetadata {
    /// Validates a dynamic registration request (RFC 7591 §2, §3.1) and
    /// applies defaults.
    ///
    /// Rules, in the order they are checked:
    /// - `application_type`: `web` (the default, OIDC Registration §2) or
    ///   `native`.
    /// - `token_endpoint_auth_method`: `none`, `client_secret_basic` or
    ///   `client_secret_post`; **defaults to `none`**. RFC 7591 §2 says
    ///   `client_secret_basic`, but MCP clients are overwhelmingly public
    ///   native apps that register without the field and never expect a
    ///   secret, and the MCP specification's DCR guidance uses `none`; a
    ///   client that wants a secret can ask for one, and the echoed
    ///   metadata tells every client what was registered.
    /// - `grant_types`: defaults to `["authorization_code"]`; only
    ///   authorization_code, refresh_token and client_credentials;
    ///   duplicates dropped; an explicit empty list is refused.
    /// - `response_types`: defaults to `["code"]` when the grants include
    ///   authorization_code and to `[]` otherwise (so a client_credentials
    ///   client need not send it); only `code`.
    /// - authorization_code ⇔ code (RFC 7591 §2.1); refresh_token requires
    ///   authorization_code (Latchkey issues refresh tokens only from
    ///   codes; RFC 6749 §4.4.3); client_credentials requires a
    ///   confidential auth method.
    /// - `redirect_uris`: required, non-empty, iff authorization_code is
    ///   used; at most [`MAX_REDIRECT_URIS`]; each checked by
    ///   [`RedirectUri::parse_for_registration`] for the application type;
    ///   exact duplicates dropped.
    /// - Display strings (`client_name`, `software_id`,
    ///   `software_version`): at most [`MAX_NAME_LEN`] characters, no
    ///   control characters.
    /// - URL fields (`client_uri`, `logo_uri`, `tos_uri`, `policy_uri`,
    ///   `jwks_uri`): absolute `https` URLs without userinfo, or `http` on a
    ///   loopback host (local development clients such as the MCP Inspector
    ///   run on localhost, and such URLs can only point at the user's own
    ///   machine; whoever fetches `logo_uri` must still apply SSRF rules).
    /// - `contacts`: at most [`MAX_CONTACTS`], each shaped like an e-mail
    ///   address.
    /// - `scope`: a valid scope string ([`ScopeSet::parse`]).
    /// - `jwks`: a JWK Set object of at most [`MAX_JWKS_LEN`] bytes with
    ///   public keys only, never together with `jwks_uri`.
    /// - Empty strings in optional fields are treated as absent, as
    ///   RFC 6749 §3.1 does for request parameters: several clients send
    ///   `"logo_uri": ""`.
    /// - `client_id` in a registration request is ignored: the server
    ///   assigns identifiers. `software_statement` is not supported and is
    ///   ignored, as RFC 7591 §2.3 allows.
    ///
    /// ```
    /// use latchkey_protocol::client::{ClientMetadata, TokenEndpointAuthMethod};
    ///
    /// let client = ClientMetadata::from_json(br#"{
    ///     "redirect_uris": ["http://127.0.0.1:33418/callback"],
    ///     "application_type": "native",
    ///     "client_name": "Example CLI"
    /// }"#).unwrap().validate_registration().unwrap();
    /// assert!(client.is_public());
    /// assert_eq!(client.token_endpoint_auth_method(), TokenEndpointAuthMethod::None);
    /// assert!(client.match_redirect_uri("http://127.0.0.1:50000/callback").is_some());
    /// assert_eq!(client.to_json()["grant_types"], serde_json::json!(["authorization_code"]));
    /// ```
    pub fn validate_registration(self) -> Result<ValidatedClient, ClientMetadataError> {
        validate(self, Origin::Registration)
    }
}

/// The shared validation; see [`ClientMetadata::validate_registration`]
/// and [`super::validate_metadata_document`] for the rules.
pub(super) fn validate(
    metadata: ClientMetadata,
    origin: Origin<'_>,
) -> Result<ValidatedClient, ClientMetadataError> {
    let application_type = match non_empty(metadata.application_type) {
        Some(value) => ApplicationType::parse(&value)
            .ok_or_else(|| ClientMetadataError::InvalidApplicationType(echo(&value)))?,
        None => match origin {
            Origin::Registration => ApplicationType::Web,
            Origin::Document(_) => {
                infer_application_type(metadata.redirect_uris.as_deref().unwrap_or_default())
            }
        },
    };

    let token_endpoint_auth_method = match non_empty(metadata.token_endpoint_auth_method) {
        Some(method) => {
            let parsed = TokenEndpointAuthMethod::parse(&method)?;
            if matches!(origin, Origin::Document(_)) && parsed.is_confidential() {
                return Err(ClientMetadataError::SharedSecretAuthMethod(
                    parsed.as_str().to_owned(),
                ));
            }
            parsed
        }
        None => TokenEndpointAuthMethod::None,
    };

    let grant_types = parse_list(
        "grant_types",
        metadata.grant_types,
        vec![GrantType::AuthorizationCode],
        |value| {
            GrantType::parse(value)
                .ok_or_else(|| ClientMetadataError::UnsupportedGrantType(echo(value)))
        },
    )?;
    let uses_code = grant_types.contains(&GrantType::AuthorizationCode);
    let default_response_types = if uses_code {
        vec![ResponseType::Code]
    } else {
        Vec::new()
    };
    let response_types = match metadata.response_types {
        Some(list) if list.is_empty() => Vec::new(),
        other => parse_list("response_types", other, default_response_types, |value| {
            ResponseType::parse(value)
                .ok_or_else(|| ClientMetadataError::UnsupportedResponseType(echo(value)))
        })?,
    };
    if uses_code != response_types.contains(&ResponseType::Code) {
        return Err(ClientMetadataError::GrantResponseMismatch);
    }
    if grant_types.contains(&GrantType::RefreshToken) && !uses_code {
        return Err(ClientMetadataError::RefreshTokenWithoutAuthorizationCode);
    }
    if grant_types.contains(&GrantType::ClientCredentials)
        && !token_endpoint_auth_method.is_confidential()
    {
        return Err(ClientMetadataError::ClientCredentialsRequiresSecret);
    }

    let raw_redirect_uris = metadata.redirect_uris.unwrap_or_default();
    if uses_code && raw_redirect_uris.is_empty() {
        return Err(ClientMetadataError::MissingRedirectUris);
    }
    if !uses_code && !raw_redirect_uris.is_empty() {
        return Err(ClientMetadataError::UnexpectedRedirectUris);
    }
    if raw_redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(ClientMetadataError::TooManyRedirectUris);
    }
    let mut redirect_uris: Vec<RedirectUri> = Vec::with_capacity(raw_redirect_uris.len());
    for (index, raw) in raw_redirect_uris.iter().enumerate() {
        let parsed = RedirectUri::parse_for_registration(raw, application_type)
            .map_err(|source| ClientMetadataError::InvalidRedirectUri { index, source })?;
        if !redirect_uris.contains(&parsed) {
            redirect_uris.push(parsed);
        }
    }

    let client_name = display_string("client_name", metadata.client_name)?;
    let software_id = display_string("software_id", metadata.software_id)?;
    let software_version = display_string("software_version", metadata.software_version)?;
    let client_uri = web_url("client_uri", metadata.client_uri)?;
    let logo_uri = web_url("logo_uri", metadata.logo_uri)?;
    let tos_uri = web_url("tos_uri", metadata.tos_uri)?;
    let policy_uri = web_url("policy_uri", metadata.policy_uri)?;
    let jwks_uri = web_url("jwks_uri", metadata.jwks_uri)?;
    let contacts = contacts(metadata.contacts)?;
    let scope = match non_empty(metadata.scope) {
        Some(scope) => Some(ScopeSet::parse(&scope).map_err(ClientMetadataError::InvalidScope)?),
        None => None,
    };
    let jwks = match metadata.jwks {
        None | Some(Value::Null) => None,
        Some(jwks) => {
            if jwks_uri.is_some() {
                return Err(ClientMetadataError::JwksAndJwksUri);
            }
            check_jwks(&jwks)?;
            Some(jwks)
        }
    };

    let client_id = match origin {
        Origin::Registration => None,
        Origin::Document(url) => Some(url.as_str().to_owned()),
    };

    Ok(ValidatedClient {
        client_id,
        application_type,
        redirect_uris,
        token_endpoint_auth_method,
        grant_types,
        response_types,
        client_name,
        client_uri,
        logo_uri,
        tos_uri,
        policy_uri,
        jwks_uri,
        jwks,
        contacts,
        scope,
        software_id,
        software_version,
    })
}

/// The application type of a metadata document that does not declare one:
/// `native` when it has redirect URIs and every one is an http loopback or
/// private-use-scheme URI (what native apps register; the MCP Python SDK
/// publishes `http://127.0.0.1` redirects), otherwise `web`.
fn infer_application_type(redirect_uris: &[String]) -> ApplicationType {
    let native_shaped = |raw: &String| {
        uri::split(raw).is_ok_and(|parts| {
            let scheme = parts.scheme.to_ascii_lowercase();
            match scheme.as_str() {
                "http" => parts
                    .authority
                    .is_some_and(|authority| uri::is_loopback_host(authority.host)),
                "https" => false,
                other => other.contains('.'),
            }
        })
    };
    if !redirect_uris.is_empty() && redirect_uris.iter().all(native_shaped) {
        ApplicationType::Native
    } else {
        ApplicationType::Web
    }
}

/// `None` for absent or empty strings.
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|value| !value.is_empty())
}

/// Parses a list of registered names with a default for absence, refusing
/// empty and overlong lists and dropping duplicates.
fn parse_list<T: PartialEq>(
    field: &'static str,
    values: Option<Vec<String>>,
    default: Vec<T>,
    parse: impl Fn(&str) -> Result<T, ClientMetadataError>,
) -> Result<Vec<T>, ClientMetadataError> {
    let Some(values) = values else {
        return Ok(default);
    };
    if values.is_empty() {
        return Err(ClientMetadataError::EmptyList(field));
    }
    if values.len() > MAX_LIST_LEN {
        return Err(ClientMetadataError::TooManyValues {
            field,
            max: MAX_LIST_LEN,
        });
    }
    let mut parsed: Vec<T> = Vec::with_capacity(values.len());
    for value in &values {
        let item = parse(value)?;
        if !parsed.contains(&item) {
            parsed.push(item);
        }
    }
    Ok(parsed)
}

/// A bounded display string without control characters.
fn display_string(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<String>, ClientMetadataError> {
    let Some(value) = non_empty(value) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_NAME_LEN {
        return Err(ClientMetadataError::FieldTooLong {
            field,
            max: MAX_NAME_LEN,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ClientMetadataError::ControlCharacters(field));
    }
    Ok(Some(value))
}

/// An https URL, or http on a loopback host, kept as sent.
fn web_url(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<String>, ClientMetadataError> {
    let Some(value) = non_empty(value) else {
        return Ok(None);
    };
    let invalid = |reason: &'static str| ClientMetadataError::InvalidUrl { field, reason };
    if value.len() > MAX_URL_LEN {
        return Err(ClientMetadataError::FieldTooLong {
            field,
            max: MAX_URL_LEN,
        });
    }
    if !uri::has_only_uri_characters(&value) {
        return Err(invalid("it contains characters not allowed in a URL"));
    }
    let parts = uri::split(&value).map_err(|_| invalid("it is not an absolute URL"))?;
    let authority = parts
        .authority
        .filter(|authority| !authority.host.is_empty())
        .ok_or_else(|| invalid("it has no host"))?;
    if authority.userinfo.is_some() {
        return Err(invalid("it must not contain userinfo"));
    }
    match parts.scheme.to_ascii_lowercase().as_str() {
        "https" => {}
        "http" if uri::is_loopback_host(authority.host) => {}
        _ => return Err(invalid("it must be an https URL")),
    }
    url::Url::parse(&value).map_err(|_| invalid("it is not a valid URL"))?;
    Ok(Some(value))
}

fn contacts(values: Option<Vec<String>>) -> Result<Vec<String>, ClientMetadataError> {
    let values = values.unwrap_or_default();
    if values.len() > MAX_CONTACTS {
        return Err(ClientMetadataError::TooManyValues {
            field: "contacts",
            max: MAX_CONTACTS,
        });
    }
    let mut contacts: Vec<String> = Vec::with_capacity(values.len());
    for (index, contact) in values.into_iter().enumerate() {
        if !looks_like_email(&contact) {
            return Err(ClientMetadataError::InvalidContact(index));
        }
        if !contacts.contains(&contact) {
            contacts.push(contact);
        }
    }
    Ok(contacts)
}

/// `local@domain.tld` with no whitespace, controls or the characters that
/// separate addresses or carry display names; a shape check, not RFC 5322.
fn looks_like_email(contact: &str) -> bool {
    if contact.len() > MAX_CONTACT_LEN {
        return false;
    }
    let Some((local, domain)) = contact.split_once('@') else {
        return false;
    };
    let forbidden = |character: char| {
        character.is_whitespace() || character.is_control() || "@<>,;:\"\\()[]".contains(character)
    };
    !local.is_empty()
        && !local.chars().any(forbidden)
        && !domain.chars().any(forbidden)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

/// A JWK Set (RFC 7517 §5) of public keys only, within the size limit.
pub(super) fn check_jwks(jwks: &Value) -> Result<(), ClientMetadataError> {
    if jwks.to_string().len() > MAX_JWKS_LEN {
        return Err(ClientMetadataError::InvalidJwks("it is too large"));
    }
    let keys = jwks
        .as_object()
        .and_then(|set| set.get("keys"))
        .and_then(Value::as_array)
        .ok_or(ClientMetadataError::InvalidJwks(
            "it must be an object with a keys array",
        ))?;
    if keys.iter().any(|key| !key.is_object()) {
        return Err(ClientMetadataError::InvalidJwks(
            "every key must be an object",
        ));
    }
    if has_private_key_material(jwks) {
        return Err(ClientMetadataError::PrivateKeyMaterial);
    }
    Ok(())
}

/// Whether any key in a JWK Set carries private or symmetric key material.
/// Tolerant of malformed sets: anything that is not a set of objects has
/// no keys to leak.
pub(super) fn has_private_key_material(jwks: &Value) -> bool {
    jwks.get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| {
            keys.iter().any(|key| {
                key.as_object().is_some_and(|members| {
                    PRIVATE_JWK_MEMBERS
                        .iter()
                        .any(|member| members.contains_key(*member))
                })
            })
        })
}
