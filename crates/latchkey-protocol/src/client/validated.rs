//! The [`ValidatedClient`] type: client metadata that passed validation.
//!
//! Invariant: fields are visible only inside the `client` module, and the
//! only code there that builds a `ValidatedClient` is the validation in
//! `validate.rs`, so every value satisfies the rules listed on
//! [`ClientMetadata::validate_registration`].

use serde_json::{Map, Value};

#[cfg(doc)]
use super::ClientMetadata;
use super::{GrantType, ResponseType, TokenEndpointAuthMethod};
use crate::redirect::{ApplicationType, RedirectUri, match_redirect_uri};
use crate::scope::ScopeSet;

/// A client whose metadata passed validation, with defaults applied.
///
/// [`ValidatedClient::to_json`] gives the full registered metadata, to echo
/// in a registration response (RFC 7591 §3.2.1) or to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedClient {
    pub(super) client_id: Option<String>,
    pub(super) application_type: ApplicationType,
    pub(super) redirect_uris: Vec<RedirectUri>,
    pub(super) token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub(super) grant_types: Vec<GrantType>,
    pub(super) response_types: Vec<ResponseType>,
    pub(super) client_name: Option<String>,
    pub(super) client_uri: Option<String>,
    pub(super) logo_uri: Option<String>,
    pub(super) tos_uri: Option<String>,
    pub(super) policy_uri: Option<String>,
    pub(super) jwks_uri: Option<String>,
    pub(super) jwks: Option<Value>,
    pub(super) contacts: Vec<String>,
    pub(super) scope: Option<ScopeSet>,
    pub(super) software_id: Option<String>,
    pub(super) software_version: Option<String>,
}

impl ValidatedClient {
    /// The client identifier for metadata-document clients (the document
    /// URL); `None` for registered clients, whose identifier the server
    /// assigns and stores alongside.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// `web` or `native`, as declared or defaulted.
    pub fn application_type(&self) -> ApplicationType {
        self.application_type
    }

    /// The registered redirect URIs.
    pub fn redirect_uris(&self) -> &[RedirectUri] {
        &self.redirect_uris
    }

    /// The token endpoint authentication method.
    pub fn token_endpoint_auth_method(&self) -> TokenEndpointAuthMethod {
        self.token_endpoint_auth_method
    }

    /// The grant types the client may use.
    pub fn grant_types(&self) -> &[GrantType] {
        &self.grant_types
    }

    /// The response types the client may use.
    pub fn response_types(&self) -> &[ResponseType] {
        &self.response_types
    }

    /// The client's name, for the consent page.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// The client's home page.
    pub fn client_uri(&self) -> Option<&str> {
        self.client_uri.as_deref()
    }

    /// The client's logo URL (fetch it with SSRF protection, or not at all).
    pub fn logo_uri(&self) -> Option<&str> {
        self.logo_uri.as_deref()
    }

    /// The client's terms of service.
    pub fn tos_uri(&self) -> Option<&str> {
        self.tos_uri.as_deref()
    }

    /// The client's privacy policy.
    pub fn policy_uri(&self) -> Option<&str> {
        self.policy_uri.as_deref()
    }

    /// Where the client publishes its public keys.
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// The client's inline public keys.
    pub fn jwks(&self) -> Option<&Value> {
        self.jwks.as_ref()
    }

    /// Contact addresses.
    pub fn contacts(&self) -> &[String] {
        &self.contacts
    }

    /// The scopes the client registered, if it restricted them.
    pub fn scope(&self) -> Option<&ScopeSet> {
        self.scope.as_ref()
    }

    /// The software identifier.
    pub fn software_id(&self) -> Option<&str> {
        self.software_id.as_deref()
    }

    /// The software version.
    pub fn software_version(&self) -> Option<&str> {
        self.software_version.as_deref()
    }

    /// Whether the client is public (`token_endpoint_auth_method` `none`).
    pub fn is_public(&self) -> bool {
        !self.token_endpoint_auth_method.is_confidential()
    }

    /// Whether the client registered this grant type.
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        self.grant_types.contains(&grant_type)
    }

    /// The registered redirect URI a request's `redirect_uri` matches
    /// (see [`RedirectUri::matches`]).
    pub fn match_redirect_uri(&self, requested: &str) -> Option<&RedirectUri> {
        match_redirect_uri(&self.redirect_uris, requested)
    }

    /// Whether every redirect URI is loopback: the consent page should then
    /// warn that any local application could be receiving the code (MCP
    /// security considerations).
    pub fn all_redirect_uris_loopback(&self) -> bool {
        !self.redirect_uris.is_empty() && self.redirect_uris.iter().all(RedirectUri::is_loopback)
    }

    /// The full registered metadata as a JSON object, defaults included:
    /// what a registration response echoes (RFC 7591 §3.2.1; the MCP
    /// TypeScript SDK fails unless `redirect_uris` is present) and what can
    /// be stored and later re-validated through
    /// [`ClientMetadata::from_value`]. The server adds `client_id`,
    /// `client_secret`, `client_id_issued_at` and
    /// `client_secret_expires_at` to a registration response itself.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            object.insert(key.to_owned(), value);
        };
        if let Some(client_id) = &self.client_id {
            put("client_id", Value::from(client_id.as_str()));
        }
        put(
            "redirect_uris",
            Value::Array(
                self.redirect_uris
                    .iter()
                    .map(|uri| Value::from(uri.as_str()))
                    .collect(),
            ),
        );
        put(
            "token_endpoint_auth_method",
            Value::from(self.token_endpoint_auth_method.as_str()),
        );
        put(
            "grant_types",
            Value::Array(
                self.grant_types
                    .iter()
                    .map(|grant| Value::from(grant.as_str()))
                    .collect(),
            ),
        );
        put(
            "response_types",
            Value::Array(
                self.response_types
                    .iter()
                    .map(|response| Value::from(response.as_str()))
                    .collect(),
            ),
        );
        put(
            "application_type",
            Value::from(self.application_type.as_str()),
        );
        let optional_strings = [
            ("client_name", &self.client_name),
            ("client_uri", &self.client_uri),
            ("logo_uri", &self.logo_uri),
            ("tos_uri", &self.tos_uri),
            ("policy_uri", &self.policy_uri),
            ("jwks_uri", &self.jwks_uri),
            ("software_id", &self.software_id),
            ("software_version", &self.software_version),
        ];
        for (key, value) in optional_strings {
            if let Some(value) = value {
                put(key, Value::from(value.as_str()));
            }
        }
        if let Some(scope) = &self.scope {
            put("scope", Value::from(scope.to_string()));
        }
        if !self.contacts.is_empty() {
            put(
                "contacts",
                Value::Array(
                    self.contacts
                        .iter()
                        .map(|contact| Value::from(contact.as_str()))
                        .collect(),
                ),
            );
        }
        if let Some(jwks) = &self.jwks {
            put("jwks", jwks.clone());
        }
        Value::Object(object)
    }
}

impl serde::Serialize for ValidatedClient {
    /// Serializes as [`ValidatedClient::to_json`].
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}
