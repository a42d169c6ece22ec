//! The tower layer used directly, without the proxy: in an axum MCP server
//! served over loopback, and around a plain `tower::service_fn` with a
//! non-axum body type.

use std::convert::Infallible;

use axum::routing::post;
use axum::{Extension, Json, Router};
use http_body_util::{BodyExt as _, Full};
use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::scope::{ScopeHierarchy, ScopeSet};
use latchkey_resource::{GuardConfig, GuardLayer, Identity, ScopePolicy};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower::{Layer as _, ServiceExt as _};

use crate::support::{Task, TestIssuer, client, listener, validator_for};

async fn whoami(
    Extension(identity): Extension<Identity>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Json<Value> {
    Json(json!({
        "subject": identity.subject,
        "client_id": identity.client_id,
        "scopes": identity.scopes.to_string(),
        "authorization_seen": headers.contains_key("authorization"),
        "body": body,
    }))
}

#[tokio::test]
async fn an_axum_mcp_server_uses_the_layer_and_reads_the_identity() {
    let issuer = TestIssuer::latchkey().await;
    let (listener, address) = listener().await;
    let resource = format!("http://{address}/mcp");
    let validator = validator_for(&resource, &issuer)
        .scope_hierarchy(ScopeHierarchy::new().with_separator(':'))
        .build()
        .unwrap();
    let guard = GuardLayer::new(
        GuardConfig::new(validator).scope_policy(
            ScopePolicy::new(ScopeSet::parse("mcp").unwrap())
                .mcp_method("tools/call", ScopeSet::parse("mcp:tools:call").unwrap()),
        ),
    )
    .unwrap();
    let app = Router::new()
        .route("/mcp", post(whoami))
        .layer(guard.clone())
        .merge(guard.metadata_router());
    let _server = Task::spawn_router(listener, app);

    // A hierarchical scope ("mcp" covers "mcp:tools:call") satisfies the
    // method rule.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let response = client()
        .post(&resource)
        .bearer_auth(issuer.token(&resource, "mcp"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen: Value = response.json().await.unwrap();
    assert_eq!(
        seen,
        json!({
            "subject": "user-1", "client_id": "client-1", "scopes": "mcp",
            "authorization_seen": false, "body": body
        })
    );

    let response = client().post(&resource).body(body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge =
        BearerChallenge::parse(response.headers()["www-authenticate"].to_str().unwrap()).unwrap();
    assert_eq!(
        challenge.resource_metadata.as_deref(),
        Some(guard.metadata_url())
    );

    // The merged metadata router is outside the guard.
    let response = client().get(guard.metadata_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["resource"], resource);
}

#[tokio::test]
async fn the_layer_wraps_any_tower_service_with_any_body() {
    let issuer = TestIssuer::latchkey().await;
    let resource = "https://mcp.example.com/mcp";
    let guard = GuardLayer::new(
        GuardConfig::new(validator_for(resource, &issuer).build().unwrap())
            .scope_policy(ScopePolicy::new(ScopeSet::parse("mcp").unwrap()))
            .retain_authorization(true),
    )
    .unwrap();
    let service = guard.layer(tower::service_fn(
        |request: http::Request<axum::body::Body>| async move {
            let identity = request.extensions().get::<Identity>().cloned().unwrap();
            let kept = request.headers().contains_key("authorization");
            Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from(format!(
                "{} {kept}",
                identity.subject
            )))))
        },
    ));

    let request = http::Request::post("/mcp")
        .header(
            "authorization",
            format!("Bearer {}", issuer.token(resource, "mcp")),
        )
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"user-1 true");

    let request = http::Request::post("/mcp")
        .header(
            "authorization",
            format!("Bearer {}", issuer.token(resource, "other")),
        )
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge =
        BearerChallenge::parse(response.headers()["www-authenticate"].to_str().unwrap()).unwrap();
    assert_eq!(challenge.scope.as_deref(), Some("mcp other"));
}
