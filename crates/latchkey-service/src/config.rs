//! The service's configuration: issuer, lifetimes, the protected resources
//! it issues tokens for, registration policy, signing algorithm, cache
//! settings, and the browser side (sessions, remembered consent, login rate
//! limits, scope descriptions for the consent page).
//!
//! The binary builds a [`ServiceConfig`] from flags, environment and the
//! config file; [`ServiceConfig::validate`] refuses anything the flows
//! could not honour, with a message naming the setting, before the service
//! starts. Secrets in the configuration (initial access token,
//! introspection secret) are [`SecretString`]s, so `Debug` on a config is
//! safe to log.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use latchkey_protocol::metadata::validate_issuer;
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::{Scope, ScopeSet};
use latchkey_protocol::secret::SecretString;

/// The scope that asks for a refresh token (OIDC Core §11). Latchkey lists
/// it in `scopes_supported` and always permits it: MCP clients add it to
/// authorization requests when the server advertises it (SEP-2207).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The shortest initial access token or introspection secret accepted.
pub const MIN_SHARED_SECRET_LEN: usize = 16;

/// The longest an authorization code may live: RFC 6749 §4.1.2 recommends
/// at most ten minutes.
pub const MAX_CODE_LIFETIME: Duration = Duration::from_secs(600);

/// Why a configuration was refused. Each message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The issuer is not an https URL (or http on loopback) without query
    /// and fragment.
    #[error(
        "the issuer {issuer:?} is not valid: {reason} (use https://host[/path], or http:// on 127.0.0.1, [::1] or localhost for development)"
    )]
    Issuer {
        /// The issuer as given.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// A lifetime is zero, too long, or inconsistent with another.
    #[error("{0}")]
    Lifetime(String),
    /// A `--resource` value is not `URL[=scope,scope…]` with a valid URL and
    /// scopes.
    #[error("the resource {spec:?} is not valid: {reason}")]
    Resource {
        /// The value as given.
        spec: String,
        /// What is wrong.
        reason: String,
    },
    /// The same resource configured twice.
    #[error("the resource {0} is configured twice")]
    DuplicateResource(String),
    /// An unknown signing algorithm.
    #[error("unknown signing algorithm {0:?}: use ES256, RS256 or EdDSA")]
    SigningAlgorithm(String),
    /// An unknown registration policy, or `token` without a token.
    #[error("{0}")]
    Registration(String),
    /// A shared secret that is too short.
    #[error("the {0} must be at least {MIN_SHARED_SECRET_LEN} characters long")]
    ShortSecret(&'static str),
    /// Any other out-of-range setting.
    #[error("{0}")]
    Invalid(String),
}

/// How long things live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access tokens (JWTs): default 15 minutes.
    pub access_token: Duration,
    /// Authorization codes: default 60 seconds.
    pub authorization_code: Duration,
    /// A refresh token unless rotated first: default 30 days.
    pub refresh_idle: Duration,
    /// A refresh-token family however often it is rotated: default 90 days.
    pub refresh_absolute: Duration,
}

impl Default for Lifetimes {
    fn default() -> Lifetimes {
        Lifetimes {
            access_token: Duration::from_secs(15 * 60),
            authorization_code: Duration::from_secs(60),
            refresh_idle: Duration::from_secs(30 * 24 * 3600),
            refresh_absolute: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// The algorithm new signing keys use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlgorithm {
    /// ECDSA P-256 with SHA-256: small, fast, the default.
    #[default]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys: for verifiers that
    /// only know RSA.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm.
    pub const ALL: [SigningAlgorithm; 3] = [
        SigningAlgorithm::Es256,
        SigningAlgorithm::Rs256,
        SigningAlgorithm::EdDsa,
    ];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE name, case-insensitively (`es256` is accepted on the
    /// command line).
    pub fn parse(name: &str) -> Result<SigningAlgorithm, ConfigError> {
        SigningAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| ConfigError::SigningAlgorithm(name.to_owned()))
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may use dynamic client registration (RFC 7591).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RegistrationPolicy {
    /// Anyone (the MCP default: clients register themselves). Rate-limited
    /// per client address.
    #[default]
    Open,
    /// Only callers presenting this initial access token as a Bearer token
    /// (RFC 7591 §3).
    Token(SecretString),
    /// Nobody: clients are created by an operator (`latchkey client add`).
    /// The registration endpoint is not advertised and answers 403.
    Closed,
}

impl RegistrationPolicy {
    /// The policy's name: `open`, `token` or `closed`.
    pub fn name(&self) -> &'static str {
        match self {
            RegistrationPolicy::Open => "open",
            RegistrationPolicy::Token(_) => "token",
            RegistrationPolicy::Closed => "closed",
        }
    }

    /// Builds a policy from its name and the initial access token (needed
    /// for `token`, refused otherwise so that a forgotten setting is noticed).
    pub fn from_name(
        name: &str,
        initial_access_token: Option<SecretString>,
    ) -> Result<RegistrationPolicy, ConfigError> {
        match (
            name.trim().to_ascii_lowercase().as_str(),
            initial_access_token,
        ) {
            ("open", None) => Ok(RegistrationPolicy::Open),
            ("closed", None) => Ok(RegistrationPolicy::Closed),
            ("token", Some(token)) => Ok(RegistrationPolicy::Token(token)),
            ("token", None) => Err(ConfigError::Registration(
                "registration policy `token` needs an initial access token \
                 (--initial-access-token or LATCHKEY_INITIAL_ACCESS_TOKEN)"
                    .to_owned(),
            )),
            ("open" | "closed", Some(_)) => Err(ConfigError::Registration(
                "an initial access token is set but the registration policy is not `token`"
                    .to_owned(),
            )),
            (other, _) => Err(ConfigError::Registration(format!(
                "unknown registration policy {other:?}: use open, token or closed"
            ))),
        }
    }
}

/// A sliding-window rate limit: at most `max` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Events allowed per window.
    pub max: u32,
    /// The window.
    pub window: Duration,
}

/// A protected resource (an MCP server) this server issues tokens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredResource {
    /// The canonical resource URI: the `aud` of its tokens.
    pub uri: ResourceUri,
    /// The scopes clients may request for it. Empty means tokens for it
    /// carry no scope (nothing is granted that was not configured).
    pub scopes: ScopeSet,
    /// A display name, for the consent page and the start-up summary.
    pub name: Option<String>,
}

impl ConfiguredResource {
    /// Parses a command-line resource: `URL` or `URL=scope1,scope2`. The
    /// URL ends at the first `=`; a resource URL that contains `=` (in its
    /// query) must be configured in the config file instead.
    ///
    /// ```
    /// use latchkey_service::config::ConfiguredResource;
    ///
    /// let resource = ConfiguredResource::parse_spec("https://MCP.example.com/mcp=tools,files:read").unwrap();
    /// assert_eq!(resource.uri.as_str(), "https://mcp.example.com/mcp");
    /// assert_eq!(resource.scopes.to_string(), "tools files:read");
    /// assert!(ConfiguredResource::parse_spec("https://mcp.example.com/mcp").unwrap().scopes.is_empty());
    /// ```
    pub fn parse_spec(spec: &str) -> Result<ConfiguredResource, ConfigError> {
        let trimmed = spec.trim();
        let (url, scopes) = match trimmed.split_once('=') {
            Some((url, scopes)) => (url, scopes),
            None => (trimmed, ""),
        };
        let scopes: Vec<&str> = scopes
            .split(',')
            .map(str::trim)
            .filter(|scope| !scope.is_empty())
            .collect();
        ConfiguredResource::new(url, &scopes, None).map_err(|reason| ConfigError::Resource {
            spec: spec.to_owned(),
            reason,
        })
    }

    /// Builds a resource from its URL, scopes and name (the config file's
    /// `[[resource]]` table). The error is the reason, to be wrapped.
    pub fn new(
        url: &str,
        scopes: &[&str],
        name: Option<String>,
    ) -> Result<ConfiguredResource, String> {
        let uri = ResourceUri::parse(url.trim()).map_err(|error| error.to_string())?;
        let mut set = ScopeSet::new();
        for scope in scopes {
            let parsed =
                Scope::parse(scope).map_err(|error| format!("scope {scope:?}: {error}"))?;
            set.insert(parsed).map_err(|error| error.to_string())?;
        }
        Ok(ConfiguredResource {
            uri,
            scopes: set,
            name: name.filter(|name| !name.trim().is_empty()),
        })
    }
}

/// The resources this server issues tokens for, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRegistry {
    resources: Vec<ConfiguredResource>,
}

impl ResourceRegistry {
    /// A registry; the same canonical resource twice is an error.
    pub fn new(
        resources: impl IntoIterator<Item = ConfiguredResource>,
    ) -> Result<ResourceRegistry, ConfigError> {
        let mut registry = ResourceRegistry::default();
        for resource in resources {
            if registry.get(&resource.uri).is_some() {
                return Err(ConfigError::DuplicateResource(
                    resource.uri.as_str().to_owned(),
                ));
            }
            registry.resources.push(resource);
        }
        Ok(registry)
    }

    /// The configured resource equal (canonically) to `uri`.
    pub fn get(&self, uri: &ResourceUri) -> Option<&ConfiguredResource> {
        self.resources.iter().find(|resource| resource.uri == *uri)
    }

    /// The configured resource whose canonical URI is `canonical` (as
    /// stored with a grant).
    pub fn get_canonical(&self, canonical: &str) -> Option<&ConfiguredResource> {
        self.resources
            .iter()
            .find(|resource| resource.uri.as_str() == canonical)
    }

    /// The only resource, when exactly one is configured.
    pub fn only(&self) -> Option<&ConfiguredResource> {
        match self.resources.as_slice() {
            [single] => Some(single),
            _ => None,
        }
    }

    /// The resources in configuration order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfiguredResource> {
        self.resources.iter()
    }

    /// How many resources are configured.
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// Every scope of every resource, in order, then `offline_access`: the
    /// `scopes_supported` of the server metadata.
    pub fn scopes_supported(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for resource in &self.resources {
            for scope in &resource.scopes {
                if !scopes.iter().any(|known| known == scope.as_str()) {
                    scopes.push(scope.as_str().to_owned());
                }
            }
        }
        if !scopes.iter().any(|known| known == OFFLINE_ACCESS) {
            scopes.push(OFFLINE_ACCESS.to_owned());
        }
        scopes
    }
}

/// Client ID Metadata Documents: fetch limits, caching and trust
/// (docs/client-metadata-documents.md). The body limit is the protocol
/// crate's `MAX_METADATA_DOCUMENT_LEN` (5 KiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataDocumentSettings {
    /// The deadline for a whole fetch: connect, TLS, headers and body
    /// (default 5 s).
    pub fetch_timeout: Duration,
    /// A fetched document is fresh for at least this long, whatever its
    /// `Cache-Control` says (default 5 minutes).
    pub min_cache: Duration,
    /// And at most this long; a stale copy stands in for a failed re-fetch
    /// until this long after it was fetched (default 24 hours).
    pub max_cache: Duration,
    /// How long a failed fetch or an invalid document is remembered, in
    /// process, before the URL is tried again (default 60 s).
    pub failure_cache: Duration,
    /// Fetches allowed per host per minute, in process (default 10).
    pub fetches_per_host_per_minute: u32,
    /// Development only: allow `http://` client-id URLs on 127.0.0.1,
    /// `[::1]` and `localhost`, and loopback addresses (default off).
    pub allow_insecure: bool,
    /// Hosts whose metadata-document clients the consent page calls
    /// verified (exact, case-insensitive host names).
    pub trusted_hosts: Vec<String>,
}

impl Default for MetadataDocumentSettings {
    fn default() -> MetadataDocumentSettings {
        MetadataDocumentSettings {
            fetch_timeout: Duration::from_secs(5),
            min_cache: Duration::from_secs(5 * 60),
            max_cache: Duration::from_secs(24 * 3600),
            failure_cache: Duration::from_secs(60),
            fetches_per_host_per_minute: 10,
            allow_insecure: false,
            trusted_hosts: Vec::new(),
        }
    }
}

/// Browser sessions: how long a signed-in session lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// A session ends after this long without a request (default 1 hour).
    pub idle: Duration,
    /// A session ends this long after sign-in, however active (default 12
    /// hours).
    pub absolute: Duration,
}

impl Default for SessionSettings {
    fn default() -> SessionSettings {
        SessionSettings {
            idle: Duration::from_secs(3600),
            absolute: Duration::from_secs(12 * 3600),
        }
    }
}

/// Limits on failed sign-ins, counted with the sliding-window limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRateLimits {
    /// Failures allowed per account (normalized email) per window; default
    /// 5 per 15 minutes. `None` disables the limit.
    pub per_account: Option<RateLimitSettings>,
    /// Failures allowed per client address per window; default 30 per 15
    /// minutes. `None` disables the limit.
    pub per_address: Option<RateLimitSettings>,
}

impl Default for LoginRateLimits {
    fn default() -> LoginRateLimits {
        LoginRateLimits {
            per_account: Some(RateLimitSettings {
                max: 5,
                window: Duration::from_secs(15 * 60),
            }),
            per_address: Some(RateLimitSettings {
                max: 30,
                window: Duration::from_secs(15 * 60),
            }),
        }
    }
}

/// The default consent lifetime: 30 days.
pub const DEFAULT_CONSENT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long an authorization request may wait for the user to sign in and
/// decide (10 minutes, as RFC 6749 §4.1.2 suggests for codes).
pub const PENDING_AUTHORIZATION_TTL: Duration = Duration::from_secs(600);

/// The description the consent page shows for `offline_access` when none
/// is configured.
pub const OFFLINE_ACCESS_DESCRIPTION: &str = "Stay connected when you are not using the app";

/// The longest scope description accepted.
pub const MAX_SCOPE_DESCRIPTION_LEN: usize = 200;

/// Everything the service needs to know.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The issuer identifier, used byte-for-byte in metadata, tokens and
    /// `iss` parameters (clients compare it without normalising).
    pub issuer: String,
    /// Token and code lifetimes.
    pub lifetimes: Lifetimes,
    /// The protected resources tokens are issued for.
    pub resources: ResourceRegistry,
    /// Whether requests must name a `resource` (the MCP profile; default
    /// on). When off, a request without one gets the only configured
    /// resource, and fails if there are several.
    pub require_resource: bool,
    /// Who may register clients dynamically.
    pub registration: RegistrationPolicy,
    /// The per-address limit on dynamic registrations; `None` disables it.
    pub registration_rate_limit: Option<RateLimitSettings>,
    /// The algorithm of newly generated signing keys.
    pub signing_algorithm: SigningAlgorithm,
    /// A shared secret that lets its holder introspect any token
    /// (`Authorization: Bearer <secret>`), for resource servers that have
    /// no client of their own.
    pub introspection_secret: Option<SecretString>,
    /// How long a client record is served from memory before it is read
    /// again (default 30 s; zero disables the cache). A client removed on
    /// another instance keeps working here for at most this long.
    pub client_cache_ttl: Duration,
    /// How often every instance reloads the signing keys from the store
    /// (default 60 s). Retired keys stay published this much longer than
    /// the access-token lifetime, to cover instances that have not
    /// reloaded yet.
    pub key_reload_interval: Duration,
    /// Browser session timeouts.
    pub sessions: SessionSettings,
    /// How long a user's consent is remembered (default 30 days).
    pub consent_ttl: Duration,
    /// Limits on failed sign-ins.
    pub login_rate_limits: LoginRateLimits,
    /// Human descriptions of scopes for the consent page (`"files:read" =
    /// "Read your files"`). A scope without one is shown by its name.
    pub scope_descriptions: BTreeMap<String, String>,
    /// Client ID Metadata Documents.
    pub metadata_documents: MetadataDocumentSettings,
}

impl ServiceConfig {
    /// A configuration with every default and no resources.
    pub fn new(issuer: impl Into<String>) -> ServiceConfig {
        ServiceConfig {
            issuer: issuer.into(),
            lifetimes: Lifetimes::default(),
            resources: ResourceRegistry::default(),
            require_resource: true,
            registration: RegistrationPolicy::Open,
            registration_rate_limit: Some(RateLimitSettings {
                max: 20,
                window: Duration::from_secs(3600),
            }),
            signing_algorithm: SigningAlgorithm::Es256,
            introspection_secret: None,
            client_cache_ttl: Duration::from_secs(30),
            key_reload_interval: Duration::from_secs(60),
            sessions: SessionSettings::default(),
            consent_ttl: DEFAULT_CONSENT_TTL,
            login_rate_limits: LoginRateLimits::default(),
            scope_descriptions: BTreeMap::new(),
            metadata_documents: MetadataDocumentSettings::default(),
        }
    }

    /// The description of `scope` for the consent page: the configured one,
    /// a built-in one for `offline_access`, else the scope's name.
    pub fn scope_description(&self, scope: &str) -> String {
        match self.scope_descriptions.get(scope) {
            Some(description) => description.clone(),
            None if scope == OFFLINE_ACCESS => OFFLINE_ACCESS_DESCRIPTION.to_owned(),
            None => scope.to_owned(),
        }
    }

    /// Whether the issuer is `https`: browser cookies are then `Secure` and
    /// `__Host-` prefixed.
    pub fn issuer_is_https(&self) -> bool {
        self.issuer
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// The issuer's origin (`scheme://host[:port]`, RFC 6454), which the
    /// `Origin` header of the server's own form posts must equal.
    pub fn issuer_origin(&self) -> String {
        match url::Url::parse(&self.issuer) {
            Ok(url) => url.origin().ascii_serialization(),
            Err(_) => self.issuer.clone(),
        }
    }

    /// Checks every setting; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_issuer(&self.issuer).map_err(|error| ConfigError::Issuer {
            issuer: self.issuer.clone(),
            reason: error.to_string(),
        })?;
        let lifetimes = &self.lifetimes;
        let at_least_a_second = [
            ("access token lifetime", lifetimes.access_token),
            ("authorization code lifetime", lifetimes.authorization_code),
            ("refresh token idle lifetime", lifetimes.refresh_idle),
            (
                "refresh token absolute lifetime",
                lifetimes.refresh_absolute,
            ),
            ("key reload interval", self.key_reload_interval),
        ];
        for (name, value) in at_least_a_second {
            if value < Duration::from_secs(1) {
                return Err(ConfigError::Lifetime(format!(
                    "the {name} must be at least one second"
                )));
            }
        }
        if lifetimes.authorization_code > MAX_CODE_LIFETIME {
            return Err(ConfigError::Lifetime(
                "the authorization code lifetime must be at most 10 minutes (RFC 6749 section 4.1.2)"
                    .to_owned(),
            ));
        }
        if lifetimes.refresh_idle > lifetimes.refresh_absolute {
            return Err(ConfigError::Lifetime(
                "the refresh token idle lifetime must not exceed its absolute lifetime".to_owned(),
            ));
        }
        if let RegistrationPolicy::Token(token) = &self.registration
            && token.expose().len() < MIN_SHARED_SECRET_LEN
        {
            return Err(ConfigError::ShortSecret("initial access token"));
        }
        if let Some(secret) = &self.introspection_secret
            && secret.expose().len() < MIN_SHARED_SECRET_LEN
        {
            return Err(ConfigError::ShortSecret("introspection secret"));
        }
        let documents = &self.metadata_documents;
        if documents.fetch_timeout < Duration::from_millis(1)
            || documents.fetch_timeout > Duration::from_secs(60)
        {
            return Err(ConfigError::Invalid(
                "the metadata document fetch timeout must be between 1ms and 60s".to_owned(),
            ));
        }
        if documents.min_cache > documents.max_cache {
            return Err(ConfigError::Invalid(
                "the metadata document minimum cache time must not exceed the maximum".to_owned(),
            ));
        }
        if documents.fetches_per_host_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "the metadata document fetch limit must allow at least one fetch per host per minute"
                    .to_owned(),
            ));
        }
        if let Some(host) = documents
            .trusted_hosts
            .iter()
            .find(|host| host.is_empty() || host.contains(['/', ':', '@', ' ']))
        {
            return Err(ConfigError::Invalid(format!(
                "the trusted client host {host:?} is not a host name (no scheme, port or path)"
            )));
        }
        if let Some(limit) = &self.registration_rate_limit
            && (limit.max == 0 || limit.window < Duration::from_secs(1))
        {
            return Err(ConfigError::Invalid(
                "the registration rate limit needs at least one registration per window of at least one second"
                    .to_owned(),
            ));
        }
        for (name, limit) in [
            ("per-account", &self.login_rate_limits.per_account),
            ("per-address", &self.login_rate_limits.per_address),
        ] {
            if let Some(limit) = limit
                && (limit.max == 0 || limit.window < Duration::from_secs(1))
            {
                return Err(ConfigError::Invalid(format!(
                    "the {name} login rate limit needs at least one attempt per window of at least one second"
                )));
            }
        }
        let sessions = &self.sessions;
        if sessions.idle < Duration::from_secs(60) || sessions.absolute < Duration::from_secs(60) {
            return Err(ConfigError::Lifetime(
                "the session idle and absolute lifetimes must be at least one minute".to_owned(),
            ));
        }
        if sessions.idle > sessions.absolute {
            return Err(ConfigError::Lifetime(
                "the session idle lifetime must not exceed its absolute lifetime".to_owned(),
            ));
        }
        if self.consent_ttl < Duration::from_secs(1) {
            return Err(ConfigError::Lifetime(
                "the consent lifetime must be at least one second".to_owned(),
            ));
        }
        for (scope, description) in &self.scope_descriptions {
            if Scope::parse(scope).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "the scope description names {scope:?}, which is not a valid scope"
                )));
            }
            let length = description.chars().count();
            if description.trim().is_empty() || length > MAX_SCOPE_DESCRIPTION_LEN {
                return Err(ConfigError::Invalid(format!(
                    "the description of scope {scope:?} must be 1 to {MAX_SCOPE_DESCRIPTION_LEN} characters"
                )));
            }
        }
        Ok(())
    }

    /// The issuer without a trailing slash: the base endpoint URLs are
    /// built on (`{base}/token`), so that an issuer written with a
    /// trailing slash does not produce `//token`.
    pub fn endpoint_base(&self) -> &str {
        self.issuer.trim_end_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(spec: &str) -> ConfiguredResource {
        ConfiguredResource::parse_spec(spec).unwrap()
    }

    #[test]
    fn resource_specs_parse_url_and_scopes() {
        let parsed = resource(" https://mcp.example.com/ = a , b:c ,, ");
        assert_eq!(parsed.uri.as_str(), "https://mcp.example.com");
        assert_eq!(parsed.scopes.to_string(), "a b:c");
        assert!(resource("http://127.0.0.1:3000/mcp").scopes.is_empty());
        for bad in [
            "",
            "mcp.example.com",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp#x",
            "https://mcp.example.com/mcp=bad\"scope",
        ] {
            let error = ConfiguredResource::parse_spec(bad).unwrap_err();
            assert!(
                matches!(error, ConfigError::Resource { .. }),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_registry_refuses_duplicates_and_lists_scopes() {
        let duplicate = ResourceRegistry::new([resource("https://h/"), resource("https://H:443")]);
        assert_eq!(
            duplicate,
            Err(ConfigError::DuplicateResource("https://h".to_owned()))
        );
        let registry = ResourceRegistry::new([
            resource("https://a.example/mcp=x,y"),
            resource("https://b.example/mcp=y,z,offline_access"),
        ])
        .unwrap();
        assert_eq!(
            registry.scopes_supported(),
            ["x", "y", "z", "offline_access"]
        );
        assert!(registry.only().is_none());
        assert_eq!(
            registry
                .get(&ResourceUri::parse("HTTPS://b.example/mcp").unwrap())
                .unwrap()
                .scopes
                .len(),
            3
        );
        assert!(registry.get_canonical("https://a.example/mcp").is_some());
        assert!(registry.get_canonical("https://a.example/MCP").is_none());
        assert_eq!(
            ResourceRegistry::default().scopes_supported(),
            [OFFLINE_ACCESS]
        );
    }

    #[test]
    fn algorithms_parse_case_insensitively() {
        assert_eq!(
            SigningAlgorithm::parse("es256"),
            Ok(SigningAlgorithm::Es256)
        );
        assert_eq!(
            SigningAlgorithm::parse("RS256"),
            Ok(SigningAlgorithm::Rs256)
        );
        assert_eq!(
            SigningAlgorithm::parse("eddsa"),
            Ok(SigningAlgorithm::EdDsa)
        );
        assert!(SigningAlgorithm::parse("HS256").is_err());
    }

    #[test]
    fn registration_policies_need_a_token_exactly_for_token() {
        let token = || Some(SecretString::new("0123456789abcdef"));
        assert_eq!(
            RegistrationPolicy::from_name("open", None),
            Ok(RegistrationPolicy::Open)
        );
        assert_eq!(
            RegistrationPolicy::from_name("Closed", None),
            Ok(RegistrationPolicy::Closed)
        );
        assert!(matches!(
            RegistrationPolicy::from_name("token", token()),
            Ok(RegistrationPolicy::Token(_))
        ));
        assert!(RegistrationPolicy::from_name("token", None).is_err());
        assert!(RegistrationPolicy::from_name("open", token()).is_err());
        assert!(RegistrationPolicy::from_name("invite", None).is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let good = ServiceConfig::new("https://auth.example.com");
        assert_eq!(good.validate(), Ok(()));

        let mut config = good.clone();
        config.issuer = "http://auth.example.com".to_owned();
        assert!(matches!(config.validate(), Err(ConfigError::Issuer { .. })));
        config.issuer = "http://127.0.0.1:8080".to_owned();
        assert_eq!(config.validate(), Ok(()));

        let mut config = good.clone();
        config.lifetimes.access_token = Duration::ZERO;
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("access token lifetime")
        );

        let mut config = good.clone();
        config.lifetimes.authorization_code = Duration::from_secs(601);
        assert!(matches!(config.validate(), Err(ConfigError::Lifetime(_))));

        let mut config = good.clone();
        config.lifetimes.refresh_idle = config.lifetimes.refresh_absolute + Duration::from_secs(1);
        assert!(matches!(config.validate(), Err(ConfigError::Lifetime(_))));

        let mut config = good.clone();
        config.introspection_secret = Some(SecretString::new("short"));
        assert_eq!(
            config.validate(),
            Err(ConfigError::ShortSecret("introspection secret"))
        );

        let mut config = good.clone();
        config.registration = RegistrationPolicy::Token(SecretString::new("short"));
        assert_eq!(
            config.validate(),
            Err(ConfigError::ShortSecret("initial access token"))
        );

        let mut config = good;
        config.registration_rate_limit = Some(RateLimitSettings {
            max: 0,
            window: Duration::from_secs(60),
        });
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn browser_settings_are_validated() {
        let good = ServiceConfig::new("https://auth.example.com");
        let mut config = good.clone();
        config.sessions.idle = config.sessions.absolute + Duration::from_secs(1);
        assert!(matches!(config.validate(), Err(ConfigError::Lifetime(_))));
        let mut config = good.clone();
        config.sessions.absolute = Duration::from_secs(59);
        assert!(matches!(config.validate(), Err(ConfigError::Lifetime(_))));
        let mut config = good.clone();
        config.consent_ttl = Duration::ZERO;
        assert!(matches!(config.validate(), Err(ConfigError::Lifetime(_))));
        let mut config = good.clone();
        config.login_rate_limits.per_account = Some(RateLimitSettings {
            max: 0,
            window: Duration::from_secs(60),
        });
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("per-account")
        );
        let mut config = good.clone();
        config
            .scope_descriptions
            .insert("bad scope".to_owned(), "x".to_owned());
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
        let mut config = good;
        config
            .scope_descriptions
            .insert("files:read".to_owned(), " ".to_owned());
        assert!(matches!(config.validate(), Err(ConfigError::Invalid(_))));
        config
            .scope_descriptions
            .insert("files:read".to_owned(), "Read your files".to_owned());
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.scope_description("files:read"), "Read your files");
        assert_eq!(config.scope_description("other"), "other");
        assert_eq!(
            config.scope_description(OFFLINE_ACCESS),
            OFFLINE_ACCESS_DESCRIPTION
        );
    }

    #[test]
    fn issuer_origin_and_scheme() {
        let config = ServiceConfig::new("https://Auth.Example.com:443/t1/");
        assert!(config.issuer_is_https());
        assert_eq!(config.issuer_origin(), "https://auth.example.com");
        let local = ServiceConfig::new("http://127.0.0.1:8080");
        assert!(!local.issuer_is_https());
        assert_eq!(local.issuer_origin(), "http://127.0.0.1:8080");
    }

    #[test]
    fn endpoint_base_drops_a_trailing_slash_only_for_urls() {
        assert_eq!(
            ServiceConfig::new("https://a.example/").endpoint_base(),
            "https://a.example"
        );
        assert_eq!(
            ServiceConfig::new("https://a.example/t1").endpoint_base(),
            "https://a.example/t1"
        );
    }
}
