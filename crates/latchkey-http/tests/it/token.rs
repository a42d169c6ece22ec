//! The three grants end to end over HTTP: client credentials, the code
//! exchange (codes from the service until `/authorize` exists), refresh
//! with rotation and reuse detection, replayed codes, narrowing, removed
//! resources and audience binding.

use latchkey_service::config::{ConfiguredResource, ResourceRegistry};
use reqwest::header::AUTHORIZATION;
use serde_json::Value;

use crate::backend_tests;
use crate::support::{
    Backend, FILES, MCP, REDIRECT_URI, TestApp, assert_oauth_error, basic, form, header, json,
};

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {body}"))
}

async fn client_credentials_tokens_verify_and_bind_the_audience(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.confidential_client().await;
    let response = app.client_credentials(&client, &[("scope", "read")]).await;
    assert_eq!(
        header(&response, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(header(&response, "pragma").as_deref(), Some("no-cache"));
    let (status, body) = json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());

    let (header, claims) = app.verify_with_jwks(text(&body, "access_token")).await;
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], client.client_id.as_str());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["scope"], "read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 16);

    // A resource in another spelling is the same audience.
    let (status, body) = json(
        app.post_form(
            "/token",
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", "HTTPS://FILES.example.com:443/"),
                ("client_id", &client.client_id),
                ("client_secret", client.client_secret.as_deref().unwrap()),
            ]),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = app.verify_with_jwks(text(&body, "access_token")).await;
    assert_eq!(claims["aud"], FILES);
    assert_eq!(claims["scope"], "files");
}

async fn unknown_or_missing_resources_are_invalid_target(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.confidential_client().await;
    let secret = client.client_secret.as_deref().unwrap();
    for pairs in [
        vec![("grant_type", "client_credentials")],
        vec![
            ("grant_type", "client_credentials"),
            ("resource", "https://evil.example/mcp"),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("resource", MCP),
            ("resource", FILES),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("resource", "not a uri"),
        ],
    ] {
        let response = app
            .post_form("/token", form(&pairs))
            .header(AUTHORIZATION, basic(&client.client_id, secret))
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, 400, "invalid_target").await;
    }
    let response = app
        .client_credentials(&client, &[("scope", "read files")])
        .await;
    assert_oauth_error(response, 400, "invalid_scope").await;
}

async fn the_code_grant_issues_bound_tokens_and_a_refresh_token(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let body = app.code_grant(&client, "read offline_access").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "read offline_access");
    assert!(text(&body, "refresh_token").starts_with("lkr_"));
    let (_, claims) = app.verify_with_jwks(text(&body, "access_token")).await;
    assert_eq!(claims["aud"], MCP);
    assert!(text(&claims, "sub").starts_with("user-"));
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert!(claims["auth_time"].is_i64());

    // A confidential client exchanges with Basic, and PKCE still applies.
    let confidential = app.confidential_client().await;
    let (code, _verifier) = app.code(&confidential, "read").await;
    let wrong = app
        .token(
            &confidential,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &"a".repeat(43)),
                ("redirect_uri", REDIRECT_URI),
            ],
        )
        .await;
    assert_oauth_error(wrong, 400, "invalid_grant").await;
}

async fn a_replayed_code_is_refused_and_revokes_the_first_tokens(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let (code, verifier) = app.code(&client, "read").await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", REDIRECT_URI),
        ("resource", MCP),
    ];
    let (status, first) = json(app.token(&client, &exchange).await).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        app.introspect(text(&first, "access_token")).await["active"],
        true
    );

    assert_oauth_error(app.token(&client, &exchange).await, 400, "invalid_grant").await;
    assert_eq!(
        app.introspect(text(&first, "access_token")).await,
        serde_json::json!({"active": false})
    );
    let refresh = app
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&first, "refresh_token")),
            ],
        )
        .await;
    assert_oauth_error(refresh, 400, "invalid_grant").await;
}

async fn code_exchange_checks_redirect_uri_and_resource(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let (code, verifier) = app.code(&client, "read").await;
    let base = |redirect: Option<&'static str>, resource: Option<&'static str>| {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        if let Some(redirect) = redirect {
            pairs.push(("redirect_uri", redirect));
        }
        if let Some(resource) = resource {
            pairs.push(("resource", resource));
        }
        pairs
    };
    let missing_redirect = app.token(&client, &base(None, None)).await;
    assert_oauth_error(missing_redirect, 400, "invalid_request").await;
    let other_redirect = app
        .token(&client, &base(Some("http://127.0.0.1:1/callback"), None))
        .await;
    assert_oauth_error(other_redirect, 400, "invalid_grant").await;
    let other_resource = app
        .token(&client, &base(Some(REDIRECT_URI), Some(FILES)))
        .await;
    assert_oauth_error(other_resource, 400, "invalid_target").await;
    // None of those used the code up.
    let (status, body) = json(app.token(&client, &base(Some(REDIRECT_URI), None)).await).await;
    assert_eq!(status, 200, "{body}");
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let first = app.code_grant(&client, "read").await;
    let old = text(&first, "refresh_token").to_owned();
    let refresh = |token: String| {
        let app = &app;
        let client = &client;
        async move {
            app.token(
                client,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("resource", MCP),
                ],
            )
            .await
        }
    };
    let (status, second) = json(refresh(old.clone()).await).await;
    assert_eq!(status, 200, "{second}");
    let new = text(&second, "refresh_token").to_owned();
    assert_ne!(new, old);
    let (_, claims) = app.verify_with_jwks(text(&second, "access_token")).await;
    assert_eq!(claims["aud"], MCP);

    // Presenting the rotated token again revokes everything.
    assert_oauth_error(refresh(old).await, 400, "invalid_grant").await;
    assert_oauth_error(refresh(new).await, 400, "invalid_grant").await;
    for body in [&first, &second] {
        assert_eq!(
            app.introspect(text(body, "access_token")).await["active"],
            false
        );
    }
}

async fn concurrent_refreshes_leave_one_winner_and_a_revoked_family(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let tokens = app.code_grant(&client, "read").await;
    let token = text(&tokens, "refresh_token").to_owned();
    // Six refreshes of one token race over six connections.
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let request = app.post_form(
                "/token",
                form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &token),
                    ("client_id", &client.client_id),
                ]),
            );
            tokio::spawn(request.send())
        })
        .collect();
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap().unwrap());
    }
    let mut winners = Vec::new();
    for response in responses {
        let (status, body) = json(response).await;
        match status {
            200 => winners.push(body),
            400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh may win");
    let after = app
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&winners[0], "refresh_token")),
            ],
        )
        .await;
    assert_oauth_error(after, 400, "invalid_grant").await;
}

async fn refresh_may_narrow_but_not_widen(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let tokens = app.code_grant(&client, "read write").await;
    let (status, narrowed) = json(
        app.token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&tokens, "refresh_token")),
                ("scope", "read"),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "read");
    let (_, claims) = app.verify_with_jwks(text(&narrowed, "access_token")).await;
    assert_eq!(claims["scope"], "read");
    let widened = app
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&narrowed, "refresh_token")),
                ("scope", "read write files"),
            ],
        )
        .await;
    assert_oauth_error(widened, 400, "invalid_scope").await;
}

async fn a_removed_resource_makes_refresh_invalid_grant(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let tokens = app.code_grant(&client, "read").await;
    let restarted = app
        .sibling()
        .configure(|config| {
            config.resources =
                ResourceRegistry::new([ConfiguredResource::parse_spec(FILES).unwrap()]).unwrap();
        })
        .start()
        .await;
    let response = restarted
        .token(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", text(&tokens, "refresh_token")),
                ("resource", MCP),
            ],
        )
        .await;
    let body = assert_oauth_error(response, 400, "invalid_grant").await;
    assert!(
        text(&body, "error_description").contains("no longer served"),
        "{body}"
    );
}

backend_tests!(
    client_credentials_tokens_verify_and_bind_the_audience,
    unknown_or_missing_resources_are_invalid_target,
    the_code_grant_issues_bound_tokens_and_a_refresh_token,
    a_replayed_code_is_refused_and_revokes_the_first_tokens,
    code_exchange_checks_redirect_uri_and_resource,
    refresh_rotates_and_reuse_revokes_the_family,
    concurrent_refreshes_leave_one_winner_and_a_revoked_family,
    refresh_may_narrow_but_not_widen,
    a_removed_resource_makes_refresh_invalid_grant,
);
