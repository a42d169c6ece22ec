//! Token introspection (RFC 7662): asking the authorization server whether
//! a token is active, for opaque tokens or, if configured, for every token.
//!
//! The request is `POST` `token=…&token_type_hint=access_token`,
//! authenticated with client credentials (HTTP Basic, RFC 6749 §2.3.1:
//! the id and secret form-urlencoded before base64) or a bearer secret.
//! An active answer is held to the same rules as a JWT: `aud` must contain
//! this resource (an introspection answer without `aud` cannot prove the
//! token was meant for this resource, so it is refused), `iss`, when
//! present, must be a trusted issuer, `exp` / `nbf` are checked with the
//! leeway, a refresh token or a key-bound token is refused.
//!
//! Positive answers are cached for a short time, never beyond the token's
//! `exp`, keyed by the SHA-256 of the token (the token itself is never
//! stored or logged). Negative answers are not cached. The cache is
//! bounded: when full, expired entries go first, and if that frees nothing
//! the cache starts over.
//!
//! An unreachable endpoint, a non-200 answer or an unparseable body is
//! [`ValidationError::Unavailable`]: the guard answers 503, not 401, so a
//! client keeps its token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use latchkey_protocol::jwt::{AccessTokenClaims, Audience, ClaimsValidation};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use latchkey_protocol::secret::SecretString;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::clock::Clock;
use crate::error::{ConfigError, ValidationError};
use crate::fetch;
use crate::identity::{Identity, ValidationMethod};

/// The largest introspection response read, in bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// The most cached answers.
const MAX_CACHE_ENTRIES: usize = 10_000;

/// When introspection is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntrospectionMode {
    /// Only for tokens that are not JWTs; JWTs are validated locally.
    #[default]
    OpaqueTokens,
    /// For every token, JWTs included: revocation takes effect at once, at
    /// the price of a round trip per token (softened by the cache).
    AllTokens,
}

/// How the resource authenticates to the introspection endpoint (RFC 7662
/// §2.1 requires some authentication).
#[derive(Debug, Clone)]
pub enum IntrospectionCredentials {
    /// HTTP Basic with a client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic {
        /// The resource's client id at the authorization server.
        client_id: String,
        /// Its secret.
        client_secret: SecretString,
    },
    /// `Authorization: Bearer <secret>`: a shared introspection secret.
    Bearer(SecretString),
}

/// Introspection settings.
#[derive(Debug, Clone)]
pub struct IntrospectionConfig {
    /// The `introspection_endpoint`.
    pub endpoint: Url,
    /// How to authenticate.
    pub credentials: IntrospectionCredentials,
    /// Which tokens to introspect.
    pub mode: IntrospectionMode,
    /// How long a positive answer is reused (never beyond the token's
    /// `exp`); zero disables the cache.
    pub cache_ttl: Duration,
}

impl IntrospectionConfig {
    /// Introspection of opaque tokens with a 30-second cache.
    pub fn new(endpoint: Url, credentials: IntrospectionCredentials) -> IntrospectionConfig {
        IntrospectionConfig {
            endpoint,
            credentials,
            mode: IntrospectionMode::OpaqueTokens,
            cache_ttl: Duration::from_secs(30),
        }
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: IntrospectionMode) -> IntrospectionConfig {
        self.mode = mode;
        self
    }

    /// Sets the cache lifetime.
    pub fn cache_ttl(mut self, ttl: Duration) -> IntrospectionConfig {
        self.cache_ttl = ttl;
        self
    }
}

/// An introspection response (RFC 7662 §2.2); unknown members are ignored.
#[derive(Debug, Deserialize)]
struct IntrospectionResponse {
    active: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    cnf: Option<serde_json::Value>,
}

/// A JSON NumericDate as whole seconds (RFC 7519 §2 allows fractions).
pub(crate) fn numeric_date(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|value| value.is_finite())
            .map(|value| value.floor() as i64)
    })
}

#[derive(Debug, Clone)]
struct CachedAnswer {
    identity: Identity,
    valid_until: i64,
}

/// What the introspector needs to know about the validator.
#[derive(Debug, Clone)]
pub(crate) struct IntrospectionContext {
    pub(crate) resource: ResourceUri,
    pub(crate) issuers: Vec<String>,
    pub(crate) leeway_seconds: u32,
}

/// The introspection client and its cache.
#[derive(Debug)]
pub(crate) struct Introspector {
    config: IntrospectionConfig,
    authorization: HeaderValue,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    context: IntrospectionContext,
    cache: Mutex<HashMap<[u8; 32], CachedAnswer>>,
}

impl Introspector {
    pub(crate) fn new(
        config: IntrospectionConfig,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
        context: IntrospectionContext,
    ) -> Result<Introspector, ConfigError> {
        fetch::check_fetch_url(&config.endpoint)?;
        let authorization = authorization_header(&config.credentials)?;
        Ok(Introspector {
            config,
            authorization,
            client,
            clock,
            context,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn mode(&self) -> IntrospectionMode {
        self.config.mode
    }

    /// Introspects a token, using the cache.
    pub(crate) async fn introspect(&self, token: &str) -> Result<Identity, ValidationError> {
        let key = token_digest(token);
        let now = self.clock.unix_seconds();
        if let Some(identity) = self.cached(&key, now) {
            return Ok(identity);
        }
        let answer = self.ask(token).await?;
        let identity = self.check(answer, now)?;
        self.remember(key, &identity, now);
        Ok(identity)
    }

    fn cached(&self, key: &[u8; 32], now: i64) -> Option<Identity> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(key)
            .filter(|answer| now < answer.valid_until)
            .map(|answer| answer.identity.clone())
    }

    fn remember(&self, key: [u8; 32], identity: &Identity, now: i64) {
        let ttl = i64::try_from(self.config.cache_ttl.as_secs()).unwrap_or(i64::MAX);
        let mut valid_until = now.saturating_add(ttl);
        if let Some(expires_at) = identity.expires_at {
            valid_until = valid_until.min(expires_at);
        }
        if valid_until <= now {
            return;
        }
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= MAX_CACHE_ENTRIES {
            cache.retain(|_, answer| now < answer.valid_until);
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            CachedAnswer {
                identity: identity.clone(),
                valid_until,
            },
        );
    }

    /// Sends the request and parses the answer.
    async fn ask(&self, token: &str) -> Result<IntrospectionResponse, ValidationError> {
        let endpoint = &self.config.endpoint;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let response = self
            .client
            .post(endpoint.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(endpoint = %endpoint, %error, "introspection request failed");
                ValidationError::Unavailable
            })?;
        if response.status() != reqwest::StatusCode::OK {
            tracing::warn!(
                endpoint = %endpoint,
                status = response.status().as_u16(),
                "introspection endpoint refused the request"
            );
            return Err(ValidationError::Unavailable);
        }
        let bytes = fetch::read_bounded(response, endpoint, MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "introspection response unreadable");
                ValidationError::Unavailable
            })?;
        serde_json::from_slice(&bytes).map_err(|error| {
            tracing::warn!(endpoint = %endpoint, %error, "introspection response is not valid JSON");
            ValidationError::Unavailable
        })
    }

    /// Applies the resource's rules to an answer (see the module docs).
    fn check(&self, answer: IntrospectionResponse, now: i64) -> Result<Identity, ValidationError> {
        if !answer.active {
            return Err(ValidationError::Inactive);
        }
        if let Some(token_type) = answer.token_type.as_deref() {
            if token_type.eq_ignore_ascii_case("dpop") {
                return Err(ValidationError::KeyBound);
            }
            if token_type.eq_ignore_ascii_case("refresh_token") {
                return Err(ValidationError::WrongType);
            }
        }
        let issuer = match answer.iss {
            Some(issuer) => issuer,
            None => self
                .context
                .issuers
                .first()
                .cloned()
                .ok_or(ValidationError::UntrustedIssuer)?,
        };
        let audience = answer.aud.ok_or(ValidationError::WrongAudience)?;
        let subject = answer
            .sub
            .clone()
            .or_else(|| answer.client_id.clone())
            .ok_or(ValidationError::MissingClaim)?;
        let expires_at = answer.exp.as_ref().map(numeric_date);
        let expires_at = match expires_at {
            Some(None) => return Err(ValidationError::MissingClaim),
            Some(Some(seconds)) => Some(seconds),
            None => None,
        };
        let claims = AccessTokenClaims {
            iss: issuer.clone(),
            sub: subject.clone(),
            aud: audience,
            client_id: String::new(),
            scope: None,
            iat: answer
                .iat
                .as_ref()
                .and_then(numeric_date)
                .unwrap_or(i64::MIN),
            exp: expires_at.unwrap_or(i64::MAX),
            jti: String::new(),
            nbf: answer.nbf.as_ref().and_then(numeric_date),
            auth_time: None,
        };
        ClaimsValidation {
            issuers: self.context.issuers.clone(),
            audience: self.context.resource.clone(),
            leeway_seconds: self.context.leeway_seconds,
            now,
        }
        .validate(&claims)?;
        if answer.cnf.is_some() {
            return Err(ValidationError::KeyBound);
        }
        let scopes = ScopeSet::parse(answer.scope.as_deref().unwrap_or_default())
            .map_err(|_| ValidationError::InvalidScopeClaim)?;
        Ok(Identity {
            subject,
            client_id: answer.client_id,
            scopes,
            issuer,
            audience: self.context.resource.clone(),
            token_id: answer.jti,
            expires_at,
            method: ValidationMethod::Introspection,
        })
    }
}

/// The `Authorization` header for the introspection request.
fn authorization_header(
    credentials: &IntrospectionCredentials,
) -> Result<HeaderValue, ConfigError> {
    let value = match credentials {
        IntrospectionCredentials::ClientSecretBasic {
            client_id,
            client_secret,
        } => {
            let encode = |text: &str| {
                url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>()
            };
            let pair = format!("{}:{}", encode(client_id), encode(client_secret.expose()));
            format!("Basic {}", STANDARD.encode(pair))
        }
        IntrospectionCredentials::Bearer(secret) => format!("Bearer {}", secret.expose()),
    };
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| ConfigError::InvalidHeader("introspection credentials".to_owned()))?;
    header.set_sensitive(true);
    Ok(header)
}

/// The cache key of a token: its SHA-256, so the token is never stored.
fn token_digest(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0_u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn introspector(clock: ManualClock) -> Introspector {
        Introspector::new(
            IntrospectionConfig::new(
                Url::parse("https://auth.example.com/introspect").unwrap(),
                IntrospectionCredentials::ClientSecretBasic {
                    client_id: "rs 1".to_owned(),
                    client_secret: SecretString::new("p@ss:word"),
                },
            ),
            fetch::build_client(Duration::from_secs(1)).unwrap(),
            Arc::new(clock),
            IntrospectionContext {
                resource: ResourceUri::parse("https://mcp.example.com/mcp").unwrap(),
                issuers: vec!["https://auth.example.com".to_owned()],
                leeway_seconds: 60,
            },
        )
        .unwrap()
    }

    fn answer(json: serde_json::Value) -> IntrospectionResponse {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let header = authorization_header(&IntrospectionCredentials::ClientSecretBasic {
            client_id: "rs 1".to_owned(),
            client_secret: SecretString::new("p@ss:word"),
        })
        .unwrap();
        assert_eq!(
            header.to_str().unwrap(),
            format!("Basic {}", STANDARD.encode("rs+1:p%40ss%3Aword"))
        );
        assert!(header.is_sensitive());
    }

    #[test]
    fn active_answers_become_identities() {
        let introspector = introspector(ManualClock::at_unix_seconds(1_000));
        let identity = introspector
            .check(
                answer(serde_json::json!({
                    "active": true, "sub": "u1", "client_id": "c1", "scope": "mcp files",
                    "aud": "https://mcp.example.com/mcp", "iss": "https://auth.example.com",
                    "exp": 1_300.5, "jti": "j"
                })),
                1_000,
            )
            .unwrap();
        assert_eq!(identity.subject, "u1");
        assert_eq!(identity.client_id.as_deref(), Some("c1"));
        assert_eq!(identity.scopes.to_string(), "mcp files");
        assert_eq!(identity.expires_at, Some(1_300));
        assert_eq!(identity.method, ValidationMethod::Introspection);
    }

    #[test]
    fn refusals() {
        let introspector = introspector(ManualClock::at_unix_seconds(1_000));
        let base = serde_json::json!({
            "active": true, "sub": "u1", "aud": "https://mcp.example.com/mcp", "exp": 1_300
        });
        let with = |key: &str, value: serde_json::Value| {
            let mut json = base.clone();
            json[key] = value;
            answer(json)
        };
        let cases = [
            (with("active", false.into()), ValidationError::Inactive),
            (
                with("aud", "https://other.example/mcp".into()),
                ValidationError::WrongAudience,
            ),
            (
                with("iss", "https://evil.example".into()),
                ValidationError::UntrustedIssuer,
            ),
            (with("exp", 900.into()), ValidationError::Expired),
            (
                with("token_type", "refresh_token".into()),
                ValidationError::WrongType,
            ),
            (with("token_type", "DPoP".into()), ValidationError::KeyBound),
            (
                with("cnf", serde_json::json!({"jkt": "x"})),
                ValidationError::KeyBound,
            ),
            (
                with("scope", "bad\"scope".into()),
                ValidationError::InvalidScopeClaim,
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(introspector.check(answer, 1_000).map(|_| ()), Err(expected));
        }
        let mut no_audience = base.clone();
        no_audience.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            introspector.check(answer(no_audience), 1_000).map(|_| ()),
            Err(ValidationError::WrongAudience)
        );
    }

    #[test]
    fn the_cache_never_outlives_the_token() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let introspector = introspector(clock.clone());
        let identity = introspector
            .check(
                answer(serde_json::json!({
                    "active": true, "sub": "u1", "aud": "https://mcp.example.com/mcp", "exp": 1_010
                })),
                1_000,
            )
            .unwrap();
        let key = token_digest("opaque");
        introspector.remember(key, &identity, 1_000);
        assert!(introspector.cached(&key, 1_009).is_some());
        assert!(introspector.cached(&key, 1_010).is_none());
        assert!(introspector.cached(&token_digest("other"), 1_000).is_none());
    }
}
