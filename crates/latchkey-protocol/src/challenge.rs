//! `WWW-Authenticate: Bearer` challenges (RFC 6750 §3, RFC 9728 §5.1).
//!
//! Building: [`BearerChallenge::to_header_value`] writes `Bearer` followed
//! by the present parameters in a fixed order (`realm`, `error`,
//! `error_description`, `scope`, `resource_metadata`), every value as a
//! quoted-string with `"` and `\` escaped (RFC 9110 §5.6.4). MCP clients
//! parse this header with simple regular expressions, so values are always
//! quoted and a single challenge is sent. Characters that cannot appear in
//! a header at all (controls, non-ASCII) are written as `?`; printable
//! ASCII round-trips exactly through [`BearerChallenge::parse`].
//!
//! Parsing: [`BearerChallenge::parse`] reads a whole `WWW-Authenticate`
//! value, which may hold several challenges (`Basic realm="x", Bearer
//! error="invalid_token"`), and returns the first Bearer one. Scheme and
//! parameter names are case-insensitive (RFC 9110 §11.1, §11.2); quoted
//! values are unescaped; token68 forms are skipped. As a concession to
//! servers that forget to quote URLs, an unquoted value runs to the next
//! comma or whitespace. Parsing never panics, on any input.

use std::fmt;

use crate::error::{ErrorCode, sanitize_description};
use crate::scope::ScopeSet;

/// A Bearer challenge. All parameters are optional; build with the
/// constructors and setters, which sanitize what they are given.
///
/// ```
/// use latchkey_protocol::challenge::BearerChallenge;
/// use latchkey_protocol::scope::ScopeSet;
///
/// let challenge = BearerChallenge::insufficient_scope(
///     &ScopeSet::parse("files:write").unwrap(),
///     "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
/// );
/// let header = challenge.to_header_value();
/// assert_eq!(
///     header,
///     "Bearer error=\"insufficient_scope\", scope=\"files:write\", \
///      resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
/// );
/// assert_eq!(BearerChallenge::parse(&header).unwrap(), challenge);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    /// The protection space (RFC 6750 §3).
    pub realm: Option<String>,
    /// The error code (RFC 6750 §3.1), as a string so that foreign
    /// challenges with unknown codes still parse.
    pub error: Option<String>,
    /// A human-readable explanation.
    pub error_description: Option<String>,
    /// The space-delimited scopes the request needs.
    pub scope: Option<String>,
    /// The protected resource metadata URL (RFC 9728 §5.1).
    pub resource_metadata: Option<String>,
}

/// Why a `WWW-Authenticate` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeParseError {
    /// The header is not a list of challenges.
    #[error("malformed WWW-Authenticate header at byte {0}")]
    Malformed(usize),
    /// A quoted-string is not closed.
    #[error("unterminated quoted-string in WWW-Authenticate header")]
    UnterminatedQuote,
    /// A parameter appears twice in the Bearer challenge (RFC 9110 §11.2).
    #[error("parameter {0} appears twice in the Bearer challenge")]
    DuplicateParameter(String),
    /// There is no Bearer challenge.
    #[error("no Bearer challenge in WWW-Authenticate header")]
    NoBearerChallenge,
}

impl BearerChallenge {
    /// A challenge for a request without a token: only
    /// `resource_metadata` (and no `error`, RFC 6750 §3.1), so the client
    /// can discover the authorization server (RFC 9728 §5.1).
    pub fn unauthorized(resource_metadata: &str) -> BearerChallenge {
        BearerChallenge::default().with_resource_metadata(resource_metadata)
    }

    /// A 401 challenge for an invalid, expired or revoked token.
    pub fn invalid_token(description: &str, resource_metadata: &str) -> BearerChallenge {
        BearerChallenge::default()
            .with_error(ErrorCode::InvalidToken)
            .with_error_description(description)
            .with_resource_metadata(resource_metadata)
    }

    /// A 403 step-up challenge listing every scope the request needs
    /// (MCP: all of them at once, not one at a time).
    pub fn insufficient_scope(scope: &ScopeSet, resource_metadata: &str) -> BearerChallenge {
        BearerChallenge::default()
            .with_error(ErrorCode::InsufficientScope)
            .with_scope(scope)
            .with_resource_metadata(resource_metadata)
    }

    /// Sets `realm`.
    pub fn with_realm(mut self, realm: &str) -> BearerChallenge {
        self.realm = Some(realm.to_owned());
        self
    }

    /// Sets `error`.
    pub fn with_error(mut self, error: ErrorCode) -> BearerChallenge {
        self.error = Some(error.as_str().to_owned());
        self
    }

    /// Sets `error_description`, sanitized to the RFC 6750 §3 character set
    /// (no `"` or `\`, which naive header parsers mishandle); dropped when
    /// nothing is left.
    pub fn with_error_description(mut self, description: &str) -> BearerChallenge {
        let sanitized = sanitize_description(description);
        self.error_description = if sanitized.is_empty() {
            None
        } else {
            Some(sanitized)
        };
        self
    }

    /// Sets `scope`; an empty set leaves it unset.
    pub fn with_scope(mut self, scope: &ScopeSet) -> BearerChallenge {
        self.scope = if scope.is_empty() {
            None
        } else {
            Some(scope.to_string())
        };
        self
    }

    /// Sets `resource_metadata`.
    pub fn with_resource_metadata(mut self, url: &str) -> BearerChallenge {
        self.resource_metadata = Some(url.to_owned());
        self
    }

    /// The `error` as a known code, if it is one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.error.as_deref().and_then(ErrorCode::parse)
    }

    /// The `WWW-Authenticate` header value.
    pub fn to_header_value(&self) -> String {
        let mut header = String::from("Bearer");
        let parameters = [
            ("realm", &self.realm),
            ("error", &self.error),
            ("error_description", &self.error_description),
            ("scope", &self.scope),
            ("resource_metadata", &self.resource_metadata),
        ];
        let mut first = true;
        for (name, value) in parameters {
            let Some(value) = value else { continue };
            header.push_str(if first { " " } else { ", " });
            first = false;
            header.push_str(name);
            header.push_str("=\"");
            for character in value.chars() {
                match character {
                    '"' | '\\' => {
                        header.push('\\');
                        header.push(character);
                    }
                    ' '..='~' => header.push(character),
                    _ => header.push('?'),
                }
            }
            header.push('"');
        }
        header
    }

    /// Parses a `WWW-Authenticate` value and returns its first Bearer
    /// challenge. Unknown parameters are ignored.
    pub fn parse(header: &str) -> Result<BearerChallenge, ChallengeParseError> {
        let challenges = parse_challenges(header)?;
        let bearer = challenges
            .into_iter()
            .find(|challenge| challenge.scheme.eq_ignore_ascii_case("bearer"))
            .ok_or(ChallengeParseError::NoBearerChallenge)?;
        let mut parsed = BearerChallenge::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in bearer.parameters {
            let lowered = name.to_ascii_lowercase();
            if seen.contains(&lowered) {
                return Err(ChallengeParseError::DuplicateParameter(lowered));
            }
            let slot = match lowered.as_str() {
                "realm" => &mut parsed.realm,
                "error" => &mut parsed.error,
                "error_description" => &mut parsed.error_description,
                "scope" => &mut parsed.scope,
                "resource_metadata" => &mut parsed.resource_metadata,
                _ => {
                    seen.push(lowered);
                    continue;
                }
            };
            *slot = Some(value);
            seen.push(lowered);
        }
        Ok(parsed)
    }
}

impl fmt::Display for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_header_value())
    }
}

/// One challenge of a `WWW-Authenticate` list.
struct Challenge {
    scheme: String,
    parameters: Vec<(String, String)>,
}

/// A cursor over the header bytes. Every access goes through `peek`, which
/// returns `None` past the end, so no input can make it panic.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.position += 1;
        }
    }

    fn skip_whitespace_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.position += 1;
        }
    }

    /// Reads a run of bytes accepted by `accept`.
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> String {
        let start = self.position;
        while self.peek().is_some_and(&accept) {
            self.position += 1;
        }
        let run = self.bytes.get(start..self.position).unwrap_or_default();
        String::from_utf8_lossy(run).into_owned()
    }

    /// Reads a quoted-string after its opening quote, unescaping
    /// quoted-pairs (RFC 9110 §5.6.4).
    fn quoted_string(&mut self) -> Result<String, ChallengeParseError> {
        let mut value: Vec<u8> = Vec::new();
        loop {
            match self.peek() {
                None => return Err(ChallengeParseError::UnterminatedQuote),
                Some(b'"') => {
                    self.position += 1;
                    return Ok(String::from_utf8_lossy(&value).into_owned());
                }
                Some(b'\\') => {
                    self.position += 1;
                    let escaped = self.peek().ok_or(ChallengeParseError::UnterminatedQuote)?;
                    value.push(escaped);
                    self.position += 1;
                }
                Some(byte) => {
                    value.push(byte);
                    self.position += 1;
                }
            }
        }
    }
}

/// tchar (RFC 9110 §5.6.2).
fn is_token_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// token68 characters (RFC 9110 §11.2), without the trailing `=`s.
fn is_token68_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"-._~+/".contains(&byte)
}

/// An unquoted parameter value, leniently: anything up to a separator.
fn is_bare_value_char(byte: u8) -> bool {
    !matches!(byte, b',' | b' ' | b'\t' | b'"') && !byte.is_ascii_control()
}

/// Parses `#challenge` (RFC 9110 §11.6.1):
/// `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`.
/// After a comma, `name =` continues the current challenge's parameters
/// and a bare token starts the next challenge.
fn parse_challenges(header: &str) -> Result<Vec<Challenge>, ChallengeParseError> {
    let mut cursor = Cursor {
        bytes: header.as_bytes(),
        position: 0,
    };
    let mut challenges: Vec<Challenge> = Vec::new();
    cursor.skip_whitespace_and_commas();
    while cursor.peek().is_some() {
        let scheme = cursor.take_while(is_token_char);
        if scheme.is_empty() {
            return Err(ChallengeParseError::Malformed(cursor.position));
        }
        let mut challenge = Challenge {
            scheme,
            parameters: Vec::new(),
        };
        cursor.skip_whitespace();
        // A token68 may only follow the scheme after a space; after a comma
        // the scheme has ended (`Bearer, Basic realm="x"`).
        let mut first_item = cursor.peek() != Some(b',');
        loop {
            cursor.skip_whitespace_and_commas();
            let item_start = cursor.position;
            if cursor.peek().is_none() {
                break;
            }
            let name = cursor.take_while(is_token_char);
            cursor.skip_whitespace();
            if !name.is_empty() && cursor.peek() == Some(b'=') {
                cursor.position += 1;
                cursor.skip_whitespace();
                match cursor.peek() {
                    Some(b'"') => {
                        cursor.position += 1;
                        let value = cursor.quoted_string()?;
                        challenge.parameters.push((name, value));
                        first_item = false;
                        continue;
                    }
                    Some(byte) if is_bare_value_char(byte) && byte != b'=' => {
                        let value = cursor.take_while(is_bare_value_char);
                        challenge.parameters.push((name, value));
                        first_item = false;
                        continue;
                    }
                    _ => {}
                }
            }
            // Not a parameter: a token68 right after the scheme, or the
            // scheme of the next challenge.
            cursor.position = item_start;
            if first_item {
                let token68 = cursor.take_while(is_token68_char);
                while cursor.peek() == Some(b'=') {
                    cursor.position += 1;
                }
                let at_boundary = matches!(cursor.peek(), None | Some(b',' | b' ' | b'\t'));
                if token68.is_empty() || !at_boundary {
                    return Err(ChallengeParseError::Malformed(cursor.position));
                }
                first_item = false;
                continue;
            }
            break;
        }
        challenges.push(challenge);
        cursor.skip_whitespace_and_commas();
    }
    Ok(challenges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6750_examples_parse() {
        let challenge = BearerChallenge::parse(r#"Bearer realm="example""#).unwrap();
        assert_eq!(challenge.realm.as_deref(), Some("example"));

        let challenge = BearerChallenge::parse(
            "Bearer realm=\"example\",\n error=\"invalid_token\",\n error_description=\"The access token expired\""
                .replace('\n', "")
                .as_str(),
        )
        .unwrap();
        assert_eq!(challenge.error_code(), Some(ErrorCode::InvalidToken));
        assert_eq!(
            challenge.error_description.as_deref(),
            Some("The access token expired")
        );
    }

    #[test]
    fn builds_only_present_parameters_with_bearer_first() {
        assert_eq!(BearerChallenge::default().to_header_value(), "Bearer");
        assert_eq!(
            BearerChallenge::unauthorized("https://r.example/.well-known/oauth-protected-resource")
                .to_header_value(),
            "Bearer resource_metadata=\"https://r.example/.well-known/oauth-protected-resource\""
        );
        let challenge =
            BearerChallenge::invalid_token("token \"expired\"", "https://r/m").with_realm("mcp");
        assert_eq!(
            challenge.to_header_value(),
            "Bearer realm=\"mcp\", error=\"invalid_token\", error_description=\"token 'expired'\", resource_metadata=\"https://r/m\""
        );
    }

    #[test]
    fn quotes_and_backslashes_are_escaped_and_round_trip() {
        let challenge = BearerChallenge {
            realm: Some("a \"quoted\" \\ realm".to_owned()),
            ..BearerChallenge::default()
        };
        let header = challenge.to_header_value();
        assert_eq!(header, r#"Bearer realm="a \"quoted\" \\ realm""#);
        assert_eq!(BearerChallenge::parse(&header).unwrap(), challenge);
    }

    #[test]
    fn unprintable_characters_become_question_marks() {
        let challenge = BearerChallenge {
            realm: Some("new\nline é".to_owned()),
            ..BearerChallenge::default()
        };
        assert_eq!(challenge.to_header_value(), "Bearer realm=\"new?line ?\"");
    }

    #[test]
    fn picks_the_bearer_challenge_among_several() {
        let header =
            r#"Basic realm="x", Bearer error="invalid_token", scope="a b", DPoP algs="ES256""#;
        let challenge = BearerChallenge::parse(header).unwrap();
        assert_eq!(challenge.error.as_deref(), Some("invalid_token"));
        assert_eq!(challenge.scope.as_deref(), Some("a b"));
        assert_eq!(challenge.realm, None);

        let header = r#"Negotiate abc123==, bearer realm="r""#;
        assert_eq!(
            BearerChallenge::parse(header).unwrap().realm.as_deref(),
            Some("r")
        );
        assert_eq!(
            BearerChallenge::parse(r#"Basic realm="x""#),
            Err(ChallengeParseError::NoBearerChallenge)
        );
        assert_eq!(
            BearerChallenge::parse(""),
            Err(ChallengeParseError::NoBearerChallenge)
        );
    }

    #[test]
    fn a_comma_after_the_scheme_ends_it() {
        let challenge = BearerChallenge::parse(r#"Bearer, Basic realm="x""#).unwrap();
        assert_eq!(challenge, BearerChallenge::default());
        let challenge = BearerChallenge::parse(r#"Basic, Bearer realm="y""#).unwrap();
        assert_eq!(challenge.realm.as_deref(), Some("y"));
        // An empty list element before the first parameter is allowed.
        let challenge = BearerChallenge::parse(r#"Bearer , realm="z""#).unwrap();
        assert_eq!(challenge.realm.as_deref(), Some("z"));
    }

    #[test]
    fn names_are_case_insensitive_and_unknown_parameters_ignored() {
        let challenge =
            BearerChallenge::parse(r#"BEARER Error="invalid_token", Foo="bar", SCOPE=mcp"#)
                .unwrap();
        assert_eq!(challenge.error.as_deref(), Some("invalid_token"));
        assert_eq!(challenge.scope.as_deref(), Some("mcp"));
    }

    #[test]
    fn unquoted_values_are_accepted_leniently() {
        let challenge = BearerChallenge::parse(
            "Bearer resource_metadata=https://r.example/.well-known/oauth-protected-resource, error=invalid_token",
        )
        .unwrap();
        assert_eq!(
            challenge.resource_metadata.as_deref(),
            Some("https://r.example/.well-known/oauth-protected-resource")
        );
        assert_eq!(challenge.error.as_deref(), Some("invalid_token"));
    }

    #[test]
    fn whitespace_around_equals_and_empty_list_elements() {
        let challenge =
            BearerChallenge::parse(r#" , Bearer  realm = "r" ,, scope="s" , "#).unwrap();
        assert_eq!(challenge.realm.as_deref(), Some("r"));
        assert_eq!(challenge.scope.as_deref(), Some("s"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(
            BearerChallenge::parse(r#"Bearer realm="open"#),
            Err(ChallengeParseError::UnterminatedQuote)
        );
        assert_eq!(
            BearerChallenge::parse(r#"Bearer realm="a", realm="b""#),
            Err(ChallengeParseError::DuplicateParameter("realm".to_owned()))
        );
        assert!(matches!(
            BearerChallenge::parse("\"Bearer\""),
            Err(ChallengeParseError::Malformed(0))
        ));
        assert!(BearerChallenge::parse("Bearer =x").is_err());
    }

    #[test]
    fn error_code_is_typed_when_known() {
        let challenge = BearerChallenge::parse(r#"Bearer error="insufficient_scope""#).unwrap();
        assert_eq!(challenge.error_code(), Some(ErrorCode::InsufficientScope));
        let foreign = BearerChallenge::parse(r#"Bearer error="use_dpop_nonce""#).unwrap();
        assert_eq!(foreign.error_code(), None);
        assert_eq!(foreign.error.as_deref(), Some("use_dpop_nonce"));
    }

    #[test]
    fn empty_scope_sets_leave_scope_unset() {
        let challenge = BearerChallenge::insufficient_scope(&ScopeSet::new(), "https://r/m");
        assert_eq!(challenge.scope, None);
        assert_eq!(challenge.to_string(), challenge.to_header_value());
    }
}
