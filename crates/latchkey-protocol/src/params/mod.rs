//! Request parameters (RFC 6749 §3.1, §3.2) and the typed requests built
//! from them.
//!
//! [`FormParams`] parses `application/x-www-form-urlencoded` bodies and
//! query strings under the rules of RFC 6749 §3.1:
//! - a parameter sent more than once is refused with `invalid_request`
//!   naming it, except `resource`, which RFC 8707 allows to repeat (the
//!   typed requests then decide what to do with several);
//! - a parameter sent without a value is treated as omitted;
//! - decoding is strict: a `%` not followed by two hex digits, or bytes
//!   that are not UTF-8, make the whole request `invalid_request` rather
//!   than being silently replaced (lossy decoding could make two different
//!   byte strings look equal);
//! - the body length, the number of parameters, and each name and value
//!   are capped ([`FormLimits`]).
//!
//! The typed requests live in submodules: [`AuthorizationRequest`] (with
//! the validation ordering of RFC 6749 §4.1.2.1 built into its API),
//! [`TokenRequest`], [`RevocationRequest`] and [`IntrospectionRequest`].
//! Client authentication is in [`crate::client_auth`].

mod authorization;
mod token;

use std::fmt;

use crate::error::{ErrorCode, OAuthError, echo};
use crate::pkce::PkceError;
use crate::resource::{ResourceError, ResourceUri};
use crate::scope::{ScopeError, ScopeSet};

pub use authorization::{
    AuthorizationError, AuthorizationRequest, PendingAuthorizationRequest, Prompt, RedirectTarget,
};
pub use token::{IntrospectionRequest, RevocationRequest, TokenRequest, TokenTypeHint};

/// Parameters that may legitimately appear more than once (RFC 8707 §2).
pub const MULTI_VALUED_PARAMETERS: [&str; 1] = ["resource"];

/// Size limits applied while parsing parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// The longest body or query string, in bytes.
    pub max_total_len: usize,
    /// The most parameters (name=value pairs, empty ones included).
    pub max_parameters: usize,
    /// The longest decoded parameter name, in bytes.
    pub max_name_len: usize,
    /// The longest decoded value, in bytes. Large enough for JWT access
    /// tokens sent to revocation or introspection.
    pub max_value_len: usize,
}

impl Default for FormLimits {
    fn default() -> FormLimits {
        FormLimits {
            max_total_len: 32 * 1024,
            max_parameters: 64,
            max_name_len: 128,
            max_value_len: 8 * 1024,
        }
    }
}

/// Why request parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The body or query is longer than the limit.
    #[error("the request is too large")]
    TooLarge,
    /// More parameters than the limit.
    #[error("the request has too many parameters")]
    TooManyParameters,
    /// A parameter name longer than the limit.
    #[error("a parameter name is too long")]
    NameTooLong,
    /// A value longer than the limit.
    #[error("the {0} parameter is too long")]
    ValueTooLong(String),
    /// Bad percent-encoding or invalid UTF-8.
    #[error("the request is not valid application/x-www-form-urlencoded UTF-8")]
    MalformedEncoding,
    /// A parameter sent more than once (RFC 6749 §3.1).
    #[error("the {0} parameter is repeated")]
    DuplicateParameter(String),
    /// A required parameter is missing or empty.
    #[error("the {0} parameter is required")]
    MissingParameter(&'static str),
    /// A parameter has a value that is not allowed.
    #[error("the {name} parameter is invalid: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// `response_type` other than `code`.
    #[error("response_type {0} is not supported: only code is")]
    UnsupportedResponseType(String),
    /// `grant_type` other than the supported ones.
    #[error(
        "grant_type {0} is not supported: use authorization_code, refresh_token or client_credentials"
    )]
    UnsupportedGrantType(String),
    /// `redirect_uri` matches none of the client's registered URIs.
    #[error("the redirect_uri is not registered for this client")]
    RedirectUriNotRegistered,
    /// `redirect_uri` omitted while the client registered several (or none).
    #[error("the redirect_uri parameter is required: the client has several registered")]
    RedirectUriRequired,
    /// A PKCE parameter is missing or invalid.
    #[error("{0}")]
    Pkce(PkceError),
    /// `scope` is invalid.
    #[error("{0}")]
    Scope(ScopeError),
    /// `resource` is invalid, or repeated.
    #[error("{0}")]
    Resource(ResourceError),
}

impl ParamsError {
    /// The OAuth error code: `invalid_scope` for scopes, `invalid_target`
    /// for resources, `unsupported_response_type` and
    /// `unsupported_grant_type` for those, the PKCE error's own code, and
    /// `invalid_request` for everything else (RFC 6749 §4.1.2.1, §5.2).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ParamsError::UnsupportedResponseType(_) => ErrorCode::UnsupportedResponseType,
            ParamsError::UnsupportedGrantType(_) => ErrorCode::UnsupportedGrantType,
            ParamsError::Pkce(error) => error.error_code(),
            ParamsError::Scope(error) => error.error_code(),
            ParamsError::Resource(error) => error.error_code(),
            _ => ErrorCode::InvalidRequest,
        }
    }
}

impl From<ParamsError> for OAuthError {
    fn from(error: ParamsError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

impl From<PkceError> for ParamsError {
    fn from(error: PkceError) -> ParamsError {
        ParamsError::Pkce(error)
    }
}

impl From<ScopeError> for ParamsError {
    fn from(error: ScopeError) -> ParamsError {
        ParamsError::Scope(error)
    }
}

impl From<ResourceError> for ParamsError {
    fn from(error: ResourceError) -> ParamsError {
        ParamsError::Resource(error)
    }
}

/// Decoded form parameters with the RFC 6749 §3.1 rules applied.
///
/// `Debug` shows parameter names only: values include codes, tokens and
/// client secrets.
///
/// ```
/// use latchkey_protocol::params::{FormParams, ParamsError};
///
/// let params = FormParams::parse(b"grant_type=authorization_code&code=abc&scope=&x=%2B+1").unwrap();
/// assert_eq!(params.get("grant_type"), Some("authorization_code"));
/// assert_eq!(params.get("scope"), None); // empty means absent
/// assert_eq!(params.get("x"), Some("+ 1"));
/// assert_eq!(
///     FormParams::parse(b"code=a&code=b"),
///     Err(ParamsError::DuplicateParameter("code".into()))
/// );
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FormParams {
    pairs: Vec<(String, String)>,
}

impl FormParams {
    /// Parses a form body with the default [`FormLimits`].
    pub fn parse(body: &[u8]) -> Result<FormParams, ParamsError> {
        FormParams::parse_with_limits(body, &FormLimits::default())
    }

    /// Parses a query string (a leading `?` is ignored) with the default
    /// [`FormLimits`].
    pub fn from_query(query: &str) -> Result<FormParams, ParamsError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        FormParams::parse(query.as_bytes())
    }

    /// Parses a form body with explicit limits.
    pub fn parse_with_limits(body: &[u8], limits: &FormLimits) -> Result<FormParams, ParamsError> {
        if body.len() > limits.max_total_len {
            return Err(ParamsError::TooLarge);
        }
        let mut names: Vec<String> = Vec::new();
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut count = 0_usize;
        for segment in body.split(|byte| *byte == b'&') {
            if segment.is_empty() {
                continue;
            }
            count += 1;
            if count > limits.max_parameters {
                return Err(ParamsError::TooManyParameters);
            }
            let (raw_name, raw_value) = match segment.iter().position(|byte| *byte == b'=') {
                Some(index) => (
                    segment.get(..index).unwrap_or_default(),
                    segment.get(index + 1..).unwrap_or_default(),
                ),
                None => (segment, &b""[..]),
            };
            let name = form_decode(raw_name).ok_or(ParamsError::MalformedEncoding)?;
            if name.len() > limits.max_name_len {
                return Err(ParamsError::NameTooLong);
            }
            let value = form_decode(raw_value).ok_or(ParamsError::MalformedEncoding)?;
            if value.len() > limits.max_value_len {
                return Err(ParamsError::ValueTooLong(echo(&name)));
            }
            if names.contains(&name) && !MULTI_VALUED_PARAMETERS.contains(&name.as_str()) {
                return Err(ParamsError::DuplicateParameter(echo(&name)));
            }
            names.push(name.clone());
            if !value.is_empty() {
                pairs.push((name, value));
            }
        }
        Ok(FormParams { pairs })
    }

    /// The value of a parameter; `None` when absent or empty. For a
    /// multi-valued parameter, the first value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a parameter, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of a required parameter.
    pub fn require(&self, name: &'static str) -> Result<&str, ParamsError> {
        self.get(name).ok_or(ParamsError::MissingParameter(name))
    }

    /// Whether a parameter is present with a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// All (name, value) pairs with non-empty values, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The number of non-empty parameters.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no non-empty parameters.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// An optional scope parameter.
    pub(crate) fn scope(&self) -> Result<Option<ScopeSet>, ParamsError> {
        match self.get("scope") {
            Some(scope) => Ok(Some(ScopeSet::parse(scope)?)),
            None => Ok(None),
        }
    }

    /// The `resource` parameter, at most one (after canonicalization:
    /// repeating the same resource is harmless). Latchkey binds each token
    /// to one audience, so several distinct resources are `invalid_target`
    /// (RFC 8707 §2 lets a server refuse what it cannot honour).
    pub(crate) fn single_resource(&self) -> Result<Option<ResourceUri>, ParamsError> {
        let mut found: Option<ResourceUri> = None;
        for raw in self.get_all("resource") {
            let parsed = ResourceUri::parse(raw)?;
            match &found {
                Some(existing) if *existing != parsed => {
                    return Err(ParamsError::Resource(ResourceError::Multiple));
                }
                Some(_) => {}
                None => found = Some(parsed),
            }
        }
        Ok(found)
    }

    /// An optional plain string parameter, owned.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }
}

impl fmt::Debug for FormParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.pairs.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Strict `application/x-www-form-urlencoded` decoding of one name or
/// value: `+` is a space, `%XX` a byte, and the result must be UTF-8.
/// `None` on any malformed input.
pub(crate) fn form_decode(raw: &[u8]) -> Option<String> {
    let mut decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut index = 0;
    while let Some(&byte) = raw.get(index) {
        match byte {
            b'+' => {
                decoded.push(b' ');
                index += 1;
            }
            b'%' => {
                let high = raw.get(index + 1).copied().and_then(hex_value)?;
                let low = raw.get(index + 2).copied().and_then(hex_value)?;
                decoded.push(high * 16 + low);
                index += 3;
            }
            other => {
                decoded.push(other);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).ok()
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
