//! Latchkey as an OpenID Connect relying party: discovery, the upstream
//! JWK Set, the code exchange, ID-token validation and userinfo.
//!
//! - **Discovery** (OIDC Discovery §4) is fetched lazily and cached for
//!   [`DISCOVERY_TTL`]; the document's `issuer` must equal the configured
//!   issuer exactly (§4.3), and its endpoints must be https (or http when
//!   the issuer itself is http on loopback, for development). A provider
//!   that is down is retried on the next sign-in, never cached as down.
//! - **Keys**: the JWK Set is cached; a token whose `kid` is not in it
//!   triggers one refetch, at most once per [`JWKS_REFETCH_INTERVAL`], so
//!   a flood of forged `kid`s cannot turn Latchkey into a request
//!   amplifier against the provider. A set older than [`JWKS_MAX_AGE`] is
//!   refetched on use.
//! - **Exchange**: once per login, `client_secret_basic` (RFC 6749 §2.3.1:
//!   id and secret form-urlencoded, then base64), with the PKCE verifier;
//!   every upstream request has a 10-second timeout and follows no
//!   redirects.
//! - **ID token** (OIDC Core §3.1.3.7): a compact JWS whose `alg` is in the
//!   provider's allow-list (RS256, ES256; never `none` or `HS*`) and
//!   matches the key's type; no `crit`; signature verified with josekit;
//!   `iss` equal to the issuer; `aud` containing the client id and, with
//!   several audiences, `azp` equal to it (an `azp` is always checked);
//!   `exp` in the future and `iat` not in the future, each with
//!   [`CLOCK_LEEWAY`]; `nonce` equal to the one sent (constant time).
//!
//! Upstream tokens live only in [`SecretString`]s inside one call: they
//! are never stored, never logged, and never leave the service.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use josekit::jwk::Jwk;
use josekit::jws::{ES256, JwsVerifier, RS256};
use latchkey_protocol::secret::{SecretString, constant_time_eq};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::config::{UpstreamAlgorithm, UpstreamProvider};
use crate::http_body::{BodyError, read_bounded};

/// How long a discovery document is used before it is fetched again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The oldest a cached JWK Set may be.
pub const JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one JWK Set fetch per provider per this interval when a `kid`
/// is unknown.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// The clock skew tolerated on `exp` and `iat`.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(60);
/// The timeout of every request to an upstream provider.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest upstream response read (discovery, keys, tokens, userinfo).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Why an ID token was refused. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Not a compact JWS with JSON header and payload.
    #[error("the ID token is malformed: {0}")]
    Malformed(&'static str),
    /// The `alg` is not in the allow-list.
    #[error("the ID token's algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// No key of the provider matches the token's `kid` and algorithm.
    #[error("no upstream key matches the ID token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the ID token's signature does not verify")]
    Signature,
    /// `iss` is not the provider's issuer.
    #[error("the ID token's issuer is wrong")]
    Issuer,
    /// `aud` does not contain the client id, or `azp` is wrong.
    #[error("the ID token is not for this client (aud/azp)")]
    Audience,
    /// `exp` has passed or `iat` is in the future.
    #[error("the ID token is expired or not yet valid")]
    Time,
    /// `nonce` is missing or not the one sent.
    #[error("the ID token's nonce is wrong")]
    Nonce,
    /// `sub` is missing or empty.
    #[error("the ID token has no subject")]
    Subject,
}

/// What went wrong talking to the provider. Nothing in it is secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamFailure {
    /// Discovery failed: the provider is unreachable or its document is
    /// unusable.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The provider sent the user back with an error (`access_denied`, …).
    #[error("the provider returned {error}")]
    Denied {
        /// The provider's `error` code.
        error: String,
    },
    /// The callback's `iss` is not this provider's issuer (RFC 9207
    /// mix-up defence).
    #[error("the callback names another issuer")]
    IssuerMismatch,
    /// The code exchange failed (unreachable, an error answer, no ID
    /// token).
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    /// The ID token was refused.
    #[error("{0}")]
    IdToken(#[from] IdTokenError),
    /// The userinfo request failed.
    #[error("userinfo failed: {0}")]
    Userinfo(String),
}

/// The parts of a discovery document Latchkey uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// Must equal the configured issuer.
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The provider's keys.
    pub jwks_uri: String,
    /// Userinfo, if the provider has one.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
}

impl Discovery {
    /// Checks the document against the provider (module docs).
    fn check(self, provider: &UpstreamProvider) -> Result<Discovery, UpstreamFailure> {
        if self.issuer != provider.issuer {
            return Err(UpstreamFailure::Discovery(format!(
                "the document's issuer {:?} is not the configured {:?}",
                self.issuer, provider.issuer
            )));
        }
        let http_allowed = provider.issuer.starts_with("http://");
        let endpoints = [
            Some(&self.authorization_endpoint),
            Some(&self.token_endpoint),
            Some(&self.jwks_uri),
            self.userinfo_endpoint.as_ref(),
        ];
        for endpoint in endpoints.into_iter().flatten() {
            let scheme_ok = match url::Url::parse(endpoint) {
                Ok(url) => url.scheme() == "https" || (http_allowed && url.scheme() == "http"),
                Err(_) => false,
            };
            if !scheme_ok {
                return Err(UpstreamFailure::Discovery(format!(
                    "the endpoint {endpoint:?} is not an https URL"
                )));
            }
        }
        Ok(self)
    }
}

/// The claims Latchkey takes from a validated ID token (or userinfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamClaims {
    /// The raw upstream subject.
    pub subject: String,
    /// The email, if given.
    pub email: Option<String>,
    /// Whether the provider says the email is verified (absent = false).
    pub email_verified: bool,
}

/// The keys of a JWK Set, as JSON objects.
type KeyList = Arc<Vec<Map<String, Value>>>;

/// A cached value and when it was fetched.
#[derive(Debug, Clone)]
struct Cached<T> {
    value: T,
    fetched_at: OffsetDateTime,
}

/// One provider with its caches.
#[derive(Debug)]
pub(crate) struct ProviderClient {
    pub(crate) provider: UpstreamProvider,
    discovery: Mutex<Option<Cached<Arc<Discovery>>>>,
    keys: Mutex<Option<Cached<KeyList>>>,
    /// Readable without waiting, for the login page's `form-action`.
    authorization_origin: std::sync::Mutex<Option<String>>,
}

/// The token endpoint's answer, secrets wrapped at once.
pub(crate) struct Tokens {
    pub(crate) id_token: SecretString,
    pub(crate) access_token: Option<SecretString>,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

/// Whether `a` and `b` are more than `interval` apart.
fn older_than(then: OffsetDateTime, now: OffsetDateTime, interval: Duration) -> bool {
    now - then >= time::Duration::try_from(interval).unwrap_or(time::Duration::MAX)
}

/// GETs `url` and parses its JSON body; `what` names it in errors.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&SecretString>,
) -> Result<T, String> {
    let mut request = http.get(url).header("accept", "application/json");
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {}", token.expose()));
    }
    let response = request
        .send()
        .await
        .map_err(|error| format!("request failed: {}", without_url(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let body = read_body(response).await?;
    serde_json::from_slice(&body).map_err(|error| format!("the answer is not valid JSON: {error}"))
}

/// Reads a response body up to [`MAX_RESPONSE_BYTES`].
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    read_bounded(&mut response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => "the answer is too large".to_owned(),
            BodyError::Read(error) => {
                format!("reading the answer failed: {}", without_url(&error))
            }
        })
}

/// A reqwest error without its URL (which may carry a code or token in
/// its query for some requests; never for ours, but logs stay clean).
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "bad body"
    } else {
        "transport error"
    };
    kind.to_owned()
}

/// `application/x-www-form-urlencoded` component encoding (RFC 6749
/// Appendix B), for the Basic credentials.
fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

impl ProviderClient {
    pub(crate) fn new(provider: UpstreamProvider) -> ProviderClient {
        ProviderClient {
            provider,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
            authorization_origin: std::sync::Mutex::new(None),
        }
    }

    /// The origin of the authorization endpoint, once discovered.
    pub(crate) fn authorization_origin(&self) -> Option<String> {
        self.authorization_origin
            .lock()
            .ok()
            .and_then(|origin| origin.clone())
    }

    /// The discovery document, cached (module docs).
    pub(crate) async fn discovery(
        &self,
        http: &reqwest::Client,
        now: OffsetDateTime,
    ) -> Result<Arc<Discovery>, UpstreamFailure> {
        let mut cached = self.discovery.lock().await;
        if let Some(entry) = cached.as_ref()
            && !older_than(entry.fetched_at, now, DISCOVERY_TTL)
        {
            return Ok(Arc::clone(&entry.value));
        }
        let document: Discovery = get_json(http, &self.provider.discovery_url(), None)
            .await
            .map_err(UpstreamFailure::Discovery)?;
        let document = Arc::new(document.check(&self.provider)?);
        if let (Ok(url), Ok(mut origin)) = (
            url::Url::parse(&document.authorization_endpoint),
            self.authorization_origin.lock(),
        ) {
            *origin = Some(url.origin().ascii_serialization());
        }
        *cached = Some(Cached {
            value: Arc::clone(&document),
            fetched_at: now,
        });
        Ok(document)
    }

    /// The JWK Set's keys, fetched when missing, too old, or (rate-limited)
    /// when `refetch` asks because a `kid` was unknown.
    async fn keys(
        &self,
        http: &reqwest::Client,
        discovery: &Discovery,
        now: OffsetDateTime,
        refetch: bool,
    ) -> Result<KeyList, UpstreamFailure> {
        let mut cached = self.keys.lock().await;
        if let Some(entry) = cached.as_ref() {
            let stale = older_than(entry.fetched_at, now, JWKS_MAX_AGE);
            let may_refetch = older_than(entry.fetched_at, now, JWKS_REFETCH_INTERVAL);
            if !stale && (!refetch || !may_refetch) {
                return Ok(Arc::clone(&entry.value));
            }
        }
        #[derive(Deserialize)]
        struct JwkSet {
            keys: Vec<Value>,
        }
        let set: JwkSet = get_json(http, &discovery.jwks_uri, None)
            .await
            .map_err(|error| UpstreamFailure::Exchange(format!("the JWK Set: {error}")))?;
        let keys: Vec<Map<String, Value>> = set
            .keys
            .into_iter()
            .filter_map(|key| match key {
                Value::Object(object) => Some(object),
                _ => None,
            })
            .collect();
        let keys = Arc::new(keys);
        *cached = Some(Cached {
            value: Arc::clone(&keys),
            fetched_at: now,
        });
        Ok(keys)
    }

    /// Exchanges the code (module docs). The answer must carry an ID token.
    pub(crate) async fn exchange(
        &self,
        http: &reqwest::Client,
        discovery: &Discovery,
        code: &SecretString,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, UpstreamFailure> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code.expose())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_verifier", code_verifier)
            .finish();
        let credentials = format!(
            "{}:{}",
            form_encode(&self.provider.client_id),
            form_encode(self.provider.client_secret.expose())
        );
        let response = http
            .post(&discovery.token_endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(credentials)),
            )
            .body(body)
            .send()
            .await
            .map_err(|error| UpstreamFailure::Exchange(without_url(&error)))?;
        let status = response.status();
        let bytes = read_body(response)
            .await
            .map_err(UpstreamFailure::Exchange)?;
        if !status.is_success() {
            let code = serde_json::from_slice::<ErrorResponse>(&bytes)
                .map(|answer| answer.error)
                .ok()
                .filter(|error| {
                    error.len() <= 64 && error.bytes().all(|byte| byte.is_ascii_graphic())
                })
                .unwrap_or_else(|| "no error code".to_owned());
            return Err(UpstreamFailure::Exchange(format!(
                "HTTP {} ({code})",
                status.as_u16()
            )));
        }
        let answer: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            UpstreamFailure::Exchange("the token answer is not valid JSON".to_owned())
        })?;
        let Some(id_token) = answer.id_token else {
            return Err(UpstreamFailure::Exchange(
                "the token answer has no id_token (is the openid scope granted?)".to_owned(),
            ));
        };
        Ok(Tokens {
            id_token: SecretString::new(id_token),
            access_token: answer.access_token.map(SecretString::new),
        })
    }

    /// Validates an ID token (module docs) and returns its claims.
    pub(crate) async fn validate_id_token(
        &self,
        http: &reqwest::Client,
        discovery: &Discovery,
        id_token: &SecretString,
        nonce: &str,
        now: OffsetDateTime,
    ) -> Result<UpstreamClaims, UpstreamFailure> {
        let token = CompactJws::parse(id_token.expose())?;
        let algorithm = token.algorithm(&self.provider.algorithms)?;
        let keys = self.keys(http, discovery, now, false).await?;
        let verifier = match select_key(&keys, token.kid.as_deref(), algorithm) {
            Some(verifier) => verifier,
            None => {
                let keys = self.keys(http, discovery, now, true).await?;
                select_key(&keys, token.kid.as_deref(), algorithm)
                    .ok_or(IdTokenError::UnknownKey)?
            }
        };
        verifier
            .verify(token.signing_input.as_bytes(), &token.signature)
            .map_err(|_| IdTokenError::Signature)?;
        Ok(check_claims(&token.payload, &self.provider, nonce, now)?)
    }

    /// Fills `email` and `email_verified` from userinfo (OIDC Core §5.3),
    /// whose `sub` must equal the ID token's (§5.3.2).
    pub(crate) async fn userinfo(
        &self,
        http: &reqwest::Client,
        discovery: &Discovery,
        access_token: &SecretString,
        claims: UpstreamClaims,
    ) -> Result<UpstreamClaims, UpstreamFailure> {
        let Some(endpoint) = &discovery.userinfo_endpoint else {
            return Err(UpstreamFailure::Userinfo(
                "the provider has no userinfo endpoint".to_owned(),
            ));
        };
        let info: Map<String, Value> = get_json(http, endpoint, Some(access_token))
            .await
            .map_err(UpstreamFailure::Userinfo)?;
        if info.get("sub").and_then(Value::as_str) != Some(claims.subject.as_str()) {
            return Err(UpstreamFailure::Userinfo(
                "the userinfo subject is not the ID token's".to_owned(),
            ));
        }
        let (email, email_verified) = email_claims(&info);
        Ok(UpstreamClaims {
            email: email.or(claims.email),
            email_verified: email_verified.unwrap_or(claims.email_verified),
            ..claims
        })
    }
}

/// A compact JWS split and decoded.
#[derive(Debug)]
struct CompactJws {
    header: Map<String, Value>,
    kid: Option<String>,
    payload: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

impl CompactJws {
    fn parse(token: &str) -> Result<CompactJws, IdTokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(IdTokenError::Malformed("not three dot-separated parts"));
        };
        let object = |part: &str| -> Result<Map<String, Value>, IdTokenError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| IdTokenError::Malformed("a part is not base64url"))?;
            serde_json::from_slice(&bytes)
                .map_err(|_| IdTokenError::Malformed("a part is not a JSON object"))
        };
        let header_object = object(header)?;
        if header_object.contains_key("crit") {
            return Err(IdTokenError::Malformed("critical header extensions"));
        }
        let kid = match header_object.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(IdTokenError::Malformed("kid is not a string")),
        };
        Ok(CompactJws {
            kid,
            payload: object(payload)?,
            signing_input: format!("{header}.{payload}"),
            signature: URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| IdTokenError::Malformed("the signature is not base64url"))?,
            header: header_object,
        })
    }

    /// The header's `alg`, if the allow-list has it.
    fn algorithm(&self, allowed: &[UpstreamAlgorithm]) -> Result<UpstreamAlgorithm, IdTokenError> {
        let name = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        UpstreamAlgorithm::parse(name)
            .filter(|algorithm| allowed.contains(algorithm))
            .ok_or_else(|| IdTokenError::Algorithm(name.to_owned()))
    }
}

/// The verifier for the key that `kid` and `algorithm` name: the key's
/// type must fit the algorithm, its `use` (if any) be `sig` and its `alg`
/// (if any) equal. Without a `kid` only a lone fitting key is used.
fn select_key(
    keys: &[Map<String, Value>],
    kid: Option<&str>,
    algorithm: UpstreamAlgorithm,
) -> Option<Box<dyn JwsVerifier>> {
    let fits = |key: &&Map<String, Value>| {
        let text = |name: &str| key.get(name).and_then(Value::as_str);
        let type_fits = match algorithm {
            UpstreamAlgorithm::Rs256 => text("kty") == Some("RSA"),
            UpstreamAlgorithm::Es256 => text("kty") == Some("EC") && text("crv") == Some("P-256"),
        };
        type_fits
            && key.get("use").is_none_or(|value| value == "sig")
            && key
                .get("alg")
                .is_none_or(|value| value == algorithm.as_str())
    };
    let candidates: Vec<&Map<String, Value>> = keys.iter().filter(fits).collect();
    let key = match kid {
        Some(kid) => candidates
            .into_iter()
            .find(|key| key.get("kid").and_then(Value::as_str) == Some(kid))?,
        None => match candidates.as_slice() {
            [only] => *only,
            _ => return None,
        },
    };
    let jwk = Jwk::from_map(key.clone()).ok()?;
    let verifier: Box<dyn JwsVerifier> = match algorithm {
        UpstreamAlgorithm::Rs256 => Box::new(RS256.verifier_from_jwk(&jwk).ok()?),
        UpstreamAlgorithm::Es256 => Box::new(ES256.verifier_from_jwk(&jwk).ok()?),
    };
    Some(verifier)
}

/// `email` and `email_verified` of a claims object; `email_verified` may
/// be a boolean or, from some providers, the string `"true"`/`"false"`.
fn email_claims(claims: &Map<String, Value>) -> (Option<String>, Option<bool>) {
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|email| !email.is_empty())
        .map(str::to_owned);
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(verified)) => Some(*verified),
        Some(Value::String(text)) if text == "true" => Some(true),
        Some(Value::String(text)) if text == "false" => Some(false),
        _ => None,
    };
    (email, verified)
}

/// Checks the claims of a signature-verified ID token (module docs).
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    provider: &UpstreamProvider,
    nonce: &str,
    now: OffsetDateTime,
) -> Result<UpstreamClaims, IdTokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(provider.issuer.as_str()) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(audience)) => vec![audience.as_str()],
        Some(Value::Array(audiences)) => audiences.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&provider.client_id.as_str()) {
        return Err(IdTokenError::Audience);
    }
    match claims.get("azp") {
        Some(azp) if azp.as_str() != Some(provider.client_id.as_str()) => {
            return Err(IdTokenError::Audience);
        }
        None if audiences.len() > 1 => return Err(IdTokenError::Audience),
        _ => {}
    }
    let leeway = i64::try_from(CLOCK_LEEWAY.as_secs()).unwrap_or(60);
    let now = now.unix_timestamp();
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    match number("exp") {
        Some(exp) if exp.saturating_add(leeway) > now => {}
        _ => return Err(IdTokenError::Time),
    }
    match number("iat") {
        Some(iat) if iat.saturating_sub(leeway) <= now => {}
        _ => return Err(IdTokenError::Time),
    }
    match claims.get("nonce").and_then(Value::as_str) {
        Some(sent) if constant_time_eq(sent.as_bytes(), nonce.as_bytes()) => {}
        _ => return Err(IdTokenError::Nonce),
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|subject| !subject.is_empty() && subject.len() <= 255)
        .ok_or(IdTokenError::Subject)?;
    let (email, email_verified) = email_claims(claims);
    Ok(UpstreamClaims {
        subject: subject.to_owned(),
        email,
        email_verified: email_verified.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jws::JwsHeader;
    use serde_json::json;

    const NOW: i64 = 1_795_392_000;

    fn provider() -> UpstreamProvider {
        UpstreamProvider::new(
            "corp",
            "https://idp.example.com",
            "latchkey",
            SecretString::new("s3cret"),
        )
    }

    fn claims(change: impl FnOnce(&mut Map<String, Value>)) -> Map<String, Value> {
        let mut claims = json!({
            "iss": "https://idp.example.com",
            "aud": "latchkey",
            "sub": "alice-sub-1",
            "exp": NOW + 300,
            "iat": NOW,
            "nonce": "n-0S6_WzA2Mj",
            "email": "alice@example.com",
            "email_verified": true,
        })
        .as_object()
        .unwrap()
        .clone();
        change(&mut claims);
        claims
    }

    fn check(claims: &Map<String, Value>) -> Result<UpstreamClaims, IdTokenError> {
        check_claims(
            claims,
            &provider(),
            "n-0S6_WzA2Mj",
            OffsetDateTime::from_unix_timestamp(NOW).unwrap(),
        )
    }

    #[test]
    fn good_claims_give_subject_and_email() {
        assert_eq!(
            check(&claims(|_| {})),
            Ok(UpstreamClaims {
                subject: "alice-sub-1".to_owned(),
                email: Some("alice@example.com".to_owned()),
                email_verified: true,
            })
        );
        let unverified = check(&claims(|c| {
            c.remove("email_verified");
        }))
        .unwrap();
        assert!(!unverified.email_verified);
        let as_text = check(&claims(|c| {
            c.insert("email_verified".into(), json!("true"));
        }))
        .unwrap();
        assert!(as_text.email_verified);
    }

    #[test]
    fn each_claim_is_checked() {
        let cases: Vec<(IdTokenError, Map<String, Value>)> = vec![
            (
                IdTokenError::Issuer,
                claims(|c| {
                    c.insert("iss".into(), json!("https://idp.example.com/"));
                }),
            ),
            (
                IdTokenError::Audience,
                claims(|c| {
                    c.insert("aud".into(), json!("someone-else"));
                }),
            ),
            (
                IdTokenError::Audience,
                claims(|c| {
                    c.insert("aud".into(), json!(["latchkey", "other"]));
                }),
            ),
            (
                IdTokenError::Audience,
                claims(|c| {
                    c.insert("azp".into(), json!("other"));
                }),
            ),
            (
                IdTokenError::Time,
                claims(|c| {
                    c.insert("exp".into(), json!(NOW - 60));
                }),
            ),
            (
                IdTokenError::Time,
                claims(|c| {
                    c.insert("iat".into(), json!(NOW + 61));
                }),
            ),
            (
                IdTokenError::Time,
                claims(|c| {
                    c.remove("exp");
                }),
            ),
            (
                IdTokenError::Nonce,
                claims(|c| {
                    c.insert("nonce".into(), json!("n-0S6_WzA2Mk"));
                }),
            ),
            (
                IdTokenError::Nonce,
                claims(|c| {
                    c.remove("nonce");
                }),
            ),
            (
                IdTokenError::Subject,
                claims(|c| {
                    c.insert("sub".into(), json!(""));
                }),
            ),
        ];
        for (expected, claims) in cases {
            assert_eq!(check(&claims), Err(expected.clone()), "{claims:?}");
        }
        // Several audiences with the right azp; leeway at the edges.
        assert!(
            check(&claims(|c| {
                c.insert("aud".into(), json!(["other", "latchkey"]));
                c.insert("azp".into(), json!("latchkey"));
            }))
            .is_ok()
        );
        assert!(
            check(&claims(|c| {
                c.insert("exp".into(), json!(NOW - 59));
                c.insert("iat".into(), json!(NOW + 60));
            }))
            .is_ok()
        );
    }

    fn sign(kid: Option<&str>, payload: &Map<String, Value>, key: &Jwk) -> String {
        let mut jws_header = JwsHeader::new();
        if let Some(kid) = kid {
            jws_header.set_key_id(kid);
        }
        let payload = serde_json::to_vec(payload).unwrap();
        let signer = RS256.signer_from_jwk(key).unwrap();
        josekit::jws::serialize_compact(&payload, &jws_header, &signer).unwrap()
    }

    fn rsa_key(kid: &str) -> Jwk {
        let mut key = RS256.generate_key_pair(2048).unwrap().to_jwk_key_pair();
        key.set_key_id(kid);
        key
    }

    fn public(key: &Jwk) -> Map<String, Value> {
        let mut public = key.to_public_key().unwrap().as_ref().clone();
        if let Some(kid) = key.key_id() {
            public.insert("kid".into(), json!(kid));
        }
        public
    }

    #[test]
    fn signatures_keys_and_algorithms() {
        let key = rsa_key("k1");
        let other = rsa_key("k1");
        let keys = vec![public(&key)];
        let payload = claims(|_| {});
        let verify = |token: &str, keys: &[Map<String, Value>]| -> Result<(), IdTokenError> {
            let jws = CompactJws::parse(token)?;
            let algorithm = jws.algorithm(&UpstreamAlgorithm::ALL)?;
            let verifier =
                select_key(keys, jws.kid.as_deref(), algorithm).ok_or(IdTokenError::UnknownKey)?;
            verifier
                .verify(jws.signing_input.as_bytes(), &jws.signature)
                .map_err(|_| IdTokenError::Signature)
        };
        let good = sign(Some("k1"), &payload, &key);
        assert_eq!(verify(&good, &keys), Ok(()));
        // Without a kid, the lone RSA key is used.
        let anonymous = RS256.generate_key_pair(2048).unwrap().to_jwk_key_pair();
        let no_kid = sign(None, &payload, &anonymous);
        assert_eq!(verify(&no_kid, &[public(&anonymous)]), Ok(()));
        // Same kid, another key: the signature fails.
        let forged = sign(Some("k1"), &payload, &other);
        assert_eq!(verify(&forged, &keys), Err(IdTokenError::Signature));
        // An unknown kid.
        let unknown = sign(Some("k2"), &payload, &rsa_key("k2"));
        assert_eq!(verify(&unknown, &keys), Err(IdTokenError::UnknownKey));
        // alg none and HS256 are refused before any key is looked at.
        let mut parts = good.splitn(2, '.');
        let _ = parts.next();
        let rest = parts.next().unwrap();
        for alg in ["none", "HS256", "rs256"] {
            let forged_header = URL_SAFE_NO_PAD.encode(format!("{{\"alg\":\"{alg}\"}}"));
            let token = format!("{forged_header}.{rest}");
            assert_eq!(
                verify(&token, &keys),
                Err(IdTokenError::Algorithm(alg.to_owned()))
            );
        }
        // An ES256 header cannot use the RSA key.
        let es = URL_SAFE_NO_PAD.encode("{\"alg\":\"ES256\",\"kid\":\"k1\"}");
        assert_eq!(
            verify(&format!("{es}.{rest}"), &keys),
            Err(IdTokenError::UnknownKey)
        );
        // An allow-list of ES256 only refuses RS256.
        let jws = CompactJws::parse(&good).unwrap();
        assert_eq!(
            jws.algorithm(&[UpstreamAlgorithm::Es256]),
            Err(IdTokenError::Algorithm("RS256".to_owned()))
        );
        for malformed in ["a.b", "a.b.c.d", "!!.e30.", &format!("{}.x.y", "e30")] {
            assert!(
                matches!(
                    CompactJws::parse(malformed),
                    Err(IdTokenError::Malformed(_))
                ),
                "{malformed}"
            );
        }
        let crit = URL_SAFE_NO_PAD.encode("{\"alg\":\"RS256\",\"crit\":[\"x\"]}");
        assert!(CompactJws::parse(&format!("{crit}.{rest}")).is_err());
    }

    #[test]
    fn discovery_documents_are_checked() {
        let document = |issuer: &str, endpoint: &str| Discovery {
            issuer: issuer.to_owned(),
            authorization_endpoint: format!("{endpoint}/auth"),
            token_endpoint: format!("{endpoint}/token"),
            jwks_uri: format!("{endpoint}/jwks"),
            userinfo_endpoint: None,
        };
        let provider = provider();
        assert!(
            document("https://idp.example.com", "https://idp.example.com")
                .check(&provider)
                .is_ok()
        );
        assert!(
            document("https://idp.example.com/", "https://idp.example.com")
                .check(&provider)
                .is_err()
        );
        assert!(
            document("https://idp.example.com", "http://idp.example.com")
                .check(&provider)
                .is_err()
        );
        let mut local = provider.clone();
        local.issuer = "http://127.0.0.1:4000".to_owned();
        assert!(
            document("http://127.0.0.1:4000", "http://127.0.0.1:4000")
                .check(&local)
                .is_ok()
        );
    }
}
