//! The issuers a resource trusts and the rules each one's tokens follow:
//! which algorithms it signs with, which JOSE `typ` its access tokens carry,
//! which claims they must have, and where its keys come from.
//!
//! Two presets cover the common cases. [`TrustedIssuer::latchkey`] is strict:
//! ES256, RS256 or EdDSA, `typ: at+jwt` and every RFC 9068 claim.
//! [`TrustedIssuer::external`] fits identity providers: RS256 or ES256 and
//! relaxed claims (`azp`/`cid` for the client, `scp` for scopes); many of
//! them type access tokens `JWT`, which [`TrustedIssuer::require_typ`] with
//! `None` allows. Issuers are compared byte-for-byte everywhere (RFC 8414
//! §3.3): `https://a.example` and `https://a.example/` are two issuers.

use std::sync::Arc;

use url::Url;

use crate::keys::{Algorithm, KeySource};

/// The `typ` Latchkey (and any RFC 9068 issuer) puts on access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Which claims an issuer's tokens must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClaimsProfile {
    /// RFC 9068 §2.2: `iss`, `exp`, `aud`, `sub`, `client_id`, `iat` and
    /// `jti` are all required. Latchkey's tokens always have them.
    #[default]
    Rfc9068,
    /// What identity providers commonly issue: `iss`, `exp`, `aud` and
    /// `sub` are required; the client comes from `client_id`, `azp` or
    /// `cid`; scopes from `scope` (a string) or `scp` (a string or array).
    Relaxed,
}

/// An issuer whose tokens this resource accepts, and its rules.
///
/// ```
/// use latchkey_resource::{Algorithm, ClaimsProfile, TrustedIssuer};
///
/// let latchkey = TrustedIssuer::latchkey("https://auth.example.com");
/// assert_eq!(latchkey.allowed_algorithms(), &Algorithm::ALL);
///
/// // An identity provider that signs RS256 tokens typed `JWT`.
/// let idp = TrustedIssuer::external("https://tenant.idp.example/")
///     .algorithms([Algorithm::Rs256])
///     .require_typ(None);
/// assert_eq!(idp.claims(), ClaimsProfile::Relaxed);
/// ```
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    pub(crate) issuer: String,
    pub(crate) jwks_uri: Option<Url>,
    pub(crate) key_source: Option<Arc<dyn KeySource>>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) require_typ: Option<String>,
    pub(crate) claims: ClaimsProfile,
}

impl TrustedIssuer {
    /// A Latchkey authorization server: ES256, RS256 or EdDSA, `typ`
    /// `at+jwt`, RFC 9068 claims, keys discovered from its metadata.
    pub fn latchkey(issuer: impl Into<String>) -> TrustedIssuer {
        TrustedIssuer {
            issuer: issuer.into(),
            jwks_uri: None,
            key_source: None,
            algorithms: Algorithm::ALL.to_vec(),
            require_typ: Some(ACCESS_TOKEN_TYP.to_owned()),
            claims: ClaimsProfile::Rfc9068,
        }
    }

    /// Another OAuth / OpenID Connect issuer with a JWKS: RS256 or ES256,
    /// `typ` `at+jwt` (relax with [`TrustedIssuer::require_typ`]), relaxed
    /// claims, keys discovered from its metadata.
    pub fn external(issuer: impl Into<String>) -> TrustedIssuer {
        TrustedIssuer {
            algorithms: vec![Algorithm::Rs256, Algorithm::Es256],
            claims: ClaimsProfile::Relaxed,
            ..TrustedIssuer::latchkey(issuer)
        }
    }

    /// Fetches keys from this `jwks_uri` instead of discovering it.
    pub fn jwks_uri(mut self, jwks_uri: Url) -> TrustedIssuer {
        self.jwks_uri = Some(jwks_uri);
        self
    }

    /// Takes keys from this source (for example the authorization server
    /// in the same process) instead of HTTP.
    pub fn key_source(mut self, source: Arc<dyn KeySource>) -> TrustedIssuer {
        self.key_source = Some(source);
        self
    }

    /// Replaces the algorithm allow-list.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> TrustedIssuer {
        self.algorithms = Vec::new();
        for algorithm in algorithms {
            if !self.algorithms.contains(&algorithm) {
                self.algorithms.push(algorithm);
            }
        }
        self
    }

    /// Sets the required JOSE `typ`. With `None`, a token may have no
    /// `typ`, `JWT` or `at+jwt`, but nothing else: a token typed for
    /// another purpose (`dpop+jwt`, `logout+jwt`, …) is never an access
    /// token (RFC 8725 §3.11).
    pub fn require_typ(mut self, typ: Option<&str>) -> TrustedIssuer {
        self.require_typ = typ.map(str::to_owned);
        self
    }

    /// Sets the claims profile.
    pub fn claims_profile(mut self, profile: ClaimsProfile) -> TrustedIssuer {
        self.claims = profile;
        self
    }

    /// The issuer identifier, byte-for-byte.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The allowed algorithms.
    pub fn allowed_algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The claims profile.
    pub fn claims(&self) -> ClaimsProfile {
        self.claims
    }

    /// Whether a token's `typ` satisfies this issuer's rule.
    pub(crate) fn accepts_typ(&self, typ: Option<&str>) -> bool {
        match (&self.require_typ, typ) {
            (Some(required), Some(typ)) => media_type_eq(typ, required),
            (Some(_), None) => false,
            (None, None) => true,
            (None, Some(typ)) => media_type_eq(typ, "JWT") || media_type_eq(typ, ACCESS_TOKEN_TYP),
        }
    }
}

/// Compares JOSE `typ` values: case-insensitive, `application/` optional
/// (RFC 7515 §4.1.9).
fn media_type_eq(left: &str, right: &str) -> bool {
    fn bare(value: &str) -> &str {
        match value.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => {
                value.get(12..).unwrap_or_default()
            }
            _ => value,
        }
    }
    bare(left).eq_ignore_ascii_case(bare(right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_rules() {
        let strict = TrustedIssuer::latchkey("https://a.example");
        assert!(strict.accepts_typ(Some("at+jwt")));
        assert!(strict.accepts_typ(Some("AT+JWT")));
        assert!(strict.accepts_typ(Some("application/at+jwt")));
        assert!(!strict.accepts_typ(Some("JWT")));
        assert!(!strict.accepts_typ(None));
        let relaxed = strict.require_typ(None);
        assert!(relaxed.accepts_typ(None));
        assert!(relaxed.accepts_typ(Some("JWT")));
        assert!(relaxed.accepts_typ(Some("at+jwt")));
        assert!(!relaxed.accepts_typ(Some("dpop+jwt")));
        assert!(!relaxed.accepts_typ(Some("application/")));
    }
}
