//! Authorization requests (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, RFC 7636,
//! RFC 8707, OIDC `prompt`), parsed in the order RFC 6749 §4.1.2.1 requires.
//!
//! The order is enforced by the types:
//! 1. [`AuthorizationRequest::parse`] reads only what identifies the client
//!    and where to send it: `client_id`, `redirect_uri` and `state`. Its
//!    errors (and malformed query strings) must be shown to the user,
//!    never redirected.
//! 2. The caller looks the client up, then calls
//!    [`PendingAuthorizationRequest::resolve_redirect_uri`] with the
//!    client's registered URIs. Its errors are also shown, never
//!    redirected: an unvalidated redirect URI is an open redirect.
//! 3. Only with the [`RedirectTarget`] that step 2 produced can the caller
//!    call [`PendingAuthorizationRequest::validate`] for the rest
//!    (`response_type`, PKCE, `scope`, `resource`, `prompt`). Its errors
//!    are [`AuthorizationError`]s, which carry the target and `state` and
//!    are sent back to the client as a redirect with `iss` (RFC 9207).
//!
//! A `RedirectTarget` cannot be built any other way, so an error redirect
//! to an unvalidated URI does not type-check.

use std::fmt;

use super::{FormParams, ParamsError};
use crate::error::{ErrorCode, OAuthError};
use crate::pkce::{CodeChallenge, CodeChallengeMethod};
use crate::redirect::{RedirectUri, append_query, match_redirect_uri};
use crate::resource::ResourceUri;
use crate::scope::ScopeSet;

/// The first stage of an authorization request: the client and redirect
/// URI are known but not yet validated.
#[derive(Debug, Clone)]
pub struct PendingAuthorizationRequest {
    client_id: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    params: FormParams,
}

/// Where the authorization response goes: a redirect URI validated against
/// the client's registration. Only
/// [`PendingAuthorizationRequest::resolve_redirect_uri`] creates one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    uri: String,
    sent_in_request: bool,
}

impl RedirectTarget {
    /// The URI to redirect to: the requested one (which may differ from
    /// the registered one in the port of a loopback URI), or the only
    /// registered URI when the request had none.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// Whether the authorization request carried `redirect_uri`; if so the
    /// token request must repeat it (RFC 6749 §4.1.3).
    pub fn sent_in_request(&self) -> bool {
        self.sent_in_request
    }

    /// The success redirect: `code`, `state` (if the client sent one) and
    /// `iss` (RFC 6749 §4.1.2, RFC 9207 §2).
    pub fn success_url(&self, code: &str, state: Option<&str>, iss: &str) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        serializer.append_pair("code", code);
        if let Some(state) = state {
            serializer.append_pair("state", state);
        }
        serializer.append_pair("iss", iss);
        append_query(&self.uri, &serializer.finish())
    }

    /// The error redirect: `error`, `error_description`, `state` and `iss`
    /// (RFC 6749 §4.1.2.1, RFC 9207 §2).
    pub fn error_url(&self, error: &OAuthError, state: Option<&str>, iss: &str) -> String {
        append_query(&self.uri, &error.redirect_query(state, iss))
    }
}

/// The `prompt` parameter (OIDC Core §3.1.2.1): a space-separated list.
/// Unknown values are ignored, as unknown parameters are (RFC 6749 §3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: no user interaction may happen; fail with
    /// `login_required`, `consent_required` or `interaction_required`.
    pub none: bool,
    /// `login`: re-authenticate the user.
    pub login: bool,
    /// `consent`: ask for consent even if given before (MCP clients send
    /// this with `offline_access`).
    pub consent: bool,
    /// `select_account`: let the user pick an account.
    pub select_account: bool,
}

impl Prompt {
    /// Parses the parameter; `none` together with any other value is
    /// `invalid_request` (OIDC Core §3.1.2.1).
    pub fn parse(prompt: Option<&str>) -> Result<Prompt, ParamsError> {
        let mut parsed = Prompt::default();
        let mut others = false;
        for value in prompt.unwrap_or_default().split(' ') {
            match value {
                "none" => parsed.none = true,
                "login" => parsed.login = true,
                "consent" => parsed.consent = true,
                "select_account" => parsed.select_account = true,
                _ => {}
            }
            others |= matches!(value, "login" | "consent" | "select_account");
        }
        if parsed.none && others {
            return Err(ParamsError::InvalidParameter {
                name: "prompt",
                reason: "none cannot be combined with other values",
            });
        }
        Ok(parsed)
    }
}

/// A fully validated authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// The client identifier as sent.
    pub client_id: String,
    /// Where the response goes.
    pub redirect_uri: RedirectTarget,
    /// The requested scopes; `None` when absent (the server's default
    /// applies, RFC 6749 §3.3).
    pub scope: Option<ScopeSet>,
    /// The client's `state`, echoed back unchanged.
    pub state: Option<String>,
    /// The PKCE challenge, stored with the code.
    pub code_challenge: CodeChallenge,
    /// The PKCE method (always S256).
    pub code_challenge_method: CodeChallengeMethod,
    /// The requested resource (RFC 8707), canonicalized. Whether this
    /// server serves it is the caller's check
    /// ([`crate::resource::ResourceSet`]).
    pub resource: Option<ResourceUri>,
    /// The `prompt` values.
    pub prompt: Prompt,
    /// The OIDC `nonce`, passed through to an ID token if one is issued.
    pub nonce: Option<String>,
}

impl AuthorizationRequest {
    /// Stage 1: reads `client_id`, `redirect_uri` and `state`. Errors here
    /// must be shown to the user, never redirected.
    pub fn parse(params: &FormParams) -> Result<PendingAuthorizationRequest, ParamsError> {
        let client_id = params.require("client_id")?.to_owned();
        Ok(PendingAuthorizationRequest {
            client_id,
            redirect_uri: params.optional("redirect_uri"),
            state: params.optional("state"),
            params: params.clone(),
        })
    }

    /// The success redirect URL for this request (see
    /// [`RedirectTarget::success_url`]).
    pub fn success_url(&self, code: &str, iss: &str) -> String {
        self.redirect_uri
            .success_url(code, self.state.as_deref(), iss)
    }

    /// An error redirect URL for this request, for errors found after
    /// validation (unknown resource, scope refused by policy, user denied
    /// consent).
    pub fn error_url(&self, error: &OAuthError, iss: &str) -> String {
        self.redirect_uri
            .error_url(error, self.state.as_deref(), iss)
    }
}

impl PendingAuthorizationRequest {
    /// The `client_id`, to look the client up.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The `redirect_uri` as sent, if any.
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// The `state` as sent, if any.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Stage 2: checks `redirect_uri` against the client's registered
    /// URIs ([`RedirectUri::matches`]). When the request has none, the only
    /// registered URI is used (RFC 6749 §3.1.2.3); with several registered
    /// it is required. Errors must be shown to the user, never redirected.
    pub fn resolve_redirect_uri(
        &self,
        registered: &[RedirectUri],
    ) -> Result<RedirectTarget, ParamsError> {
        match &self.redirect_uri {
            Some(requested) => match_redirect_uri(registered, requested)
                .map(|_| RedirectTarget {
                    uri: requested.clone(),
                    sent_in_request: true,
                })
                .ok_or(ParamsError::RedirectUriNotRegistered),
            None => match registered {
                [only] => Ok(RedirectTarget {
                    uri: only.as_str().to_owned(),
                    sent_in_request: false,
                }),
                _ => Err(ParamsError::RedirectUriRequired),
            },
        }
    }

    /// Stage 3: validates everything else. Errors come back as
    /// [`AuthorizationError`]s to be redirected to `redirect`.
    ///
    /// Rules: `response_type` is required and must be `code`
    /// (`unsupported_response_type` otherwise); `response_mode` may only be
    /// `query`; `code_challenge` is required (OAuth 2.1 §4.1.1) and must be
    /// S256-shaped; `code_challenge_method` must be `S256` (absent means
    /// `plain`, RFC 7636 §4.3, and is refused); `scope` must parse
    /// (`invalid_scope`); at most one `resource`, well-formed
    /// (`invalid_target`); `prompt=none` stands alone.
    pub fn validate(
        &self,
        redirect: RedirectTarget,
    ) -> Result<AuthorizationRequest, AuthorizationError> {
        match self.validate_parameters(&redirect) {
            Ok(request) => Ok(request),
            Err(error) => Err(AuthorizationError {
                error: OAuthError::from(error),
                redirect,
                state: self.state.clone(),
            }),
        }
    }

    fn validate_parameters(
        &self,
        redirect: &RedirectTarget,
    ) -> Result<AuthorizationRequest, ParamsError> {
        let params = &self.params;
        match params.require("response_type")? {
            "code" => {}
            other => {
                return Err(ParamsError::UnsupportedResponseType(crate::error::echo(
                    other,
                )));
            }
        }
        if params
            .get("response_mode")
            .is_some_and(|mode| mode != "query")
        {
            return Err(ParamsError::InvalidParameter {
                name: "response_mode",
                reason: "only query is supported",
            });
        }
        let code_challenge = CodeChallenge::parse(params.require("code_challenge")?)?;
        let code_challenge_method =
            CodeChallengeMethod::parse_optional(params.get("code_challenge_method"))?;
        let scope = params.scope()?;
        let resource = params.single_resource()?;
        let prompt = Prompt::parse(params.get("prompt"))?;
        Ok(AuthorizationRequest {
            client_id: self.client_id.clone(),
            redirect_uri: redirect.clone(),
            scope,
            state: self.state.clone(),
            code_challenge,
            code_challenge_method,
            resource,
            prompt,
            nonce: params.optional("nonce"),
        })
    }
}

/// An authorization request error that may be redirected to the client:
/// the redirect URI was validated first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationError {
    error: OAuthError,
    redirect: RedirectTarget,
    state: Option<String>,
}

impl AuthorizationError {
    /// The OAuth error.
    pub fn error(&self) -> &OAuthError {
        &self.error
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.error.code()
    }

    /// Where the error goes.
    pub fn redirect(&self) -> &RedirectTarget {
        &self.redirect
    }

    /// The client's `state`.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The URL to redirect the user agent to, with `error`,
    /// `error_description`, `state` and `iss`.
    pub fn redirect_url(&self, iss: &str) -> String {
        self.redirect
            .error_url(&self.error, self.state.as_deref(), iss)
    }
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for AuthorizationError {}
