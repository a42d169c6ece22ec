//! Tests for client metadata validation and Client ID Metadata Documents.

use serde_json::json;

use super::*;
use crate::redirect::ApplicationType;

fn register(body: serde_json::Value) -> Result<ValidatedClient, ClientMetadataError> {
    ClientMetadata::from_value(body)?.validate_registration()
}

fn document(url: &str, body: serde_json::Value) -> Result<ValidatedClient, ClientMetadataError> {
    let url = ClientIdUrl::parse(url).unwrap();
    validate_metadata_document(&url, body.to_string().as_bytes())
}

#[test]
fn typescript_sdk_registration_is_accepted_and_echoed() {
    // The body the MCP TypeScript SDK v1 sends: no application_type, a
    // localhost redirect, and the auth method spelled out.
    let client = register(json!({
        "redirect_uris": ["http://localhost:6274/oauth/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "MCP Inspector",
        "client_uri": "https://github.com/modelcontextprotocol/inspector",
        "scope": "mcp:tools"
    }))
    .unwrap();
    assert_eq!(client.application_type(), ApplicationType::Web);
    assert!(client.is_public());
    assert!(client.allows_grant(GrantType::RefreshToken));
    assert!(client.all_redirect_uris_loopback());
    assert!(
        client
            .match_redirect_uri("http://localhost:51000/oauth/callback")
            .is_some()
    );
    let echoed = client.to_json();
    assert_eq!(
        echoed,
        json!({
            "redirect_uris": ["http://localhost:6274/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "application_type": "web",
            "client_name": "MCP Inspector",
            "client_uri": "https://github.com/modelcontextprotocol/inspector",
            "scope": "mcp:tools"
        })
    );
}

#[test]
fn python_sdk_native_registration_is_accepted() {
    let client = register(json!({
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "python-sdk client"
    }))
    .unwrap();
    assert_eq!(client.application_type(), ApplicationType::Native);
    assert!(
        client
            .match_redirect_uri("http://127.0.0.1:40001/callback")
            .is_some()
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let client = register(json!({
        "redirect_uris": ["https://app.example/cb"],
        "resource": "https://mcp.example.com/mcp",
        "client_name#fr": "Exemple",
        "software_statement": "eyJhbGciOi...",
        "post_logout_redirect_uris": ["https://app.example/bye"],
        "id_token_signed_response_alg": "RS256",
        "default_max_age": 3600
    }))
    .unwrap();
    assert_eq!(client.redirect_uris().len(), 1);
    assert!(client.to_json().get("resource").is_none());
}

#[test]
fn defaults_follow_rfc_7591_with_none_auth() {
    let client = register(json!({"redirect_uris": ["https://app.example/cb"]})).unwrap();
    assert_eq!(client.grant_types(), [GrantType::AuthorizationCode]);
    assert_eq!(client.response_types(), [ResponseType::Code]);
    assert_eq!(
        client.token_endpoint_auth_method(),
        TokenEndpointAuthMethod::None
    );
    assert_eq!(client.application_type(), ApplicationType::Web);
    assert_eq!(client.client_id(), None);
    assert_eq!(client.client_name(), None);
    assert_eq!(client.scope(), None);
    assert!(client.contacts().is_empty());
}

#[test]
fn client_id_in_a_registration_request_is_ignored() {
    let client = register(json!({
        "client_id": "chosen-by-client",
        "redirect_uris": ["https://app.example/cb"]
    }))
    .unwrap();
    assert_eq!(client.client_id(), None);
    assert!(client.to_json().get("client_id").is_none());
}

#[test]
fn confidential_client_credentials_client() {
    let client = register(json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_name": "batch job"
    }))
    .unwrap();
    assert!(!client.is_public());
    assert!(client.response_types().is_empty());
    assert!(client.redirect_uris().is_empty());
    assert_eq!(client.to_json()["redirect_uris"], json!([]));
    // The stored JSON validates again to the same client.
    let again = ClientMetadata::from_value(client.to_json())
        .unwrap()
        .validate_registration()
        .unwrap();
    assert_eq!(again, client);
}

#[test]
fn registered_json_round_trips() {
    let client = register(json!({
        "redirect_uris": ["com.example.app:/cb", "http://[::1]/cb"],
        "application_type": "native",
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "client_name": "Example",
        "logo_uri": "https://app.example/logo.png",
        "tos_uri": "https://app.example/tos",
        "policy_uri": "https://app.example/privacy",
        "jwks_uri": "https://app.example/jwks.json",
        "contacts": ["ops@app.example"],
        "scope": "a b",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1"
    }))
    .unwrap();
    let again = ClientMetadata::from_value(client.to_json())
        .unwrap()
        .validate_registration()
        .unwrap();
    assert_eq!(again, client);
    assert_eq!(client.contacts(), ["ops@app.example"]);
    assert_eq!(client.scope().unwrap().to_string(), "a b");
    assert_eq!(client.software_version(), Some("2.1"));
}

#[test]
fn refusal_table() {
    let https = json!(["https://app.example/cb"]);
    let table: Vec<(serde_json::Value, ClientMetadataError)> = vec![
        (json!({}), ClientMetadataError::MissingRedirectUris),
        (
            json!({"redirect_uris": []}),
            ClientMetadataError::MissingRedirectUris,
        ),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            ClientMetadataError::InvalidRedirectUri {
                index: 0,
                source: crate::redirect::RedirectUriError::HttpRequiresLoopback,
            },
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb", "com.example.app:/cb"]}),
            ClientMetadataError::InvalidRedirectUri {
                index: 1,
                source: crate::redirect::RedirectUriError::PrivateUseSchemeRequiresNative,
            },
        ),
        (
            json!({"redirect_uris": https, "token_endpoint_auth_method": "private_key_jwt"}),
            ClientMetadataError::UnsupportedAuthMethod("private_key_jwt".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "token_endpoint_auth_method": "client_secret_jwt"}),
            ClientMetadataError::UnsupportedAuthMethod("client_secret_jwt".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "token_endpoint_auth_method": "magic"}),
            ClientMetadataError::UnknownAuthMethod("magic".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "grant_types": ["implicit"]}),
            ClientMetadataError::UnsupportedGrantType("implicit".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "grant_types": ["authorization_code", "password"]}),
            ClientMetadataError::UnsupportedGrantType("password".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "grant_types": []}),
            ClientMetadataError::EmptyList("grant_types"),
        ),
        (
            json!({"redirect_uris": https, "response_types": ["token"]}),
            ClientMetadataError::UnsupportedResponseType("token".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "response_types": ["code id_token"]}),
            ClientMetadataError::UnsupportedResponseType("code id_token".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "response_types": []}),
            ClientMetadataError::GrantResponseMismatch,
        ),
        (
            json!({"grant_types": ["client_credentials"], "response_types": ["code"],
                   "token_endpoint_auth_method": "client_secret_basic"}),
            ClientMetadataError::GrantResponseMismatch,
        ),
        (
            json!({"grant_types": ["client_credentials"]}),
            ClientMetadataError::ClientCredentialsRequiresSecret,
        ),
        (
            json!({"grant_types": ["refresh_token", "client_credentials"],
                   "token_endpoint_auth_method": "client_secret_post"}),
            ClientMetadataError::RefreshTokenWithoutAuthorizationCode,
        ),
        (
            json!({"grant_types": ["client_credentials"], "redirect_uris": https,
                   "token_endpoint_auth_method": "client_secret_post"}),
            ClientMetadataError::UnexpectedRedirectUris,
        ),
        (
            json!({"redirect_uris": https, "application_type": "desktop"}),
            ClientMetadataError::InvalidApplicationType("desktop".to_owned()),
        ),
        (
            json!({"redirect_uris": https, "client_name": "x".repeat(MAX_NAME_LEN + 1)}),
            ClientMetadataError::FieldTooLong {
                field: "client_name",
                max: MAX_NAME_LEN,
            },
        ),
        (
            json!({"redirect_uris": https, "client_name": "evil\nname"}),
            ClientMetadataError::ControlCharacters("client_name"),
        ),
        (
            json!({"redirect_uris": https, "software_version": "1\u{0}"}),
            ClientMetadataError::ControlCharacters("software_version"),
        ),
        (
            json!({"redirect_uris": https, "client_uri": "http://app.example"}),
            ClientMetadataError::InvalidUrl {
                field: "client_uri",
                reason: "it must be an https URL",
            },
        ),
        (
            json!({"redirect_uris": https, "logo_uri": "javascript:alert(1)"}),
            ClientMetadataError::InvalidUrl {
                field: "logo_uri",
                reason: "it has no host",
            },
        ),
        (
            json!({"redirect_uris": https, "tos_uri": "/tos"}),
            ClientMetadataError::InvalidUrl {
                field: "tos_uri",
                reason: "it is not an absolute URL",
            },
        ),
        (
            json!({"redirect_uris": https, "policy_uri": "https://u:p@app.example/p"}),
            ClientMetadataError::InvalidUrl {
                field: "policy_uri",
                reason: "it must not contain userinfo",
            },
        ),
        (
            json!({"redirect_uris": https, "jwks_uri": "https://app.example/a b"}),
            ClientMetadataError::InvalidUrl {
                field: "jwks_uri",
                reason: "it contains characters not allowed in a URL",
            },
        ),
        (
            json!({"redirect_uris": https, "contacts": ["not an email"]}),
            ClientMetadataError::InvalidContact(0),
        ),
        (
            json!({"redirect_uris": https, "contacts": ["a@b.example", "mailto:x"]}),
            ClientMetadataError::InvalidContact(1),
        ),
        (
            json!({"redirect_uris": https, "contacts": vec!["a@b.example"; MAX_CONTACTS + 1]}),
            ClientMetadataError::TooManyValues {
                field: "contacts",
                max: MAX_CONTACTS,
            },
        ),
        (
            json!({"redirect_uris": https, "scope": "a \"b\""}),
            ClientMetadataError::InvalidScope(crate::scope::ScopeError::InvalidCharacter {
                position: 2,
            }),
        ),
        (
            json!({"redirect_uris": https, "jwks_uri": "https://app.example/jwks",
                   "jwks": {"keys": []}}),
            ClientMetadataError::JwksAndJwksUri,
        ),
        (
            json!({"redirect_uris": https, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
            ClientMetadataError::PrivateKeyMaterial,
        ),
        (
            json!({"redirect_uris": https, "jwks": [1, 2]}),
            ClientMetadataError::InvalidJwks("it must be an object with a keys array"),
        ),
        (
            json!({"redirect_uris": vec!["https://app.example/cb"; MAX_REDIRECT_URIS + 1]}),
            ClientMetadataError::TooManyRedirectUris,
        ),
        (
            json!({"redirect_uris": https, "grant_types": vec!["authorization_code"; MAX_LIST_LEN + 1]}),
            ClientMetadataError::TooManyValues {
                field: "grant_types",
                max: MAX_LIST_LEN,
            },
        ),
    ];
    for (body, expected) in table {
        assert_eq!(register(body.clone()), Err(expected), "{body}");
    }
}

#[test]
fn wrong_json_types_are_invalid_client_metadata() {
    for body in [
        &b"not json"[..],
        br#"{"redirect_uris": "https://app.example/cb"}"#,
        br#"{"client_name": 42}"#,
    ] {
        let error = ClientMetadata::from_json(body).unwrap_err();
        assert!(
            matches!(error, ClientMetadataError::InvalidJson(_)),
            "{error}"
        );
        assert_eq!(error.error_code(), ErrorCode::InvalidClientMetadata);
    }
    assert_eq!(
        ClientMetadata::from_json(b"[]"),
        Err(ClientMetadataError::NotAnObject)
    );
}

#[test]
fn nulls_and_empty_strings_are_absent() {
    let client = register(json!({
        "redirect_uris": ["https://app.example/cb"],
        "client_uri": "",
        "logo_uri": null,
        "scope": "",
        "token_endpoint_auth_method": "",
        "jwks": null
    }))
    .unwrap();
    assert_eq!(client.client_uri(), None);
    assert_eq!(client.logo_uri(), None);
    assert_eq!(client.scope(), None);
    assert!(client.is_public());
}

#[test]
fn loopback_http_urls_are_allowed_for_display_fields() {
    let client = register(json!({
        "redirect_uris": ["http://localhost:6274/cb"],
        "client_uri": "http://localhost:6274"
    }))
    .unwrap();
    assert_eq!(client.client_uri(), Some("http://localhost:6274"));
}

#[test]
fn duplicates_are_dropped() {
    let client = register(json!({
        "redirect_uris": ["https://app.example/cb", "https://app.example/cb"],
        "grant_types": ["authorization_code", "authorization_code"],
        "contacts": ["a@b.example", "a@b.example"]
    }))
    .unwrap();
    assert_eq!(client.redirect_uris().len(), 1);
    assert_eq!(client.grant_types().len(), 1);
    assert_eq!(client.contacts().len(), 1);
}

#[test]
fn public_jwks_are_kept() {
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let client =
        register(json!({"redirect_uris": ["https://app.example/cb"], "jwks": jwks})).unwrap();
    assert_eq!(client.jwks(), Some(&jwks));
}

#[test]
fn error_codes_follow_rfc_7591() {
    assert_eq!(
        ClientMetadataError::MissingRedirectUris.error_code(),
        ErrorCode::InvalidRedirectUri
    );
    assert_eq!(
        ClientMetadataError::InvalidRedirectUri {
            index: 0,
            source: crate::redirect::RedirectUriError::Fragment
        }
        .error_code(),
        ErrorCode::InvalidRedirectUri
    );
    assert_eq!(
        ClientMetadataError::GrantResponseMismatch.error_code(),
        ErrorCode::InvalidClientMetadata
    );
    let error = OAuthError::from(ClientMetadataError::InvalidRedirectUri {
        index: 2,
        source: crate::redirect::RedirectUriError::Fragment,
    });
    assert_eq!(error.code(), ErrorCode::InvalidRedirectUri);
    assert_eq!(
        error.description(),
        Some(
            "redirect_uris[2]: the redirect URI must not contain a fragment (RFC 6749 section 3.1.2)"
        )
    );
}

#[test]
fn echoed_values_are_cut() {
    let long = "g".repeat(1000);
    let error = register(json!({"redirect_uris": ["https://a.example/cb"], "grant_types": [long]}))
        .unwrap_err();
    assert!(error.to_string().len() < 200, "{error}");
}

#[test]
fn auth_method_and_type_names() {
    for method in [
        TokenEndpointAuthMethod::None,
        TokenEndpointAuthMethod::ClientSecretBasic,
        TokenEndpointAuthMethod::ClientSecretPost,
    ] {
        assert_eq!(TokenEndpointAuthMethod::parse(method.as_str()), Ok(method));
        assert_eq!(
            serde_json::to_value(method).unwrap(),
            json!(method.as_str())
        );
    }
    for grant in [
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::ClientCredentials,
    ] {
        assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
        assert_eq!(grant.to_string(), grant.as_str());
    }
    assert_eq!(GrantType::parse("password"), None);
    assert_eq!(ResponseType::parse("code"), Some(ResponseType::Code));
    assert_eq!(ResponseType::parse("token"), None);
    assert_eq!(
        serde_json::to_value(ResponseType::Code).unwrap(),
        json!("code")
    );
}

// Client ID Metadata Documents.

const URL: &str = "https://app.example.com/oauth/client.json";

fn minimal_document() -> serde_json::Value {
    json!({
        "client_id": URL,
        "client_name": "Example",
        "redirect_uris": ["https://app.example.com/callback"]
    })
}

#[test]
fn client_id_url_table() {
    let accepted = [
        "https://app.example.com/client.json",
        "https://app.example.com:8443/c",
        "https://app.example.com/a/b/",
        "https://APP.example.com/c",
        "https://app.example.com/.well-known/client",
    ];
    for raw in accepted {
        let url = ClientIdUrl::parse(raw).unwrap_or_else(|error| panic!("{raw}: {error}"));
        assert_eq!(url.as_str(), raw);
    }
    let refused = [
        ("http://app.example.com/c", ClientIdUrlError::NotHttps),
        ("HTTPS://app.example.com/c", ClientIdUrlError::NotHttps),
        ("app.example.com/c", ClientIdUrlError::NotHttps),
        ("https://app.example.com", ClientIdUrlError::RootPath),
        ("https://app.example.com/", ClientIdUrlError::RootPath),
        ("https://u@app.example.com/c", ClientIdUrlError::Userinfo),
        (
            "https://app.example.com/a/./c",
            ClientIdUrlError::DotSegment,
        ),
        (
            "https://app.example.com/a/../c",
            ClientIdUrlError::DotSegment,
        ),
        (
            "https://app.example.com/a/%2e%2E/c",
            ClientIdUrlError::DotSegment,
        ),
        ("https://app.example.com/a/..", ClientIdUrlError::DotSegment),
        ("https://app.example.com/c?x=1", ClientIdUrlError::Query),
        ("https://app.example.com/c?", ClientIdUrlError::Query),
        ("https://app.example.com/c#x", ClientIdUrlError::Fragment),
        ("https:///c", ClientIdUrlError::MissingHost),
        (
            "https://app.example.com/c d",
            ClientIdUrlError::InvalidCharacter,
        ),
        (
            "https://app.example.com:99999/c",
            ClientIdUrlError::Malformed,
        ),
        ("https://ex%61mple.com/c", ClientIdUrlError::Malformed),
    ];
    for (raw, expected) in refused {
        assert_eq!(ClientIdUrl::parse(raw), Err(expected), "{raw}");
    }
    let long = format!(
        "https://app.example.com/{}",
        "a".repeat(MAX_CLIENT_ID_URL_LEN)
    );
    assert_eq!(ClientIdUrl::parse(&long), Err(ClientIdUrlError::TooLong));
}

#[test]
fn client_id_urls_are_exact_strings() {
    let with_port = ClientIdUrl::parse("https://x.example:443/c").unwrap();
    let without = ClientIdUrl::parse("https://x.example/c").unwrap();
    assert_ne!(with_port, without);
    assert_eq!(with_port.host(), "x.example");
    assert_eq!(
        OAuthError::from(ClientIdUrlError::RootPath).code(),
        ErrorCode::InvalidClient
    );
}

#[test]
fn minimal_document_is_a_public_web_client() {
    let client = document(URL, minimal_document()).unwrap();
    assert_eq!(client.client_id(), Some(URL));
    assert_eq!(client.client_name(), Some("Example"));
    assert!(client.is_public());
    assert_eq!(client.application_type(), ApplicationType::Web);
    assert_eq!(client.to_json()["client_id"], json!(URL));
}

#[test]
fn document_application_type_is_inferred_from_redirects() {
    let mut body = minimal_document();
    body["redirect_uris"] = json!(["http://127.0.0.1:3000/cb", "com.example.app:/cb"]);
    assert_eq!(
        document(URL, body.clone()).unwrap().application_type(),
        ApplicationType::Native
    );
    body["redirect_uris"] = json!(["http://127.0.0.1:3000/cb", "https://app.example.com/cb"]);
    assert_eq!(
        document(URL, body.clone()).unwrap().application_type(),
        ApplicationType::Web
    );
    body["redirect_uris"] = json!(["com.example.app:/cb", "https://app.example.com/cb"]);
    assert!(matches!(
        document(URL, body.clone()),
        Err(ClientMetadataError::InvalidRedirectUri { index: 0, .. })
    ));
    body["application_type"] = json!("native");
    assert!(document(URL, body).is_ok());
}

#[test]
fn document_refusal_table() {
    let with = |key: &str, value: serde_json::Value| {
        let mut body = minimal_document();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = minimal_document();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let table = vec![
        (
            without("client_id"),
            ClientMetadataError::MissingField("client_id"),
        ),
        (
            with("client_id", json!("https://app.example.com/other.json")),
            ClientMetadataError::ClientIdMismatch,
        ),
        (
            with(
                "client_id",
                json!("https://app.example.com:443/oauth/client.json"),
            ),
            ClientMetadataError::ClientIdMismatch,
        ),
        (
            with("client_id", json!(42)),
            ClientMetadataError::ClientIdMismatch,
        ),
        (
            without("client_name"),
            ClientMetadataError::MissingField("client_name"),
        ),
        (
            with("client_name", json!("")),
            ClientMetadataError::MissingField("client_name"),
        ),
        (
            without("redirect_uris"),
            ClientMetadataError::MissingField("redirect_uris"),
        ),
        (
            with("redirect_uris", json!([])),
            ClientMetadataError::MissingField("redirect_uris"),
        ),
        (
            with("client_secret", json!("s3cr3t")),
            ClientMetadataError::ForbiddenField("client_secret"),
        ),
        (
            with("client_secret_expires_at", json!(0)),
            ClientMetadataError::ForbiddenField("client_secret_expires_at"),
        ),
        (
            with("token_endpoint_auth_method", json!("client_secret_basic")),
            ClientMetadataError::SharedSecretAuthMethod("client_secret_basic".to_owned()),
        ),
        (
            with("token_endpoint_auth_method", json!("client_secret_post")),
            ClientMetadataError::SharedSecretAuthMethod("client_secret_post".to_owned()),
        ),
        (
            with("token_endpoint_auth_method", json!("client_secret_jwt")),
            ClientMetadataError::SharedSecretAuthMethod("client_secret_jwt".to_owned()),
        ),
        (
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            ClientMetadataError::UnsupportedAuthMethod("private_key_jwt".to_owned()),
        ),
        (
            with(
                "jwks",
                json!({"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB", "d": "secret"}]}),
            ),
            ClientMetadataError::PrivateKeyMaterial,
        ),
        (
            with("redirect_uris", json!(["http://app.example.com/cb"])),
            ClientMetadataError::InvalidRedirectUri {
                index: 0,
                source: crate::redirect::RedirectUriError::HttpRequiresLoopback,
            },
        ),
    ];
    for (body, expected) in table {
        assert_eq!(document(URL, body.clone()), Err(expected), "{body}");
    }
    for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        let body = with(
            "jwks",
            json!({"keys": [{"kty": "RSA", private_member: "x"}]}),
        );
        assert_eq!(
            document(URL, body),
            Err(ClientMetadataError::PrivateKeyMaterial),
            "{private_member}"
        );
    }
}

#[test]
fn document_type_errors_are_reported_precisely() {
    let mut body = minimal_document();
    body["client_name"] = json!(42);
    assert!(matches!(
        document(URL, body),
        Err(ClientMetadataError::InvalidJson(message)) if message.contains("invalid type")
    ));
    let mut body = minimal_document();
    body["redirect_uris"] = json!("https://app.example.com/callback");
    assert!(matches!(
        document(URL, body),
        Err(ClientMetadataError::InvalidJson(_))
    ));
}

#[test]
fn document_byte_level_refusals() {
    let url = ClientIdUrl::parse(URL).unwrap();
    assert_eq!(
        validate_metadata_document(&url, b"[1]"),
        Err(ClientMetadataError::NotAnObject)
    );
    assert!(matches!(
        validate_metadata_document(&url, b"{"),
        Err(ClientMetadataError::InvalidJson(_))
    ));
    let mut body = minimal_document();
    body["padding"] = json!("x".repeat(MAX_METADATA_DOCUMENT_LEN));
    assert_eq!(
        validate_metadata_document(&url, body.to_string().as_bytes()),
        Err(ClientMetadataError::DocumentTooLarge)
    );
}

#[test]
fn document_unknown_fields_are_ignored() {
    let mut body = minimal_document();
    body["resource"] = json!("https://mcp.example.com/mcp");
    body["software_statement"] = json!("x.y.z");
    body["token_endpoint_auth_method"] = json!("none");
    assert!(document(URL, body).is_ok());
}

#[test]
fn loopback_http_client_id_urls_only_in_development_mode() {
    for accepted in [
        "http://127.0.0.1:8080/client.json",
        "http://localhost/oauth/client.json",
        "http://[::1]:9/c",
        "https://app.example.com/client.json",
    ] {
        let url = ClientIdUrl::parse_allowing_loopback_http(accepted).unwrap();
        assert_eq!(url.as_str(), accepted);
    }
    for (refused, error) in [
        ("http://app.example.com/c", ClientIdUrlError::NotHttps),
        ("http://10.0.0.1/c", ClientIdUrlError::NotHttps),
        ("http://127.0.0.2/c", ClientIdUrlError::NotHttps),
        ("http://127.0.0.1/", ClientIdUrlError::RootPath),
        ("http://127.0.0.1/c?x=1", ClientIdUrlError::Query),
        ("ftp://127.0.0.1/c", ClientIdUrlError::NotHttps),
    ] {
        assert_eq!(
            ClientIdUrl::parse_allowing_loopback_http(refused),
            Err(error),
            "{refused}"
        );
    }
    // The strict parser never accepts http, loopback or not.
    assert_eq!(
        ClientIdUrl::parse("http://127.0.0.1:8080/client.json"),
        Err(ClientIdUrlError::NotHttps)
    );
}
