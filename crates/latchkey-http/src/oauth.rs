//! The token (RFC 6749 §3.2), revocation (RFC 7009) and introspection
//! (RFC 7662) endpoints: parse with `latchkey-protocol`, hand the typed
//! request to the service, shape the answer.
//!
//! Order at each endpoint: the extractor checks the content type, the
//! `Authorization` header and the body; then the client credentials are
//! read (several methods at once → `invalid_request`; malformed Basic →
//! `invalid_client`); then the request itself (missing parameters →
//! `invalid_request`, unknown grant → `unsupported_grant_type`); then the
//! service authenticates the client and runs the flow.
//!
//! Token and introspection responses carry `Cache-Control: no-store` and
//! `Pragma: no-cache` (RFC 6749 §5.1). Revocation answers 200 with an empty
//! body, never 204 (RFC 7009 §2.2; some clients insist on 200).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_protocol::OAuthError;
use latchkey_protocol::client_auth::ClientCredentials;
use latchkey_protocol::params::{IntrospectionRequest, RevocationRequest, TokenRequest};
use latchkey_protocol::secret::SecretString;
use latchkey_service::introspection::IntrospectionCaller;

use crate::AppState;
use crate::error::{ApiError, no_store};
use crate::extract::OAuthForm;

/// The client credentials of a form request.
fn credentials(form: &OAuthForm) -> Result<ClientCredentials, ApiError> {
    ClientCredentials::from_request(form.authorization.as_deref(), &form.params)
        .map_err(|error| ApiError::oauth(OAuthError::from(error)))
}

/// A JSON body that must not be cached.
fn uncached_json(body: impl serde::Serialize) -> Response {
    let mut response = Json(body).into_response();
    no_store(response.headers_mut());
    response
}

/// `POST /token`.
pub(crate) async fn token(
    State(state): State<AppState>,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    let credentials = credentials(&form)?;
    let request =
        TokenRequest::parse(&form.params).map_err(|error| ApiError::oauth(error.into()))?;
    let response = state.service.token(&credentials, request).await?;
    Ok(uncached_json(response))
}

/// `POST /revoke`.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    let credentials = credentials(&form)?;
    let request =
        RevocationRequest::parse(&form.params).map_err(|error| ApiError::oauth(error.into()))?;
    state.service.revoke(&credentials, &request).await?;
    let mut response = StatusCode::OK.into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// The bearer secret of an `Authorization: Bearer …` header.
fn bearer_secret(authorization: &str) -> Option<SecretString> {
    let (scheme, value) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretString::new(value.trim()))
}

/// `POST /introspect`.
pub(crate) async fn introspect(
    State(state): State<AppState>,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    let caller = match form.authorization.as_deref().and_then(bearer_secret) {
        Some(secret) => {
            if form.params.contains("client_secret") {
                return Err(ApiError::oauth(OAuthError::invalid_request(
                    "the request uses more than one client authentication method",
                )));
            }
            IntrospectionCaller::Secret(secret)
        }
        None => IntrospectionCaller::Client(credentials(&form)?),
    };
    let request =
        IntrospectionRequest::parse(&form.params).map_err(|error| ApiError::oauth(error.into()))?;
    let response = state.service.introspect(&caller, &request).await?;
    Ok(uncached_json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_secrets_are_read_case_insensitively() {
        assert_eq!(
            bearer_secret("Bearer abc").map(|secret| secret.expose().to_owned()),
            Some("abc".to_owned())
        );
        assert!(bearer_secret("bearer abc").is_some());
        assert!(bearer_secret("Basic abc").is_none());
        assert!(bearer_secret("Bearer").is_none());
    }
}
