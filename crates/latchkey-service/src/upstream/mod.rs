//! Sign-in through an upstream OpenID Connect provider, with Latchkey as
//! the relying party and still the authorization server MCP clients see.
//!
//! Start ([`Service::begin_upstream_login`]), from the sign-in page's
//! "Continue with …" form (a POST carrying the login CSRF token):
//! 1. the provider is configured and, when the sign-in continues an MCP
//!    authorization request, that pending request exists (it is only
//!    read, never used up here);
//! 2. discovery is fetched or taken from the cache;
//! 3. a pending upstream login is stored (kind [`PENDING_KIND`], for
//!    [`PENDING_UPSTREAM_TTL`]) under the SHA-256 of a random 256-bit
//!    `state`, holding the provider id, a random `nonce`, the PKCE S256
//!    verifier, the MCP request's handle and the SHA-256 of the browser's
//!    login CSRF cookie (binding the login to the browser that started
//!    it);
//! 4. the browser goes to the provider's authorization endpoint with the
//!    exact redirect URI `{issuer}/login/upstream/{id}/callback`.
//!
//! Callback ([`Service::finish_upstream_login`]):
//! 1. the pending login is *taken* by the hash of `state` (single use,
//!    atomic in the store: a replayed callback finds nothing), and must
//!    belong to this provider and this browser (hash comparison in
//!    constant time); otherwise [`UpstreamError::Expired`], a dead end
//!    that never redirects anywhere;
//! 2. an `error` from the provider (`access_denied`, …), an `iss` naming
//!    another issuer (RFC 9207), a failed exchange, a refused ID token or
//!    a failed userinfo call is [`UpstreamError::Failed`]: nothing has
//!    been written but the used-up `state`, and the MCP request is still
//!    pending, so the page offers "Try again", which starts over for the
//!    same request;
//! 3. the identity is resolved ([`resolve`]); a refusal is
//!    [`UpstreamError::NotAllowed`] or [`UpstreamError::Disabled`];
//! 4. a new Latchkey session starts for the local user, and the HTTP layer
//!    continues the MCP request exactly as after a password sign-in.
//!
//! Every outcome is logged once at info with the provider id and a result
//! name; codes, tokens, `state` and `nonce` never are.

pub mod config;
pub mod oidc;
pub mod resolve;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::secret::SecretString;
use latchkey_store::{PendingRecord, SecretHash, StoreError};
use serde::{Deserialize, Serialize};

use crate::Service;
use crate::clock::add;
use crate::error::FlowError;
use crate::secrets::random_bytes;
use crate::sessions::NewSession;

pub use config::{UpstreamAlgorithm, UpstreamProvider};
pub use oidc::{IdTokenError, UpstreamClaims, UpstreamFailure};
pub use resolve::Resolution;

use oidc::ProviderClient;

/// The `kind` of the pending records this module stores.
pub const PENDING_KIND: &str = "upstream";

/// How long a started upstream sign-in may take (10 minutes).
pub const PENDING_UPSTREAM_TTL: Duration = Duration::from_secs(600);

/// The length of `state` and `nonce`: 32 random bytes, base64url.
const RANDOM_LEN: usize = 43;

/// Why an upstream sign-in went no further.
#[derive(Debug)]
pub enum UpstreamError {
    /// No provider has this id.
    UnknownProvider,
    /// The MCP authorization request the sign-in continues is unknown or
    /// expired (at the start).
    RequestExpired,
    /// The callback's `state` is missing, unknown, used, expired, or was
    /// started by another browser or for another provider.
    Expired,
    /// The provider failed or refused midway; retryable.
    Failed {
        /// The provider.
        provider: String,
        /// The MCP request handle to retry for ("" for none).
        request: String,
        /// What went wrong.
        failure: UpstreamFailure,
    },
    /// The upstream identity is not linked and may not be linked or
    /// provisioned.
    NotAllowed {
        /// The provider.
        provider: String,
        /// The MCP request handle ("" for none).
        request: String,
    },
    /// The local user is disabled.
    Disabled {
        /// The provider.
        provider: String,
        /// The MCP request handle ("" for none).
        request: String,
    },
    /// Storage or an internal failure.
    Flow(FlowError),
}

impl From<FlowError> for UpstreamError {
    fn from(error: FlowError) -> UpstreamError {
        UpstreamError::Flow(error)
    }
}

impl From<StoreError> for UpstreamError {
    fn from(error: StoreError) -> UpstreamError {
        UpstreamError::Flow(FlowError::from(error))
    }
}

/// What the provider sent back to the callback. The code is a secret.
#[derive(Debug, Default)]
pub struct UpstreamCallback {
    /// `state`.
    pub state: Option<String>,
    /// `code`.
    pub code: Option<SecretString>,
    /// `error`.
    pub error: Option<String>,
    /// `iss` (RFC 9207), when the provider sends it.
    pub iss: Option<String>,
}

/// A finished upstream sign-in.
#[derive(Debug)]
pub struct UpstreamLogin {
    /// The MCP request handle to continue ("" for none).
    pub request: String,
    /// The signed-in local user.
    pub user_id: String,
    /// How the identity was resolved.
    pub resolution: Resolution,
    /// The new session (its cookie value goes to the browser).
    pub session: NewSession,
}

/// The stored state of a started upstream sign-in.
#[derive(Debug, Serialize, Deserialize)]
struct PendingUpstream {
    provider: String,
    nonce: String,
    code_verifier: String,
    request: String,
    /// base64url SHA-256 of the browser's login CSRF cookie.
    browser: String,
}

/// The providers and the HTTP client used to reach them.
#[derive(Debug)]
pub(crate) struct Upstreams {
    providers: Vec<Arc<ProviderClient>>,
    http: reqwest::Client,
}

impl Upstreams {
    /// Clients for `providers`; fails only if the HTTP client cannot be
    /// built (no TLS backend).
    pub(crate) fn new(providers: &[UpstreamProvider]) -> Result<Upstreams, String> {
        let http = reqwest::Client::builder()
            .timeout(oidc::UPSTREAM_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the upstream HTTP client: {error}"))?;
        Ok(Upstreams {
            providers: providers
                .iter()
                .cloned()
                .map(|provider| Arc::new(ProviderClient::new(provider)))
                .collect(),
            http,
        })
    }

    fn get(&self, id: &str) -> Option<&Arc<ProviderClient>> {
        self.providers
            .iter()
            .find(|client| client.provider.id == id)
    }
}

/// A random base64url value of 32 bytes.
fn random_value(service: &Service) -> Result<String, FlowError> {
    let bytes: [u8; 32] = random_bytes(service.random())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The binding of a login to a browser: SHA-256 of its login CSRF cookie.
fn browser_binding(cookie: &str) -> String {
    URL_SAFE_NO_PAD.encode(SecretHash::of(cookie).as_bytes())
}

impl Service {
    /// The configured upstream providers, in configuration order.
    pub fn upstream_providers(&self) -> &[UpstreamProvider] {
        &self.config().upstreams
    }

    /// The origins a sign-in page's forms may end at for the upstream
    /// buttons: each provider's issuer and, once discovered, its
    /// authorization endpoint (`form-action` governs the redirect that
    /// follows a form post).
    pub fn upstream_form_targets(&self) -> Vec<String> {
        let mut targets = Vec::new();
        for client in &self.inner.upstreams.providers {
            for origin in [
                client.provider.issuer_origin(),
                client.authorization_origin(),
            ]
            .into_iter()
            .flatten()
            {
                if !targets.contains(&origin) {
                    targets.push(origin);
                }
            }
        }
        targets
    }

    /// Fetches every provider's discovery document once, so that the
    /// sign-in page knows their endpoints; failures are logged and
    /// retried on first use. Never fails: a provider that is down must
    /// not keep Latchkey from starting.
    pub async fn warm_upstreams(&self) {
        for client in &self.inner.upstreams.providers {
            match client
                .discovery(&self.inner.upstreams.http, self.now())
                .await
            {
                Ok(_) => {
                    tracing::info!(provider = %client.provider.id, "upstream provider discovered");
                }
                Err(failure) => tracing::warn!(
                    provider = %client.provider.id,
                    %failure,
                    "upstream provider not reachable yet; will retry at the first sign-in"
                ),
            }
        }
    }

    /// Starts an upstream sign-in (module docs); returns the provider URL
    /// to send the browser to. `request` is the pending MCP request handle
    /// ("" for a sign-in to the account page); `browser_cookie` is the
    /// browser's login CSRF cookie, already checked by the caller.
    #[tracing::instrument(skip_all, fields(provider = %provider_id))]
    pub async fn begin_upstream_login(
        &self,
        provider_id: &str,
        request: &str,
        browser_cookie: &str,
    ) -> Result<String, UpstreamError> {
        let Some(client) = self.inner.upstreams.get(provider_id) else {
            return Err(UpstreamError::UnknownProvider);
        };
        if !request.is_empty() && self.find_pending_authorization(request).await?.is_none() {
            return Err(UpstreamError::RequestExpired);
        }
        let failed = |failure: UpstreamFailure| {
            tracing::info!(provider = %provider_id, result = "unavailable", %failure, "upstream sign-in");
            UpstreamError::Failed {
                provider: provider_id.to_owned(),
                request: request.to_owned(),
                failure,
            }
        };
        let now = self.now();
        let discovery = client
            .discovery(&self.inner.upstreams.http, now)
            .await
            .map_err(failed)?;
        let verifier = CodeVerifier::generate(self.random())
            .map_err(|error| FlowError::Internal(format!("PKCE verifier: {error}")))?;
        let nonce = random_value(self)?;
        let pending = PendingUpstream {
            provider: provider_id.to_owned(),
            nonce: nonce.clone(),
            code_verifier: verifier.as_str().to_owned(),
            request: request.to_owned(),
            browser: browser_binding(browser_cookie),
        };
        let payload = serde_json::to_string(&pending).map_err(|error| {
            FlowError::Internal(format!(
                "cannot serialize a pending upstream login: {error}"
            ))
        })?;
        let expires_at = add(now, PENDING_UPSTREAM_TTL);
        let mut stored_state = None;
        for _ in 0..2 {
            let state = random_value(self)?;
            let record = PendingRecord {
                pending_hash: SecretHash::of(&state),
                kind: PENDING_KIND.to_owned(),
                payload: payload.clone(),
                expires_at,
            };
            match self.inner.store.insert_pending(&record).await {
                Ok(()) => {
                    stored_state = Some(state);
                    break;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        let Some(state) = stored_state else {
            return Err(FlowError::Internal("two state collisions in a row".to_owned()).into());
        };
        let mut url = url::Url::parse(&discovery.authorization_endpoint).map_err(|error| {
            failed(UpstreamFailure::Discovery(format!(
                "the authorization endpoint does not parse: {error}"
            )))
        })?;
        let provider = &client.provider;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair(
                "redirect_uri",
                &provider.redirect_uri(self.config().endpoint_base()),
            )
            .append_pair("scope", &provider.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", CodeChallenge::s256(&verifier).as_str())
            .append_pair("code_challenge_method", "S256");
        tracing::debug!(provider = %provider_id, "upstream sign-in started");
        Ok(url.into())
    }

    /// Finishes an upstream sign-in at the callback (module docs).
    /// `browser_cookie` is the request's login CSRF cookie, if any.
    #[tracing::instrument(skip_all, fields(provider = %provider_id))]
    pub async fn finish_upstream_login(
        &self,
        provider_id: &str,
        callback: &UpstreamCallback,
        browser_cookie: Option<&str>,
    ) -> Result<UpstreamLogin, UpstreamError> {
        let outcome = self
            .finish_upstream_inner(provider_id, callback, browser_cookie)
            .await;
        let result = match &outcome {
            Ok(login) => login.resolution.as_str(),
            Err(UpstreamError::UnknownProvider) => "unknown_provider",
            Err(UpstreamError::RequestExpired | UpstreamError::Expired) => "state_refused",
            Err(UpstreamError::Failed { failure, .. }) => match failure {
                UpstreamFailure::Denied { .. } => "denied_upstream",
                UpstreamFailure::IdToken(_) => "id_token_refused",
                UpstreamFailure::IssuerMismatch => "issuer_mismatch",
                _ => "unavailable",
            },
            Err(UpstreamError::NotAllowed { .. }) => "not_allowed",
            Err(UpstreamError::Disabled { .. }) => "disabled",
            Err(UpstreamError::Flow(_)) => "error",
        };
        match &outcome {
            Err(UpstreamError::Failed { failure, .. }) => {
                tracing::info!(provider = %provider_id, result, %failure, "upstream sign-in");
            }
            Ok(login) => {
                tracing::info!(provider = %provider_id, result, user_id = %login.user_id, "upstream sign-in");
            }
            Err(_) => tracing::info!(provider = %provider_id, result, "upstream sign-in"),
        }
        outcome
    }

    async fn finish_upstream_inner(
        &self,
        provider_id: &str,
        callback: &UpstreamCallback,
        browser_cookie: Option<&str>,
    ) -> Result<UpstreamLogin, UpstreamError> {
        let Some(client) = self.inner.upstreams.get(provider_id) else {
            return Err(UpstreamError::UnknownProvider);
        };
        let Some(state) = callback
            .state
            .as_deref()
            .filter(|state| state.len() == RANDOM_LEN)
        else {
            return Err(UpstreamError::Expired);
        };
        let now = self.now();
        let Some(record) = self
            .inner
            .store
            .take_pending(&SecretHash::of(state), now)
            .await?
            .filter(|record| record.kind == PENDING_KIND)
        else {
            return Err(UpstreamError::Expired);
        };
        let pending: PendingUpstream = serde_json::from_str(&record.payload).map_err(|error| {
            FlowError::Internal(format!("a pending upstream login does not parse: {error}"))
        })?;
        let same_browser = browser_cookie.is_some_and(|cookie| {
            latchkey_protocol::secret::constant_time_eq(
                browser_binding(cookie).as_bytes(),
                pending.browser.as_bytes(),
            )
        });
        if pending.provider != provider_id || !same_browser {
            return Err(UpstreamError::Expired);
        }
        let failed = |failure: UpstreamFailure| UpstreamError::Failed {
            provider: provider_id.to_owned(),
            request: pending.request.clone(),
            failure,
        };
        let provider = &client.provider;
        if let Some(error) = &callback.error {
            let error = if error.len() <= 64 && error.bytes().all(|byte| byte.is_ascii_graphic()) {
                error.clone()
            } else {
                "an unreadable error".to_owned()
            };
            return Err(failed(UpstreamFailure::Denied { error }));
        }
        if let Some(iss) = &callback.iss
            && iss != &provider.issuer
        {
            return Err(failed(UpstreamFailure::IssuerMismatch));
        }
        let Some(code) = &callback.code else {
            return Err(failed(UpstreamFailure::Exchange(
                "the callback carries no code".to_owned(),
            )));
        };
        let http = &self.inner.upstreams.http;
        let discovery = client.discovery(http, now).await.map_err(failed)?;
        let tokens = client
            .exchange(
                http,
                &discovery,
                code,
                &pending.code_verifier,
                &provider.redirect_uri(self.config().endpoint_base()),
            )
            .await
            .map_err(failed)?;
        let mut claims = client
            .validate_id_token(http, &discovery, &tokens.id_token, &pending.nonce, now)
            .await
            .map_err(failed)?;
        if provider.userinfo_fallback
            && (claims.email.is_none() || !claims.email_verified)
            && let Some(access_token) = &tokens.access_token
        {
            claims = client
                .userinfo(http, &discovery, access_token, claims)
                .await
                .map_err(failed)?;
        }
        drop(tokens);
        let (user_id, resolution) = match self
            .resolve_upstream_identity(provider, &claims, now)
            .await?
        {
            resolve::Outcome::Resolved {
                user_id,
                resolution,
            } => (user_id, resolution),
            resolve::Outcome::NotAllowed => {
                return Err(UpstreamError::NotAllowed {
                    provider: provider_id.to_owned(),
                    request: pending.request,
                });
            }
            resolve::Outcome::Disabled => {
                return Err(UpstreamError::Disabled {
                    provider: provider_id.to_owned(),
                    request: pending.request,
                });
            }
        };
        let session = self.create_session(&user_id, now).await?;
        Ok(UpstreamLogin {
            request: pending.request,
            user_id,
            resolution,
            session,
        })
    }
}
