//! One complete MCP authorization, as a server built on this crate would
//! run it: dynamic registration, the authorization request, the token
//! request with PKCE, claims validation at the resource, and step-up.

use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::client::{ClientMetadata, GrantType};
use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_protocol::error::ErrorCode;
use latchkey_protocol::jwt::{AccessTokenClaims, Audience, ClaimsError, ClaimsValidation};
use latchkey_protocol::metadata::{
    AuthorizationServerMetadata, ProtectedResourceMetadata, well_known_path, well_known_url,
};
use latchkey_protocol::params::{AuthorizationRequest, FormParams, TokenRequest};
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::resource::{ResourceSet, ResourceUri};
use latchkey_protocol::scope::{ScopeHierarchy, ScopeSet};

const ISSUER: &str = "https://auth.example.com/tenant1";
const MCP: &str = "https://mcp.example.com/mcp";

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[test]
fn registration_authorization_token_and_resource_access() {
    // Discovery: the resource points at the issuer, the issuer's metadata
    // lives at the path-inserted well-known URL.
    let mut resource_metadata = ProtectedResourceMetadata::new(MCP);
    resource_metadata.authorization_servers = Some(vec![ISSUER.to_owned()]);
    let resource_metadata_url = well_known_url(MCP, "oauth-protected-resource").unwrap();
    assert_eq!(
        resource_metadata_url,
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    );
    assert_eq!(
        well_known_path(ISSUER, "oauth-authorization-server").unwrap(),
        "/.well-known/oauth-authorization-server/tenant1"
    );
    let mut server_metadata = AuthorizationServerMetadata::new(ISSUER);
    server_metadata.code_challenge_methods_supported = Some(vec!["S256".to_owned()]);
    let published = serde_json::to_value(&server_metadata).unwrap();
    assert_eq!(
        published["issuer"],
        resource_metadata.authorization_servers.unwrap()[0]
    );

    // Registration, as the MCP TypeScript SDK sends it.
    let client = ClientMetadata::from_json(
        br#"{"redirect_uris":["http://localhost:8090/callback"],
             "token_endpoint_auth_method":"none",
             "grant_types":["authorization_code","refresh_token"],
             "response_types":["code"],
             "client_name":"My MCP Client",
             "scope":"mcp files"}"#,
    )
    .unwrap()
    .validate_registration()
    .unwrap();
    let client_id = "generated-client-id";
    let echoed = client.to_json();
    assert_eq!(echoed["redirect_uris"][0], "http://localhost:8090/callback");

    // The client builds its PKCE pair and the authorization URL; the SDK
    // sends the resource as URL.href, with the server listening on a new port.
    let random = ring::rand::SystemRandom::new();
    let verifier = CodeVerifier::generate(&random).unwrap();
    let challenge = CodeChallenge::s256(&verifier);
    let query = format!(
        "response_type=code&client_id={client_id}&code_challenge={}&code_challenge_method=S256\
         &redirect_uri={}&state=xyz&scope=files%3Aread&resource={}&prompt=consent",
        challenge.as_str(),
        encode("http://localhost:53000/callback"),
        encode("https://MCP.example.com/mcp"),
    );

    // The server validates in RFC 6749 §4.1.2.1 order.
    let params = FormParams::from_query(&query).unwrap();
    let pending = AuthorizationRequest::parse(&params).unwrap();
    assert_eq!(pending.client_id(), client_id);
    let target = pending
        .resolve_redirect_uri(client.redirect_uris())
        .unwrap();
    let request = pending.validate(target).unwrap();
    let resources = ResourceSet::new([ResourceUri::parse(MCP).unwrap()]);
    let audience = resources
        .get(request.resource.as_ref().unwrap())
        .unwrap()
        .clone();
    assert_eq!(audience.as_str(), MCP);
    let hierarchy = ScopeHierarchy::new().with_separator(':');
    let requested_scope = request.scope.clone().unwrap();
    assert!(hierarchy.narrows(&requested_scope, client.scope().unwrap()));
    assert!(request.prompt.consent);
    let redirect = request.success_url("auth-code-1", ISSUER);
    assert_eq!(
        redirect,
        "http://localhost:53000/callback?code=auth-code-1&state=xyz\
         &iss=https%3A%2F%2Fauth.example.com%2Ftenant1"
    );

    // The token request: a public client, PKCE, the same resource again.
    let body = format!(
        "grant_type=authorization_code&code=auth-code-1&code_verifier={}&client_id={client_id}\
         &redirect_uri={}&resource={}",
        verifier.as_str(),
        encode("http://localhost:53000/callback"),
        encode("https://mcp.example.com/mcp/"),
    );
    let token_params = FormParams::parse(body.as_bytes()).unwrap();
    let credentials = ClientCredentials::from_request(None, &token_params).unwrap();
    assert_eq!(credentials.client_id(), client_id);
    assert!(client.allows_grant(GrantType::AuthorizationCode));
    assert_eq!(credentials.method(), client.token_endpoint_auth_method());
    let TokenRequest::AuthorizationCode {
        code,
        redirect_uri,
        code_verifier,
        resource,
        ..
    } = TokenRequest::parse(&token_params).unwrap()
    else {
        panic!("not a code grant");
    };
    assert_eq!(code.expose(), "auth-code-1");
    assert!(request.redirect_uri.sent_in_request());
    assert_eq!(redirect_uri.as_deref(), Some(request.redirect_uri.as_str()));
    request.code_challenge.verify(&code_verifier).unwrap();
    // "/mcp/" is a different resource from "/mcp": paths are kept exactly.
    assert_ne!(resource.as_ref(), Some(&audience));

    // The issued token's claims, checked at the resource.
    let claims = AccessTokenClaims {
        iss: ISSUER.to_owned(),
        sub: "user-42".to_owned(),
        aud: Audience::single(audience.as_str()),
        client_id: client_id.to_owned(),
        scope: Some(requested_scope.to_string()),
        iat: 1_700_000_000,
        exp: 1_700_000_900,
        jti: "jti-1".to_owned(),
        nbf: None,
        auth_time: Some(1_699_999_990),
    };
    let validation = ClaimsValidation {
        issuers: vec![ISSUER.to_owned()],
        audience: ResourceUri::parse(MCP).unwrap(),
        leeway_seconds: 30,
        now: 1_700_000_100,
    };
    validation.validate(&claims).unwrap();
    let elsewhere = ClaimsValidation {
        audience: ResourceUri::parse("https://other.example.com/mcp").unwrap(),
        ..validation.clone()
    };
    assert_eq!(
        elsewhere.validate(&claims),
        Err(ClaimsError::InvalidAudience)
    );

    // A tool needing files:write: 403 step-up listing what is missing.
    let granted = claims.scopes().unwrap();
    let required = ScopeSet::parse("files:read files:write").unwrap();
    let missing = hierarchy.missing(&granted, &required);
    assert_eq!(missing.to_string(), "files:write");
    let header =
        BearerChallenge::insufficient_scope(&missing, &resource_metadata_url).to_header_value();
    let parsed = BearerChallenge::parse(&header).unwrap();
    assert_eq!(parsed.error_code(), Some(ErrorCode::InsufficientScope));
    assert_eq!(parsed.scope.as_deref(), Some("files:write"));
    assert_eq!(
        parsed.resource_metadata.as_deref(),
        Some(resource_metadata_url.as_str())
    );
}
