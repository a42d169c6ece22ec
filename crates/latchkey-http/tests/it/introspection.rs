//! Revocation then introspection, and who may introspect.

use reqwest::header::AUTHORIZATION;
use serde_json::json;

use crate::backend_tests;
use crate::support::{
    Backend, INTROSPECTION_SECRET, TestApp, assert_oauth_error, basic, form, header, json,
};

async fn a_revoked_access_token_introspects_inactive(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.confidential_client().await;
    let secret = client.client_secret.clone().unwrap();
    let (_, tokens) = json(app.client_credentials(&client, &[]).await).await;
    let access_token = tokens["access_token"].as_str().unwrap();

    // The client introspects its own token with its own credentials.
    let own = app
        .post_form("/introspect", form(&[("token", access_token)]))
        .header(AUTHORIZATION, basic(&client.client_id, &secret))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&own, "cache-control").as_deref(), Some("no-store"));
    let (status, answer) = json(own).await;
    assert_eq!(status, 200);
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], client.client_id.as_str());
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["aud"], crate::support::MCP);
    assert_eq!(answer["iss"], app.issuer.as_str());

    let revoked = app
        .post_form(
            "/revoke",
            form(&[("token", access_token), ("token_type_hint", "access_token")]),
        )
        .header(AUTHORIZATION, basic(&client.client_id, &secret))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert!(revoked.bytes().await.unwrap().is_empty());
    assert_eq!(app.introspect(access_token).await, json!({"active": false}));
}

async fn a_revoked_refresh_token_takes_its_family_with_it(backend: Backend) {
    let app = TestApp::start(backend).await;
    let client = app.public_client().await;
    let tokens = app.code_grant(&client, "read").await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let answer = app.introspect(refresh).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "refresh_token");
    // A public client revokes with its client_id alone.
    let revoked = app
        .post_form(
            "/revoke",
            form(&[("token", refresh), ("client_id", &client.client_id)]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(app.introspect(refresh).await, json!({"active": false}));
    assert_eq!(
        app.introspect(tokens["access_token"].as_str().unwrap())
            .await,
        json!({"active": false})
    );
}

async fn revoking_unknown_or_foreign_tokens_is_a_quiet_200(backend: Backend) {
    let app = TestApp::start(backend).await;
    let owner = app.public_client().await;
    let other = app.public_client().await;
    let tokens = app.code_grant(&owner, "read").await;
    for token in [
        "lkr_unknown",
        "garbage",
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    ] {
        let response = app
            .post_form(
                "/revoke",
                form(&[("token", token), ("client_id", &other.client_id)]),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{token}");
    }
    assert_eq!(
        app.introspect(tokens["access_token"].as_str().unwrap())
            .await["active"],
        true
    );
    // Revocation still authenticates the client, and needs a token.
    let anonymous = app
        .post_form("/revoke", form(&[("token", "x")]))
        .send()
        .await
        .unwrap();
    assert_oauth_error(anonymous, 401, "invalid_client").await;
    let no_token = app
        .post_form("/revoke", form(&[("client_id", &other.client_id)]))
        .send()
        .await
        .unwrap();
    assert_oauth_error(no_token, 400, "invalid_request").await;
}

async fn introspection_requires_a_trusted_caller(backend: Backend) {
    let app = TestApp::start(backend).await;
    let public = app.public_client().await;
    let tokens = app.code_grant(&public, "read").await;
    let access_token = tokens["access_token"].as_str().unwrap();

    // Anonymous, public, wrong secret: 401 invalid_client, never an answer.
    let anonymous = app
        .post_form("/introspect", form(&[("token", access_token)]))
        .send()
        .await
        .unwrap();
    assert_oauth_error(anonymous, 401, "invalid_client").await;
    let as_public = app
        .post_form(
            "/introspect",
            form(&[("token", access_token), ("client_id", &public.client_id)]),
        )
        .send()
        .await
        .unwrap();
    assert_oauth_error(as_public, 401, "invalid_client").await;
    let wrong_bearer = app
        .post_form("/introspect", form(&[("token", access_token)]))
        .bearer_auth("not-the-introspection-secret")
        .send()
        .await
        .unwrap();
    assert_oauth_error(wrong_bearer, 401, "invalid_client").await;

    // A dynamically registered confidential client sees only its own tokens.
    let registered = app.confidential_client().await;
    let foreign = app
        .post_form("/introspect", form(&[("token", access_token)]))
        .header(
            AUTHORIZATION,
            basic(
                &registered.client_id,
                registered.client_secret.as_deref().unwrap(),
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(json(foreign).await, (200, json!({"active": false})));

    // An operator-made client (a resource server) and the secret see all.
    let resource_server = app.admin_client().await;
    let trusted = app
        .post_form(
            "/introspect",
            form(&[
                ("token", access_token),
                ("client_id", &resource_server.client_id),
                (
                    "client_secret",
                    resource_server.client_secret.as_deref().unwrap(),
                ),
            ]),
        )
        .send()
        .await
        .unwrap();
    let (status, answer) = json(trusted).await;
    assert_eq!((status, &answer["active"]), (200, &json!(true)));
    let with_secret = app
        .post_form("/introspect", form(&[("token", access_token)]))
        .bearer_auth(INTROSPECTION_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(json(with_secret).await.1["active"], true);
}

backend_tests!(
    a_revoked_access_token_introspects_inactive,
    a_revoked_refresh_token_takes_its_family_with_it,
    revoking_unknown_or_foreign_tokens_is_a_quiet_200,
    introspection_requires_a_trusted_caller,
);
