//! The authorization endpoint's flow (RFC 6749 §4.1.1–§4.1.2, OAuth 2.1
//! §4.1, RFC 7636, RFC 8707, RFC 9207, OIDC `prompt`), independent of HTTP.
//!
//! Phase 1, [`Service::begin_authorization`], validates in the order RFC
//! 6749 §4.1.2.1 requires, and the error kind says what the HTTP layer may
//! do with it:
//! 1. the parameters parse (no repeated parameter, strict encoding) and
//!    `client_id` is present, else [`AuthorizeError::Page`];
//! 2. the client exists, else a page (never a redirect: the redirect URI of
//!    an unknown client cannot be trusted);
//! 3. `redirect_uri` matches a registered one exactly (loopback IP literals
//!    and `localhost` on any port, RFC 8252 §7.3), else a page;
//! 4. only now does anything become an error redirect
//!    ([`AuthorizeError::Redirect`], with `error`, `error_description`,
//!    `state` and `iss`): `response_type=code` only, PKCE S256 required
//!    (`plain` or missing is `invalid_request`), the client registered the
//!    code grant (`unauthorized_client`), the resource is configured
//!    (`invalid_target`, required in the MCP profile), the scopes are within
//!    what the client and the resource allow (`invalid_scope`; the same
//!    policy as the token endpoint, `grants::policy`).
//!
//! Phase 2, [`Service::authorization_step`], decides against the browser
//! session and remembered consent: [`Step::Login`], [`Step::Consent`], or
//! [`Step::Redirect`] with a code (RFC 9207: `code`, `state`, `iss`).
//! `prompt=none` never shows a page: no session is `login_required`, no
//! sufficient consent is `consent_required`. `prompt=login` forces a fresh
//! sign-in even with a session: the session must have authenticated at or
//! after the request. `prompt=consent` always shows the consent page.
//!
//! A request waiting for the user is stored server-side as a pending
//! interaction (kind `authorize`, JSON, [`PENDING_AUTHORIZATION_TTL`])
//! under the SHA-256 of a random 256-bit handle; the handle travels in the
//! login and consent forms. Approval and denial *take* the pending record
//! (single use, atomic in the store), so a decision cannot be replayed.
//! Resuming re-reads the client and re-matches the redirect URI, so a
//! client removed or changed meanwhile cannot receive a code.
//!
//! Codes are issued by [`Service::issue_authorization_code`]: random
//! `lkc_…`, stored as SHA-256 with the client, user, redirect URI as
//! sent, PKCE challenge, granted scopes, canonical resource, a fresh family
//! id and the user's `auth_time`, for the configured code lifetime.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_protocol::OAuthError;
use latchkey_protocol::client::GrantType;
use latchkey_protocol::params::{AuthorizationRequest, FormParams, RedirectTarget};
use latchkey_protocol::pkce::CodeChallenge;
use latchkey_protocol::scope::ScopeSet;
use latchkey_store::{PendingRecord, SecretHash, StoreError};
use serde::{Deserialize, Serialize};

use crate::Service;
use crate::clients::Client;
use crate::clock::add;
use crate::config::{ConfiguredResource, PENDING_AUTHORIZATION_TTL};
use crate::error::FlowError;
use crate::grants::code::ApprovedAuthorization;
use crate::grants::policy::{resolve_resource, resolve_scopes, scopes_from_store, scopes_to_store};
use crate::metadata_documents::{ClientLookup, MetadataDocumentError};
use crate::secrets::random_bytes;
use crate::sessions::Session;

/// The `kind` of the pending records this module stores.
pub const PENDING_KIND: &str = "authorize";

/// Why the endpoint shows a page rather than redirecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageReason {
    /// The request is malformed: bad encoding, a repeated parameter, no
    /// `client_id`.
    InvalidRequest(OAuthError),
    /// No client has this `client_id`.
    UnknownClient,
    /// The `client_id` is a metadata-document URL whose document could not
    /// be fetched or is not valid.
    ClientMetadataDocument(MetadataDocumentError),
    /// The `redirect_uri` is missing where required or not registered.
    InvalidRedirectUri(OAuthError),
    /// The pending request behind a form is unknown, expired or already
    /// decided.
    Expired,
}

impl PageReason {
    /// The OAuth error this stands for (for logs and the page's details).
    pub fn error(&self) -> OAuthError {
        match self {
            PageReason::InvalidRequest(error) | PageReason::InvalidRedirectUri(error) => {
                error.clone()
            }
            PageReason::UnknownClient => OAuthError::invalid_client("unknown client_id"),
            PageReason::ClientMetadataDocument(error) => error.to_oauth(),
            PageReason::Expired => OAuthError::invalid_request(
                "the authorization request expired or was already completed",
            ),
        }
    }
}

/// Why an authorization request went no further.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Show an error page; never redirect.
    Page(PageReason),
    /// Send the browser back to the client with this error URL.
    Redirect(String),
    /// Storage or an internal failure.
    Flow(FlowError),
}

impl From<FlowError> for AuthorizeError {
    fn from(error: FlowError) -> AuthorizeError {
        AuthorizeError::Flow(error)
    }
}

impl From<StoreError> for AuthorizeError {
    fn from(error: StoreError) -> AuthorizeError {
        AuthorizeError::Flow(FlowError::from(error))
    }
}

/// What the browser sees next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The sign-in page.
    Login,
    /// The consent page.
    Consent,
    /// A redirect to the client: a code, or an error for `prompt=none`.
    Redirect(String),
}

/// The stored part of a validated request.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    /// As sent; `None` when the request relied on the only registered URI.
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: String,
    /// Canonical.
    resource: String,
    /// What will be granted.
    scopes: Vec<String>,
    force_consent: bool,
    prompt_none: bool,
    /// `prompt=login`: the session must have authenticated at or after
    /// this instant (unix seconds).
    login_after: Option<i64>,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct Authorization {
    pending: Pending,
    client: Arc<Client>,
    target: RedirectTarget,
    resource: ConfiguredResource,
    scopes: ScopeSet,
    /// `prompt=login` on the request being handled right now (not stored):
    /// the existing session is not enough whatever its `auth_time`.
    force_login_now: bool,
    /// The pending handle this was resumed from, if any.
    handle: Option<String>,
    /// Whether the consent page may call the client verified.
    client_verified: bool,
}

impl Authorization {
    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether an operator created the client, or it is a metadata-document
    /// client from an allow-listed host; other dynamically registered and
    /// metadata-document clients are unverified.
    pub fn client_verified(&self) -> bool {
        self.client_verified
    }

    /// For a metadata-document client, its document's host (shown
    /// prominently on the consent page).
    pub fn client_document_host(&self) -> Option<&str> {
        self.client.document_host()
    }

    /// Where the response goes.
    pub fn redirect_uri(&self) -> &str {
        self.target.as_str()
    }

    /// The redirect URI's host as a browser would use it, for the consent
    /// page (`None` for a private-use scheme without an authority).
    pub fn redirect_host(&self) -> Option<String> {
        url::Url::parse(self.target.as_str())
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
    }

    /// The redirect URI's origin (`scheme://host[:port]`), or the scheme
    /// (`com.example.app:`) for a private-use scheme: what the consent
    /// form may navigate to, for its `Content-Security-Policy`.
    pub fn redirect_origin(&self) -> String {
        match url::Url::parse(self.target.as_str()) {
            Ok(url) if url.has_host() => url.origin().ascii_serialization(),
            Ok(url) => format!("{}:", url.scheme()),
            Err(_) => String::new(),
        }
    }

    /// Whether the redirect goes to this computer (loopback or
    /// `localhost`): the consent page warns that any local program could
    /// be behind it.
    pub fn redirect_is_loopback(&self) -> bool {
        self.redirect_host()
            .is_some_and(|host| matches!(host.as_str(), "127.0.0.1" | "[::1]" | "localhost"))
    }

    /// The resource the token will be for.
    pub fn resource(&self) -> &ConfiguredResource {
        &self.resource
    }

    /// The scopes that will be granted.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }

    /// The pending handle this request was resumed from.
    pub fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    /// The error redirect for `error` (with `state` and `iss`).
    fn error_url(&self, error: &OAuthError, issuer: &str) -> String {
        self.target
            .error_url(error, self.pending.state.as_deref(), issuer)
    }

    /// Whether `session` is recent enough for this request.
    fn session_sufficient(&self, session: &Session) -> bool {
        if self.force_login_now {
            return false;
        }
        match self.pending.login_after {
            Some(after) => session.auth_time.unix_timestamp() >= after,
            None => true,
        }
    }
}

/// Rebuilds the redirect target of a stored request through the protocol
/// crate, exactly as the original request resolved it.
fn resolve_target(client: &Client, pending: &Pending) -> Result<RedirectTarget, AuthorizeError> {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    serializer.append_pair("client_id", &pending.client_id);
    if let Some(redirect_uri) = &pending.redirect_uri {
        serializer.append_pair("redirect_uri", redirect_uri);
    }
    let params = FormParams::parse(serializer.finish().as_bytes())
        .map_err(|error| AuthorizeError::Page(PageReason::InvalidRequest(error.into())))?;
    let request = AuthorizationRequest::parse(&params)
        .map_err(|error| AuthorizeError::Page(PageReason::InvalidRequest(error.into())))?;
    request
        .resolve_redirect_uri(client.metadata().redirect_uris())
        .map_err(|error| AuthorizeError::Page(PageReason::InvalidRedirectUri(error.into())))
}

impl Service {
    /// The client of an authorization request; any failure is a page,
    /// since its redirect URI cannot be trusted.
    async fn authorizing_client(&self, client_id: &str) -> Result<Arc<Client>, AuthorizeError> {
        match self.lookup_client(client_id).await? {
            ClientLookup::Found(client) => Ok(client),
            ClientLookup::Unknown => Err(AuthorizeError::Page(PageReason::UnknownClient)),
            ClientLookup::Document(error) => Err(AuthorizeError::Page(
                PageReason::ClientMetadataDocument(error),
            )),
        }
    }

    /// Phase 1: validates an authorization request (order in the module
    /// docs).
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn begin_authorization(
        &self,
        params: &FormParams,
    ) -> Result<Authorization, AuthorizeError> {
        let issuer = self.config().issuer.as_str();
        let pending_request = AuthorizationRequest::parse(params)
            .map_err(|error| AuthorizeError::Page(PageReason::InvalidRequest(error.into())))?;
        tracing::Span::current().record("client_id", pending_request.client_id());
        let client = self.authorizing_client(pending_request.client_id()).await?;
        let target = pending_request
            .resolve_redirect_uri(client.metadata().redirect_uris())
            .map_err(|error| AuthorizeError::Page(PageReason::InvalidRedirectUri(error.into())))?;
        let request = pending_request
            .validate(target.clone())
            .map_err(|error| AuthorizeError::Redirect(error.redirect_url(issuer)))?;
        let redirect = |error: FlowError| match error {
            FlowError::OAuth(error) => AuthorizeError::Redirect(request.error_url(&error, issuer)),
            other => AuthorizeError::Flow(other),
        };
        if !client.metadata().allows_grant(GrantType::AuthorizationCode) {
            return Err(redirect(FlowError::OAuth(OAuthError::unauthorized_client(
                "this client is not registered for the authorization_code grant",
            ))));
        }
        let resource = resolve_resource(self.config(), request.resource.as_ref())
            .map_err(redirect)?
            .clone();
        let scopes = resolve_scopes(request.scope.as_ref(), &resource, client.metadata().scope())
            .map_err(redirect)?;
        let now = self.now();
        let pending = Pending {
            client_id: client.client_id().to_owned(),
            redirect_uri: target.sent_in_request().then(|| target.as_str().to_owned()),
            state: request.state.clone(),
            code_challenge: request.code_challenge.as_str().to_owned(),
            resource: resource.uri.as_str().to_owned(),
            scopes: scopes_to_store(&scopes),
            force_consent: request.prompt.consent,
            prompt_none: request.prompt.none,
            login_after: request.prompt.login.then(|| now.unix_timestamp()),
        };
        let client_verified = self.is_client_verified(&client);
        Ok(Authorization {
            pending,
            client,
            target,
            resource,
            scopes,
            force_login_now: request.prompt.login,
            handle: None,
            client_verified,
        })
    }

    /// Phase 2: what the browser sees next, given its session (rules in
    /// the module docs). Issues the code when nothing needs asking.
    pub async fn authorization_step(
        &self,
        authorization: &Authorization,
        session: Option<&Session>,
    ) -> Result<Step, AuthorizeError> {
        let issuer = self.config().issuer.as_str();
        let prompt_none = authorization.pending.prompt_none;
        let Some(session) = session.filter(|session| authorization.session_sufficient(session))
        else {
            if prompt_none {
                let error = OAuthError::login_required("the user is not signed in");
                return Ok(Step::Redirect(authorization.error_url(&error, issuer)));
            }
            return Ok(Step::Login);
        };
        let now = self.now();
        let remembered = !authorization.pending.force_consent
            && self
                .use_remembered_consent(
                    &session.user_id,
                    &authorization.pending.client_id,
                    &authorization.pending.resource,
                    &authorization.scopes,
                    now,
                )
                .await?;
        if !remembered {
            if prompt_none {
                let error = OAuthError::consent_required(
                    "the user has not approved this application for these scopes",
                );
                return Ok(Step::Redirect(authorization.error_url(&error, issuer)));
            }
            return Ok(Step::Consent);
        }
        if let Some(handle) = &authorization.handle {
            // A resumed request is single use: whoever takes it issues.
            self.take_pending_authorization(handle).await?;
        }
        self.issue_for(authorization, session)
            .await
            .map(Step::Redirect)
    }

    /// Stores a request that waits for the user; returns its handle.
    pub async fn save_pending_authorization(
        &self,
        authorization: &Authorization,
    ) -> Result<String, FlowError> {
        if let Some(handle) = &authorization.handle {
            return Ok(handle.clone());
        }
        let payload = serde_json::to_string(&authorization.pending).map_err(|error| {
            FlowError::Internal(format!("cannot serialize a pending authorization: {error}"))
        })?;
        let expires_at = add(self.now(), PENDING_AUTHORIZATION_TTL);
        for _ in 0..2 {
            let bytes: [u8; 32] = random_bytes(self.random())?;
            let handle = URL_SAFE_NO_PAD.encode(bytes);
            let record = PendingRecord {
                pending_hash: SecretHash::of(&handle),
                kind: PENDING_KIND.to_owned(),
                payload: payload.clone(),
                expires_at,
            };
            match self.inner.store.insert_pending(&record).await {
                Ok(()) => return Ok(handle),
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(FlowError::Internal(
            "two pending handle collisions in a row".to_owned(),
        ))
    }

    /// Resumes a stored request by its handle, without using it up.
    pub async fn resume_authorization(
        &self,
        handle: &str,
    ) -> Result<Authorization, AuthorizeError> {
        let Some(record) = self.find_pending_authorization(handle).await? else {
            return Err(AuthorizeError::Page(PageReason::Expired));
        };
        self.rebuild(handle, &record).await
    }

    /// Approves a stored request for the signed-in user: uses the pending
    /// record up, issues the code, remembers the consent, and returns the
    /// success redirect.
    #[tracing::instrument(skip_all, fields(user_id = %session.user_id))]
    pub async fn approve_authorization(
        &self,
        handle: &str,
        session: &Session,
    ) -> Result<String, AuthorizeError> {
        let record = self.take_pending_authorization(handle).await?;
        let authorization = self.rebuild(handle, &record).await?;
        if !authorization.session_sufficient(session) {
            return Err(AuthorizeError::Page(PageReason::Expired));
        }
        let url = self.issue_for(&authorization, session).await?;
        self.remember_consent(
            &session.user_id,
            &authorization.pending.client_id,
            &authorization.pending.resource,
            &authorization.scopes,
            self.now(),
        )
        .await?;
        tracing::info!(client_id = %authorization.pending.client_id, "the user approved an authorization request");
        Ok(url)
    }

    /// Denies a stored request: uses the pending record up and returns the
    /// `access_denied` redirect.
    pub async fn deny_authorization(&self, handle: &str) -> Result<String, AuthorizeError> {
        let record = self.take_pending_authorization(handle).await?;
        let authorization = self.rebuild(handle, &record).await?;
        tracing::info!(client_id = %authorization.pending.client_id, "the user denied an authorization request");
        let error = OAuthError::access_denied("the user denied the request");
        Ok(authorization.error_url(&error, &self.config().issuer))
    }

    async fn find_pending_authorization(
        &self,
        handle: &str,
    ) -> Result<Option<PendingRecord>, FlowError> {
        if handle.is_empty() || handle.len() > 64 {
            return Ok(None);
        }
        let record = self
            .inner
            .store
            .find_pending(&SecretHash::of(handle), self.now())
            .await?;
        Ok(record.filter(|record| record.kind == PENDING_KIND))
    }

    async fn take_pending_authorization(
        &self,
        handle: &str,
    ) -> Result<PendingRecord, AuthorizeError> {
        if handle.is_empty() || handle.len() > 64 {
            return Err(AuthorizeError::Page(PageReason::Expired));
        }
        match self
            .inner
            .store
            .take_pending(&SecretHash::of(handle), self.now())
            .await?
        {
            Some(record) if record.kind == PENDING_KIND => Ok(record),
            _ => Err(AuthorizeError::Page(PageReason::Expired)),
        }
    }

    /// An [`Authorization`] from a stored record, re-reading the client and
    /// re-matching its redirect URI.
    async fn rebuild(
        &self,
        handle: &str,
        record: &PendingRecord,
    ) -> Result<Authorization, AuthorizeError> {
        let pending: Pending = serde_json::from_str(&record.payload).map_err(|error| {
            FlowError::Internal(format!("a pending authorization does not parse: {error}"))
        })?;
        // The client cache makes this cheap; a removed client ends here.
        let client = self.authorizing_client(&pending.client_id).await?;
        let target = resolve_target(&client, &pending)?;
        let issuer = self.config().issuer.as_str();
        let Some(resource) = self
            .config()
            .resources
            .get_canonical(&pending.resource)
            .cloned()
        else {
            let error = OAuthError::invalid_target("the resource is no longer served");
            return Err(AuthorizeError::Redirect(target.error_url(
                &error,
                pending.state.as_deref(),
                issuer,
            )));
        };
        let scopes = scopes_from_store(&pending.scopes)?;
        let client_verified = self.is_client_verified(&client);
        Ok(Authorization {
            pending,
            client,
            target,
            resource,
            scopes,
            force_login_now: false,
            handle: Some(handle.to_owned()),
            client_verified,
        })
    }

    /// Issues the code for `authorization` and `session`: the success URL,
    /// or an error URL when issuing is refused (a disabled user).
    async fn issue_for(
        &self,
        authorization: &Authorization,
        session: &Session,
    ) -> Result<String, AuthorizeError> {
        let issuer = self.config().issuer.as_str();
        let challenge =
            CodeChallenge::parse(&authorization.pending.code_challenge).map_err(|error| {
                FlowError::Internal(format!("a stored code challenge does not parse: {error}"))
            })?;
        let issued = self
            .issue_authorization_code(ApprovedAuthorization {
                client_id: authorization.pending.client_id.clone(),
                user_id: session.user_id.clone(),
                redirect_uri: authorization.target.as_str().to_owned(),
                code_challenge: challenge,
                scope: (!authorization.scopes.is_empty()).then(|| authorization.scopes.clone()),
                resource: Some(authorization.resource.uri.clone()),
                auth_time: session.auth_time,
            })
            .await;
        match issued {
            Ok(code) => Ok(authorization.target.success_url(
                code.code.expose(),
                authorization.pending.state.as_deref(),
                issuer,
            )),
            Err(FlowError::OAuth(error)) => Err(AuthorizeError::Redirect(
                authorization.error_url(&error, issuer),
            )),
            Err(other) => Err(AuthorizeError::Flow(other)),
        }
    }
}

#[cfg(test)]
mod tests;
