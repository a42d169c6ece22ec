//! Client authentication at the token, revocation and introspection
//! endpoints (RFC 6749 §2.3, OAuth 2.1 §2.4).
//!
//! [`parse_basic`] decodes HTTP Basic credentials the way RFC 6749 §2.3.1
//! defines them: base64 of the form-urlencoded client id, `:`, and the
//! form-urlencoded secret. [`ClientCredentials::from_request`] decides how
//! a request authenticated (Basic, Post, or not at all) and enforces that
//! it used at most one method (RFC 6749 §2.3).
//!
//! Decisions:
//! - Basic with an empty password counts as no authentication by that
//!   client id (a public client identifying itself), as some OAuth
//!   libraries send it; a confidential client then fails authentication
//!   later because it has no secret to check.
//! - An `Authorization` header with another scheme is refused with
//!   `invalid_client`, and so are JWT client assertions
//!   (`client_assertion`), which Latchkey does not support.
//! - A body `client_id` next to Basic must name the same client.
//!
//! Secrets are [`SecretString`]s, redacted in `Debug`; compare them with
//! [`SecretString::constant_time_eq`] or against a stored hash.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::client::TokenEndpointAuthMethod;
use crate::error::{ErrorCode, OAuthError};
use crate::params::{FormParams, form_decode};
use crate::secret::SecretString;

/// The longest `Authorization` header value accepted, in bytes.
pub const MAX_AUTHORIZATION_HEADER_LEN: usize = 4096;

/// Standard base64, accepting input with or without padding: clients
/// differ, and the padding carries no information.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why client authentication could not even be attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientAuthError {
    /// The Basic credentials are malformed.
    #[error("malformed Basic client credentials: {0}")]
    MalformedBasic(&'static str),
    /// The `Authorization` header uses a scheme other than Basic.
    #[error("unsupported client authentication scheme: use Basic or client_secret_post")]
    UnsupportedScheme,
    /// A JWT client assertion (RFC 7523), which Latchkey does not support.
    #[error("client assertions (private_key_jwt, client_secret_jwt) are not supported")]
    AssertionNotSupported,
    /// More than one authentication method in one request (RFC 6749 §2.3).
    #[error("the request uses more than one client authentication method")]
    MultipleMethods,
    /// The body `client_id` differs from the authenticated one.
    #[error("client_id does not match the authenticated client")]
    ClientIdMismatch,
    /// Nothing identifies the client.
    #[error("client authentication is required: no client_id")]
    MissingClient,
}

impl ClientAuthError {
    /// `invalid_request` for requests that use several methods or name two
    /// clients (RFC 6749 §5.2), `invalid_client` otherwise.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ClientAuthError::MultipleMethods | ClientAuthError::ClientIdMismatch => {
                ErrorCode::InvalidRequest
            }
            _ => ErrorCode::InvalidClient,
        }
    }
}

impl From<ClientAuthError> for OAuthError {
    fn from(error: ClientAuthError) -> OAuthError {
        OAuthError::with_description(error.error_code(), error.to_string())
    }
}

/// Decodes `Basic base64(urlencode(id) ":" urlencode(secret))` into the
/// client id and secret (RFC 6749 §2.3.1). The scheme is case-insensitive.
///
/// ```
/// use latchkey_protocol::client_auth::parse_basic;
///
/// // RFC 6749 §2.3.1 example: s6BhdRkqt3 / 7Fjfp0ZBr1KtDRbnfVdmIw.
/// let (id, secret) = parse_basic("Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3").unwrap();
/// assert_eq!((id.as_str(), secret.as_str()), ("s6BhdRkqt3", "7Fjfp0ZBr1KtDRbnfVdmIw"));
/// ```
pub fn parse_basic(header_value: &str) -> Result<(String, String), ClientAuthError> {
    if header_value.len() > MAX_AUTHORIZATION_HEADER_LEN {
        return Err(ClientAuthError::MalformedBasic("the header is too long"));
    }
    let (scheme, credentials) = header_value
        .trim()
        .split_once(' ')
        .ok_or(ClientAuthError::MalformedBasic("no credentials"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ClientAuthError::UnsupportedScheme);
    }
    let decoded = BASIC_BASE64
        .decode(credentials.trim_start_matches(' '))
        .map_err(|_| ClientAuthError::MalformedBasic("not base64"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| ClientAuthError::MalformedBasic("not UTF-8"))?;
    let (raw_id, raw_secret) = decoded
        .split_once(':')
        .ok_or(ClientAuthError::MalformedBasic("no ':' separator"))?;
    let client_id = form_decode(raw_id.as_bytes()).ok_or(ClientAuthError::MalformedBasic(
        "bad encoding in the client id",
    ))?;
    let client_secret = form_decode(raw_secret.as_bytes()).ok_or(
        ClientAuthError::MalformedBasic("bad encoding in the secret"),
    )?;
    if client_id.is_empty() {
        return Err(ClientAuthError::MalformedBasic("empty client id"));
    }
    Ok((client_id, client_secret))
}

/// How a request identified and authenticated its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredentials {
    /// HTTP Basic (`client_secret_basic`).
    Basic {
        /// The client id.
        client_id: String,
        /// The presented secret.
        client_secret: SecretString,
    },
    /// Form body (`client_secret_post`).
    Post {
        /// The client id.
        client_id: String,
        /// The presented secret.
        client_secret: SecretString,
    },
    /// No authentication: a public client naming itself (`none`).
    None {
        /// The client id.
        client_id: String,
    },
}

impl ClientCredentials {
    /// Determines the client credentials of a token, revocation or
    /// introspection request from its `Authorization` header (if any) and
    /// its form parameters, refusing requests that use several methods.
    ///
    /// ```
    /// use latchkey_protocol::client_auth::ClientCredentials;
    /// use latchkey_protocol::params::FormParams;
    ///
    /// let public = FormParams::parse(b"grant_type=authorization_code&client_id=abc").unwrap();
    /// let credentials = ClientCredentials::from_request(None, &public).unwrap();
    /// assert_eq!(credentials.client_id(), "abc");
    /// assert!(credentials.secret().is_none());
    ///
    /// let both = FormParams::parse(b"client_id=abc&client_secret=s").unwrap();
    /// assert!(ClientCredentials::from_request(Some("Basic YWJjOnM="), &both).is_err());
    /// ```
    pub fn from_request(
        authorization: Option<&str>,
        params: &FormParams,
    ) -> Result<ClientCredentials, ClientAuthError> {
        if params.contains("client_assertion") || params.contains("client_assertion_type") {
            return Err(ClientAuthError::AssertionNotSupported);
        }
        let body_client_id = params.get("client_id");
        let body_secret = params.get("client_secret");
        if let Some(header) = authorization {
            let (client_id, client_secret) = parse_basic(header)?;
            if body_secret.is_some() {
                return Err(ClientAuthError::MultipleMethods);
            }
            if body_client_id.is_some_and(|body_id| body_id != client_id) {
                return Err(ClientAuthError::ClientIdMismatch);
            }
            return Ok(if client_secret.is_empty() {
                ClientCredentials::None { client_id }
            } else {
                ClientCredentials::Basic {
                    client_id,
                    client_secret: SecretString::new(client_secret),
                }
            });
        }
        let client_id = body_client_id
            .ok_or(ClientAuthError::MissingClient)?
            .to_owned();
        Ok(match body_secret {
            Some(secret) => ClientCredentials::Post {
                client_id,
                client_secret: SecretString::new(secret),
            },
            None => ClientCredentials::None { client_id },
        })
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        match self {
            ClientCredentials::Basic { client_id, .. }
            | ClientCredentials::Post { client_id, .. }
            | ClientCredentials::None { client_id } => client_id,
        }
    }

    /// The presented secret, if any.
    pub fn secret(&self) -> Option<&SecretString> {
        match self {
            ClientCredentials::Basic { client_secret, .. }
            | ClientCredentials::Post { client_secret, .. } => Some(client_secret),
            ClientCredentials::None { .. } => None,
        }
    }

    /// The method used, to compare with the registered
    /// `token_endpoint_auth_method`: a client must authenticate the way it
    /// registered.
    pub fn method(&self) -> TokenEndpointAuthMethod {
        match self {
            ClientCredentials::Basic { .. } => TokenEndpointAuthMethod::ClientSecretBasic,
            ClientCredentials::Post { .. } => TokenEndpointAuthMethod::ClientSecretPost,
            ClientCredentials::None { .. } => TokenEndpointAuthMethod::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn rfc_6749_example_decodes() {
        let (id, secret) =
            parse_basic("Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3").unwrap();
        assert_eq!(id, "s6BhdRkqt3");
        assert_eq!(secret, "7Fjfp0ZBr1KtDRbnfVdmIw");
    }

    #[test]
    fn ids_and_secrets_are_form_urldecoded() {
        let header = basic("https%3A%2F%2Fapp.example%2Fc", "a%2Bb+c%3Ad");
        let (id, secret) = parse_basic(&header).unwrap();
        assert_eq!(id, "https://app.example/c");
        assert_eq!(secret, "a+b c:d");
        // The first colon separates: a raw colon in the secret is kept.
        let (id, secret) = parse_basic(&basic("id", "x:y")).unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("id", "x:y"));
    }

    #[test]
    fn scheme_is_case_insensitive_and_padding_optional() {
        let unpadded = format!("bAsIc {}", STANDARD.encode("ab:c").trim_end_matches('='));
        assert_eq!(
            parse_basic(&unpadded).unwrap(),
            ("ab".to_owned(), "c".to_owned())
        );
    }

    #[test]
    fn malformed_basic_is_invalid_client() {
        let cases = [
            "Basic",
            "Basic !!!",
            &format!("Basic {}", STANDARD.encode("no-colon")),
            &format!("Basic {}", STANDARD.encode(":secret")),
            &format!("Basic {}", STANDARD.encode("id%zz:secret")),
            &format!("Basic {}", STANDARD.encode([0xff, b':', b'x'])),
            &format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_HEADER_LEN)),
        ];
        for header in cases {
            let error = parse_basic(header).unwrap_err();
            assert!(
                matches!(error, ClientAuthError::MalformedBasic(_)),
                "{header}: {error}"
            );
            assert_eq!(OAuthError::from(error).code(), ErrorCode::InvalidClient);
        }
        assert_eq!(
            parse_basic("Bearer abc"),
            Err(ClientAuthError::UnsupportedScheme)
        );
    }

    #[test]
    fn credentials_by_method() {
        let empty = FormParams::default();
        let basic_credentials =
            ClientCredentials::from_request(Some(&basic("id", "secret")), &empty).unwrap();
        assert_eq!(
            basic_credentials.method(),
            TokenEndpointAuthMethod::ClientSecretBasic
        );
        assert_eq!(basic_credentials.client_id(), "id");
        assert!(
            basic_credentials
                .secret()
                .unwrap()
                .constant_time_eq("secret")
        );

        let post = FormParams::parse(b"client_id=id&client_secret=secret").unwrap();
        let post_credentials = ClientCredentials::from_request(None, &post).unwrap();
        assert_eq!(
            post_credentials.method(),
            TokenEndpointAuthMethod::ClientSecretPost
        );
        assert_eq!(post_credentials.secret().unwrap().expose(), "secret");

        let public = FormParams::parse(b"client_id=id").unwrap();
        let public_credentials = ClientCredentials::from_request(None, &public).unwrap();
        assert_eq!(public_credentials.method(), TokenEndpointAuthMethod::None);
        assert!(public_credentials.secret().is_none());

        let empty_password =
            ClientCredentials::from_request(Some(&basic("id", "")), &empty).unwrap();
        assert_eq!(
            empty_password,
            ClientCredentials::None {
                client_id: "id".to_owned()
            }
        );
    }

    #[test]
    fn one_method_per_request() {
        let with_secret = FormParams::parse(b"client_secret=other").unwrap();
        assert_eq!(
            ClientCredentials::from_request(Some(&basic("id", "secret")), &with_secret),
            Err(ClientAuthError::MultipleMethods)
        );
        let same_id = FormParams::parse(b"client_id=id").unwrap();
        assert!(ClientCredentials::from_request(Some(&basic("id", "s")), &same_id).is_ok());
        let other_id = FormParams::parse(b"client_id=other").unwrap();
        assert_eq!(
            ClientCredentials::from_request(Some(&basic("id", "s")), &other_id),
            Err(ClientAuthError::ClientIdMismatch)
        );
        assert_eq!(
            OAuthError::from(ClientAuthError::MultipleMethods).code(),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn refusals() {
        let empty = FormParams::default();
        assert_eq!(
            ClientCredentials::from_request(None, &empty),
            Err(ClientAuthError::MissingClient)
        );
        assert_eq!(
            ClientCredentials::from_request(Some("Bearer token"), &empty),
            Err(ClientAuthError::UnsupportedScheme)
        );
        let assertion = FormParams::parse(
            b"client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z",
        )
        .unwrap();
        assert_eq!(
            ClientCredentials::from_request(None, &assertion),
            Err(ClientAuthError::AssertionNotSupported)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let credentials =
            ClientCredentials::from_request(Some(&basic("id", "hunter2")), &FormParams::default())
                .unwrap();
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
