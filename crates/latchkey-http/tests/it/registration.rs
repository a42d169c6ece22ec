//! Dynamic client registration: successes (echoed metadata) and every
//! rejection, the three policies, and the per-address rate limit.

use std::time::Duration;

use latchkey_protocol::secret::SecretString;
use latchkey_service::config::{RateLimitSettings, RegistrationPolicy};
use serde_json::json;

use crate::backend_tests;
use crate::support::{Backend, REDIRECT_URI, TestApp, assert_oauth_error, header, json};

async fn a_public_client_registers_and_gets_its_metadata_back(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = app
        .register(json!({
            "redirect_uris": [REDIRECT_URI],
            "client_name": "MCP Inspector",
            "application_type": "native",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "read",
            "resource": "https://mcp.example.com/mcp",
            "client_name#fr": "Inspecteur"
        }))
        .await;
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    let (status, body) = json(response).await;
    assert_eq!(status, 201, "{body}");
    let client_id = body["client_id"].as_str().unwrap();
    assert_eq!(client_id.len(), 22);
    assert_eq!(body["redirect_uris"], json!([REDIRECT_URI]));
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["application_type"], "native");
    assert_eq!(body["client_name"], "MCP Inspector");
    assert_eq!(body["scope"], "read");
    assert!(body["client_id_issued_at"].as_i64().unwrap() > 1_700_000_000);
    assert!(body.get("client_secret").is_none());
    assert!(body.get("client_secret_expires_at").is_none());
    assert!(body.get("resource").is_none());
}

async fn a_confidential_client_gets_a_secret_once(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, body) = json(
        app.register(json!({
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "client_name": "bench"
        }))
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["client_secret"].as_str().unwrap().starts_with("lks_"));
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["response_types"], json!([]));
    // The default registration (no fields) is a code-flow client without
    // redirect URIs, which is refused.
    let refused = app.register(json!({})).await;
    assert_oauth_error(refused, 400, "invalid_redirect_uri").await;
}

async fn invalid_metadata_is_refused_precisely(backend: Backend) {
    let app = TestApp::start(backend).await;
    let cases = [
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["authorization_code"], "response_types": []}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "magic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "not a list"}),
            "invalid_client_metadata",
        ),
        (json!(["an", "array"]), "invalid_client_metadata"),
    ];
    for (metadata, error) in cases {
        let body = assert_oauth_error(app.register(metadata.clone()).await, 400, error).await;
        assert!(body["error_description"].is_string(), "{metadata}: {body}");
    }
    let bad_json = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body("{\"redirect_uris\": [")
        .send()
        .await
        .unwrap();
    assert_oauth_error(bad_json, 400, "invalid_client_metadata").await;
    let form = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("redirect_uris=https%3A%2F%2Fa.example%2Fcb")
        .send()
        .await
        .unwrap();
    assert_oauth_error(form, 400, "invalid_request").await;
    let missing_type = app
        .http
        .post(app.url("/register"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_oauth_error(missing_type, 400, "invalid_request").await;
    let huge = app
        .http
        .post(app.url("/register"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"client_name\": \"{}\"}}",
            "x".repeat(100 * 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_oauth_error(huge, 413, "invalid_request").await;
    // Nothing was stored.
    assert!(app.store().list_clients().await.unwrap().is_empty());
}

async fn closed_registration_is_forbidden_and_not_advertised(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|config| config.registration = RegistrationPolicy::Closed)
        .start()
        .await;
    let refused = app.register(json!({"redirect_uris": [REDIRECT_URI]})).await;
    assert_oauth_error(refused, 403, "access_denied").await;
    let (_, metadata) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "{metadata}"
    );
}

async fn token_registration_needs_the_initial_access_token(backend: Backend) {
    const TOKEN: &str = "initial-access-token-for-tests-0123";
    let app = TestApp::builder(backend)
        .configure(|config| {
            config.registration = RegistrationPolicy::Token(SecretString::new(TOKEN));
        })
        .start()
        .await;
    let metadata = json!({"redirect_uris": [REDIRECT_URI]});
    let anonymous = app.register(metadata.clone()).await;
    let challenge = header(&anonymous, "www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert_oauth_error(anonymous, 401, "invalid_token").await;
    let wrong = app
        .http
        .post(app.url("/register"))
        .bearer_auth("not-the-initial-access-token")
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_oauth_error(wrong, 401, "invalid_token").await;
    let right = app
        .http
        .post(app.url("/register"))
        .bearer_auth(TOKEN)
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 201);
}

async fn registrations_are_rate_limited_per_address(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|config| {
            config.registration_rate_limit = Some(RateLimitSettings {
                max: 3,
                window: Duration::from_secs(3600),
            });
        })
        .start()
        .await;
    let metadata = json!({"redirect_uris": [REDIRECT_URI]});
    for _ in 0..3 {
        assert_eq!(app.register(metadata.clone()).await.status(), 201);
    }
    let limited = app.register(metadata.clone()).await;
    let retry_after: u64 = header(&limited, "retry-after").unwrap().parse().unwrap();
    assert!((1..=7200).contains(&retry_after), "{retry_after}");
    assert_oauth_error(limited, 429, "temporarily_unavailable").await;
    // X-Forwarded-For is ignored unless trusted.
    let spoofed = app
        .http
        .post(app.url("/register"))
        .header("x-forwarded-for", "203.0.113.50")
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 429);
    // The window slides: after it, the address may register again.
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(app.register(metadata).await.status(), 201);
}

async fn behind_a_trusted_proxy_the_forwarded_address_counts(backend: Backend) {
    let app = TestApp::builder(backend)
        .configure(|config| {
            config.registration_rate_limit = Some(RateLimitSettings {
                max: 1,
                window: Duration::from_secs(3600),
            });
        })
        .http(|http| http.trust_forwarded_for = true)
        .start()
        .await;
    let metadata = json!({"redirect_uris": [REDIRECT_URI]});
    let from = |address: &'static str| {
        app.http
            .post(app.url("/register"))
            .header("x-forwarded-for", format!("198.51.100.1, {address}"))
            .json(&metadata)
            .send()
    };
    assert_eq!(from("192.0.2.1").await.unwrap().status(), 201);
    assert_eq!(from("192.0.2.2").await.unwrap().status(), 201);
    assert_eq!(from("192.0.2.1").await.unwrap().status(), 429);
}

backend_tests!(
    a_public_client_registers_and_gets_its_metadata_back,
    a_confidential_client_gets_a_secret_once,
    invalid_metadata_is_refused_precisely,
    closed_registration_is_forbidden_and_not_advertised,
    token_registration_needs_the_initial_access_token,
    registrations_are_rate_limited_per_address,
    behind_a_trusted_proxy_the_forwarded_address_counts,
);
