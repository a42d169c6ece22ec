//! Metadata (exact fields, issuer byte-for-byte, path insertion), JWKS,
//! 404s for everything not served, and the health endpoints.

use serde_json::json;

use crate::backend_tests;
use crate::support::{Backend, TestApp, header, json, verify_with};

async fn metadata_lists_exactly_what_is_implemented(backend: Backend) {
    let app = TestApp::start(backend).await;
    let response = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/json")
    );
    let (status, body) = json(response).await;
    assert_eq!(status, 200);
    let issuer = &app.issuer;
    assert_eq!(
        body,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "registration_endpoint": format!("{issuer}/register"),
            "scopes_supported": ["read", "write", "files", "offline_access"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint": format!("{issuer}/revoke"),
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint": format!("{issuer}/introspect"),
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "client_id_metadata_document_supported": true
        })
    );
}

async fn an_issuer_path_moves_every_endpoint(backend: Backend) {
    let app = TestApp::builder(backend)
        .issuer_path("/tenant1")
        .start()
        .await;
    assert!(app.issuer.ends_with("/tenant1"));
    let (status, body) = json(
        app.http
            .get(app.url("/.well-known/oauth-authorization-server/tenant1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    // Byte-for-byte: no slash added or removed.
    assert_eq!(body["issuer"], app.issuer.as_str());
    assert_eq!(body["token_endpoint"], format!("{}/token", app.issuer));
    // The plain well-known path is not this issuer's document.
    let plain = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 404);
    // The endpoints live under the path.
    let (status, registered) = json(
        app.http
            .post(app.url("/tenant1/register"))
            .json(&json!({"token_endpoint_auth_method": "client_secret_post", "grant_types": ["client_credentials"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{registered}");
    let token = app
        .http
        .post(app.url("/tenant1/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(crate::support::form(&[
            ("grant_type", "client_credentials"),
            ("resource", crate::support::MCP),
            ("client_id", registered["client_id"].as_str().unwrap()),
            (
                "client_secret",
                registered["client_secret"].as_str().unwrap(),
            ),
        ]))
        .send()
        .await
        .unwrap();
    let (status, body) = json(token).await;
    assert_eq!(status, 200, "{body}");
    let (_, jwks) = json(
        app.http
            .get(app.url("/tenant1/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (_, claims) = verify_with(&jwks, body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(
        app.http
            .get(app.url("/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

async fn unknown_paths_are_404_never_5xx(backend: Backend) {
    let app = TestApp::start(backend).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/tenant1",
        "/tenant1/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant1",
        "/.well-known/oauth-protected-resource",
        "/nothing/here",
        "/%ff%fe",
    ] {
        let (status, body) = json(app.http.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!(
            (status, &body),
            (404, &json!({"error": "not_found"})),
            "{path}"
        );
    }
    // A known path with the wrong method is 405, not 404 or 5xx.
    assert_eq!(
        app.http
            .get(app.url("/token"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        app.http
            .post(app.url("/jwks.json"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

async fn the_jwks_publishes_public_keys_that_verify_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    let (status, jwks) = json(app.http.get(app.url("/jwks.json")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(
        key["kid"].as_str().unwrap(),
        app.service.keys().active_kid()
    );
    assert!(key.get("d").is_none());

    let client = app.confidential_client().await;
    let (status, body) = json(app.client_credentials(&client, &[]).await).await;
    assert_eq!(status, 200, "{body}");
    let (header, _) = verify_with(&jwks, body["access_token"].as_str().unwrap());
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], key["kid"]);
}

async fn other_signing_algorithms_verify_too(backend: Backend) {
    for (algorithm, kty) in [
        (latchkey_service::config::SigningAlgorithm::EdDsa, "OKP"),
        (latchkey_service::config::SigningAlgorithm::Rs256, "RSA"),
    ] {
        let app = TestApp::builder(backend)
            .configure(move |config| config.signing_algorithm = algorithm)
            .start()
            .await;
        let client = app.confidential_client().await;
        let (status, body) = json(app.client_credentials(&client, &[]).await).await;
        assert_eq!(status, 200, "{body}");
        let (header, claims) = app
            .verify_with_jwks(body["access_token"].as_str().unwrap())
            .await;
        assert_eq!(header["alg"], algorithm.as_str());
        assert_eq!(claims["client_id"], client.client_id.as_str());
        let (_, jwks) = json(app.http.get(app.url("/jwks.json")).send().await.unwrap()).await;
        assert_eq!(jwks["keys"][0]["kty"], kty);
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwks["keys"][0].get(private).is_none(), "{private}");
        }
    }
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::start(backend).await;
    for path in ["/healthz", "/readyz"] {
        let (status, body) = json(app.http.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!((status, body), (200, json!({"status": "ok"})), "{path}");
    }
}

backend_tests!(
    metadata_lists_exactly_what_is_implemented,
    an_issuer_path_moves_every_endpoint,
    unknown_paths_are_404_never_5xx,
    the_jwks_publishes_public_keys_that_verify_tokens,
    other_signing_algorithms_verify_too,
    health_and_readiness,
);
