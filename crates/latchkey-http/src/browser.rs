//! The pages a person sees: the authorization endpoint, sign-in, consent,
//! the connected-apps page and sign-out.
//!
//! Routes (`{base}` is the issuer's path):
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET, POST | `{base}/authorize` | RFC 6749 §4.1.1 authorization request |
//! | POST | `{base}/login` | the sign-in form |
//! | GET | `{base}/consent?request=H` | resumes a pending request after sign-in |
//! | POST | `{base}/consent` | the consent decision |
//! | GET | `{base}/account` | connected apps (or the sign-in form) |
//! | POST | `{base}/account/revoke` | disconnect an app |
//! | POST | `{base}/logout` | sign out |
//! | POST | `{base}/login/upstream/{id}` | start an upstream sign-in (see `upstream`) |
//! | GET | `{base}/login/upstream/{id}/callback` | the upstream provider's redirect back |
//! | GET | `{base}/static/latchkey.css` | the stylesheet |
//!
//! Flow: `/authorize` validates (`latchkey_service::authorize`); errors
//! before the redirect URI is trusted are pages, later ones 303 redirects
//! with `state` and `iss`. With no sufficient session it stores the request
//! and shows the sign-in form, which posts to `/login`; a successful sign-in
//! sets a new session cookie and answers 303 to `/consent?request=H`
//! (post/redirect/get), which shows the consent page or, with remembered
//! consent, redirects to the client with a code. The consent form posts the
//! decision; approval and denial both end in a 303 to the client.
//!
//! Every state-changing post passes the `Origin` policy
//! (`security::check_origin`) and carries a CSRF token: the session's, or
//! before sign-in the double-submit token bound to the pending request.
//! Failures are a 403 page; nothing is changed.
//!
//! Status codes: pages 200; a wrong password re-shows the form with 200 and
//! the same body whatever the reason (unknown email, wrong password,
//! disabled account); a lock-out 429 with `Retry-After`; error pages as in
//! `error.rs`.

use std::time::Duration;

use axum::extract::{FromRequest, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latchkey_protocol::OAuthError;
use latchkey_protocol::params::{FormLimits, FormParams};
use latchkey_protocol::secret::SecretString;
use latchkey_service::accounts::{INVALID_CREDENTIALS, LoginError, retry_message};
use latchkey_service::authorize::{Authorization, AuthorizeError, PageReason, Step};
use latchkey_service::sessions::Session;
use latchkey_service::{FlowError, Service};
use time::OffsetDateTime;

use crate::AppState;
use crate::error::ErrorPage;
use crate::extract::{ClientAddress, content_type_is, read_limited};
use crate::security::{check_origin, html_response, read_cookie, see_other};

/// The largest browser form accepted (a login form is a few hundred
/// bytes; an authorization request posted as a form a few kilobytes).
const BROWSER_FORM_LIMIT: usize = 16 * 1024;

/// The context every page template gets.
pub(crate) fn page_context(state: &AppState, title: &str) -> tera::Context {
    let mut context = tera::Context::new();
    context.insert("base", &state.paths.base);
    context.insert(
        "stylesheet",
        &format!(
            "{}?v={}",
            state.paths.stylesheet,
            state.pages.stylesheet_version()
        ),
    );
    context.insert("title", title);
    context
}

/// Renders `template`; a rendering failure (a broken override) is logged
/// and answered with a plain page rather than a blank one.
pub(crate) fn render(
    state: &AppState,
    template: &str,
    context: &tera::Context,
    status: StatusCode,
    form_targets: &[String],
) -> Response {
    match state.pages.render(template, context) {
        Ok(body) => html_response(status, body, form_targets),
        Err(error) => {
            tracing::error!(%error, "a page does not render");
            html_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><html lang=\"en\"><title>Error</title><main id=\"error\">\
                 <h1>Something went wrong</h1><p>This page cannot be shown. \
                 Return to the application and try again.</p></main></html>"
                    .to_owned(),
                &[],
            )
        }
    }
}

/// An error page.
pub(crate) fn error_response(state: &AppState, page: &ErrorPage) -> Response {
    let mut context = page_context(state, page.title);
    context.insert("message", page.message);
    context.insert("next_steps", &page.next_steps);
    context.insert("details", &page.details);
    context.insert("retry", &None::<()>);
    render(state, "error.html", &context, page.status, &[])
}

pub(crate) fn flow_error(state: &AppState, error: &FlowError) -> Response {
    error_response(state, &ErrorPage::for_flow(error))
}

/// The response for an authorization error: a page or a redirect.
fn authorize_error(state: &AppState, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::Page(reason) => {
            tracing::info!(error = %reason.error(), "authorization request refused with a page");
            error_response(state, &ErrorPage::for_reason(&reason))
        }
        AuthorizeError::Redirect(url) => see_other(&url),
        AuthorizeError::Flow(error) => flow_error(state, &error),
    }
}

/// A browser form body: `application/x-www-form-urlencoded`, at most
/// [`BROWSER_FORM_LIMIT`] bytes, parsed strictly (a repeated field is an
/// error). Malformed forms get an HTML 400 page.
pub(crate) struct BrowserForm(pub(crate) Result<FormParams, OAuthError>);

impl FromRequest<AppState> for BrowserForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<BrowserForm, Response> {
        let (parts, body) = request.into_parts();
        if !content_type_is(&parts.headers, "application/x-www-form-urlencoded") {
            return Ok(BrowserForm(Err(OAuthError::invalid_request(
                "the form must be application/x-www-form-urlencoded",
            ))));
        }
        let bytes = match read_limited(body, &parts.headers, BROWSER_FORM_LIMIT).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let page = ErrorPage::bad_form(&OAuthError::invalid_request(
                    "the form is too large or could not be read",
                ));
                return Err(error_response(state, &page));
            }
        };
        let limits = FormLimits {
            max_total_len: BROWSER_FORM_LIMIT,
            ..FormLimits::default()
        };
        Ok(BrowserForm(
            FormParams::parse_with_limits(&bytes, &limits).map_err(OAuthError::from),
        ))
    }
}

/// A state-changing form post from one of Latchkey's pages: the `Origin`
/// check passed (before the body is read) and the body parsed as a
/// [`BrowserForm`]. Either failure is answered with its HTML page before the
/// handler runs, so no handler can forget the check.
pub(crate) struct PagePost(pub(crate) FormParams);

impl FromRequest<AppState> for PagePost {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<PagePost, Response> {
        if let Some(refused) = origin_refused(state, request.headers()) {
            return Err(refused);
        }
        let BrowserForm(form) = BrowserForm::from_request(request, state).await?;
        form.map(PagePost)
            .map_err(|error| error_response(state, &ErrorPage::bad_form(&error)))
    }
}

/// The signed-in session of a request, if any.
async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, FlowError> {
    match read_cookie(headers, state.cookies.session) {
        Some(value) => state.service.session(&value).await,
        None => Ok(None),
    }
}

/// A signed-in session whose user still exists and is enabled, with the
/// user's email.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(Session, String)>, FlowError> {
    let Some(session) = current_session(state, headers).await? else {
        return Ok(None);
    };
    Ok(state
        .service
        .enabled_user(&session.user_id)
        .await?
        .map(|user| (session, user.email)))
}

/// The 403 page for a form post that fails the `Origin` policy, if it
/// does.
fn origin_refused(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    check_origin(headers, &state.issuer_origin)
        .err()
        .map(|rejection| {
            tracing::info!(?rejection, "a form post was refused by the Origin check");
            error_response(state, &ErrorPage::forbidden_form())
        })
}

/// What the sign-in form shows.
#[derive(Default)]
struct LoginView {
    /// The pending authorization request it continues ("" for none).
    request: String,
    /// Where to go afterwards without a request (`account`).
    return_to: &'static str,
    client_name: Option<String>,
    email: String,
    error: Option<String>,
    notice: Option<&'static str>,
    /// Origins the flow may redirect to after the post (form-action).
    form_targets: Vec<String>,
    status: Option<StatusCode>,
    retry_after: Option<Duration>,
}

impl LoginView {
    /// The view for continuing `authorization` under `handle`.
    fn for_authorization(authorization: &Authorization, handle: String) -> LoginView {
        LoginView {
            request: handle,
            client_name: Some(client_name(authorization)),
            form_targets: vec![authorization.redirect_origin()],
            ..LoginView::default()
        }
    }
}

/// The sign-in page, with a login CSRF cookie (the existing one when it is
/// one of ours, so that several tabs keep working). The upstream buttons
/// post the same CSRF token; their redirect to the provider is allowed by
/// `form-action`.
fn login_page(state: &AppState, headers: &HeaderMap, view: LoginView) -> Response {
    let existing = read_cookie(headers, state.cookies.login_csrf)
        .filter(|value| Service::is_login_csrf_cookie(value));
    let (cookie, fresh) = match existing {
        Some(cookie) => (cookie, false),
        None => match state.service.new_login_csrf_cookie() {
            Ok(cookie) => (cookie, true),
            Err(error) => return flow_error(state, &error),
        },
    };
    let mut context = page_context(state, "Sign in");
    context.insert(
        "csrf",
        &state.service.login_csrf_token(&cookie, &view.request),
    );
    context.insert("request", &view.request);
    context.insert("return_to", view.return_to);
    context.insert("client_name", &view.client_name);
    context.insert("email", &view.email);
    context.insert("error", &view.error);
    context.insert("notice", &view.notice);
    context.insert("password_login", &state.service.config().password_login);
    context.insert("upstreams", &upstream_buttons(state));
    let mut form_targets = view.form_targets;
    form_targets.extend(state.service.upstream_form_targets());
    let mut response = render(
        state,
        "login.html",
        &context,
        view.status.unwrap_or(StatusCode::OK),
        &form_targets,
    );
    if fresh
        && let Some(value) = state.cookies.set_cookie(
            state.cookies.login_csrf,
            &cookie,
            Duration::from_secs(24 * 3600),
        )
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    if let Some(after) = view.retry_after
        && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// One "Continue with …" button of the sign-in page.
#[derive(serde::Serialize)]
struct UpstreamButton {
    id: String,
    name: String,
    action: String,
}

/// The sign-in page's upstream buttons, in configuration order.
fn upstream_buttons(state: &AppState) -> Vec<UpstreamButton> {
    state
        .service
        .upstream_providers()
        .iter()
        .map(|provider| UpstreamButton {
            id: provider.id.clone(),
            name: provider.display_name.clone(),
            action: state.paths.upstream_start(&provider.id),
        })
        .collect()
}

/// The client's display name: its registered name, else its id.
fn client_name(authorization: &Authorization) -> String {
    let client = authorization.client();
    client
        .metadata()
        .client_name()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| client.client_id())
        .to_owned()
}

/// One scope on the consent page.
#[derive(serde::Serialize)]
struct ScopeView {
    name: String,
    description: String,
    /// Whether the description says more than the name.
    described: bool,
}

/// The consent page for `authorization`, stored under `handle`.
fn consent_page(
    state: &AppState,
    authorization: &Authorization,
    handle: &str,
    session: &Session,
    user_email: &str,
) -> Response {
    let client = authorization.client();
    let name = client_name(authorization);
    let initial: String = name
        .chars()
        .find(|character| character.is_alphanumeric())
        .map(|character| character.to_uppercase().collect())
        .unwrap_or_else(|| "?".to_owned());
    // Only https logos: the CSP allows https images, and an http logo would
    // be mixed content or a tracking beacon over plain text.
    let logo_uri = client
        .metadata()
        .logo_uri()
        .filter(|uri| uri.starts_with("https://"));
    let config = state.service.config();
    let scopes: Vec<ScopeView> = authorization
        .scopes()
        .iter()
        .map(|scope| {
            let description = config.scope_description(scope.as_str());
            ScopeView {
                described: description != scope.as_str(),
                name: scope.as_str().to_owned(),
                description,
            }
        })
        .collect();
    let resource = authorization.resource();
    let mut context = page_context(state, &format!("Allow {name}?"));
    context.insert("client_name", &name);
    context.insert("client_initial", &initial);
    context.insert("client_id", client.client_id());
    context.insert("logo_uri", &logo_uri);
    context.insert("verified", &authorization.client_verified());
    context.insert("document_host", &authorization.client_document_host());
    context.insert(
        "redirect_host",
        &authorization
            .redirect_host()
            .unwrap_or_else(|| authorization.redirect_origin()),
    );
    context.insert("redirect_uri", authorization.redirect_uri());
    context.insert("loopback", &authorization.redirect_is_loopback());
    context.insert("scopes", &scopes);
    context.insert("resource_name", &resource.name);
    context.insert("resource_uri", resource.uri.as_str());
    context.insert("csrf", &state.service.csrf_token(session));
    context.insert("request", handle);
    context.insert("user_email", user_email);
    render(
        state,
        "consent.html",
        &context,
        StatusCode::OK,
        &[authorization.redirect_origin()],
    )
}

/// Shows what `authorization` needs next for this browser.
async fn continue_authorization(
    state: &AppState,
    headers: &HeaderMap,
    authorization: Authorization,
    signed_in: Option<(Session, String)>,
) -> Response {
    let service = &state.service;
    let session = signed_in.as_ref().map(|(session, _)| session);
    let step = match service.authorization_step(&authorization, session).await {
        Ok(step) => step,
        Err(error) => return authorize_error(state, error),
    };
    match step {
        Step::Redirect(url) => see_other(&url),
        Step::Login | Step::Consent => {
            let handle = match service.save_pending_authorization(&authorization).await {
                Ok(handle) => handle,
                Err(error) => return flow_error(state, &error),
            };
            match (step, &signed_in) {
                (Step::Consent, Some((session, email))) => {
                    consent_page(state, &authorization, &handle, session, email)
                }
                _ => login_page(
                    state,
                    headers,
                    LoginView::for_authorization(&authorization, handle),
                ),
            }
        }
    }
}

/// The authorization endpoint, for GET and POST alike.
async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    params: Result<FormParams, OAuthError>,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(error) => {
            return authorize_error(
                state,
                AuthorizeError::Page(PageReason::InvalidRequest(error)),
            );
        }
    };
    let authorization = match state.service.begin_authorization(&params).await {
        Ok(authorization) => authorization,
        Err(error) => return authorize_error(state, error),
    };
    let signed_in = match signed_in(state, headers).await {
        Ok(signed_in) => signed_in,
        Err(error) => return flow_error(state, &error),
    };
    continue_authorization(state, headers, authorization, signed_in).await
}

/// `GET {base}/authorize`.
pub(crate) async fn authorize_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params =
        FormParams::from_query(query.as_deref().unwrap_or_default()).map_err(OAuthError::from);
    authorize(&state, &headers, params).await
}

/// `POST {base}/authorize` (RFC 6749 §3.1: the endpoint may accept POST).
pub(crate) async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    BrowserForm(form): BrowserForm,
) -> Response {
    authorize(&state, &headers, form).await
}

/// A form field, or "".
pub(crate) fn field<'a>(form: &'a FormParams, name: &str) -> &'a str {
    form.get(name).unwrap_or_default()
}

/// `POST {base}/login`.
pub(crate) async fn login_post(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    PagePost(form): PagePost,
) -> Response {
    if !state.service.config().password_login {
        tracing::info!("a password sign-in was refused: password sign-in is off");
        return error_response(&state, &ErrorPage::password_login_disabled());
    }
    let handle = field(&form, "request");
    let cookie = read_cookie(&headers, state.cookies.login_csrf).unwrap_or_default();
    if !state
        .service
        .verify_login_csrf(&cookie, handle, field(&form, "csrf"))
    {
        tracing::info!("a sign-in was refused: missing or wrong CSRF token");
        return error_response(&state, &ErrorPage::forbidden_form());
    }
    // The request the form continues, for the page shown on failure and
    // the redirect on success.
    let mut view = if handle.is_empty() {
        LoginView {
            return_to: "account",
            ..LoginView::default()
        }
    } else {
        match state.service.resume_authorization(handle).await {
            Ok(authorization) => LoginView::for_authorization(&authorization, handle.to_owned()),
            Err(error) => return authorize_error(&state, error),
        }
    };
    let email = field(&form, "email");
    let password = SecretString::new(field(&form, "password"));
    match state.service.login(email, &password, address).await {
        Ok(success) => {
            let next = if handle.is_empty() {
                state.paths.account.clone()
            } else {
                format!("{}?request={handle}", state.paths.consent)
            };
            let mut response = see_other(&next);
            if let Some(value) = state.cookies.set_cookie(
                state.cookies.session,
                success.session.cookie_value.expose(),
                state.service.config().sessions.absolute,
            ) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        Err(LoginError::InvalidCredentials) => {
            view.email = email.trim().to_owned();
            view.error = Some(INVALID_CREDENTIALS.to_owned());
            login_page(&state, &headers, view)
        }
        Err(LoginError::Locked { retry_after }) => {
            view.email = email.trim().to_owned();
            view.error = Some(retry_message(retry_after));
            view.status = Some(StatusCode::TOO_MANY_REQUESTS);
            view.retry_after = Some(retry_after);
            login_page(&state, &headers, view)
        }
        Err(LoginError::Flow(error)) => flow_error(&state, &error),
    }
}

/// The `request` handle of a query string.
fn request_handle(query: Option<&str>) -> String {
    query
        .and_then(|query| FormParams::from_query(query).ok())
        .and_then(|params| params.get("request").map(str::to_owned))
        .unwrap_or_default()
}

/// `GET {base}/consent?request=H`: where a sign-in continues.
pub(crate) async fn consent_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let handle = request_handle(query.as_deref());
    let authorization = match state.service.resume_authorization(&handle).await {
        Ok(authorization) => authorization,
        Err(error) => return authorize_error(&state, error),
    };
    let signed_in = match signed_in(&state, &headers).await {
        Ok(signed_in) => signed_in,
        Err(error) => return flow_error(&state, &error),
    };
    continue_authorization(&state, &headers, authorization, signed_in).await
}

/// `POST {base}/consent`: the decision.
pub(crate) async fn consent_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePost(form): PagePost,
) -> Response {
    let handle = field(&form, "request");
    let signed_in = match signed_in(&state, &headers).await {
        Ok(signed_in) => signed_in,
        Err(error) => return flow_error(&state, &error),
    };
    let Some((session, _)) = signed_in else {
        // The session ended while the page was open: sign in again and
        // continue the same request, if it is still pending.
        return match state.service.resume_authorization(handle).await {
            Ok(authorization) => login_page(
                &state,
                &headers,
                LoginView::for_authorization(&authorization, handle.to_owned()),
            ),
            Err(error) => authorize_error(&state, error),
        };
    };
    if !state.service.verify_csrf(&session, field(&form, "csrf")) {
        tracing::info!("a consent decision was refused: missing or wrong CSRF token");
        return error_response(&state, &ErrorPage::forbidden_form());
    }
    let outcome = match field(&form, "decision") {
        "approve" => state.service.approve_authorization(handle, &session).await,
        "deny" => state.service.deny_authorization(handle).await,
        _ => {
            let error = OAuthError::invalid_request("the decision must be approve or deny");
            return error_response(&state, &ErrorPage::bad_form(&error));
        }
    };
    match outcome {
        Ok(url) => see_other(&url),
        Err(error) => authorize_error(&state, error),
    }
}

/// `23 Nov 2026, 14:05 UTC`.
fn format_time(instant: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let utc = instant.to_offset(time::UtcOffset::UTC);
    let month = MONTHS
        .get(usize::from(u8::from(utc.month())).saturating_sub(1))
        .copied()
        .unwrap_or("?");
    format!(
        "{} {month} {}, {:02}:{:02} UTC",
        utc.day(),
        utc.year(),
        utc.hour(),
        utc.minute()
    )
}

/// One app on the connected-apps page.
#[derive(serde::Serialize)]
struct AppView {
    name: String,
    client_id: String,
    verified: bool,
    resource: String,
    resource_name: Option<String>,
    scopes: Vec<String>,
    granted: String,
    last_used: String,
    expired: bool,
}

/// `GET {base}/account`.
pub(crate) async fn account_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let signed_in = match signed_in(&state, &headers).await {
        Ok(signed_in) => signed_in,
        Err(error) => return flow_error(&state, &error),
    };
    let Some((session, email)) = signed_in else {
        return login_page(
            &state,
            &headers,
            LoginView {
                return_to: "account",
                ..LoginView::default()
            },
        );
    };
    let apps = match state.service.connected_apps(&session.user_id).await {
        Ok(apps) => apps,
        Err(error) => return flow_error(&state, &error),
    };
    let now = state.service.now();
    let apps: Vec<AppView> = apps
        .into_iter()
        .map(|app| AppView {
            expired: app.expired_at(now),
            name: app
                .client_name
                .clone()
                .unwrap_or_else(|| app.client_id.clone()),
            verified: app.verified,
            resource_name: app.resource_name,
            scopes: app.scopes,
            granted: format_time(app.granted_at),
            last_used: app
                .last_used_at
                .map_or_else(|| format_time(app.granted_at), format_time),
            client_id: app.client_id,
            resource: app.resource,
        })
        .collect();
    let disconnected = query
        .as_deref()
        .and_then(|query| FormParams::from_query(query).ok())
        .is_some_and(|params| params.contains("disconnected"));
    let mut context = page_context(&state, "Connected apps");
    context.insert("user_email", &email);
    context.insert("apps", &apps);
    context.insert("csrf", &state.service.csrf_token(&session));
    context.insert(
        "notice",
        &disconnected.then_some("The app was disconnected. It can no longer refresh its access."),
    );
    render(&state, "account.html", &context, StatusCode::OK, &[])
}

/// `POST {base}/account/revoke`: disconnect an app.
pub(crate) async fn account_revoke_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePost(form): PagePost,
) -> Response {
    let signed_in = match signed_in(&state, &headers).await {
        Ok(signed_in) => signed_in,
        Err(error) => return flow_error(&state, &error),
    };
    let Some((session, _)) = signed_in else {
        return see_other(&state.paths.account);
    };
    if !state.service.verify_csrf(&session, field(&form, "csrf")) {
        tracing::info!("a disconnect was refused: missing or wrong CSRF token");
        return error_response(&state, &ErrorPage::forbidden_form());
    }
    let client_id = field(&form, "client_id");
    if client_id.is_empty() {
        let error = OAuthError::invalid_request("the client_id field is required");
        return error_response(&state, &ErrorPage::bad_form(&error));
    }
    match state
        .service
        .disconnect_app(&session.user_id, client_id)
        .await
    {
        Ok(_) => see_other(&format!("{}?disconnected=1", state.paths.account)),
        Err(error) => flow_error(&state, &error),
    }
}

/// `POST {base}/logout`.
pub(crate) async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    PagePost(form): PagePost,
) -> Response {
    let session = match current_session(&state, &headers).await {
        Ok(session) => session,
        Err(error) => return flow_error(&state, &error),
    };
    if let Some(session) = &session {
        if !state.service.verify_csrf(session, field(&form, "csrf")) {
            tracing::info!("a sign-out was refused: missing or wrong CSRF token");
            return error_response(&state, &ErrorPage::forbidden_form());
        }
        let cookie = read_cookie(&headers, state.cookies.session).unwrap_or_default();
        if let Err(error) = state.service.logout(&cookie).await {
            return flow_error(&state, &error);
        }
    }
    let context = page_context(&state, "Signed out");
    let mut response = render(&state, "logged_out.html", &context, StatusCode::OK, &[]);
    if let Some(value) = state
        .cookies
        .set_cookie(state.cookies.session, "", Duration::ZERO)
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET {base}/static/latchkey.css`: cached for a year when asked for by
/// its versioned URL, revalidated otherwise.
pub(crate) async fn stylesheet(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response {
    let versioned = query.as_deref().is_some_and(|query| {
        query
            .strip_prefix("v=")
            .is_some_and(|version| version == state.pages.stylesheet_version())
    });
    let mut response = state.pages.stylesheet().to_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if versioned {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_for_people() {
        // 2026-11-23 00:00:00 UTC is 1_795_392_000; plus 12 h 5 min.
        let instant = OffsetDateTime::from_unix_timestamp(1_795_392_000 + 12 * 3600 + 300).unwrap();
        assert_eq!(format_time(instant), "23 Nov 2026, 12:05 UTC");
        let new_year = OffsetDateTime::from_unix_timestamp(1_798_761_540).unwrap();
        assert_eq!(format_time(new_year), "31 Dec 2026, 23:59 UTC");
    }

    #[test]
    fn request_handles_come_from_the_query() {
        assert_eq!(request_handle(Some("request=abc")), "abc");
        assert_eq!(request_handle(Some("request=a&request=b")), "");
        assert_eq!(request_handle(None), "");
    }
}
