//! What clients can be told: every `ValidationError` becomes an
//! `error_description` that survives a `WWW-Authenticate` round trip
//! unchanged and holds no quote or backslash (MCP clients parse the header
//! with naive regular expressions), whatever the scopes and metadata URL
//! around it; and the guard's real responses carry exactly that text.

use latchkey_protocol::challenge::BearerChallenge;
use latchkey_protocol::scope::ScopeSet;
use latchkey_resource::ValidationError;
use proptest::prelude::*;
use reqwest::StatusCode;

use crate::support::{TestIssuer, Upstream, client, simple_proxy};

fn scope_token() -> impl Strategy<Value = String> {
    // RFC 6749 §3.3 scope-token characters.
    proptest::string::string_regex("[!#-\\[\\]-~]{1,12}").unwrap()
}

proptest! {
    #[test]
    fn every_description_round_trips_without_quotes_or_backslashes(
        error in proptest::sample::select(ValidationError::ALL.to_vec()),
        scopes in proptest::collection::vec(scope_token(), 0..5),
        path in "[a-zA-Z0-9/_.~-]{0,20}",
    ) {
        let scope = ScopeSet::parse(&scopes.join(" ")).unwrap();
        let metadata = format!("https://mcp.example.com/.well-known/oauth-protected-resource/{path}");
        let header = error.challenge(&metadata, &scope).to_header_value();
        prop_assert!(http::HeaderValue::from_str(&header).is_ok());
        let parsed = BearerChallenge::parse(&header).unwrap();
        let description = parsed.error_description.unwrap();
        prop_assert_eq!(&description, &error.to_string());
        prop_assert!(!description.contains('"') && !description.contains('\\'));
        prop_assert!(description.chars().all(|c| c == ' ' || c.is_ascii_graphic()));
        prop_assert_eq!(parsed.error.as_deref(), Some("invalid_token"));
        prop_assert_eq!(parsed.resource_metadata.as_deref(), Some(metadata.as_str()));
        let expected_scope = (!scope.is_empty()).then(|| scope.to_string());
        prop_assert_eq!(parsed.scope, expected_scope);
    }
}

#[tokio::test]
async fn real_401s_carry_the_fixed_sentence() {
    let issuer = TestIssuer::latchkey().await;
    let upstream = Upstream::start().await;
    let proxy = simple_proxy(&issuer, &upstream, |guard| guard).await;
    // A token whose contents are full of quotes and backslashes: nothing of
    // it may reach the header.
    let mut claims = issuer.claims(&proxy.resource, "mcp");
    claims["aud"] = serde_json::json!("https://evil.example/\"\\\"");
    let token = crate::support::sign(&issuer.first_key(), &claims);
    let response = client()
        .post(proxy.mcp())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let raw = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(!raw.contains('\\'), "{raw}");
    assert_eq!(raw.matches('"').count() % 2, 0);
    let parsed = BearerChallenge::parse(raw).unwrap();
    assert_eq!(
        parsed.error_description.as_deref(),
        Some(ValidationError::WrongAudience.to_string().as_str())
    );
}
