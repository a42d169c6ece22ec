//! Introspection (RFC 7662) against a real endpoint on the test issuer:
//! opaque tokens, the positive cache, refusals, bad credentials, and the
//! "every token" mode.

use std::sync::Arc;
use std::time::Duration;

use latchkey_protocol::secret::SecretString;
use latchkey_resource::clock::ManualClock;
use latchkey_resource::proxy::GuardProxy;
use latchkey_resource::{
    GuardConfig, IntrospectionConfig, IntrospectionCredentials, IntrospectionMode, TokenValidator,
    ValidationError, ValidationMethod,
};
use reqwest::StatusCode;
use serde_json::json;
use url::Url;

use crate::support::{
    INTROSPECTION_CLIENT, TestIssuer, Upstream, client, now, start_proxy, validator_for,
};

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn config(issuer: &TestIssuer, secret: &str) -> IntrospectionConfig {
    IntrospectionConfig::new(
        Url::parse(&format!("{}/introspect", issuer.base)).unwrap(),
        IntrospectionCredentials::ClientSecretBasic {
            client_id: INTROSPECTION_CLIENT.0.to_owned(),
            client_secret: SecretString::new(secret),
        },
    )
}

fn active(issuer: &TestIssuer, audience: &str, exp: i64) -> serde_json::Value {
    json!({
        "active": true, "iss": issuer.issuer, "sub": "user-9", "client_id": "client-9",
        "scope": "mcp files:write", "aud": audience, "exp": exp, "iat": now(), "jti": "op-1",
        "token_type": "Bearer"
    })
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_cached_until_the_ttl() {
    let issuer = TestIssuer::latchkey().await;
    let clock = ManualClock::at_unix_seconds(now() as u64);
    let validator = validator_for(RESOURCE, &issuer)
        .clock(Arc::new(clock.clone()))
        .introspection(config(&issuer, INTROSPECTION_CLIENT.1))
        .build()
        .unwrap();
    issuer.set_introspection("opaque-1", active(&issuer, RESOURCE, now() + 3600));

    let identity = validator.validate("opaque-1").await.unwrap();
    assert_eq!(identity.subject, "user-9");
    assert_eq!(identity.client_id.as_deref(), Some("client-9"));
    assert_eq!(identity.scopes.to_string(), "mcp files:write");
    assert_eq!(identity.method, ValidationMethod::Introspection);
    assert_eq!(issuer.introspection_requests(), 1);

    // Cached for 30 seconds: no second request.
    assert_eq!(validator.validate("opaque-1").await.unwrap(), identity);
    assert_eq!(issuer.introspection_requests(), 1);
    clock.advance(Duration::from_secs(31));
    assert!(validator.validate("opaque-1").await.is_ok());
    assert_eq!(issuer.introspection_requests(), 2);

    // Unknown tokens are inactive, and negative answers are not cached.
    for _ in 0..2 {
        assert_eq!(
            validator.validate("opaque-unknown").await.unwrap_err(),
            ValidationError::Inactive
        );
    }
    assert_eq!(issuer.introspection_requests(), 4);

    // JWTs are still validated locally in the default mode.
    assert!(
        validator
            .validate(&issuer.token(RESOURCE, "mcp"))
            .await
            .is_ok()
    );
    assert_eq!(issuer.introspection_requests(), 4);
}

#[tokio::test]
async fn introspection_answers_for_another_audience_are_refused() {
    let issuer = TestIssuer::latchkey().await;
    let validator = validator_for(RESOURCE, &issuer)
        .introspection(config(&issuer, INTROSPECTION_CLIENT.1))
        .build()
        .unwrap();
    issuer.set_introspection(
        "for-someone-else",
        active(&issuer, "https://other.example/mcp", now() + 3600),
    );
    assert_eq!(
        validator.validate("for-someone-else").await.unwrap_err(),
        ValidationError::WrongAudience
    );
    issuer.set_introspection("expired", active(&issuer, RESOURCE, now() - 120));
    assert_eq!(
        validator.validate("expired").await.unwrap_err(),
        ValidationError::Expired
    );
}

#[tokio::test]
async fn every_token_mode_introspects_jwts_too() {
    let issuer = TestIssuer::latchkey().await;
    let validator = validator_for(RESOURCE, &issuer)
        .introspection(config(&issuer, INTROSPECTION_CLIENT.1).mode(IntrospectionMode::AllTokens))
        .build()
        .unwrap();
    let token = issuer.token(RESOURCE, "mcp");
    // The authorization server says the (validly signed) token was revoked.
    assert_eq!(
        validator.validate(&token).await.unwrap_err(),
        ValidationError::Inactive
    );
    assert_eq!(issuer.introspection_requests(), 1);
    issuer.set_introspection(&token, active(&issuer, RESOURCE, now() + 300));
    assert_eq!(
        validator.validate(&token).await.unwrap().method,
        ValidationMethod::Introspection
    );
    assert_eq!(issuer.jwks_requests(), 0);
}

#[tokio::test]
async fn rejected_credentials_make_the_guard_answer_503_not_401() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let wrong: TokenValidator = validator_for(RESOURCE, &issuer)
        .introspection(config(&issuer, "wrong secret"))
        .build()
        .unwrap();
    issuer.set_introspection("opaque-2", active(&issuer, RESOURCE, now() + 3600));
    assert_eq!(
        wrong.validate("opaque-2").await.unwrap_err(),
        ValidationError::Unavailable
    );

    // Through the proxy: 503 with Retry-After and no challenge, so the
    // client keeps its token.
    let proxy = start_proxy(|resource| {
        let validator = validator_for(resource, &issuer)
            .introspection(config(&issuer, "wrong secret"))
            .build()
            .unwrap();
        GuardProxy::builder(upstream.url(), GuardConfig::new(validator))
    })
    .await;
    let response = client()
        .post(proxy.mcp())
        .bearer_auth("opaque-2")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(response.headers().get("www-authenticate").is_none());
}
