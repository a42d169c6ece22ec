//! When the database cannot serve, requests get 503 with `Retry-After`
//! (never a hang or a 500), and readiness says so; both recover.

use std::time::Duration;

use latchkey_store_diesel::PoolOptions;

use crate::backend_tests;
use crate::support::{Backend, TestApp, assert_oauth_error, header, json};

async fn an_unavailable_store_is_503_with_retry_after(backend: Backend) {
    let app = TestApp::builder(backend)
        .pool(PoolOptions {
            max_size: 1,
            min_idle: None,
            connection_timeout: Duration::from_millis(300),
        })
        .start()
        .await;
    let client = app.confidential_client().await;
    let (token_response, ready_response) = app
        .exhaust_pool(async || {
            // The client is not cached yet, so the token endpoint must read it.
            let token = app.client_credentials(&client, &[]).await;
            let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
            (token, ready)
        })
        .await;
    assert_eq!(header(&token_response, "retry-after").as_deref(), Some("5"));
    let body = assert_oauth_error(token_response, 503, "temporarily_unavailable").await;
    assert!(
        !body.to_string().contains("pool") && !body.to_string().contains("timed out"),
        "internal causes must not leak: {body}"
    );
    assert_eq!(header(&ready_response, "retry-after").as_deref(), Some("5"));
    assert_eq!(ready_response.status(), 503);
    // The health check does not touch the store.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Once the connection is back, everything works again.
    let (status, _) = json(app.http.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200);
    let (status, body) = json(app.client_credentials(&client, &[]).await).await;
    assert_eq!(status, 200, "{body}");
}

backend_tests!(an_unavailable_store_is_503_with_retry_after);
