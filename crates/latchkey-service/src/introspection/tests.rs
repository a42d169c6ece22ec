//! Who may introspect what, and what active and inactive answers contain.

use std::net::Ipv4Addr;
use std::time::Duration;

use latchkey_protocol::ErrorCode;
use latchkey_protocol::params::IntrospectionRequest;
use latchkey_protocol::secret::SecretString;

use super::{IntrospectionCaller, IntrospectionResponse};
use crate::error::FlowError;
use crate::testing::{Fixture, MCP, basic, none, post, token_request};

const INTROSPECTION_SECRET: &str = "introspection-secret-0123456789";

fn request(token: &str) -> IntrospectionRequest {
    IntrospectionRequest {
        token: SecretString::new(token),
        token_type_hint: None,
    }
}

async fn fixture() -> Fixture {
    Fixture::with(|config| {
        config.introspection_secret = Some(SecretString::new(INTROSPECTION_SECRET));
    })
    .await
}

fn secret() -> IntrospectionCaller {
    IntrospectionCaller::Secret(SecretString::new(INTROSPECTION_SECRET))
}

#[tokio::test]
async fn an_active_access_token_reports_its_claims() {
    let fixture = fixture().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let answer = fixture
        .service
        .introspect(&secret(), &request(&tokens.access_token))
        .await
        .unwrap();
    let claims = fixture
        .service
        .verify_access_token(&tokens.access_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        serde_json::json!({
            "active": true,
            "scope": "read",
            "client_id": client.client_id,
            "sub": claims.sub,
            "aud": MCP,
            "iss": "https://auth.example.com",
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
            "token_type": "Bearer",
        })
    );
}

#[tokio::test]
async fn an_active_refresh_token_says_it_is_one() {
    let fixture = fixture().await;
    let client = fixture.public_client().await;
    let tokens = fixture
        .code_grant_tokens(&client, "read offline_access")
        .await;
    let refresh = tokens.refresh_token.unwrap();
    let answer = fixture
        .service
        .introspect(&secret(), &request(&refresh))
        .await
        .unwrap();
    assert!(answer.active);
    assert_eq!(answer.token_type, Some("refresh_token"));
    assert_eq!(answer.scope.as_deref(), Some("read offline_access"));
    assert_eq!(answer.aud.as_deref(), Some(MCP));
    assert_eq!(
        answer.exp,
        Some((fixture.clock_now() + time::Duration::days(30)).unix_timestamp())
    );
    assert_eq!(answer.jti, None);

    // Once rotated it is inactive.
    fixture
        .service
        .token(
            &client.credentials(),
            token_request(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)]),
        )
        .await
        .unwrap();
    let answer = fixture
        .service
        .introspect(&secret(), &request(&refresh))
        .await
        .unwrap();
    assert_eq!(answer, IntrospectionResponse::inactive());
}

#[tokio::test]
async fn revoked_expired_and_unknown_tokens_are_just_inactive() {
    let fixture = fixture().await;
    let client = fixture.public_client().await;
    let revoked = fixture.code_grant_tokens(&client, "read").await;
    fixture
        .service
        .revoke(
            &none(&client.client_id),
            &latchkey_protocol::params::RevocationRequest {
                token: SecretString::new(revoked.access_token.clone()),
                token_type_hint: None,
            },
        )
        .await
        .unwrap();
    let expiring = fixture.code_grant_tokens(&client, "read").await;
    let inactive = serde_json::json!({"active": false});
    for token in [revoked.access_token.as_str(), "lkr_unknown", "a.b.c", ""] {
        let answer = fixture
            .service
            .introspect(&secret(), &request(token))
            .await
            .unwrap();
        assert_eq!(serde_json::to_value(&answer).unwrap(), inactive, "{token}");
    }
    let live = fixture
        .service
        .introspect(&secret(), &request(&expiring.access_token))
        .await
        .unwrap();
    assert!(live.active);
    fixture.clock.advance(Duration::from_secs(900));
    let expired = fixture
        .service
        .introspect(&secret(), &request(&expiring.access_token))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(&expired).unwrap(), inactive);
}

#[tokio::test]
async fn the_caller_rules() {
    let fixture = fixture().await;
    let public = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&public, "read").await;
    let admin_made = fixture.confidential_client("client_secret_basic").await;
    let registered = fixture
        .service
        .register(
            br#"{"token_endpoint_auth_method":"client_secret_post","grant_types":["client_credentials"]}"#,
            None,
            Ipv4Addr::LOCALHOST.into(),
        )
        .await
        .unwrap();
    let registered_secret = registered.client_secret.clone().unwrap();
    let own_token = fixture
        .service
        .token(
            &post(&registered.client_id, registered_secret.expose()),
            token_request(&[("grant_type", "client_credentials"), ("resource", MCP)]),
        )
        .await
        .unwrap();

    let active = |caller: IntrospectionCaller, token: String| {
        let service = fixture.service.clone();
        async move {
            service
                .introspect(&caller, &request(&token))
                .await
                .map(|answer| answer.active)
        }
    };
    let registered_caller =
        || IntrospectionCaller::Client(post(&registered.client_id, registered_secret.expose()));

    // The secret and operator-made confidential clients see every token.
    assert!(active(secret(), tokens.access_token.clone()).await.unwrap());
    let admin_caller =
        IntrospectionCaller::Client(basic(&admin_made.client_id, admin_made.secret()));
    assert!(
        active(admin_caller, tokens.access_token.clone())
            .await
            .unwrap()
    );
    // A dynamically registered confidential client sees only its own.
    assert!(
        !active(registered_caller(), tokens.access_token.clone())
            .await
            .unwrap()
    );
    assert!(
        !active(registered_caller(), tokens.refresh_token.clone().unwrap())
            .await
            .unwrap()
    );
    assert!(
        active(registered_caller(), own_token.access_token.clone())
            .await
            .unwrap()
    );

    // Public clients, wrong secrets and unknown clients are refused.
    let refusals = [
        IntrospectionCaller::Client(none(&public.client_id)),
        IntrospectionCaller::Secret(SecretString::new("wrong-secret-0123456789")),
        IntrospectionCaller::Client(basic(&admin_made.client_id, "lks_wrong")),
        IntrospectionCaller::Client(none("nobody")),
    ];
    for caller in refusals {
        match active(caller.clone(), tokens.access_token.clone()).await {
            Err(FlowError::OAuth(error)) => {
                assert_eq!(error.code(), ErrorCode::InvalidClient, "{caller:?}");
            }
            other => panic!("{caller:?}: expected invalid_client, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn without_a_configured_secret_no_secret_works() {
    let fixture = Fixture::new().await;
    let outcome = fixture
        .service
        .introspect(
            &IntrospectionCaller::Secret(SecretString::new("")),
            &request("x"),
        )
        .await;
    assert!(matches!(
        outcome,
        Err(FlowError::OAuth(error)) if error.code() == ErrorCode::InvalidClient
    ));
}
