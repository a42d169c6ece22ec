//! The validator against real issuers over loopback HTTP: every algorithm,
//! every claim rule, algorithm confusion, `typ`, key rotation with a
//! rate-limited refetch, foreign issuers, in-process key sources and JWKS
//! outages.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::HS256;
use latchkey_protocol::resource::ResourceUri;
use latchkey_resource::clock::ManualClock;
use latchkey_resource::{
    Algorithm, ClaimsProfile, Jwks, StaticKeySource, TokenValidator, TrustedIssuer,
    ValidationError, ValidationMethod,
};
use serde_json::{Value, json};

use crate::support::{
    Discovery, TestIssuer, TestKey, compact, now, sign, sign_with_header, validator_for,
};

const RESOURCE: &str = "https://mcp.example.com/mcp";
/// A fixed "now" for clock-driven tests.
const T: i64 = 1_800_000_000;

fn claims_at(issuer: &TestIssuer, issued_at: i64, lifetime: i64) -> Value {
    json!({
        "iss": issuer.issuer, "sub": "user-1", "aud": RESOURCE, "client_id": "client-1",
        "scope": "mcp files:read", "iat": issued_at, "exp": issued_at + lifetime, "jti": "jti-1"
    })
}

fn manual_validator(issuer: &TestIssuer, clock: &ManualClock) -> TokenValidator {
    validator_for(RESOURCE, issuer)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn valid_tokens_in_every_algorithm_yield_the_identity() {
    let issuer = TestIssuer::start(
        "",
        Discovery::OAuth,
        vec![
            TestKey::generate(Algorithm::Es256, "es"),
            TestKey::generate(Algorithm::Rs256, "rs"),
            TestKey::generate(Algorithm::EdDsa, "ed"),
        ],
    )
    .await;
    let validator = validator_for(RESOURCE, &issuer).build().unwrap();
    for kid in ["es", "rs", "ed"] {
        let token = sign(&issuer.key(kid), &issuer.claims(RESOURCE, "mcp files:read"));
        let identity = validator.validate(&token).await.unwrap();
        assert_eq!(identity.subject, "user-1");
        assert_eq!(identity.client_id.as_deref(), Some("client-1"));
        assert_eq!(identity.scopes.to_string(), "mcp files:read");
        assert_eq!(identity.issuer, issuer.issuer);
        assert_eq!(identity.audience.as_str(), RESOURCE);
        assert!(identity.token_id.unwrap().starts_with("jti-"));
        assert!(identity.expires_at.unwrap() > now());
        assert_eq!(identity.method, ValidationMethod::Jwt);
    }
    // One discovery and one JWKS fetch served all three.
    assert_eq!(issuer.jwks_requests(), 1);
}

#[tokio::test]
async fn expiry_honours_the_leeway_so_valid_tokens_are_never_refused() {
    let issuer = TestIssuer::latchkey().await;
    let clock = ManualClock::at_unix_seconds(T as u64);
    let validator = manual_validator(&issuer, &clock);
    let token = sign(&issuer.first_key(), &claims_at(&issuer, T, 300));

    // Valid, then expired by the issuer's clock but within the 60 s leeway.
    assert!(validator.validate(&token).await.is_ok());
    clock.set_unix_seconds((T + 300) as u64);
    assert!(validator.validate(&token).await.is_ok());
    clock.set_unix_seconds((T + 359) as u64);
    assert!(validator.validate(&token).await.is_ok());
    // Beyond the leeway.
    clock.set_unix_seconds((T + 360) as u64);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::Expired
    );
}

#[tokio::test]
async fn not_before_and_issued_at_in_the_future_only_beyond_the_leeway() {
    let issuer = TestIssuer::latchkey().await;
    let clock = ManualClock::at_unix_seconds(T as u64);
    let validator = manual_validator(&issuer, &clock);
    let key = issuer.first_key();

    let mut claims = claims_at(&issuer, T, 300);
    claims["nbf"] = json!(T + 100);
    let token = sign(&key, &claims);
    clock.set_unix_seconds((T + 39) as u64);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::NotYetValid
    );
    clock.set_unix_seconds((T + 40) as u64);
    assert!(validator.validate(&token).await.is_ok());

    let token = sign(&key, &claims_at(&issuer, T + 100, 300));
    clock.set_unix_seconds((T + 39) as u64);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::IssuedInFuture
    );
    clock.set_unix_seconds((T + 40) as u64);
    assert!(validator.validate(&token).await.is_ok());
}

#[tokio::test]
async fn tokens_for_another_audience_are_refused() {
    let issuer = TestIssuer::latchkey().await;
    let validator = validator_for(RESOURCE, &issuer).build().unwrap();
    for audience in [
        json!("https://mcp.example.com/other"),
        json!("https://mcp.example.com/mcp/"),
        json!("https://evil.example/mcp"),
        json!(["https://evil.example/mcp"]),
    ] {
        let mut claims = issuer.claims(RESOURCE, "mcp");
        claims["aud"] = audience.clone();
        let token = sign(&issuer.first_key(), &claims);
        assert_eq!(
            validator.validate(&token).await.unwrap_err(),
            ValidationError::WrongAudience,
            "{audience}"
        );
    }
    // An audience array that contains this resource is fine.
    let mut claims = issuer.claims(RESOURCE, "mcp");
    claims["aud"] = json!(["https://evil.example/mcp", RESOURCE]);
    assert!(
        validator
            .validate(&sign(&issuer.first_key(), &claims))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_bare_origin_resource_matches_with_or_without_trailing_slash() {
    let issuer = TestIssuer::latchkey().await;
    // The resource configured with a slash and tokens without, and the
    // other way round: the SDK sends URL.href, which adds the slash.
    for (configured, audience) in [
        ("https://mcp.example.com/", "https://mcp.example.com"),
        ("https://mcp.example.com", "https://mcp.example.com/"),
        ("https://mcp.example.com", "https://mcp.example.com"),
    ] {
        let validator = validator_for(configured, &issuer).build().unwrap();
        assert_eq!(validator.resource().as_str(), "https://mcp.example.com");
        let token = issuer.token(audience, "mcp");
        let identity = validator.validate(&token).await.unwrap();
        assert_eq!(identity.audience.as_str(), "https://mcp.example.com");
    }
}

#[tokio::test]
async fn untrusted_and_impersonated_issuers_are_refused() {
    let trusted = TestIssuer::latchkey().await;
    let stranger = TestIssuer::latchkey().await;
    let validator = validator_for(RESOURCE, &trusted).build().unwrap();

    // A token from an issuer this resource does not trust.
    let token = stranger.token(RESOURCE, "mcp");
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::UntrustedIssuer
    );
    // The stranger claims to be the trusted issuer, with its kid.
    let token = sign(&stranger.first_key(), &trusted.claims(RESOURCE, "mcp"));
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::BadSignature
    );
    // A trailing slash is another issuer (compared byte-for-byte).
    let mut claims = trusted.claims(RESOURCE, "mcp");
    claims["iss"] = json!(format!("{}/", trusted.issuer));
    assert_eq!(
        validator
            .validate(&sign(&trusted.first_key(), &claims))
            .await
            .unwrap_err(),
        ValidationError::UntrustedIssuer
    );
    // The stranger's keys were never fetched.
    assert_eq!(stranger.jwks_requests(), 0);
}

#[tokio::test]
async fn alg_none_hmac_with_the_public_key_and_disallowed_algorithms_are_refused() {
    let issuer = TestIssuer::start(
        "",
        Discovery::OAuth,
        vec![
            TestKey::generate(Algorithm::Es256, "es"),
            TestKey::generate(Algorithm::Rs256, "rs"),
        ],
    )
    .await;
    let validator = TokenValidator::builder(ResourceUri::parse(RESOURCE).unwrap())
        .trust(TrustedIssuer::latchkey(&issuer.issuer).algorithms([Algorithm::Es256]))
        .build()
        .unwrap();
    let claims = issuer.claims(RESOURCE, "mcp");

    // alg: none, with and without a signature.
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": "es"});
    let unsigned = compact(&header, &claims, |_| Vec::new());
    assert_eq!(
        validator.validate(&unsigned).await.unwrap_err(),
        ValidationError::UnsupportedAlgorithm
    );
    // HS256 keyed with the public key, as the JWKS JSON and as PEM.
    let rsa = issuer.key("rs");
    for secret in [
        rsa.public_json().to_string().into_bytes(),
        rsa.public_pem.clone(),
    ] {
        let signer = HS256.signer_from_bytes(&secret).unwrap();
        let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "rs"});
        let token = compact(&header, &claims, |input| {
            josekit::jws::JwsSigner::sign(&signer, input).unwrap()
        });
        assert_eq!(
            validator.validate(&token).await.unwrap_err(),
            ValidationError::UnsupportedAlgorithm
        );
    }
    // RS256 is a fine algorithm, but not on this issuer's allow-list.
    let token = sign(&rsa, &claims);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::UnsupportedAlgorithm
    );
    // An ES256 header naming the RSA key: no key of that kid fits ES256.
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "rs"});
    let token = sign_with_header(&issuer.key("es"), &header, &claims);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::UnknownKey
    );
    // A correct ES256 token still passes.
    assert!(
        validator
            .validate(&sign(&issuer.key("es"), &claims))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_tampered_token_fails_the_signature() {
    let issuer = TestIssuer::latchkey().await;
    let validator = validator_for(RESOURCE, &issuer).build().unwrap();
    let token = issuer.token(RESOURCE, "mcp");
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    claims["scope"] = json!("mcp admin");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert_eq!(
        validator.validate(&parts.join(".")).await.unwrap_err(),
        ValidationError::BadSignature
    );
    for garbage in ["", "not-a-token", "a.b.c", "a.b"] {
        assert_eq!(
            validator.validate(garbage).await.unwrap_err(),
            ValidationError::Malformed,
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn typ_is_checked_per_issuer() {
    let latchkey = TestIssuer::latchkey().await;
    let relaxed = TestIssuer::latchkey().await;
    let validator = TokenValidator::builder(ResourceUri::parse(RESOURCE).unwrap())
        .trust(TrustedIssuer::latchkey(&latchkey.issuer))
        .trust(TrustedIssuer::latchkey(&relaxed.issuer).require_typ(None))
        .build()
        .unwrap();
    let typed = |issuer: &TestIssuer, typ: Option<&str>| {
        let key = issuer.first_key();
        let mut header = json!({"alg": "ES256", "kid": key.kid});
        if let Some(typ) = typ {
            header["typ"] = json!(typ);
        }
        sign_with_header(&key, &header, &issuer.claims(RESOURCE, "mcp"))
    };
    for typ in [None, Some("JWT"), Some("dpop+jwt")] {
        assert_eq!(
            validator
                .validate(&typed(&latchkey, typ))
                .await
                .unwrap_err(),
            ValidationError::WrongType,
            "{typ:?}"
        );
    }
    assert!(
        validator
            .validate(&typed(&latchkey, Some("application/AT+JWT")))
            .await
            .is_ok()
    );
    for typ in [None, Some("JWT"), Some("at+jwt")] {
        assert!(
            validator.validate(&typed(&relaxed, typ)).await.is_ok(),
            "{typ:?}"
        );
    }
    assert_eq!(
        validator
            .validate(&typed(&relaxed, Some("dpop+jwt")))
            .await
            .unwrap_err(),
        ValidationError::WrongType
    );
}

#[tokio::test]
async fn an_unknown_kid_triggers_one_rate_limited_refetch() {
    let issuer = TestIssuer::latchkey().await;
    let clock = ManualClock::at_unix_seconds(now() as u64);
    let validator = manual_validator(&issuer, &clock);
    assert!(
        validator
            .validate(&issuer.token(RESOURCE, "mcp"))
            .await
            .is_ok()
    );
    assert_eq!(issuer.jwks_requests(), 1);

    // The issuer rotates: a new key signs from now on.
    issuer.publish(TestKey::generate(Algorithm::Es256, "es-2"));
    let rotated = sign(&issuer.key("es-2"), &issuer.claims(RESOURCE, "mcp"));

    // Right after the first fetch, a refetch is rate-limited: the new kid
    // is unknown and the issuer is not asked again.
    assert_eq!(
        validator.validate(&rotated).await.unwrap_err(),
        ValidationError::UnknownKey
    );
    assert_eq!(issuer.jwks_requests(), 1);

    // Ten seconds later the unknown kid triggers exactly one refetch.
    clock.advance(Duration::from_secs(10));
    assert!(validator.validate(&rotated).await.is_ok());
    assert_eq!(issuer.jwks_requests(), 2);

    // Known keys are served from the cache; made-up kids do not become a
    // flood of requests.
    assert!(validator.validate(&rotated).await.is_ok());
    let stranger = TestKey::generate(Algorithm::Es256, "made-up");
    for _ in 0..5 {
        let token = sign(&stranger, &issuer.claims(RESOURCE, "mcp"));
        assert_eq!(
            validator.validate(&token).await.unwrap_err(),
            ValidationError::UnknownKey
        );
    }
    assert_eq!(issuer.jwks_requests(), 2);

    // Concurrent unknown kids after the interval still cause one fetch.
    clock.advance(Duration::from_secs(11));
    let token = sign(&stranger, &issuer.claims(RESOURCE, "mcp"));
    let (first, second, third) = tokio::join!(
        validator.validate(&token),
        validator.validate(&token),
        validator.validate(&token)
    );
    for result in [first, second, third] {
        assert_eq!(result.unwrap_err(), ValidationError::UnknownKey);
    }
    assert_eq!(issuer.jwks_requests(), 3);
}

#[tokio::test]
async fn a_jwks_outage_keeps_the_old_keys_and_is_503_before_any_were_loaded() {
    let issuer = TestIssuer::latchkey().await;
    let clock = ManualClock::at_unix_seconds(now() as u64);
    let validator = manual_validator(&issuer, &clock);
    // Valid for an hour, so it outlives the key cache's maximum age.
    let mut claims = issuer.claims(RESOURCE, "mcp");
    claims["exp"] = json!(now() + 3600);
    let token = sign(&issuer.first_key(), &claims);

    issuer.set_jwks_failing(true);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::Unavailable
    );
    assert!(validator.refresh_keys().await.is_err());

    issuer.set_jwks_failing(false);
    assert!(validator.refresh_keys().await.is_ok());
    assert!(validator.validate(&token).await.is_ok());

    // The set grows stale and the issuer fails: the old keys stay in use.
    issuer.set_jwks_failing(true);
    clock.advance(Duration::from_secs(601));
    let before = issuer.jwks_requests();
    assert!(validator.validate(&token).await.is_ok());
    assert_eq!(issuer.jwks_requests(), before + 1);
}

#[tokio::test]
async fn a_foreign_issuer_with_rs256_typ_jwt_and_openid_discovery() {
    // An identity provider with a path, publishing only OpenID Connect
    // discovery, RS256 keys and `typ: JWT`, Auth0/Okta-style claims.
    let foreign = TestIssuer::start(
        "/tenant/",
        Discovery::OpenId,
        vec![TestKey::generate(Algorithm::Rs256, "idp-1")],
    )
    .await;
    let latchkey = TestIssuer::latchkey().await;
    let validator = TokenValidator::builder(ResourceUri::parse(RESOURCE).unwrap())
        .trust(TrustedIssuer::latchkey(&latchkey.issuer))
        .trust(TrustedIssuer::external(&foreign.issuer).require_typ(None))
        .build()
        .unwrap();
    let key = foreign.first_key();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "idp-1"});
    let claims = json!({
        "iss": foreign.issuer, "sub": "auth0|42", "azp": "spa-client",
        "aud": [RESOURCE, "https://idp.example/userinfo"],
        "scp": ["mcp", "files:read"], "iat": now(), "exp": now() + 600
    });
    let identity = validator
        .validate(&sign_with_header(&key, &header, &claims))
        .await
        .unwrap();
    assert_eq!(identity.subject, "auth0|42");
    assert_eq!(identity.client_id.as_deref(), Some("spa-client"));
    assert_eq!(identity.scopes.to_string(), "mcp files:read");
    assert_eq!(identity.issuer, foreign.issuer);
    assert!(identity.issuer.ends_with("/tenant/"));
    assert_eq!(identity.token_id, None);

    // The external profile allows RS256 and ES256 only.
    let ed = TestKey::generate(Algorithm::EdDsa, "idp-ed");
    foreign.publish(ed);
    let token = sign(&foreign.key("idp-ed"), &claims);
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::UnsupportedAlgorithm
    );
    // Latchkey's own tokens still validate alongside.
    assert!(
        validator
            .validate(&latchkey.token(RESOURCE, "mcp"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn rfc_9068_claims_are_required_for_latchkey_but_not_for_relaxed_issuers() {
    let issuer = TestIssuer::latchkey().await;
    let strict = validator_for(RESOURCE, &issuer).build().unwrap();
    let relaxed = TokenValidator::builder(ResourceUri::parse(RESOURCE).unwrap())
        .trust(TrustedIssuer::latchkey(&issuer.issuer).claims_profile(ClaimsProfile::Relaxed))
        .build()
        .unwrap();
    for missing in ["jti", "client_id", "iat"] {
        let mut claims = issuer.claims(RESOURCE, "mcp");
        claims.as_object_mut().unwrap().remove(missing);
        let token = sign(&issuer.first_key(), &claims);
        assert_eq!(
            strict.validate(&token).await.unwrap_err(),
            ValidationError::MissingClaim,
            "{missing}"
        );
        assert!(relaxed.validate(&token).await.is_ok(), "{missing}");
    }
    for missing in ["sub", "exp", "aud"] {
        let mut claims = issuer.claims(RESOURCE, "mcp");
        claims.as_object_mut().unwrap().remove(missing);
        let token = sign(&issuer.first_key(), &claims);
        assert_eq!(
            relaxed.validate(&token).await.unwrap_err(),
            ValidationError::MissingClaim,
            "{missing}"
        );
    }
    let mut claims = issuer.claims(RESOURCE, "mcp");
    claims["sub"] = json!(42);
    assert_eq!(
        strict
            .validate(&sign(&issuer.first_key(), &claims))
            .await
            .unwrap_err(),
        ValidationError::MissingClaim
    );
}

#[tokio::test]
async fn key_bound_tokens_and_bad_scope_claims_are_refused() {
    let issuer = TestIssuer::latchkey().await;
    let validator = validator_for(RESOURCE, &issuer).build().unwrap();
    let mut claims = issuer.claims(RESOURCE, "mcp");
    claims["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    assert_eq!(
        validator
            .validate(&sign(&issuer.first_key(), &claims))
            .await
            .unwrap_err(),
        ValidationError::KeyBound
    );
    let mut claims = issuer.claims(RESOURCE, "mcp");
    claims["scope"] = json!("mcp \"quoted\"");
    assert_eq!(
        validator
            .validate(&sign(&issuer.first_key(), &claims))
            .await
            .unwrap_err(),
        ValidationError::InvalidScopeClaim
    );
}

#[tokio::test]
async fn an_in_process_key_source_needs_no_http_and_follows_rotation() {
    // All-in-one mode: the authorization server hands its JWKS to the guard.
    let issuer = TestIssuer::latchkey().await;
    let source = Arc::new(StaticKeySource::new(
        serde_json::from_value::<Jwks>(issuer.jwks()).unwrap(),
    ));
    let validator = TokenValidator::builder(ResourceUri::parse(RESOURCE).unwrap())
        .trust(TrustedIssuer::latchkey(&issuer.issuer).key_source(source.clone()))
        .build()
        .unwrap();
    assert!(
        validator
            .validate(&issuer.token(RESOURCE, "mcp"))
            .await
            .is_ok()
    );

    issuer.publish(TestKey::generate(Algorithm::EdDsa, "ed-2"));
    let rotated = sign(&issuer.key("ed-2"), &issuer.claims(RESOURCE, "mcp"));
    source.replace(serde_json::from_value::<Jwks>(issuer.jwks()).unwrap());
    validator.refresh_keys().await.unwrap();
    assert!(validator.validate(&rotated).await.is_ok());
    assert_eq!(issuer.jwks_requests(), 0);
}

#[tokio::test]
async fn discovery_ignores_metadata_naming_another_issuer() {
    let issuer = TestIssuer::latchkey().await;
    issuer.set_metadata_issuer("https://impostor.example");
    let validator = validator_for(RESOURCE, &issuer).build().unwrap();
    assert_eq!(
        validator
            .validate(&issuer.token(RESOURCE, "mcp"))
            .await
            .unwrap_err(),
        ValidationError::Unavailable
    );
    assert_eq!(issuer.jwks_requests(), 0);
}

#[tokio::test]
async fn an_explicit_jwks_uri_skips_discovery() {
    let issuer = TestIssuer::latchkey().await;
    issuer.set_metadata_issuer("https://impostor.example");
    let validator = TokenValidator::builder(ResourceUri::parse(RESOURCE).unwrap())
        .trust(
            TrustedIssuer::latchkey(&issuer.issuer)
                .jwks_uri(url::Url::parse(&format!("{}/jwks.json", issuer.base)).unwrap()),
        )
        .build()
        .unwrap();
    assert!(
        validator
            .validate(&issuer.token(RESOURCE, "mcp"))
            .await
            .is_ok()
    );
    assert_eq!(issuer.jwks_requests(), 1);
}
