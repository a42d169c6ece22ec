//! Token, revocation and introspection requests (RFC 6749 §4.1.3, §4.4.2,
//! §6; RFC 7636 §4.5; RFC 8707 §2.2; RFC 7009 §2.1; RFC 7662 §2.1).
//!
//! Codes, refresh tokens and presented tokens are [`SecretString`]s and
//! the verifier a redacted [`CodeVerifier`], so `Debug` on any of these
//! requests is safe to log.

use super::{FormParams, ParamsError};
use crate::client::GrantType;
use crate::error::echo;
use crate::pkce::CodeVerifier;
use crate::resource::ResourceUri;
use crate::scope::ScopeSet;
use crate::secret::SecretString;

/// A token endpoint request, by grant type.
///
/// ```
/// use latchkey_protocol::params::{FormParams, TokenRequest};
///
/// let params = FormParams::parse(
///     b"grant_type=refresh_token&refresh_token=rt-123&scope=mcp&resource=https%3A%2F%2Fmcp.example.com%2F",
/// ).unwrap();
/// let TokenRequest::RefreshToken { refresh_token, scope, resource, .. } =
///     TokenRequest::parse(&params).unwrap()
/// else {
///     unreachable!("a refresh_token grant")
/// };
/// assert_eq!(refresh_token.expose(), "rt-123");
/// assert_eq!(scope.unwrap().to_string(), "mcp");
/// assert_eq!(resource.unwrap().as_str(), "https://mcp.example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3 with PKCE).
    AuthorizationCode {
        /// The authorization code.
        code: SecretString,
        /// Required iff it was in the authorization request.
        redirect_uri: Option<String>,
        /// The PKCE verifier: required, since every code has a challenge.
        code_verifier: CodeVerifier,
        /// The resource the token is for (RFC 8707 §2.2).
        resource: Option<ResourceUri>,
        /// The client, for public clients that do not authenticate.
        client_id: Option<String>,
    },
    /// `grant_type=refresh_token` (RFC 6749 §6).
    RefreshToken {
        /// The refresh token.
        refresh_token: SecretString,
        /// A narrower scope, if requested.
        scope: Option<ScopeSet>,
        /// The resource the new access token is for.
        resource: Option<ResourceUri>,
        /// The client, for public clients that do not authenticate.
        client_id: Option<String>,
    },
    /// `grant_type=client_credentials` (RFC 6749 §4.4.2).
    ClientCredentials {
        /// The requested scope.
        scope: Option<ScopeSet>,
        /// The resource the token is for.
        resource: Option<ResourceUri>,
        /// The client id in the body, if any (the client authenticates).
        client_id: Option<String>,
    },
}

impl TokenRequest {
    /// Parses a token request body. Missing parameters are
    /// `invalid_request`; an unknown `grant_type` is
    /// `unsupported_grant_type`; a malformed `scope` is `invalid_scope`;
    /// a malformed or repeated `resource` is `invalid_target`.
    pub fn parse(params: &FormParams) -> Result<TokenRequest, ParamsError> {
        let grant_type = params.require("grant_type")?;
        let client_id = params.optional("client_id");
        match GrantType::parse(grant_type) {
            Some(GrantType::AuthorizationCode) => Ok(TokenRequest::AuthorizationCode {
                code: SecretString::new(params.require("code")?),
                redirect_uri: params.optional("redirect_uri"),
                code_verifier: CodeVerifier::parse(params.require("code_verifier")?)?,
                resource: params.single_resource()?,
                client_id,
            }),
            Some(GrantType::RefreshToken) => Ok(TokenRequest::RefreshToken {
                refresh_token: SecretString::new(params.require("refresh_token")?),
                scope: params.scope()?,
                resource: params.single_resource()?,
                client_id,
            }),
            Some(GrantType::ClientCredentials) => Ok(TokenRequest::ClientCredentials {
                scope: params.scope()?,
                resource: params.single_resource()?,
                client_id,
            }),
            None => Err(ParamsError::UnsupportedGrantType(echo(grant_type))),
        }
    }

    /// The grant type.
    pub fn grant_type(&self) -> GrantType {
        match self {
            TokenRequest::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            TokenRequest::RefreshToken { .. } => GrantType::RefreshToken,
            TokenRequest::ClientCredentials { .. } => GrantType::ClientCredentials,
        }
    }

    /// The `client_id` in the body, if any.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            TokenRequest::AuthorizationCode { client_id, .. }
            | TokenRequest::RefreshToken { client_id, .. }
            | TokenRequest::ClientCredentials { client_id, .. } => client_id.as_deref(),
        }
    }

    /// The requested resource, if any.
    pub fn resource(&self) -> Option<&ResourceUri> {
        match self {
            TokenRequest::AuthorizationCode { resource, .. }
            | TokenRequest::RefreshToken { resource, .. }
            | TokenRequest::ClientCredentials { resource, .. } => resource.as_ref(),
        }
    }
}

/// A `token_type_hint` (RFC 7009 §2.1, RFC 7662 §2.1). Unknown hints are
/// ignored: the server must search all token types anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// Parses a hint; `None` for unknown hints.
    pub fn parse(hint: &str) -> Option<TokenTypeHint> {
        match hint {
            "access_token" => Some(TokenTypeHint::AccessToken),
            "refresh_token" => Some(TokenTypeHint::RefreshToken),
            _ => None,
        }
    }

    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenTypeHint::AccessToken => "access_token",
            TokenTypeHint::RefreshToken => "refresh_token",
        }
    }
}

/// A revocation request (RFC 7009 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRequest {
    /// The token to revoke.
    pub token: SecretString,
    /// Which kind of token the client thinks it is.
    pub token_type_hint: Option<TokenTypeHint>,
}

impl RevocationRequest {
    /// Parses a revocation request body; `token` is required.
    pub fn parse(params: &FormParams) -> Result<RevocationRequest, ParamsError> {
        Ok(RevocationRequest {
            token: SecretString::new(params.require("token")?),
            token_type_hint: params.get("token_type_hint").and_then(TokenTypeHint::parse),
        })
    }
}

/// An introspection request (RFC 7662 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionRequest {
    /// The token to introspect.
    pub token: SecretString,
    /// Which kind of token the caller thinks it is.
    pub token_type_hint: Option<TokenTypeHint>,
}

impl IntrospectionRequest {
    /// Parses an introspection request body; `token` is required.
    pub fn parse(params: &FormParams) -> Result<IntrospectionRequest, ParamsError> {
        Ok(IntrospectionRequest {
            token: SecretString::new(params.require("token")?),
            token_type_hint: params.get("token_type_hint").and_then(TokenTypeHint::parse),
        })
    }
}
