//! The one mapping from errors to HTTP responses.
//!
//! Every error leaves as the JSON object of RFC 6749 §5.2
//! (`{"error": …, "error_description": …}`) with `Cache-Control: no-store`
//! and `Pragma: no-cache`, and with:
//! - the status the OAuth code calls for (`OAuthError::status`: 400, or 401
//!   for `invalid_client` and `invalid_token`);
//! - `invalid_client`: 401 always, with `WWW-Authenticate: Basic
//!   realm="latchkey"`. RFC 6749 §5.2 requires exactly that when the client
//!   tried HTTP Basic, and allows it otherwise; sending it every time keeps
//!   the 401 valid under RFC 9110 §11.6.1 (a 401 must carry a challenge)
//!   and clients act on the `error` code, not the status;
//! - `invalid_token` (a missing or wrong initial access token at the
//!   registration endpoint): `WWW-Authenticate: Bearer error="invalid_token"`
//!   (RFC 6750 §3);
//! - a policy refusal ([`FlowError::Forbidden`]): 403;
//! - a rate limit: 429 with `Retry-After` in seconds;
//! - an oversized body: 413;
//! - storage unavailable: 503 with `Retry-After`, `temporarily_unavailable`,
//!   the cause logged at warn;
//! - anything internal: 500 `server_error` with a generic description, the
//!   cause logged once at error. Internal causes are never sent.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::{ErrorCode, OAuthError};
use latchkey_service::FlowError;

/// How long clients are asked to wait when storage is unavailable.
pub const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The realm of the Basic challenge on `invalid_client`.
pub const BASIC_REALM: &str = "latchkey";

/// An error on its way to becoming a response.
#[derive(Debug)]
pub enum ApiError {
    /// A flow error from the service.
    Flow(FlowError),
    /// The request body is larger than the limit.
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl ApiError {
    /// An OAuth error about the request itself.
    pub fn oauth(error: OAuthError) -> ApiError {
        ApiError::Flow(FlowError::OAuth(error))
    }
}

impl From<FlowError> for ApiError {
    fn from(error: FlowError) -> ApiError {
        ApiError::Flow(error)
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> ApiError {
        ApiError::oauth(error)
    }
}

/// The headers every error response and every token response carries:
/// nothing in them may be cached (RFC 6749 §5.1).
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// A JSON OAuth error response with `status`.
fn json_error(status: StatusCode, error: &OAuthError) -> Response {
    let mut response = (status, Json(error.to_json())).into_response();
    no_store(response.headers_mut());
    response
}

fn retry_after(response: &mut Response, after: Duration) {
    let seconds = after.as_secs().max(1);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// The response for an OAuth error: its status, plus the challenge a 401
/// must carry.
pub fn oauth_response(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_error(status, error);
    let challenge = match error.code() {
        ErrorCode::InvalidClient => Some(format!("Basic realm=\"{BASIC_REALM}\"")),
        ErrorCode::InvalidToken => Some(
            BearerChallenge::default()
                .with_error(ErrorCode::InvalidToken)
                .with_error_description(error.description().unwrap_or_default())
                .to_header_value(),
        ),
        _ => None,
    };
    if let Some(value) = challenge.and_then(|value| HeaderValue::from_str(&value).ok()) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Flow(FlowError::OAuth(error)) => oauth_response(&error),
            ApiError::Flow(FlowError::Forbidden(error)) => {
                json_error(StatusCode::FORBIDDEN, &error)
            }
            ApiError::Flow(FlowError::RateLimited {
                error,
                retry_after: after,
            }) => {
                let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, &error);
                retry_after(&mut response, after);
                response
            }
            ApiError::Flow(FlowError::Unavailable(cause)) => {
                tracing::warn!(%cause, "storage unavailable");
                let mut response = json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &OAuthError::temporarily_unavailable(
                        "the service is temporarily unavailable; retry shortly",
                    ),
                );
                retry_after(&mut response, UNAVAILABLE_RETRY_AFTER);
                response
            }
            ApiError::Flow(FlowError::Internal(cause)) => {
                tracing::error!(%cause, "internal error");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &OAuthError::server_error("an internal error occurred"),
                )
            }
            ApiError::PayloadTooLarge { limit } => json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &OAuthError::invalid_request(format!(
                    "the request body is larger than {limit} bytes"
                )),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(response: &Response, name: header::HeaderName) -> Option<&str> {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    }

    #[test]
    fn invalid_client_is_401_with_a_basic_challenge() {
        let response = ApiError::oauth(OAuthError::invalid_client("x")).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&response, header::WWW_AUTHENTICATE),
            Some("Basic realm=\"latchkey\"")
        );
        assert_eq!(header(&response, header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(header(&response, header::PRAGMA), Some("no-cache"));
    }

    #[test]
    fn statuses_follow_the_error_kind() {
        let cases = [
            (
                ApiError::oauth(OAuthError::invalid_grant("x")),
                StatusCode::BAD_REQUEST,
            ),
            (
                ApiError::oauth(OAuthError::invalid_token("x")),
                StatusCode::UNAUTHORIZED,
            ),
            (
                ApiError::Flow(FlowError::Forbidden(OAuthError::access_denied("x"))),
                StatusCode::FORBIDDEN,
            ),
            (
                ApiError::Flow(FlowError::RateLimited {
                    error: OAuthError::temporarily_unavailable("x"),
                    retry_after: Duration::from_secs(42),
                }),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            (
                ApiError::Flow(FlowError::Unavailable("db".into())),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                ApiError::Flow(FlowError::Internal("secret cause".into())),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                ApiError::PayloadTooLarge { limit: 10 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
        ];
        for (error, status) in cases {
            let response = error.into_response();
            assert_eq!(response.status(), status);
            assert_eq!(header(&response, header::CACHE_CONTROL), Some("no-store"));
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(header(&response, header::RETRY_AFTER), Some("42"));
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(header(&response, header::RETRY_AFTER), Some("5"));
            }
        }
    }

    #[test]
    fn invalid_token_carries_a_bearer_challenge() {
        let response = ApiError::oauth(OAuthError::invalid_token("initial access token required"))
            .into_response();
        assert_eq!(
            header(&response, header::WWW_AUTHENTICATE),
            Some(
                "Bearer error=\"invalid_token\", error_description=\"initial access token required\""
            )
        );
    }
}
