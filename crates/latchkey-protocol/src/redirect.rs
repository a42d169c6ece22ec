//! Redirect URIs: what may be registered, and how requests are matched
//! (RFC 6749 §3.1.2, OAuth 2.1 §2.3 and §8.4.2, RFC 8252 §7.1 and §7.3,
//! RFC 9700 §4.1).
//!
//! Registration rules ([`RedirectUri::parse_for_registration`]):
//! - absolute, at most [`MAX_REDIRECT_URI_LEN`] characters, only characters
//!   RFC 3986 allows, no fragment (RFC 6749 §3.1.2), no userinfo, no `*`
//!   in the host (no wildcards: matching is exact);
//! - `javascript:`, `data:`, `file:`, `vbscript:`, `about:`, `blob:`,
//!   `ftp:`, `ws:` and `wss:` are refused outright;
//! - `https` is allowed for both application types;
//! - `http` only for a loopback host: `127.0.0.1`, `[::1]` or `localhost`.
//!   This holds for web clients too. RFC 8252 reserves loopback redirects
//!   for native apps, but the MCP TypeScript SDK v1 registers
//!   `http://localhost:{port}/callback` without sending `application_type`,
//!   which then defaults to `web` (OIDC Registration §2); refusing it would
//!   break the most common MCP client. A loopback redirect can only reach
//!   the user's own machine, so allowing it to web clients adds no open
//!   redirect; the consent page should still warn when every redirect URI
//!   is loopback (MCP security considerations);
//! - private-use schemes (RFC 8252 §7.1: a reverse domain name containing a
//!   dot, such as `com.example.app:/callback`) only for `native` clients.
//!
//! Matching ([`RedirectUri::matches`]) is exact string comparison, with one
//! exception from RFC 8252 §7.3 and OAuth 2.1 §8.4.2: for an `http`
//! loopback redirect URI the port may differ at request time, since native
//! apps listen on an ephemeral port; scheme, host, path and query must
//! still be byte-identical. `http://localhost` gets the same rule: MCP
//! clients register it, and the port is the only thing they cannot know in
//! advance. `https` loopback URIs are matched exactly.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{ErrorCode, OAuthError};
use crate::uri::{self, SplitError};

/// The longest redirect URI accepted, in characters.
pub const MAX_REDIRECT_URI_LEN: usize = 2000;

/// Schemes that are never acceptable redirect targets: they run code in
/// the browser, read local files, or are not HTTP navigations.
const FORBIDDEN_SCHEMES: [&str; 9] = [
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "ftp",
    "ws",
    "wss",
];

/// The OIDC Registration `application_type`, which decides which redirect
/// URIs a client may register. Serializes lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplicationType {
    /// A hosted web application; the default when the client sends nothing
    /// (OIDC Registration §2).
    #[default]
    Web,
    /// A desktop, mobile or command-line application.
    Native,
}

impl ApplicationType {
    /// Parses `"web"` or `"native"` (case-sensitive, as registered).
    pub fn parse(value: &str) -> Option<ApplicationType> {
        match value {
            "web" => Some(ApplicationType::Web),
            "native" => Some(ApplicationType::Native),
            _ => None,
        }
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationType::Web => "web",
            ApplicationType::Native => "native",
        }
    }
}

impl fmt::Display for ApplicationType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    /// The URI is empty.
    #[error("the redirect URI is empty")]
    Empty,
    /// The URI is longer than [`MAX_REDIRECT_URI_LEN`].
    #[error("the redirect URI is longer than {MAX_REDIRECT_URI_LEN} characters")]
    TooLong,
    /// A character RFC 3986 does not allow, or a bad percent-encoding.
    #[error("the redirect URI contains a character that is not allowed in a URI")]
    InvalidCharacter,
    /// Not an absolute URI (RFC 6749 §3.1.2).
    #[error("the redirect URI must be an absolute URI (RFC 6749 section 3.1.2)")]
    NotAbsolute,
    /// A fragment, even an empty one (RFC 6749 §3.1.2).
    #[error("the redirect URI must not contain a fragment (RFC 6749 section 3.1.2)")]
    Fragment,
    /// Userinfo (`user@host`) in the authority.
    #[error("the redirect URI must not contain userinfo")]
    Userinfo,
    /// A `*` in the host.
    #[error("the redirect URI must not contain wildcards: it is matched exactly")]
    Wildcard,
    /// A scheme that is never a valid redirect target.
    #[error("the redirect URI scheme {0} is not allowed")]
    ForbiddenScheme(String),
    /// `http` with a host that is not loopback.
    #[error(
        "http redirect URIs are only allowed for loopback hosts (127.0.0.1, [::1], localhost): use https"
    )]
    HttpRequiresLoopback,
    /// A private-use scheme registered by a web client.
    #[error(
        "private-use URI schemes are only allowed for native clients: register with application_type native"
    )]
    PrivateUseSchemeRequiresNative,
    /// A non-http(s) scheme that is not a reverse domain name.
    #[error(
        "the redirect URI scheme {0} is not allowed: use https, loopback http, or a private-use scheme containing a dot (RFC 8252 section 7.1)"
    )]
    UnsupportedScheme(String),
    /// An http(s) URI without a host.
    #[error("the redirect URI has no host")]
    MissingHost,
    /// The host is written in a form browsers would rewrite (percent-encoded,
    /// shortened IPv4, non-canonical IPv6), which would make the host shown
    /// on the consent page differ from where the browser goes.
    #[error("the redirect URI host is not in canonical form")]
    NonCanonicalHost,
    /// The URL parser refused it.
    #[error("the redirect URI is not a valid URL: {0}")]
    Malformed(String),
}

impl RedirectUriError {
    /// `invalid_redirect_uri` (RFC 7591 §3.2.2). In an authorization request
    /// a redirect URI problem is never sent as a redirect: show the error to
    /// the user instead (RFC 6749 §4.1.2.1).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidRedirectUri
    }
}

impl From<RedirectUriError> for OAuthError {
    fn from(error: RedirectUriError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// A registered redirect URI, kept exactly as the client registered it.
///
/// ```
/// use latchkey_protocol::redirect::{ApplicationType, RedirectUri};
///
/// let registered =
///     RedirectUri::parse_for_registration("http://127.0.0.1/callback", ApplicationType::Native)
///         .unwrap();
/// assert!(registered.matches("http://127.0.0.1:51004/callback"));
/// assert!(!registered.matches("http://127.0.0.1:51004/callback/"));
///
/// let web = RedirectUri::parse_for_registration("https://app.example/cb", ApplicationType::Web)
///     .unwrap();
/// assert_eq!(web.host(), Some("app.example"));
/// assert!(web.matches("https://app.example/cb"));
/// assert!(!web.matches("https://app.example/cb?x=1"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RedirectUri {
    raw: String,
    scheme: String,
    host: Option<String>,
    loopback_pattern: Option<LoopbackPattern>,
}

/// An http loopback URI split around its port: requests match when they
/// are `prefix`, an optional `:port`, then exactly `rest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LoopbackPattern {
    prefix: String,
    rest: String,
}

impl RedirectUri {
    /// Validates a redirect URI for registration by a client of the given
    /// application type (rules in the module docs).
    pub fn parse_for_registration(
        raw: &str,
        application_type: ApplicationType,
    ) -> Result<RedirectUri, RedirectUriError> {
        if raw.is_empty() {
            return Err(RedirectUriError::Empty);
        }
        if raw.len() > MAX_REDIRECT_URI_LEN {
            return Err(RedirectUriError::TooLong);
        }
        if !uri::has_only_uri_characters(raw) {
            return Err(RedirectUriError::InvalidCharacter);
        }
        let parts = uri::split(raw).map_err(|error| match error {
            SplitError::NotAbsolute => RedirectUriError::NotAbsolute,
            SplitError::BadAuthority => RedirectUriError::Malformed("invalid authority".to_owned()),
        })?;
        let scheme = parts.scheme.to_ascii_lowercase();
        if FORBIDDEN_SCHEMES.contains(&scheme.as_str()) {
            return Err(RedirectUriError::ForbiddenScheme(scheme));
        }
        if parts.fragment.is_some() {
            return Err(RedirectUriError::Fragment);
        }
        if let Some(authority) = parts.authority {
            if authority.userinfo.is_some() {
                return Err(RedirectUriError::Userinfo);
            }
            if authority.host.contains('*') {
                return Err(RedirectUriError::Wildcard);
            }
        }
        let parsed =
            url::Url::parse(raw).map_err(|error| RedirectUriError::Malformed(error.to_string()))?;

        let is_http = scheme == "http";
        if is_http || scheme == "https" {
            let authority = parts.authority.ok_or(RedirectUriError::MissingHost)?;
            if authority.host.is_empty() {
                return Err(RedirectUriError::MissingHost);
            }
            if parsed.host_str() != Some(authority.host.to_ascii_lowercase().as_str()) {
                return Err(RedirectUriError::NonCanonicalHost);
            }
            let loopback = uri::is_loopback_host(authority.host);
            if is_http && !loopback {
                return Err(RedirectUriError::HttpRequiresLoopback);
            }
            let loopback_pattern = if is_http {
                loopback_pattern(raw, parts.scheme, authority.host)
            } else {
                None
            };
            return Ok(RedirectUri {
                raw: raw.to_owned(),
                scheme,
                host: parsed.host_str().map(str::to_owned),
                loopback_pattern,
            });
        }

        if !scheme.contains('.') {
            return Err(RedirectUriError::UnsupportedScheme(scheme));
        }
        if application_type != ApplicationType::Native {
            return Err(RedirectUriError::PrivateUseSchemeRequiresNative);
        }
        Ok(RedirectUri {
            raw: raw.to_owned(),
            scheme,
            host: parsed.host_str().map(str::to_owned),
            loopback_pattern: None,
        })
    }

    /// Whether an authorization or token request's `redirect_uri` matches
    /// this registered URI: exact string equality, except that an `http`
    /// loopback URI matches any port (RFC 8252 §7.3).
    pub fn matches(&self, requested: &str) -> bool {
        if requested == self.raw {
            return true;
        }
        let Some(pattern) = &self.loopback_pattern else {
            return false;
        };
        let Some(after_host) = requested.strip_prefix(pattern.prefix.as_str()) else {
            return false;
        };
        let rest = match after_host.strip_prefix(':') {
            Some(port_and_rest) => {
                let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
                let port = port_and_rest.get(..digits).unwrap_or_default();
                if !(1..=5).contains(&digits) || !port.parse::<u16>().is_ok_and(|port| port > 0) {
                    return false;
                }
                port_and_rest.get(digits..).unwrap_or_default()
            }
            None => after_host,
        };
        rest == pattern.rest
    }

    /// The URI exactly as registered.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The scheme, lowercased.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host as a browser would use it (lowercased; IPv6 in brackets),
    /// for display on the consent page; `None` for private-use schemes
    /// without an authority.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// Whether the host is `127.0.0.1`, `[::1]` or `localhost`, whatever the
    /// scheme. The consent page should warn when every redirect URI of a
    /// client is loopback: any local app could be behind it.
    pub fn is_loopback(&self) -> bool {
        self.host.as_deref().is_some_and(uri::is_loopback_host)
    }

    /// Whether the host is literally `localhost` (rather than an IP
    /// literal), which resolves through DNS and the hosts file.
    pub fn is_localhost(&self) -> bool {
        self.host.as_deref() == Some("localhost")
    }

    /// Whether the scheme is a private-use (reverse domain name) scheme.
    pub fn is_private_use_scheme(&self) -> bool {
        self.scheme != "http" && self.scheme != "https"
    }

    /// Whether the port may differ at request time (http loopback).
    pub fn allows_any_port(&self) -> bool {
        self.loopback_pattern.is_some()
    }
}

/// Splits an http loopback URI into the part before the port and the part
/// after it. The raw string was checked to contain `scheme://host`
/// literally (no userinfo), so `prefix` is exactly that.
fn loopback_pattern(raw: &str, scheme: &str, host: &str) -> Option<LoopbackPattern> {
    let prefix = format!("{scheme}://{host}");
    let after_host = raw.strip_prefix(prefix.as_str())?;
    let rest = match after_host.strip_prefix(':') {
        Some(port_and_rest) => {
            let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
            port_and_rest.get(digits..)?
        }
        None => after_host,
    };
    Some(LoopbackPattern {
        prefix,
        rest: rest.to_owned(),
    })
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl AsRef<str> for RedirectUri {
    fn as_ref(&self) -> &str {
        &self.raw
    }
}

impl Serialize for RedirectUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

/// The first registered redirect URI that `requested` matches.
///
/// ```
/// use latchkey_protocol::redirect::{match_redirect_uri, ApplicationType, RedirectUri};
///
/// let registered = vec![
///     RedirectUri::parse_for_registration("https://a.example/cb", ApplicationType::Web).unwrap(),
///     RedirectUri::parse_for_registration("http://localhost/cb", ApplicationType::Web).unwrap(),
/// ];
/// assert_eq!(
///     match_redirect_uri(&registered, "http://localhost:6274/cb").map(|uri| uri.as_str()),
///     Some("http://localhost/cb")
/// );
/// assert!(match_redirect_uri(&registered, "https://a.example/cb/../evil").is_none());
/// ```
pub fn match_redirect_uri<'a>(
    registered: &'a [RedirectUri],
    requested: &str,
) -> Option<&'a RedirectUri> {
    registered
        .iter()
        .find(|candidate| candidate.matches(requested))
}

/// Appends a form-urlencoded query to a redirect URI, keeping any query the
/// URI already has (RFC 6749 §3.1.2: the query component MUST be retained
/// when adding parameters).
///
/// ```
/// use latchkey_protocol::redirect::append_query;
///
/// assert_eq!(append_query("https://a.example/cb", "code=x"), "https://a.example/cb?code=x");
/// assert_eq!(append_query("https://a.example/cb?app=1", "code=x"), "https://a.example/cb?app=1&code=x");
/// assert_eq!(append_query("https://a.example/cb?", "code=x"), "https://a.example/cb?code=x");
/// ```
pub fn append_query(redirect_uri: &str, query: &str) -> String {
    let separator = match redirect_uri.find('?') {
        None => "?",
        Some(_) if redirect_uri.ends_with('?') || redirect_uri.ends_with('&') => "",
        Some(_) => "&",
    };
    if query.is_empty() {
        return redirect_uri.to_owned();
    }
    format!("{redirect_uri}{separator}{query}")
}

#[cfg(test)]
mod tests;
