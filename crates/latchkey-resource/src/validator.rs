//! Access-token validation: [`TokenValidator`] and the issuers it trusts.
//!
//! A JWT is checked in this order, and refused at the first failure:
//! 1. shape and size (compact JWS, strict base64url, JSON objects; no
//!    `crit`);
//! 2. the unverified `iss` selects one of the [`TrustedIssuer`]s, only to
//!    know whose keys and rules apply (an unknown `iss` is refused here);
//! 3. `alg` must be on that issuer's allow-list (never `none`, never an
//!    HMAC) and `typ` must match the issuer's rule (RFC 9068 §2.1 `at+jwt`
//!    by default, compared case-insensitively with or without the
//!    `application/` prefix, RFC 7515 §4.1.9);
//! 4. the signature must verify with a key of that issuer whose `kid`
//!    matches and whose key type fixes the same `alg` (keys are cached,
//!    see [`crate::keys`]);
//! 5. the claims: `iss` again (now signed), `aud` contains this resource's
//!    canonical URI (`https://h` and `https://h/` are one resource),
//!    `exp`/`nbf`/`iat` with the leeway through
//!    [`ClaimsValidation`], the claims the issuer's [`ClaimsProfile`]
//!    requires, no `cnf` (this resource takes bearer tokens only), and a
//!    well-formed `scope`.
//!
//! The leeway is applied so that a token the authorization server still
//! considers valid is never refused because of clock skew: a token is
//! accepted until `exp + leeway`, and `nbf`/`iat` count as "in the future"
//! only beyond the leeway. (The MCP Python SDK refreshes only when
//! `expires_in` says so, so a resource that expired tokens early would
//! strand it.)
//!
//! Opaque tokens, or every token when configured, go to introspection
//! ([`crate::introspection`]).

use std::sync::Arc;
use std::time::Duration;

use latchkey_protocol::jwt::{AccessTokenClaims, Audience, ClaimsValidation};
use latchkey_protocol::metadata::validate_issuer;
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::{Scope, ScopeHierarchy, ScopeSet};
use serde::Deserialize;

use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, KeySourceError, ValidationError};
use crate::fetch;
use crate::identity::{Identity, ValidationMethod};
use crate::introspection::{
    IntrospectionConfig, IntrospectionContext, IntrospectionMode, Introspector, numeric_date,
};
use crate::issuer::{ClaimsProfile, TrustedIssuer};
use crate::jws;
use crate::keys::{Algorithm, CachePolicy, HttpKeySource, KeyCache, KeySource};

/// One trusted issuer with its key cache.
#[derive(Debug)]
struct IssuerState {
    trusted: TrustedIssuer,
    keys: KeyCache,
}

#[derive(Debug)]
struct ValidatorInner {
    resource: ResourceUri,
    issuers: Vec<IssuerState>,
    leeway_seconds: u32,
    hierarchy: ScopeHierarchy,
    introspector: Option<Introspector>,
    clock: Arc<dyn Clock>,
}

/// Validates access tokens for one resource. Cheap to clone: clones share
/// the key caches.
///
/// ```no_run
/// use latchkey_protocol::resource::ResourceUri;
/// use latchkey_resource::{TokenValidator, TrustedIssuer};
///
/// # async fn example(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let validator = TokenValidator::builder(ResourceUri::parse("https://mcp.example.com/mcp")?)
///     .trust(TrustedIssuer::latchkey("https://auth.example.com"))
///     .build()?;
/// let identity = validator.validate(token).await?;
/// println!("{} via {:?}", identity.subject, identity.client_id);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TokenValidator {
    inner: Arc<ValidatorInner>,
}

/// Builds a [`TokenValidator`].
#[derive(Debug)]
pub struct TokenValidatorBuilder {
    resource: ResourceUri,
    issuers: Vec<TrustedIssuer>,
    leeway: Duration,
    hierarchy: ScopeHierarchy,
    introspection: Option<IntrospectionConfig>,
    clock: Arc<dyn Clock>,
    http_client: Option<reqwest::Client>,
    fetch_timeout: Duration,
    cache: CachePolicy,
}

impl TokenValidatorBuilder {
    /// Trusts an issuer. The first one is listed first in the protected
    /// resource metadata (the MCP TypeScript SDK uses only the first).
    pub fn trust(mut self, issuer: TrustedIssuer) -> TokenValidatorBuilder {
        self.issuers.push(issuer);
        self
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> TokenValidatorBuilder {
        self.leeway = leeway;
        self
    }

    /// Which granted scopes cover which required ones (default flat).
    pub fn scope_hierarchy(mut self, hierarchy: ScopeHierarchy) -> TokenValidatorBuilder {
        self.hierarchy = hierarchy;
        self
    }

    /// Enables introspection.
    pub fn introspection(mut self, config: IntrospectionConfig) -> TokenValidatorBuilder {
        self.introspection = Some(config);
        self
    }

    /// Replaces the clock (tests, or a service with its own time source).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> TokenValidatorBuilder {
        self.clock = clock;
        self
    }

    /// Uses this HTTP client for keys, discovery and introspection instead
    /// of building one (which has the fetch timeout and follows no
    /// redirects; a supplied client should do the same).
    pub fn http_client(mut self, client: reqwest::Client) -> TokenValidatorBuilder {
        self.http_client = Some(client);
        self
    }

    /// The timeout of each key, discovery or introspection request
    /// (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> TokenValidatorBuilder {
        self.fetch_timeout = timeout;
        self
    }

    /// The least time between two key fetches of one issuer (default 10 s).
    pub fn key_refetch_interval(mut self, interval: Duration) -> TokenValidatorBuilder {
        self.cache.refetch_interval = interval;
        self
    }

    /// How long a fetched key set is used before it is refetched (default
    /// 10 min): how soon a key the issuer withdrew stops being accepted.
    pub fn key_max_age(mut self, max_age: Duration) -> TokenValidatorBuilder {
        self.cache.max_age = max_age;
        self
    }

    /// Checks the configuration and builds the validator. No network
    /// access happens here; keys are fetched on first use or by
    /// [`TokenValidator::refresh_keys`].
    pub fn build(self) -> Result<TokenValidator, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        let client = match self.http_client {
            Some(client) => client,
            None => fetch::build_client(self.fetch_timeout)?,
        };
        let mut states: Vec<IssuerState> = Vec::new();
        for trusted in self.issuers {
            validate_issuer(&trusted.issuer).map_err(|error| ConfigError::InvalidIssuer {
                issuer: trusted.issuer.clone(),
                reason: error.to_string(),
            })?;
            if states
                .iter()
                .any(|state| state.trusted.issuer == trusted.issuer)
            {
                return Err(ConfigError::DuplicateIssuer(trusted.issuer));
            }
            if trusted.algorithms.is_empty() {
                return Err(ConfigError::NoAlgorithm(trusted.issuer));
            }
            let source: Arc<dyn KeySource> = match (&trusted.key_source, &trusted.jwks_uri) {
                (Some(source), _) => Arc::clone(source),
                (None, Some(jwks_uri)) => {
                    fetch::check_fetch_url(jwks_uri)?;
                    Arc::new(HttpKeySource::new(client.clone(), jwks_uri.clone()))
                }
                (None, None) => Arc::new(HttpKeySource::discover(
                    client.clone(),
                    trusted.issuer.clone(),
                )),
            };
            let keys = KeyCache::new(
                trusted.issuer.clone(),
                source,
                Arc::clone(&self.clock),
                self.cache,
            );
            states.push(IssuerState { trusted, keys });
        }
        let leeway_seconds = u32::try_from(self.leeway.as_secs()).unwrap_or(u32::MAX);
        let introspector = match self.introspection {
            Some(config) => Some(Introspector::new(
                config,
                client,
                Arc::clone(&self.clock),
                IntrospectionContext {
                    resource: self.resource.clone(),
                    issuers: states
                        .iter()
                        .map(|state| state.trusted.issuer.clone())
                        .collect(),
                    leeway_seconds,
                },
            )?),
            None => None,
        };
        Ok(TokenValidator {
            inner: Arc::new(ValidatorInner {
                resource: self.resource,
                issuers: states,
                leeway_seconds,
                hierarchy: self.hierarchy,
                introspector,
                clock: self.clock,
            }),
        })
    }
}

/// The claims as tokens carry them; which are required depends on the
/// issuer's [`ClaimsProfile`].
#[derive(Debug, Deserialize)]
struct WireClaims {
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    cid: Option<String>,
    #[serde(default)]
    scope: Option<ScopeClaim>,
    #[serde(default)]
    scp: Option<ScopeClaim>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    cnf: Option<serde_json::Value>,
}

/// A scope claim: RFC 9068's space-delimited string, or the array some
/// identity providers use in `scp`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    fn parse(&self) -> Result<ScopeSet, ValidationError> {
        let invalid = |_| ValidationError::InvalidScopeClaim;
        match self {
            ScopeClaim::Text(text) => ScopeSet::parse(text).map_err(invalid),
            ScopeClaim::List(list) => ScopeSet::try_from_scopes(
                list.iter()
                    .map(|scope| Scope::parse(scope))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?,
            )
            .map_err(invalid),
        }
    }
}

impl TokenValidator {
    /// Starts a validator for `resource`, this resource's canonical URI
    /// (the audience tokens must carry).
    pub fn builder(resource: ResourceUri) -> TokenValidatorBuilder {
        TokenValidatorBuilder {
            resource,
            issuers: Vec::new(),
            leeway: Duration::from_secs(60),
            hierarchy: ScopeHierarchy::new(),
            introspection: None,
            clock: Arc::new(SystemClock),
            http_client: None,
            fetch_timeout: Duration::from_secs(5),
            cache: CachePolicy {
                refetch_interval: Duration::from_secs(10),
                max_age: Duration::from_secs(600),
            },
        }
    }

    /// This resource's canonical URI.
    pub fn resource(&self) -> &ResourceUri {
        &self.inner.resource
    }

    /// The trusted issuers' identifiers, in configuration order.
    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.inner
            .issuers
            .iter()
            .map(|state| state.trusted.issuer.as_str())
    }

    /// The scope hierarchy.
    pub fn scope_hierarchy(&self) -> &ScopeHierarchy {
        &self.inner.hierarchy
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The required scopes the granted ones do not cover, under the
    /// hierarchy (empty when the token is sufficient).
    pub fn missing_scopes(&self, granted: &ScopeSet, required: &ScopeSet) -> ScopeSet {
        self.inner.hierarchy.missing(granted, required)
    }

    /// Fetches every issuer's keys now, ignoring the refetch interval: at
    /// startup to fail fast, or after the issuer rotated its keys. Returns
    /// the first failure with its issuer; the other issuers are still
    /// fetched.
    pub async fn refresh_keys(&self) -> Result<(), (String, KeySourceError)> {
        let mut first_error = None;
        for state in &self.inner.issuers {
            if let Err(error) = state.keys.refresh(true).await
                && first_error.is_none()
            {
                first_error = Some((state.trusted.issuer.clone(), error));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Validates a token (see the module docs for the order of checks).
    pub async fn validate(&self, token: &str) -> Result<Identity, ValidationError> {
        let result = self.validate_inner(token).await;
        if let Err(error) = &result {
            tracing::debug!(reason = ?error, "access token refused");
        }
        result
    }

    async fn validate_inner(&self, token: &str) -> Result<Identity, ValidationError> {
        if token.is_empty() || token.len() > jws::MAX_TOKEN_LEN {
            return Err(ValidationError::Malformed);
        }
        if let Some(introspector) = &self.inner.introspector
            && (introspector.mode() == IntrospectionMode::AllTokens || !jws::looks_like_jws(token))
        {
            return introspector.introspect(token).await;
        }
        self.validate_jwt(token).await
    }

    async fn validate_jwt(&self, token: &str) -> Result<Identity, ValidationError> {
        let jws = jws::parse(token)?;
        let unverified_issuer = jws
            .claims
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .ok_or(ValidationError::MissingClaim)?;
        let state = self
            .inner
            .issuers
            .iter()
            .find(|state| state.trusted.issuer == unverified_issuer)
            .ok_or(ValidationError::UntrustedIssuer)?;
        let trusted = &state.trusted;

        let algorithm = Algorithm::parse(&jws.header.alg)
            .filter(|algorithm| trusted.algorithms.contains(algorithm))
            .ok_or(ValidationError::UnsupportedAlgorithm)?;
        if !trusted.accepts_typ(jws.header.typ.as_deref()) {
            return Err(ValidationError::WrongType);
        }

        let kid = jws.header.kid.as_deref();
        let keys = state
            .keys
            .keys_for(kid, algorithm)
            .await
            .ok_or(ValidationError::Unavailable)?;
        let mut candidates = keys.candidates(kid, algorithm).peekable();
        if candidates.peek().is_none() {
            return Err(ValidationError::UnknownKey);
        }
        let verified = candidates.any(|key| {
            key.verifier
                .verify(jws.signing_input.as_bytes(), &jws.signature)
                .is_ok()
        });
        if !verified {
            return Err(ValidationError::BadSignature);
        }

        // From here on the claims are signed by a trusted issuer.
        let claims: WireClaims = serde_json::from_value(serde_json::Value::Object(jws.claims))
            .map_err(|_| ValidationError::MissingClaim)?;
        self.check_claims(trusted, claims)
    }

    /// Step 5 of the module docs.
    fn check_claims(
        &self,
        trusted: &TrustedIssuer,
        claims: WireClaims,
    ) -> Result<Identity, ValidationError> {
        let strict = trusted.claims == ClaimsProfile::Rfc9068;
        let date = |number: &Option<serde_json::Number>| match number {
            None => Ok(None),
            Some(number) => numeric_date(number)
                .map(Some)
                .ok_or(ValidationError::MissingClaim),
        };
        let subject = claims.sub.ok_or(ValidationError::MissingClaim)?;
        let audience = claims.aud.ok_or(ValidationError::MissingClaim)?;
        let expires_at = date(&claims.exp)?.ok_or(ValidationError::MissingClaim)?;
        let issued_at = date(&claims.iat)?;
        let not_before = date(&claims.nbf)?;
        let client_id = if strict {
            claims.client_id
        } else {
            claims.client_id.or(claims.azp).or(claims.cid)
        };
        if strict && (client_id.is_none() || issued_at.is_none() || claims.jti.is_none()) {
            return Err(ValidationError::MissingClaim);
        }

        let protocol_claims = AccessTokenClaims {
            iss: claims.iss.clone(),
            sub: subject.clone(),
            aud: audience,
            client_id: client_id.clone().unwrap_or_default(),
            scope: None,
            iat: issued_at.unwrap_or(i64::MIN),
            exp: expires_at,
            jti: claims.jti.clone().unwrap_or_default(),
            nbf: not_before,
            auth_time: None,
        };
        ClaimsValidation {
            issuers: vec![trusted.issuer.clone()],
            audience: self.inner.resource.clone(),
            leeway_seconds: self.inner.leeway_seconds,
            now: self.inner.clock.unix_seconds(),
        }
        .validate(&protocol_claims)?;

        if claims.cnf.is_some() {
            return Err(ValidationError::KeyBound);
        }
        let scope_claim = if strict {
            claims.scope.as_ref()
        } else {
            claims.scope.as_ref().or(claims.scp.as_ref())
        };
        let scopes = match scope_claim {
            Some(claim) => claim.parse()?,
            None => ScopeSet::new(),
        };
        Ok(Identity {
            subject,
            client_id,
            scopes,
            issuer: claims.iss,
            audience: self.inner.resource.clone(),
            token_id: claims.jti,
            expires_at: Some(expires_at),
            method: ValidationMethod::Jwt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    #[test]
    fn builder_refuses_bad_configurations() {
        let resource = ResourceUri::parse("https://mcp.example.com/mcp").unwrap();
        assert_eq!(
            TokenValidator::builder(resource.clone()).build().err(),
            Some(ConfigError::NoIssuer)
        );
        assert!(matches!(
            TokenValidator::builder(resource.clone())
                .trust(TrustedIssuer::latchkey("http://auth.example.com"))
                .build(),
            Err(ConfigError::InvalidIssuer { .. })
        ));
        assert_eq!(
            TokenValidator::builder(resource.clone())
                .trust(TrustedIssuer::latchkey("https://a.example"))
                .trust(TrustedIssuer::external("https://a.example"))
                .build()
                .err(),
            Some(ConfigError::DuplicateIssuer("https://a.example".to_owned()))
        );
        assert_eq!(
            TokenValidator::builder(resource.clone())
                .trust(TrustedIssuer::latchkey("https://a.example").algorithms([]))
                .build()
                .err(),
            Some(ConfigError::NoAlgorithm("https://a.example".to_owned()))
        );
        assert!(matches!(
            TokenValidator::builder(resource)
                .trust(
                    TrustedIssuer::latchkey("https://a.example")
                        .jwks_uri(Url::parse("http://a.example/jwks.json").unwrap())
                )
                .build(),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn scope_claims_in_both_shapes() {
        let text = ScopeClaim::Text("a b".to_owned());
        assert_eq!(text.parse().unwrap().to_string(), "a b");
        let list = ScopeClaim::List(vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(list.parse().unwrap().to_string(), "a b");
        let bad = ScopeClaim::List(vec!["a b".to_owned()]);
        assert_eq!(bad.parse(), Err(ValidationError::InvalidScopeClaim));
    }
}
