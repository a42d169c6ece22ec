//! The pages of an upstream OpenID Connect sign-in
//! (`latchkey_service::upstream`).
//!
//! | Method | Path | What |
//! |---|---|---|
//! | POST | `{base}/login/upstream/{id}` | "Continue with …": starts the sign-in |
//! | GET | `{base}/login/upstream/{id}/callback` | where the provider sends the browser back |
//!
//! The start is a form post from the sign-in page (or from a "Try again"
//! button), protected like the password form: the `Origin` policy and the
//! login CSRF token bound to the browser's `latchkey-csrf` cookie and the
//! pending MCP request. It answers 303 to the provider.
//!
//! The callback is a top-level GET from the provider's site; the
//! `latchkey-csrf` cookie (`SameSite=Lax`) comes with it and must be the
//! one that started the sign-in. Success sets a new session cookie and
//! answers 303 to `/consent?request=H`, exactly where a password sign-in
//! goes, so consent and code issuance are unchanged. Failures are pages
//! (`ErrorPage::for_upstream`); retryable ones carry a "Try again" form
//! that starts a new upstream sign-in for the same MCP request. Nothing
//! here ever redirects to an MCP client.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use latchkey_protocol::params::FormParams;
use latchkey_protocol::secret::SecretString;
use latchkey_service::upstream::{UpstreamCallback, UpstreamError};

use crate::AppState;
use crate::browser::{PagePost, error_response, field, flow_error, page_context, render};
use crate::error::ErrorPage;
use crate::security::{read_cookie, see_other};

/// The "Try again" form of a retryable failure page.
#[derive(serde::Serialize)]
struct RetryView {
    action: String,
    csrf: String,
    request: String,
    label: String,
}

/// The page for an upstream failure, with a "Try again" button when the
/// failure is retryable and the browser has a login CSRF cookie.
fn upstream_error(state: &AppState, headers: &HeaderMap, error: &UpstreamError) -> Response {
    let page = ErrorPage::for_upstream(error);
    let retry = match error {
        UpstreamError::Failed {
            provider, request, ..
        } => {
            let cookie = read_cookie(headers, state.cookies.login_csrf)
                .filter(|value| latchkey_service::Service::is_login_csrf_cookie(value));
            let display_name = state
                .service
                .upstream_providers()
                .iter()
                .find(|configured| &configured.id == provider)
                .map(|configured| configured.display_name.clone());
            match (cookie, display_name) {
                (Some(cookie), Some(display_name)) => Some(RetryView {
                    action: state.paths.upstream_start(provider),
                    csrf: state.service.login_csrf_token(&cookie, request),
                    request: request.clone(),
                    label: format!("Try again with {display_name}"),
                }),
                _ => None,
            }
        }
        _ => None,
    };
    let mut context = page_context(state, page.title);
    context.insert("message", page.message);
    context.insert("next_steps", &page.next_steps);
    context.insert("details", &page.details);
    context.insert("retry", &retry);
    let targets = if retry.is_some() {
        state.service.upstream_form_targets()
    } else {
        Vec::new()
    };
    render(state, "error.html", &context, page.status, &targets)
}

/// `POST {base}/login/upstream/{id}`: starts a sign-in at provider `id`.
pub(crate) async fn start_post(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    PagePost(form): PagePost,
) -> Response {
    let request = field(&form, "request");
    let cookie = read_cookie(&headers, state.cookies.login_csrf).unwrap_or_default();
    if !state
        .service
        .verify_login_csrf(&cookie, request, field(&form, "csrf"))
    {
        tracing::info!("an upstream sign-in was refused: missing or wrong CSRF token");
        return error_response(&state, &ErrorPage::forbidden_form());
    }
    match state
        .service
        .begin_upstream_login(&provider, request, &cookie)
        .await
    {
        Ok(url) => see_other(&url),
        Err(error) => upstream_error(&state, &headers, &error),
    }
}

/// `GET {base}/login/upstream/{id}/callback`.
pub(crate) async fn callback_get(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    // A malformed query (a repeated parameter) carries no usable state.
    let params = FormParams::from_query(query.as_deref().unwrap_or_default()).ok();
    let get = |name: &str| {
        params
            .as_ref()
            .and_then(|params| params.get(name))
            .map(str::to_owned)
    };
    let callback = UpstreamCallback {
        state: get("state"),
        code: get("code").map(SecretString::new),
        error: get("error"),
        iss: get("iss"),
    };
    let cookie = read_cookie(&headers, state.cookies.login_csrf);
    let login = match state
        .service
        .finish_upstream_login(&provider, &callback, cookie.as_deref())
        .await
    {
        Ok(login) => login,
        Err(UpstreamError::Flow(error)) => return flow_error(&state, &error),
        Err(error) => return upstream_error(&state, &headers, &error),
    };
    let next = if login.request.is_empty() {
        state.paths.account.clone()
    } else {
        format!("{}?request={}", state.paths.consent, login.request)
    };
    let mut response = see_other(&next);
    if let Some(value) = state.cookies.set_cookie(
        state.cookies.session,
        login.session.cookie_value.expose(),
        state.service.config().sessions.absolute,
    ) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
