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
//!
//! Browser pages get an [`ErrorPage`] instead of JSON: a title, what
//! happened, what to do next, and the OAuth error as a technical detail,
//! with 400 for a bad or expired request, 403 for a refused form post, 503
//! or 500 as above. Errors before the redirect URI is trusted are always
//! pages, never redirects (RFC 6749 §4.1.2.1).

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::{ErrorCode, OAuthError};
use latchkey_service::FlowError;
use latchkey_service::authorize::PageReason;

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

/// What an HTML error page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    /// The response status.
    pub status: StatusCode,
    /// The heading.
    pub title: &'static str,
    /// What happened, for a person.
    pub message: &'static str,
    /// What to do next.
    pub next_steps: Vec<&'static str>,
    /// The OAuth error, for whoever debugs it.
    pub details: Option<String>,
}

/// The step every dead end of the authorization flow suggests.
const TRY_AGAIN: &str = "Return to the application and try connecting again.";

impl ErrorPage {
    /// The page for an authorization request that cannot be redirected.
    pub fn for_reason(reason: &PageReason) -> ErrorPage {
        let details = Some(reason.error().to_string());
        match reason {
            PageReason::UnknownClient => ErrorPage {
                status: StatusCode::BAD_REQUEST,
                title: "This app is not registered here",
                message: "The app that sent you here is not known to this sign-in service, so                           you were not sent back to it.",
                next_steps: vec![
                    TRY_AGAIN,
                    "If this keeps happening, ask the app's developer to register the app                      with this server again.",
                ],
                details,
            },
            PageReason::ClientMetadataDocument(_) => ErrorPage {
                status: StatusCode::BAD_REQUEST,
                title: "This app's registration could not be checked",
                message: "The app identifies itself with a web address, but the registration \
                          published there could not be fetched or is not valid, so you were not \
                          sent back to it.",
                next_steps: vec![
                    TRY_AGAIN,
                    "If this keeps happening, tell the app's developer: the technical details \
                     below say what is wrong with its client metadata document.",
                ],
                details,
            },
            PageReason::InvalidRedirectUri(_) => ErrorPage {
                status: StatusCode::BAD_REQUEST,
                title: "The app's return address is not registered",
                message: "The app asked to send you back to an address it has not registered.                           To protect your account, you were not sent there.",
                next_steps: vec![
                    "Ask the app's developer to check its redirect URI.",
                    TRY_AGAIN,
                ],
                details,
            },
            PageReason::InvalidRequest(_) => ErrorPage {
                status: StatusCode::BAD_REQUEST,
                title: "This sign-in link is not valid",
                message: "The link that brought you here is incomplete or malformed, so it                           cannot be used to connect an app.",
                next_steps: vec![
                    TRY_AGAIN,
                    "If this keeps happening, tell the app's developer.",
                ],
                details,
            },
            PageReason::Expired => ErrorPage {
                status: StatusCode::BAD_REQUEST,
                title: "This request has expired",
                message: "The request to connect the app expired or was already completed.                           Nothing was shared.",
                next_steps: vec![TRY_AGAIN],
                details,
            },
        }
    }

    /// The page for a form post refused by the CSRF or `Origin` check.
    pub fn forbidden_form() -> ErrorPage {
        ErrorPage {
            status: StatusCode::FORBIDDEN,
            title: "This form could not be accepted",
            message: "The form was sent from another site, or the page was open for too long.                       Nothing was changed.",
            next_steps: vec!["Go back, reload the page and try again."],
            details: None,
        }
    }

    /// The page for a form that is malformed.
    pub fn bad_form(error: &OAuthError) -> ErrorPage {
        ErrorPage {
            status: StatusCode::BAD_REQUEST,
            title: "This form could not be read",
            message: "The form arrived incomplete or malformed. Nothing was changed.",
            next_steps: vec!["Go back, reload the page and try again."],
            details: Some(error.to_string()),
        }
    }

    /// The page for a flow error; internal causes are logged here, once,
    /// and never shown.
    pub fn for_flow(error: &FlowError) -> ErrorPage {
        match error {
            FlowError::Unavailable(cause) => {
                tracing::warn!(%cause, "storage unavailable");
                ErrorPage {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    title: "Temporarily unavailable",
                    message: "The sign-in service cannot reach its storage right now.",
                    next_steps: vec!["Wait a moment, then reload this page."],
                    details: None,
                }
            }
            FlowError::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                ErrorPage {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    title: "Something went wrong",
                    message: "The sign-in service failed to handle this request.",
                    next_steps: vec![TRY_AGAIN],
                    details: None,
                }
            }
            FlowError::OAuth(error)
            | FlowError::Forbidden(error)
            | FlowError::RateLimited { error, .. } => ErrorPage {
                status: StatusCode::BAD_REQUEST,
                title: "This request cannot be completed",
                message: "The sign-in service refused this request.",
                next_steps: vec![TRY_AGAIN],
                details: Some(error.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_pages_say_what_to_do_next_and_hide_internal_causes() {
        for reason in [
            PageReason::UnknownClient,
            PageReason::ClientMetadataDocument(
                latchkey_service::metadata_documents::MetadataDocumentError::Timeout,
            ),
            PageReason::InvalidRedirectUri(OAuthError::invalid_request("x")),
            PageReason::InvalidRequest(OAuthError::invalid_request("x")),
            PageReason::Expired,
        ] {
            let page = ErrorPage::for_reason(&reason);
            assert_eq!(page.status, StatusCode::BAD_REQUEST);
            assert!(!page.next_steps.is_empty(), "{reason:?}");
            assert!(page.details.is_some());
        }
        let internal = ErrorPage::for_flow(&FlowError::Internal("secret cause".into()));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(internal.details, None);
        assert_eq!(
            ErrorPage::for_flow(&FlowError::Unavailable("db".into())).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(ErrorPage::forbidden_form().status, StatusCode::FORBIDDEN);
    }

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
