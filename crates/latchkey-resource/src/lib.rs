//! The protected-resource side of Latchkey: everything an MCP server needs
//! to accept only the access tokens meant for it.
//!
//! - [`TokenValidator`] validates access tokens: JWTs locally against each
//!   trusted issuer's cached JWKS (refetched on an unknown `kid`,
//!   rate-limited), or opaque tokens through introspection (RFC 7662). It
//!   checks the signature with an algorithm allow-list, `typ`, `iss`, that
//!   `aud` is this resource's canonical URI (no token passthrough, no
//!   confused deputy), and `exp`/`nbf`/`iat` with a leeway that never
//!   refuses a token the authorization server still considers valid.
//! - [`GuardLayer`] is a tower layer for any Rust MCP server: it answers a
//!   missing or bad token with 401 and a `WWW-Authenticate: Bearer` challenge
//!   pointing at the protected resource metadata, too few scopes with 403
//!   `insufficient_scope` naming every scope needed, strips headers that
//!   would spoof an identity, and hands the inner service an [`Identity`]
//!   as a request extension.
//! - [`GuardLayer::metadata_router`] serves the RFC 9728 protected resource
//!   metadata at its well-known URLs.
//! - [`proxy`] (feature `proxy`, on by default) is the `latchkey guard`
//!   reverse proxy: the layer in front of an MCP server in any language,
//!   streaming requests and responses.
//!
//! Invariants: this crate depends on `latchkey-protocol` and never on the
//! store or service crates (a guard trusts tokens, not databases); it never
//! logs a token; every message a client can see is a fixed sentence; no
//! request path panics. All wire rules (challenges, metadata documents,
//! resource URIs, scopes, claims) come from `latchkey-protocol`.
//!
//! # Example
//!
//! ```no_run
//! use axum::{Extension, Router, routing::post};
//! use latchkey_protocol::{resource::ResourceUri, scope::ScopeSet};
//! use latchkey_resource::{GuardConfig, GuardLayer, Identity, ScopePolicy, TokenValidator, TrustedIssuer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = TokenValidator::builder(ResourceUri::parse("https://mcp.example.com/mcp")?)
//!     .trust(TrustedIssuer::latchkey("https://auth.example.com"))
//!     .build()?;
//! let policy = ScopePolicy::new(ScopeSet::parse("mcp")?)
//!     .mcp_method("tools/call", ScopeSet::parse("mcp:tools")?);
//! let guard = GuardLayer::new(GuardConfig::new(validator).scope_policy(policy))?;
//! let app = Router::new()
//!     .route("/mcp", post(|Extension(identity): Extension<Identity>| async move {
//!         format!("hello {}", identity.subject)
//!     }))
//!     .layer(guard.clone())
//!     .merge(guard.metadata_router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod clock;
mod error;
mod fetch;
mod identity;
pub mod introspection;
mod issuer;
mod jws;
pub mod keys;
mod layer;
mod metadata;
mod policy;
#[cfg(feature = "proxy")]
pub mod proxy;
mod rejection;
mod validator;

pub use error::{ConfigError, KeySourceError, ValidationError};
pub use identity::{Identity, ValidationMethod};
pub use introspection::{IntrospectionConfig, IntrospectionCredentials, IntrospectionMode};
pub use issuer::{ACCESS_TOKEN_TYP, ClaimsProfile, TrustedIssuer};
pub use keys::{Algorithm, HttpKeySource, Jwks, KeySource, StaticKeySource};
pub use layer::{DEFAULT_BODY_LIMIT, Guard, GuardConfig, GuardLayer, RESERVED_HEADER_PREFIX};
pub use metadata::MetadataOptions;
pub use policy::{PolicyError, ScopePolicy, TOOLS_CALL};
pub use validator::{TokenValidator, TokenValidatorBuilder};
