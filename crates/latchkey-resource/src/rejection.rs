//! The responses the guard sends instead of calling the inner service.
//!
//! What clients read is the status and the `WWW-Authenticate` header, so
//! those follow RFC 6750 §3 and the MCP authorization spec exactly:
//! - no token (or another scheme): 401 `Bearer resource_metadata="…",
//!   scope="…"`, no `error` (RFC 6750 §3.1);
//! - a bad token: 401 with `error="invalid_token"`, a fixed
//!   `error_description`, `scope` and `resource_metadata`;
//! - a good token with too few scopes: 403 `error="insufficient_scope"`
//!   with every scope the request needs (the only step-up signal the MCP
//!   SDKs act on);
//! - a token that cannot be checked right now: 503 with `Retry-After`,
//!   no challenge, so the client keeps its token;
//! - a request that is malformed: 400 (two `Authorization` headers get
//!   `error="invalid_request"`, RFC 6750 §3.1), 413 for a body over the
//!   limit.
//!
//! Every rejection has a small JSON body, `Cache-Control: no-store`, and
//! CORS headers (`Access-Control-Allow-Origin: *` and
//! `Access-Control-Expose-Headers: WWW-Authenticate`) so a browser-based
//! client can read the challenge. They carry no user data, so `*` is safe.

use axum::body::Body;
use http::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, CACHE_CONTROL, CONTENT_TYPE,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Response, StatusCode};
use latchkey_protocol::ErrorCode;
use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::scope::ScopeSet;

use crate::error::ValidationError;

/// The description in a 403 challenge.
pub(crate) const INSUFFICIENT_SCOPE_DESCRIPTION: &str =
    "the access token lacks a scope this request needs";

/// Why the guard refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// No bearer token was presented.
    MissingToken { scope: ScopeSet },
    /// The token was refused, or could not be checked.
    InvalidToken {
        error: ValidationError,
        scope: ScopeSet,
    },
    /// The token is good but lacks scopes; `scope` is what to ask for.
    InsufficientScope { scope: ScopeSet },
    /// More than one `Authorization` header.
    AmbiguousAuthorization,
    /// A body rule needed the body, and it is not JSON-RPC.
    NotJsonRpc,
    /// The body exceeds the limit.
    BodyTooLarge,
    /// The body could not be read.
    BodyUnreadable,
}

impl Rejection {
    /// The response, pointing clients at `resource_metadata`.
    pub(crate) fn into_response(self, resource_metadata: &str) -> Response<Body> {
        let (status, challenge, error, description) = match self {
            Rejection::MissingToken { scope } => (
                StatusCode::UNAUTHORIZED,
                Some(BearerChallenge::unauthorized(resource_metadata).with_scope(&scope)),
                "unauthorized",
                "this resource requires an access token".to_owned(),
            ),
            Rejection::InvalidToken { error, .. } if error.is_unavailable() => (
                error.status(),
                None,
                "temporarily_unavailable",
                error.to_string(),
            ),
            Rejection::InvalidToken { error, scope } => (
                error.status(),
                Some(error.challenge(resource_metadata, &scope)),
                ErrorCode::InvalidToken.as_str(),
                error.to_string(),
            ),
            Rejection::InsufficientScope { scope } => (
                StatusCode::FORBIDDEN,
                Some(
                    BearerChallenge::insufficient_scope(&scope, resource_metadata)
                        .with_error_description(INSUFFICIENT_SCOPE_DESCRIPTION),
                ),
                ErrorCode::InsufficientScope.as_str(),
                INSUFFICIENT_SCOPE_DESCRIPTION.to_owned(),
            ),
            Rejection::AmbiguousAuthorization => (
                StatusCode::BAD_REQUEST,
                Some(
                    BearerChallenge::default()
                        .with_error(ErrorCode::InvalidRequest)
                        .with_resource_metadata(resource_metadata),
                ),
                ErrorCode::InvalidRequest.as_str(),
                "the request has more than one Authorization header".to_owned(),
            ),
            Rejection::NotJsonRpc => (
                StatusCode::BAD_REQUEST,
                None,
                ErrorCode::InvalidRequest.as_str(),
                "the request body is not a JSON-RPC message".to_owned(),
            ),
            Rejection::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                ErrorCode::InvalidRequest.as_str(),
                "the request body is too large".to_owned(),
            ),
            Rejection::BodyUnreadable => (
                StatusCode::BAD_REQUEST,
                None,
                ErrorCode::InvalidRequest.as_str(),
                "the request body could not be read".to_owned(),
            ),
        };
        let body = serde_json::json!({ "error": error, "error_description": description });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Some(challenge) = challenge {
            // The challenge writer escapes or replaces every character a
            // header cannot hold, so this conversion does not fail; if it
            // ever did, the status alone still tells the client what
            // happened.
            if let Ok(value) = HeaderValue::from_str(&challenge.to_header_value()) {
                headers.insert(WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn challenge(response: &Response<Body>) -> Option<BearerChallenge> {
        response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|value| BearerChallenge::parse(value.to_str().unwrap()).unwrap())
    }

    #[test]
    fn missing_token_has_no_error() {
        let response = Rejection::MissingToken {
            scope: ScopeSet::parse("mcp").unwrap(),
        }
        .into_response(METADATA);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = challenge(&response).unwrap();
        assert_eq!(challenge.error, None);
        assert_eq!(challenge.scope.as_deref(), Some("mcp"));
        assert_eq!(challenge.resource_metadata.as_deref(), Some(METADATA));
        assert_eq!(
            response.headers()[ACCESS_CONTROL_EXPOSE_HEADERS],
            "WWW-Authenticate"
        );
    }

    #[test]
    fn unavailable_is_503_without_a_challenge() {
        let response = Rejection::InvalidToken {
            error: ValidationError::Unavailable,
            scope: ScopeSet::new(),
        }
        .into_response(METADATA);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(challenge(&response).is_none());
        assert_eq!(response.headers()[RETRY_AFTER], "5");
    }

    #[test]
    fn insufficient_scope_and_bad_requests() {
        let response = Rejection::InsufficientScope {
            scope: ScopeSet::parse("mcp tools:call").unwrap(),
        }
        .into_response(METADATA);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let parsed = challenge(&response).unwrap();
        assert_eq!(parsed.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(parsed.scope.as_deref(), Some("mcp tools:call"));

        let response = Rejection::AmbiguousAuthorization.into_response(METADATA);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            challenge(&response).unwrap().error.as_deref(),
            Some("invalid_request")
        );
        assert_eq!(
            Rejection::BodyTooLarge.into_response(METADATA).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            Rejection::NotJsonRpc.into_response(METADATA).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Rejection::BodyUnreadable.into_response(METADATA).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
