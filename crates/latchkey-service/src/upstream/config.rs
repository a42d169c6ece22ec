//! The configuration of one upstream OpenID Connect provider, and its
//! validation.
//!
//! A provider is named by an `id`, a slug used in URLs: Latchkey's
//! redirect URI at the provider is `{issuer}/login/upstream/{id}/callback`
//! ([`UpstreamProvider::redirect_uri`]), which the operator registers
//! there. Everything else (endpoints, keys) comes from OIDC discovery at
//! run time. The client secret is a [`SecretString`], so `Debug` on a
//! provider is safe to log.

use latchkey_protocol::metadata::validate_issuer;
use latchkey_protocol::secret::SecretString;

use crate::config::ConfigError;

/// The scopes requested when none are configured.
pub const DEFAULT_UPSTREAM_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// The longest provider id accepted.
pub const MAX_PROVIDER_ID_LEN: usize = 32;

/// The path, under the issuer's base, of a provider's callback; `{id}` is
/// the provider id.
pub const CALLBACK_PATH: &str = "/login/upstream/{id}/callback";

/// The ID-token signature algorithms Latchkey can accept from an upstream.
/// Never `none` and never an HMAC algorithm (`HS*`): an HMAC key would be
/// the client secret, which this side holds too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (what most providers use).
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl UpstreamAlgorithm {
    /// Every supported algorithm (the default allow-list).
    pub const ALL: [UpstreamAlgorithm; 2] = [UpstreamAlgorithm::Rs256, UpstreamAlgorithm::Es256];

    /// The JOSE name (`alg`).
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamAlgorithm::Rs256 => "RS256",
            UpstreamAlgorithm::Es256 => "ES256",
        }
    }

    /// Parses a JOSE name exactly (`alg` values are case-sensitive).
    pub fn parse(name: &str) -> Option<UpstreamAlgorithm> {
        UpstreamAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str() == name)
    }
}

/// One upstream OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamProvider {
    /// The slug in URLs (`[a-z0-9-]`, 1 to 32 characters).
    pub id: String,
    /// The provider's issuer identifier, exactly as in its ID tokens and
    /// discovery document.
    pub issuer: String,
    /// Latchkey's client id at the provider.
    pub client_id: String,
    /// Latchkey's client secret at the provider (`client_secret_basic`).
    pub client_secret: SecretString,
    /// The scopes requested; must contain `openid`.
    pub scopes: Vec<String>,
    /// The name on the "Continue with …" button.
    pub display_name: String,
    /// Link a new upstream identity to the local user with the same email,
    /// when the provider says the email is verified (default off).
    pub link_by_verified_email: bool,
    /// Create a local user for an unknown upstream identity with a
    /// verified email (default off).
    pub auto_provision: bool,
    /// Ask the userinfo endpoint for `email` and `email_verified` when the
    /// ID token lacks them (default off).
    pub userinfo_fallback: bool,
    /// The ID-token algorithms accepted (default RS256 and ES256).
    pub algorithms: Vec<UpstreamAlgorithm>,
}

impl UpstreamProvider {
    /// A provider with the defaults: scopes `openid email profile`, no
    /// linking by email, no auto-provisioning, no userinfo, RS256 and
    /// ES256.
    pub fn new(
        id: impl Into<String>,
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretString,
    ) -> UpstreamProvider {
        let id = id.into();
        UpstreamProvider {
            display_name: id.clone(),
            id,
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret,
            scopes: DEFAULT_UPSTREAM_SCOPES.map(str::to_owned).to_vec(),
            link_by_verified_email: false,
            auto_provision: false,
            userinfo_fallback: false,
            algorithms: UpstreamAlgorithm::ALL.to_vec(),
        }
    }

    /// Latchkey's redirect URI at this provider, for the Latchkey issuer
    /// `endpoint_base` (without a trailing slash).
    pub fn redirect_uri(&self, endpoint_base: &str) -> String {
        format!("{endpoint_base}{}", CALLBACK_PATH.replace("{id}", &self.id))
    }

    /// The discovery document's URL (OIDC Discovery §4: the well-known
    /// suffix is appended to the issuer, trailing slash removed).
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        )
    }

    /// The issuer's origin, which the login page's `form-action` allows
    /// (the start of an upstream sign-in redirects there).
    pub fn issuer_origin(&self) -> Option<String> {
        url::Url::parse(&self.issuer)
            .ok()
            .map(|url| url.origin().ascii_serialization())
    }

    /// Checks this provider on its own; the first problem found is
    /// returned, naming the provider.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| {
            Err(ConfigError::Invalid(format!(
                "upstream provider {:?}: {reason}",
                self.id
            )))
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_PROVIDER_ID_LEN
            && self
                .id
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !id_ok {
            return invalid(format!(
                "the id must be 1 to {MAX_PROVIDER_ID_LEN} characters of a-z, 0-9 and -"
            ));
        }
        if let Err(error) = validate_issuer(&self.issuer) {
            return invalid(format!(
                "the issuer {:?} is not valid: {error} (use https://, or http:// on loopback)",
                self.issuer
            ));
        }
        if self.issuer.contains('#') {
            return invalid("the issuer must not contain a fragment".to_owned());
        }
        if self.client_id.trim().is_empty() {
            return invalid("client_id is empty".to_owned());
        }
        if self.client_secret.expose().is_empty() {
            return invalid(format!(
                "no client secret (set client_secret, client_secret_file or \
                 LATCHKEY_UPSTREAM_{}_CLIENT_SECRET)",
                env_name(&self.id)
            ));
        }
        if !self.scopes.iter().any(|scope| scope == "openid") {
            return invalid("the scopes must include openid".to_owned());
        }
        if self.scopes.iter().any(|scope| {
            scope.is_empty()
                || !scope
                    .bytes()
                    .all(|byte| byte.is_ascii_graphic() && byte != b'"' && byte != b'\\')
        }) {
            return invalid("a scope is empty or contains a space, quote or backslash".to_owned());
        }
        if self.display_name.trim().is_empty() || self.display_name.chars().count() > 64 {
            return invalid("the display name must be 1 to 64 characters".to_owned());
        }
        if self.algorithms.is_empty() {
            return invalid("at least one algorithm (RS256 or ES256) is required".to_owned());
        }
        Ok(())
    }
}

/// The environment-variable form of a provider id: `my-idp` → `MY_IDP`.
pub fn env_name(id: &str) -> String {
    id.to_ascii_uppercase().replace('-', "_")
}

/// Checks the providers together: each on its own, and ids unique.
pub fn validate_providers(providers: &[UpstreamProvider]) -> Result<(), ConfigError> {
    for (index, provider) in providers.iter().enumerate() {
        provider.validate()?;
        if providers
            .iter()
            .take(index)
            .any(|earlier| earlier.id == provider.id)
        {
            return Err(ConfigError::Invalid(format!(
                "the upstream provider id {:?} is configured twice",
                provider.id
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> UpstreamProvider {
        UpstreamProvider::new(
            "corp",
            "https://idp.example.com",
            "latchkey",
            SecretString::new("s3cret"),
        )
    }

    #[test]
    fn defaults_and_urls() {
        let provider = provider();
        assert_eq!(provider.scopes, ["openid", "email", "profile"]);
        assert_eq!(provider.algorithms, UpstreamAlgorithm::ALL);
        assert!(!provider.link_by_verified_email && !provider.auto_provision);
        assert_eq!(
            provider.redirect_uri("https://auth.example.com/t1"),
            "https://auth.example.com/t1/login/upstream/corp/callback"
        );
        let mut slash = provider.clone();
        slash.issuer = "https://idp.example.com/realm/".to_owned();
        assert_eq!(
            slash.discovery_url(),
            "https://idp.example.com/realm/.well-known/openid-configuration"
        );
        assert_eq!(
            provider.issuer_origin().as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(env_name("my-idp"), "MY_IDP");
    }

    #[test]
    fn validation_names_the_provider_and_the_problem() {
        assert_eq!(provider().validate(), Ok(()));
        type Change = fn(&mut UpstreamProvider);
        let cases: [(&str, Change); 8] = [
            ("the id", |p| p.id = "Corp".to_owned()),
            ("the id", |p| p.id = String::new()),
            ("the issuer", |p| {
                p.issuer = "http://idp.example.com".to_owned()
            }),
            ("client_id", |p| p.client_id = " ".to_owned()),
            ("LATCHKEY_UPSTREAM_CORP_CLIENT_SECRET", |p| {
                p.client_secret = SecretString::new("")
            }),
            ("openid", |p| p.scopes = vec!["email".to_owned()]),
            ("display name", |p| p.display_name = String::new()),
            ("algorithm", |p| p.algorithms.clear()),
        ];
        for (expected, change) in cases {
            let mut provider = provider();
            change(&mut provider);
            let message = provider.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{expected}: {message}");
            assert!(message.contains("upstream provider"), "{message}");
        }
        let mut loopback = provider();
        loopback.issuer = "http://127.0.0.1:4000".to_owned();
        assert_eq!(loopback.validate(), Ok(()));
    }

    #[test]
    fn ids_are_unique() {
        assert_eq!(validate_providers(&[provider()]), Ok(()));
        let message = validate_providers(&[provider(), provider()])
            .unwrap_err()
            .to_string();
        assert!(message.contains("twice"), "{message}");
    }

    #[test]
    fn algorithms_parse_exactly() {
        assert_eq!(
            UpstreamAlgorithm::parse("RS256"),
            Some(UpstreamAlgorithm::Rs256)
        );
        assert_eq!(
            UpstreamAlgorithm::parse("ES256"),
            Some(UpstreamAlgorithm::Es256)
        );
        for refused in ["rs256", "HS256", "none", "EdDSA", "PS256"] {
            assert_eq!(UpstreamAlgorithm::parse(refused), None, "{refused}");
        }
    }
}
