//! OAuth error codes and the `{"error", "error_description"}` error object.
//!
//! [`ErrorCode`] lists every error code an OAuth 2.1 / MCP authorization
//! server or protected resource can send: RFC 6749 §4.1.2.1 and §5.2,
//! RFC 7591 §3.2.2, RFC 6750 §3.1, RFC 8707 §2, RFC 7009 §2.2.1 and the
//! OpenID Connect `prompt=none` errors (OIDC Core §3.1.2.6).
//!
//! [`OAuthError`] pairs a code with an optional human-readable description.
//! Invariant: a description held by an `OAuthError` only contains the
//! characters RFC 6749 §5.2 allows in `error_description`
//! (%x20-21 / %x23-5B / %x5D-7E) and is at most
//! [`MAX_DESCRIPTION_LEN`] characters long, so it is always safe to put in a
//! query string, a JSON body or a `WWW-Authenticate` quoted-string. The
//! constructors sanitize; there is no way to build an `OAuthError` around an
//! unsanitized description.
//!
//! The HTTP status is offered as a plain `u16` so that this crate stays free
//! of any HTTP library.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest `error_description` kept, in characters; longer ones are cut.
///
/// Descriptions are for developers, and a bound keeps a reflected value from
/// growing a redirect URL or a header without limit.
pub const MAX_DESCRIPTION_LEN: usize = 512;

/// Every OAuth error code Latchkey can send or understand.
///
/// Serializes as the registered snake_case string (`"invalid_request"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// RFC 6749 §4.1.2.1, §5.2: the request is missing a parameter, repeats
    /// one, or is otherwise malformed.
    InvalidRequest,
    /// RFC 6749 §4.1.2.1, §5.2: the client may not use this grant or
    /// response type.
    UnauthorizedClient,
    /// RFC 6749 §4.1.2.1: the resource owner or the server denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the server does not support this `response_type`.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1, §5.2: the requested scope is invalid, unknown or
    /// malformed, or exceeds what was granted.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: an unexpected condition on the server.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server is temporarily overloaded or in
    /// maintenance.
    TemporarilyUnavailable,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the grant (code, refresh token) is invalid, expired,
    /// revoked, or was issued to another client or redirect URI.
    InvalidGrant,
    /// RFC 6749 §5.2: the server does not support this `grant_type`.
    UnsupportedGrantType,
    /// RFC 7591 §3.2.2: a registered redirect URI is invalid.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2: a client metadata field is invalid.
    InvalidClientMetadata,
    /// RFC 7591 §3.2.2: the software statement is invalid.
    InvalidSoftwareStatement,
    /// RFC 7591 §3.2.2: the software statement is not approved.
    UnapprovedSoftwareStatement,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed or
    /// otherwise invalid.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks the scope the request needs.
    InsufficientScope,
    /// RFC 8707 §2: the `resource` is invalid, unknown or not allowed.
    InvalidTarget,
    /// RFC 7009 §2.2.1: the server cannot revoke this type of token.
    UnsupportedTokenType,
    /// OIDC Core §3.1.2.6: `prompt=none` but the user must log in.
    LoginRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` but the user must consent.
    ConsentRequired,
    /// OIDC Core §3.1.2.6: `prompt=none` but some interaction is needed.
    InteractionRequired,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation tables.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::InvalidRequest,
        ErrorCode::UnauthorizedClient,
        ErrorCode::AccessDenied,
        ErrorCode::UnsupportedResponseType,
        ErrorCode::InvalidScope,
        ErrorCode::ServerError,
        ErrorCode::TemporarilyUnavailable,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidRedirectUri,
        ErrorCode::InvalidClientMetadata,
        ErrorCode::InvalidSoftwareStatement,
        ErrorCode::UnapprovedSoftwareStatement,
        ErrorCode::InvalidToken,
        ErrorCode::InsufficientScope,
        ErrorCode::InvalidTarget,
        ErrorCode::UnsupportedTokenType,
        ErrorCode::LoginRequired,
        ErrorCode::ConsentRequired,
        ErrorCode::InteractionRequired,
    ];

    /// The registered string for this code, as sent in `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidSoftwareStatement => "invalid_software_statement",
            ErrorCode::UnapprovedSoftwareStatement => "unapproved_software_statement",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::InteractionRequired => "interaction_required",
        }
    }

    /// Looks a code up by its registered string; `None` for unknown codes.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|candidate| candidate.as_str() == code)
    }

    /// The HTTP status a response carrying this code should have.
    ///
    /// 400 unless stated otherwise: RFC 6749 §5.2 uses 401 for
    /// `invalid_client` when the client tried to authenticate (the HTTP
    /// layer may choose 400 when it did not, as the RFC permits);
    /// RFC 6750 §3.1 uses 401 for `invalid_token` and 403 for
    /// `insufficient_scope`; `server_error` and `temporarily_unavailable`
    /// are the 500 and 503 their names describe (RFC 6749 §4.1.2.1 needed
    /// codes because a redirect cannot carry a status).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error response: a code and an optional, sanitized description.
///
/// Serializes as `{"error": "...", "error_description": "..."}` with the
/// description omitted when absent (RFC 6749 §5.2).
///
/// ```
/// use latchkey_protocol::error::{ErrorCode, OAuthError};
///
/// let error = OAuthError::invalid_request("the \"code\" parameter is missing");
/// assert_eq!(error.code(), ErrorCode::InvalidRequest);
/// // Quotes are not allowed in error_description (RFC 6749 §5.2).
/// assert_eq!(error.description(), Some("the 'code' parameter is missing"));
/// assert_eq!(error.status(), 400);
/// assert_eq!(
///     error.to_json().to_string(),
///     r#"{"error":"invalid_request","error_description":"the 'code' parameter is missing"}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OAuthError {
    #[serde(rename = "error")]
    code: ErrorCode,
    #[serde(rename = "error_description", skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// Generates one constructor per error code, each taking a description.
macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(description: impl Into<String>) -> OAuthError {
                OAuthError::with_description(ErrorCode::$code, description)
            }
        )*
    };
}

impl OAuthError {
    /// An error with no description.
    pub fn new(code: ErrorCode) -> OAuthError {
        OAuthError {
            code,
            description: None,
        }
    }

    /// An error with a description, sanitized as [`sanitize_description`]
    /// does; a description that sanitizes to nothing is dropped.
    pub fn with_description(code: ErrorCode, description: impl Into<String>) -> OAuthError {
        let sanitized = sanitize_description(&description.into());
        OAuthError {
            code,
            description: if sanitized.is_empty() {
                None
            } else {
                Some(sanitized)
            },
        }
    }

    constructors! {
        /// `invalid_request` with a description.
        invalid_request => InvalidRequest;
        /// `unauthorized_client` with a description.
        unauthorized_client => UnauthorizedClient;
        /// `access_denied` with a description.
        access_denied => AccessDenied;
        /// `unsupported_response_type` with a description.
        unsupported_response_type => UnsupportedResponseType;
        /// `invalid_scope` with a description.
        invalid_scope => InvalidScope;
        /// `server_error` with a description. Never put an internal cause
        /// here: log it and send something generic.
        server_error => ServerError;
        /// `temporarily_unavailable` with a description.
        temporarily_unavailable => TemporarilyUnavailable;
        /// `invalid_client` with a description.
        invalid_client => InvalidClient;
        /// `invalid_grant` with a description.
        invalid_grant => InvalidGrant;
        /// `unsupported_grant_type` with a description.
        unsupported_grant_type => UnsupportedGrantType;
        /// `invalid_redirect_uri` with a description.
        invalid_redirect_uri => InvalidRedirectUri;
        /// `invalid_client_metadata` with a description.
        invalid_client_metadata => InvalidClientMetadata;
        /// `invalid_token` with a description.
        invalid_token => InvalidToken;
        /// `insufficient_scope` with a description.
        insufficient_scope => InsufficientScope;
        /// `invalid_target` with a description.
        invalid_target => InvalidTarget;
        /// `unsupported_token_type` with a description.
        unsupported_token_type => UnsupportedTokenType;
        /// `login_required` with a description.
        login_required => LoginRequired;
        /// `consent_required` with a description.
        consent_required => ConsentRequired;
        /// `interaction_required` with a description.
        interaction_required => InteractionRequired;
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The sanitized description, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The HTTP status for this error; see [`ErrorCode::status`].
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON error object of RFC 6749 §5.2.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert(
            "error".to_owned(),
            serde_json::Value::String(self.code.as_str().to_owned()),
        );
        if let Some(description) = &self.description {
            object.insert(
                "error_description".to_owned(),
                serde_json::Value::String(description.clone()),
            );
        }
        serde_json::Value::Object(object)
    }

    /// The query string (without `?`) for an authorization error redirect:
    /// `error`, `error_description`, `state` and `iss`, form-urlencoded.
    ///
    /// `state` is echoed exactly as the client sent it (RFC 6749 §4.1.2.1);
    /// `iss` is the issuer identifier (RFC 9207 §2), sent on error responses
    /// too. Only use this once the redirect URI has been validated: errors
    /// about the client or the redirect URI itself are shown to the user and
    /// never redirected (RFC 6749 §4.1.2.1).
    ///
    /// ```
    /// use latchkey_protocol::error::OAuthError;
    ///
    /// let query = OAuthError::access_denied("the user said no")
    ///     .redirect_query(Some("xyz"), "https://auth.example.com");
    /// assert_eq!(
    ///     query,
    ///     "error=access_denied&error_description=the+user+said+no&state=xyz\
    ///      &iss=https%3A%2F%2Fauth.example.com"
    /// );
    /// ```
    pub fn redirect_query(&self, state: Option<&str>, iss: &str) -> String {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        serializer.append_pair("error", self.code.as_str());
        if let Some(description) = &self.description {
            serializer.append_pair("error_description", description);
        }
        if let Some(state) = state {
            serializer.append_pair("state", state);
        }
        serializer.append_pair("iss", iss);
        serializer.finish()
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.description {
            Some(description) => write!(f, "{}: {}", self.code, description),
            None => write!(f, "{}", self.code),
        }
    }
}

impl std::error::Error for OAuthError {}

impl From<ErrorCode> for OAuthError {
    fn from(code: ErrorCode) -> OAuthError {
        OAuthError::new(code)
    }
}

/// Whether `character` may appear in an `error_description`
/// (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E).
pub fn is_description_char(character: char) -> bool {
    matches!(character, '\x20'..='\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

/// Makes any text safe to use as an `error_description`.
///
/// Double quotes become single quotes and backslashes become slashes, so the
/// text keeps its meaning; control characters (newlines, tabs) become
/// spaces; any other character outside the RFC 6749 §5.2 set (all non-ASCII)
/// becomes `?`. Leading and trailing spaces are trimmed, and the result is
/// cut to [`MAX_DESCRIPTION_LEN`] characters.
///
/// ```
/// use latchkey_protocol::error::sanitize_description;
///
/// assert_eq!(sanitize_description("bad \"x\"\nat C:\\ é"), "bad 'x' at C:/ ?");
/// ```
pub fn sanitize_description(text: &str) -> String {
    let mut sanitized = String::with_capacity(text.len().min(MAX_DESCRIPTION_LEN));
    for character in text.chars().take(MAX_DESCRIPTION_LEN) {
        let replacement = match character {
            '"' => '\'',
            '\\' => '/',
            control if control.is_control() => ' ',
            allowed if is_description_char(allowed) => allowed,
            _ => '?',
        };
        sanitized.push(replacement);
    }
    sanitized.trim_matches(' ').to_owned()
}

/// The longest client-supplied value repeated in an error message.
const MAX_ECHO_LEN: usize = 64;

/// Cuts a client-supplied value before it goes into an error message, so
/// that a huge value cannot be reflected back in full.
pub(crate) fn echo(value: &str) -> String {
    let mut cut: String = value.chars().take(MAX_ECHO_LEN).collect();
    if cut.len() < value.len() {
        cut.push_str("...");
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string_and_serde() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
            assert_eq!(code.to_string(), code.as_str());
        }
        assert_eq!(ErrorCode::parse("Invalid_Request"), None);
        assert_eq!(ErrorCode::parse("no_such_error"), None);
    }

    #[test]
    fn registered_strings_match_the_rfcs() {
        let expected = [
            (ErrorCode::InvalidRequest, "invalid_request"),
            (ErrorCode::UnauthorizedClient, "unauthorized_client"),
            (ErrorCode::AccessDenied, "access_denied"),
            (
                ErrorCode::UnsupportedResponseType,
                "unsupported_response_type",
            ),
            (ErrorCode::InvalidScope, "invalid_scope"),
            (ErrorCode::ServerError, "server_error"),
            (ErrorCode::TemporarilyUnavailable, "temporarily_unavailable"),
            (ErrorCode::InvalidClient, "invalid_client"),
            (ErrorCode::InvalidGrant, "invalid_grant"),
            (ErrorCode::UnsupportedGrantType, "unsupported_grant_type"),
            (ErrorCode::InvalidRedirectUri, "invalid_redirect_uri"),
            (ErrorCode::InvalidClientMetadata, "invalid_client_metadata"),
            (
                ErrorCode::InvalidSoftwareStatement,
                "invalid_software_statement",
            ),
            (
                ErrorCode::UnapprovedSoftwareStatement,
                "unapproved_software_statement",
            ),
            (ErrorCode::InvalidToken, "invalid_token"),
            (ErrorCode::InsufficientScope, "insufficient_scope"),
            (ErrorCode::InvalidTarget, "invalid_target"),
            (ErrorCode::UnsupportedTokenType, "unsupported_token_type"),
            (ErrorCode::LoginRequired, "login_required"),
            (ErrorCode::ConsentRequired, "consent_required"),
            (ErrorCode::InteractionRequired, "interaction_required"),
        ];
        for (code, string) in expected {
            assert_eq!(code.as_str(), string);
        }
    }

    #[test]
    fn statuses_follow_rfc_6749_and_6750() {
        assert_eq!(ErrorCode::InvalidRequest.status(), 400);
        assert_eq!(ErrorCode::InvalidGrant.status(), 400);
        assert_eq!(ErrorCode::InvalidTarget.status(), 400);
        assert_eq!(ErrorCode::InvalidClient.status(), 401);
        assert_eq!(ErrorCode::InvalidToken.status(), 401);
        assert_eq!(ErrorCode::InsufficientScope.status(), 403);
        assert_eq!(ErrorCode::ServerError.status(), 500);
        assert_eq!(ErrorCode::TemporarilyUnavailable.status(), 503);
        assert_eq!(OAuthError::invalid_client("x").status(), 401);
    }

    #[test]
    fn descriptions_are_sanitized_to_the_rfc_6749_character_set() {
        let error = OAuthError::invalid_request("line one\r\nsays \"hi\" \\ to ünïcode\u{7f}");
        let description = error.description().unwrap();
        assert!(
            description.chars().all(is_description_char),
            "{description}"
        );
        assert_eq!(description, "line one  says 'hi' / to ?n?code");
    }

    #[test]
    fn long_descriptions_are_cut() {
        let error = OAuthError::invalid_request("x".repeat(MAX_DESCRIPTION_LEN * 2));
        assert_eq!(error.description().unwrap().len(), MAX_DESCRIPTION_LEN);
    }

    #[test]
    fn empty_descriptions_are_dropped() {
        assert_eq!(OAuthError::invalid_grant("  \n ").description(), None);
        assert_eq!(
            OAuthError::invalid_grant("").to_json(),
            serde_json::json!({"error": "invalid_grant"})
        );
    }

    #[test]
    fn serializes_as_the_rfc_6749_error_object() {
        let error = OAuthError::invalid_scope("unknown scope 'admin'");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"error": "invalid_scope", "error_description": "unknown scope 'admin'"})
        );
        assert_eq!(serde_json::to_value(&error).unwrap(), error.to_json());
        assert_eq!(
            serde_json::to_value(OAuthError::new(ErrorCode::ServerError)).unwrap(),
            serde_json::json!({"error": "server_error"})
        );
    }

    #[test]
    fn redirect_query_carries_state_and_iss_per_rfc_9207() {
        let error = OAuthError::new(ErrorCode::InvalidTarget);
        assert_eq!(
            error.redirect_query(None, "https://as.example"),
            "error=invalid_target&iss=https%3A%2F%2Fas.example"
        );
        // State is opaque and must come back byte-for-byte after decoding.
        let state = "a b&c=d/é";
        let query = error.redirect_query(Some(state), "https://as.example/t1");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("error".to_owned(), "invalid_target".to_owned()),
                ("state".to_owned(), state.to_owned()),
                ("iss".to_owned(), "https://as.example/t1".to_owned()),
            ]
        );
    }

    #[test]
    fn display_shows_code_and_description() {
        assert_eq!(
            OAuthError::invalid_grant("code expired").to_string(),
            "invalid_grant: code expired"
        );
        assert_eq!(
            OAuthError::from(ErrorCode::AccessDenied).to_string(),
            "access_denied"
        );
    }
}
