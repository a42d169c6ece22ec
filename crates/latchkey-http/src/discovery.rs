//! Discovery and operations: the RFC 8414 metadata document, the JWK Set,
//! dynamic registration, health checks, and the 404 for everything else.
//!
//! Unknown paths, including well-known documents this server does not
//! serve (`openid-configuration`), answer 404 with a small JSON body and
//! never 5xx: MCP clients walk a list of discovery URLs, moving on after a
//! 4xx and giving up after a 5xx.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, UNAVAILABLE_RETRY_AFTER, no_store};
use crate::extract::{ClientAddress, JsonBody};

/// `GET /.well-known/oauth-authorization-server[/{issuer path}]`.
pub(crate) async fn metadata(State(state): State<AppState>) -> Response {
    Json(state.service.metadata()).into_response()
}

/// `GET {issuer path}/jwks.json`.
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
    Json(state.service.jwks()).into_response()
}

/// `POST {issuer path}/register` (RFC 7591): 201 with the registered
/// metadata.
pub(crate) async fn register(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let registered = state
        .service
        .register(&body.body, body.authorization.as_deref(), address)
        .await?;
    let mut response = (StatusCode::CREATED, Json(registered.to_json())).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: the store answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.service.ready().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable" })),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&UNAVAILABLE_RETRY_AFTER.as_secs().to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    }
}

/// Every path no route serves.
pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "not_found" })),
    )
        .into_response()
}
