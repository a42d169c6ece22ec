//! The authorization server metadata document (RFC 8414), advertising
//! exactly what this server implements.
//!
//! - `issuer` is the configured issuer byte-for-byte: clients compare it
//!   with the string they built the metadata URL from, without normalising
//!   (RFC 8414 §3.3), so a stray trailing slash would break them;
//! - endpoints are `{issuer without trailing slash}/{name}`;
//! - `code_challenge_methods_supported` is `["S256"]` only (MCP clients
//!   refuse a server without it); `response_types_supported` is `["code"]`;
//!   `authorization_response_iss_parameter_supported` is `true` (RFC 9207:
//!   every authorization response carries `iss`);
//! - `registration_endpoint` is left out while registration is closed, so
//!   clients go straight to asking for pre-registered credentials;
//! - `introspection_endpoint` is advertised with the methods it accepts,
//!   but `none` is not among them: anonymous introspection is refused;
//! - `authorization_endpoint` (required by RFC 8414 §2 whenever a grant
//!   uses it) is `{issuer}/authorize`, where the browser signs in and
//!   consents;
//! - `client_id_metadata_document_supported` is `true`: MCP clients then
//!   use their document URL as `client_id` instead of registering.

use latchkey_protocol::metadata::AuthorizationServerMetadata;

use crate::Service;
use crate::config::RegistrationPolicy;

/// The authorization endpoint's path under the issuer.
pub const AUTHORIZE_PATH: &str = "/authorize";
/// The token endpoint's path under the issuer.
pub const TOKEN_PATH: &str = "/token";
/// The registration endpoint's path under the issuer.
pub const REGISTRATION_PATH: &str = "/register";
/// The revocation endpoint's path under the issuer.
pub const REVOCATION_PATH: &str = "/revoke";
/// The introspection endpoint's path under the issuer.
pub const INTROSPECTION_PATH: &str = "/introspect";
/// The JWK Set's path under the issuer.
pub const JWKS_PATH: &str = "/jwks.json";

/// Client authentication methods at the token and revocation endpoints.
const CLIENT_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];
/// Client authentication methods at the introspection endpoint.
const INTROSPECTION_AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

impl Service {
    /// The RFC 8414 metadata document.
    pub fn metadata(&self) -> AuthorizationServerMetadata {
        let config = self.config();
        let base = config.endpoint_base();
        let endpoint = |path: &str| Some(format!("{base}{path}"));
        let mut metadata = AuthorizationServerMetadata::new(config.issuer.clone());
        metadata.authorization_endpoint = endpoint(AUTHORIZE_PATH);
        metadata.token_endpoint = endpoint(TOKEN_PATH);
        metadata.jwks_uri = endpoint(JWKS_PATH);
        metadata.registration_endpoint = match config.registration {
            RegistrationPolicy::Closed => None,
            RegistrationPolicy::Open | RegistrationPolicy::Token(_) => endpoint(REGISTRATION_PATH),
        };
        metadata.scopes_supported = Some(config.resources.scopes_supported());
        metadata.response_modes_supported = Some(strings(&["query"]));
        metadata.grant_types_supported = Some(strings(&[
            "authorization_code",
            "refresh_token",
            "client_credentials",
        ]));
        metadata.token_endpoint_auth_methods_supported = Some(strings(&CLIENT_AUTH_METHODS));
        metadata.revocation_endpoint = endpoint(REVOCATION_PATH);
        metadata.revocation_endpoint_auth_methods_supported = Some(strings(&CLIENT_AUTH_METHODS));
        metadata.introspection_endpoint = endpoint(INTROSPECTION_PATH);
        metadata.introspection_endpoint_auth_methods_supported =
            Some(strings(&INTROSPECTION_AUTH_METHODS));
        metadata.code_challenge_methods_supported = Some(strings(&["S256"]));
        metadata.authorization_response_iss_parameter_supported = Some(true);
        // A `client_id` that is an https URL is resolved as a Client ID
        // Metadata Document (`metadata_documents`).
        metadata.client_id_metadata_document_supported = Some(true);
        metadata
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RegistrationPolicy;
    use crate::testing::Fixture;

    #[tokio::test]
    async fn the_document_advertises_what_is_implemented() {
        let fixture = Fixture::new().await;
        let json = serde_json::to_value(fixture.service.metadata()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "issuer": "https://auth.example.com",
                "authorization_endpoint": "https://auth.example.com/authorize",
                "token_endpoint": "https://auth.example.com/token",
                "jwks_uri": "https://auth.example.com/jwks.json",
                "registration_endpoint": "https://auth.example.com/register",
                "scopes_supported": ["read", "write", "files", "offline_access"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "revocation_endpoint": "https://auth.example.com/revoke",
                "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                "introspection_endpoint": "https://auth.example.com/introspect",
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
                "client_id_metadata_document_supported": true
            })
        );
    }

    #[tokio::test]
    async fn the_issuer_is_kept_byte_for_byte_and_closed_registration_hidden() {
        let fixture = Fixture::with(|config| {
            config.issuer = "https://auth.example.com/tenant1/".to_owned();
            config.registration = RegistrationPolicy::Closed;
        })
        .await;
        let metadata = fixture.service.metadata();
        assert_eq!(metadata.issuer, "https://auth.example.com/tenant1/");
        assert_eq!(
            metadata.token_endpoint.as_deref(),
            Some("https://auth.example.com/tenant1/token")
        );
        assert!(metadata.registration_endpoint.is_none());
        assert_eq!(
            metadata.authorization_endpoint.as_deref(),
            Some("https://auth.example.com/tenant1/authorize")
        );
    }
}
