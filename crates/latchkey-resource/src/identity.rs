//! The authenticated caller, as the guard hands it to the inner service.
//!
//! The guard inserts an [`Identity`] into the request's extensions after
//! the token has been validated and the scopes checked; an inner axum
//! handler reads it with `Extension<Identity>`. Nothing in it is secret:
//! the token itself is never kept.
//!
//! Subjects are unique per issuer only (OpenID Connect Core §2 and RFC 7519
//! §4.1.2 scope `sub` to its `iss`), so a service that trusts several
//! issuers must key users by `(issuer, subject)`.

use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;

/// Who is calling, according to a validated access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject (`sub`): the user, or the client itself for a
    /// client-credentials token.
    pub subject: String,
    /// The client the token was issued to (`client_id`, or a foreign
    /// issuer's `azp` / `cid`); `None` when the token does not say.
    pub client_id: Option<String>,
    /// The granted scopes.
    pub scopes: ScopeSet,
    /// The issuer (`iss`), byte-for-byte as configured.
    pub issuer: String,
    /// This resource: the audience the token was checked against.
    pub audience: ResourceUri,
    /// The token identifier (`jti`), when the token has one.
    pub token_id: Option<String>,
    /// When the token expires, in Unix seconds; `None` when an
    /// introspection response gave no `exp`.
    pub expires_at: Option<i64>,
    /// How the token was validated.
    pub method: ValidationMethod,
}

/// How a token was validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValidationMethod {
    /// Locally: a JWT signature checked against the issuer's JWKS.
    Jwt,
    /// By asking the authorization server (RFC 7662).
    Introspection,
}
