//! OAuth 2.1 and MCP authorization, as pure data and validation.
//!
//! `latchkey-protocol` knows how OAuth requests, responses and identifiers
//! must look and what they mean; it does no I/O, reads no clock (time comes
//! in as unix seconds) and draws randomness only from a
//! [`ring::rand::SecureRandom`] it is handed. Every layer of Latchkey uses
//! it, and it is meant to drop into any Rust service that needs OAuth
//! request validation done right.
//!
//! # Modules
//!
//! - [`pkce`]: RFC 7636 verifiers and S256 challenges (`plain` refused).
//! - [`scope`]: RFC 6749 §3.3 scopes, scope sets and hierarchies.
//! - [`redirect`]: redirect URI registration rules and exact matching with
//!   the RFC 8252 loopback-port exception.
//! - [`resource`]: RFC 8707 resource indicators in canonical form (the
//!   token audience).
//! - [`client`]: RFC 7591 client metadata and Client ID Metadata Documents.
//! - [`metadata`]: RFC 8414 and RFC 9728 discovery documents, well-known
//!   URLs.
//! - [`error`]: every OAuth error code and the error object.
//! - [`challenge`]: `WWW-Authenticate: Bearer` challenges, built and parsed.
//! - [`params`]: form parameters and typed authorization, token,
//!   revocation and introspection requests.
//! - [`client_auth`]: client authentication (Basic, Post, none).
//! - [`jwt`]: RFC 9068 access token claims and their validation.
//! - [`secret`]: redacted secret strings and constant-time comparison.
//!
//! Invariants: no `unsafe`, no panics on any input (the workspace denies
//! `unwrap`, `expect`, `panic!` and indexing outside tests), every
//! untrusted length and count bounded, and every error carries the RFC
//! error code it maps to ([`error::OAuthError`] via `From`).
//!
//! # Example: an authorization endpoint
//!
//! RFC 6749 §4.1.2.1 requires validating `client_id` and `redirect_uri`
//! *before* anything else, and never redirecting when either is wrong: an
//! unvalidated redirect is an open redirect. The types enforce the order:
//! only a validated [`params::RedirectTarget`] lets you validate the rest,
//! and only then do errors become redirects (with `state` and `iss`,
//! RFC 9207).
//!
//! ```
//! use latchkey_protocol::error::OAuthError;
//! use latchkey_protocol::params::{AuthorizationRequest, FormParams};
//! use latchkey_protocol::redirect::{ApplicationType, RedirectUri};
//! use latchkey_protocol::resource::{ResourceSet, ResourceUri};
//! use latchkey_protocol::scope::{ScopeHierarchy, ScopeSet};
//!
//! const ISSUER: &str = "https://auth.example.com";
//!
//! /// What the endpoint does next.
//! #[derive(Debug)]
//! enum Outcome {
//!     /// Show an error page to the user: never redirect.
//!     ErrorPage(OAuthError),
//!     /// Send the user agent back to the client with an error.
//!     Redirect(String),
//!     /// Everything checks out: show the consent page.
//!     Consent(AuthorizationRequest),
//! }
//!
//! /// Your client store.
//! struct Client {
//!     redirect_uris: Vec<RedirectUri>,
//!     allowed_scope: ScopeSet,
//! }
//!
//! fn lookup_client(client_id: &str) -> Option<Client> {
//!     if client_id != "cli-123" {
//!         return None;
//!     }
//!     Some(Client {
//!         redirect_uris: vec![
//!             RedirectUri::parse_for_registration(
//!                 "http://127.0.0.1/callback",
//!                 ApplicationType::Native,
//!             )
//!             .ok()?,
//!         ],
//!         allowed_scope: ScopeSet::parse("files mcp").ok()?,
//!     })
//! }
//!
//! fn authorize(query: &str, resources: &ResourceSet, scopes: &ScopeHierarchy) -> Outcome {
//!     // 1. Parse. A malformed query or a repeated parameter: error page.
//!     let params = match FormParams::from_query(query) {
//!         Ok(params) => params,
//!         Err(error) => return Outcome::ErrorPage(error.into()),
//!     };
//!     let pending = match AuthorizationRequest::parse(&params) {
//!         Ok(pending) => pending,
//!         Err(error) => return Outcome::ErrorPage(error.into()),
//!     };
//!
//!     // 2. client_id, then redirect_uri: error page, never a redirect.
//!     let Some(client) = lookup_client(pending.client_id()) else {
//!         return Outcome::ErrorPage(OAuthError::invalid_client("unknown client"));
//!     };
//!     let target = match pending.resolve_redirect_uri(&client.redirect_uris) {
//!         Ok(target) => target,
//!         Err(error) => return Outcome::ErrorPage(error.into()),
//!     };
//!
//!     // 3. Everything else (response_type, PKCE, scope syntax, resource
//!     //    syntax, prompt): errors are redirected with state and iss.
//!     let request = match pending.validate(target) {
//!         Ok(request) => request,
//!         Err(error) => return Outcome::Redirect(error.redirect_url(ISSUER)),
//!     };
//!
//!     // 4. Policy: a resource this server protects, scopes the client may have.
//!     let requested_resource = request.resource.as_ref().map(ResourceUri::as_str);
//!     if let Err(error) = resources.resolve(requested_resource) {
//!         return Outcome::Redirect(request.error_url(&error.into(), ISSUER));
//!     }
//!     if let Some(scope) = &request.scope {
//!         if !scopes.narrows(scope, &client.allowed_scope) {
//!             let error = OAuthError::invalid_scope("the client may not request these scopes");
//!             return Outcome::Redirect(request.error_url(&error, ISSUER));
//!         }
//!     }
//!     Outcome::Consent(request)
//! }
//!
//! let resources = ResourceSet::new([ResourceUri::parse("https://mcp.example.com/mcp").unwrap()]);
//! let scopes = ScopeHierarchy::new().with_separator(':');
//! let valid = "response_type=code&client_id=cli-123\
//!     &redirect_uri=http%3A%2F%2F127.0.0.1%3A49152%2Fcallback\
//!     &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256\
//!     &scope=files%3Aread&state=af0ifjsldkj\
//!     &resource=https%3A%2F%2Fmcp.example.com%2Fmcp";
//!
//! // A valid request reaches the consent page, with the loopback port the
//! // client is listening on.
//! let Outcome::Consent(request) = authorize(valid, &resources, &scopes) else { panic!() };
//! assert_eq!(request.redirect_uri.as_str(), "http://127.0.0.1:49152/callback");
//! assert_eq!(
//!     request.success_url("SplxlOBeZQQYbYS6WxSbIA", ISSUER),
//!     "http://127.0.0.1:49152/callback?code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj\
//!      &iss=https%3A%2F%2Fauth.example.com"
//! );
//!
//! // An unregistered redirect URI is never redirected to.
//! let evil = valid.replace("127.0.0.1%3A49152", "evil.example");
//! let Outcome::ErrorPage(error) = authorize(&evil, &resources, &scopes) else { panic!() };
//! assert_eq!(error.code().as_str(), "invalid_request");
//!
//! // Without PKCE, the error goes back to the client with state and iss.
//! let no_pkce = valid.replace("code_challenge_method=S256", "code_challenge_method=plain");
//! let Outcome::Redirect(url) = authorize(&no_pkce, &resources, &scopes) else { panic!() };
//! assert!(url.starts_with("http://127.0.0.1:49152/callback?error=invalid_request&"));
//! assert!(url.contains("&state=af0ifjsldkj&iss=https%3A%2F%2Fauth.example.com"));
//!
//! // An unknown resource is invalid_target, redirected.
//! let other = valid.replace("mcp.example.com%2Fmcp", "mcp.example.com%2Fother");
//! let Outcome::Redirect(url) = authorize(&other, &resources, &scopes) else { panic!() };
//! assert!(url.contains("error=invalid_target"));
//! ```

#![warn(missing_docs)]

pub mod challenge;
pub mod client;
pub mod client_auth;
pub mod error;
pub mod jwt;
pub mod metadata;
pub mod params;
pub mod pkce;
pub mod redirect;
pub mod resource;
pub mod scope;
pub mod secret;
mod uri;

pub use error::{ErrorCode, OAuthError};
