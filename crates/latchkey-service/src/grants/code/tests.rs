//! Every branch of issuing and exchanging authorization codes.

use std::time::Duration;

use latchkey_protocol::ErrorCode;
use latchkey_protocol::pkce::{CodeChallenge, CodeVerifier};
use latchkey_protocol::resource::ResourceUri;
use latchkey_protocol::scope::ScopeSet;
use latchkey_store::SecretHash;

use super::ApprovedAuthorization;
use crate::error::FlowError;
use crate::grants::TokenResponse;
use crate::testing::{FILES, Fixture, MCP, TestClient, token_request};

fn code_of(outcome: Result<TokenResponse, FlowError>) -> ErrorCode {
    match outcome {
        Err(FlowError::OAuth(error)) => error.code(),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

async fn exchange(
    fixture: &Fixture,
    client: &TestClient,
    pairs: &[(&str, &str)],
) -> Result<TokenResponse, FlowError> {
    fixture
        .service
        .token(&client.credentials(), token_request(pairs))
        .await
}

#[tokio::test]
async fn a_code_becomes_an_audience_bound_token_and_a_refresh_token() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let (code, verifier) = fixture.code(&client, &user, "read offline_access").await;
    let response = fixture
        .service
        .token(
            &client.credentials(),
            Fixture::exchange_request(&client, &code, &verifier),
        )
        .await
        .unwrap();
    assert_eq!(response.token_type, "Bearer");
    assert_eq!(response.expires_in, 900);
    assert_eq!(response.scope.as_deref(), Some("read offline_access"));
    let refresh = response.refresh_token.as_deref().unwrap();
    assert!(refresh.starts_with("lkr_"));

    let claims = fixture
        .service
        .verify_access_token(&response.access_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.sub, user);
    assert_eq!(claims.client_id, client.client_id);
    assert!(claims.aud.contains(MCP));
    assert_eq!(claims.auth_time, Some(fixture.clock_now().unix_timestamp()));

    // The code is consumed and the family exists, bound to the resource.
    let stored = fixture
        .store
        .find_code(&SecretHash::of(&code))
        .await
        .unwrap()
        .unwrap();
    assert!(stored.consumed_at.is_some());
    assert_eq!(stored.access_token.unwrap().jti, claims.jti);
    let grant = fixture
        .store
        .find_refresh(&SecretHash::of(refresh))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.family.resource.as_deref(), Some(MCP));
    assert_eq!(grant.family.scopes, ["read", "offline_access"]);
    assert_eq!(
        grant.family.absolute_expires_at,
        fixture.clock_now() + time::Duration::days(90)
    );
    assert_eq!(
        grant.token.idle_expires_at,
        fixture.clock_now() + time::Duration::days(30)
    );
}

#[tokio::test]
async fn no_refresh_token_without_the_refresh_grant() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client_without_refresh().await;
    let tokens = fixture
        .code_grant_tokens(&client, "read offline_access")
        .await;
    assert!(tokens.refresh_token.is_none());
}

#[tokio::test]
async fn a_replayed_code_revokes_everything_it_issued() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let (code, verifier) = fixture.code(&client, &user, "read").await;
    let request = || Fixture::exchange_request(&client, &code, &verifier);
    let first = fixture
        .service
        .token(&client.credentials(), request())
        .await
        .unwrap();
    let replay = fixture
        .service
        .token(&client.credentials(), request())
        .await;
    assert_eq!(code_of(replay), ErrorCode::InvalidGrant);

    let claims = fixture
        .service
        .verify_access_token(&first.access_token)
        .await
        .unwrap()
        .unwrap();
    assert!(
        fixture
            .store
            .is_access_token_denied(&claims.jti, fixture.clock_now())
            .await
            .unwrap()
    );
    let refresh = exchange(
        &fixture,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first.refresh_token.as_deref().unwrap()),
        ],
    )
    .await;
    assert_eq!(code_of(refresh), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn a_replayed_code_without_refresh_still_denies_its_access_token() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client_without_refresh().await;
    let user = fixture.user().await;
    let (code, verifier) = fixture.code(&client, &user, "read").await;
    let first = fixture
        .service
        .token(
            &client.credentials(),
            Fixture::exchange_request(&client, &code, &verifier),
        )
        .await
        .unwrap();
    // Even a replay by someone else (another client naming the code) counts.
    let thief = fixture.public_client().await;
    let replay = exchange(
        &fixture,
        &thief,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", &thief.redirect_uri),
        ],
    )
    .await;
    assert_eq!(code_of(replay), ErrorCode::InvalidGrant);
    let claims = fixture
        .service
        .verify_access_token(&first.access_token)
        .await
        .unwrap()
        .unwrap();
    assert!(
        fixture
            .store
            .is_access_token_denied(&claims.jti, fixture.clock_now())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn concurrent_exchanges_let_exactly_one_through_and_revoke_it() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let (code, verifier) = fixture.code(&client, &user, "read").await;
    let credentials = client.credentials();
    let (left, right) = tokio::join!(
        fixture.service.token(
            &credentials,
            Fixture::exchange_request(&client, &code, &verifier)
        ),
        fixture.service.token(
            &credentials,
            Fixture::exchange_request(&client, &code, &verifier)
        ),
    );
    let (winner, loser) = match (left, right) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
        other => panic!("exactly one exchange must succeed: {other:?}"),
    };
    assert_eq!(code_of(Err(loser)), ErrorCode::InvalidGrant);
    let refresh = exchange(
        &fixture,
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", winner.refresh_token.as_deref().unwrap()),
        ],
    )
    .await;
    assert_eq!(code_of(refresh), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn codes_expire_at_their_lifetime() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let (fresh, fresh_verifier) = fixture.code(&client, &user, "read").await;
    let (stale, stale_verifier) = fixture.code(&client, &user, "read").await;

    fixture.clock.advance(Duration::from_secs(59));
    assert!(
        fixture
            .service
            .token(
                &client.credentials(),
                Fixture::exchange_request(&client, &fresh, &fresh_verifier)
            )
            .await
            .is_ok()
    );
    fixture.clock.advance(Duration::from_secs(1));
    let expired = fixture
        .service
        .token(
            &client.credentials(),
            Fixture::exchange_request(&client, &stale, &stale_verifier),
        )
        .await;
    assert_eq!(code_of(expired), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn each_check_refuses_without_consuming_the_code() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let other = fixture.public_client().await;
    let user = fixture.user().await;
    let (code, verifier) = fixture.code(&client, &user, "read").await;
    let wrong_verifier = CodeVerifier::generate(fixture.service.random()).unwrap();
    let base = |overrides: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.clone()),
            ("code_verifier", verifier.as_str().to_owned()),
            ("redirect_uri", client.redirect_uri.clone()),
        ];
        for (name, value) in overrides {
            pairs.retain(|(existing, _)| existing != name);
            if !value.is_empty() {
                pairs.push((name, (*value).to_owned()));
            }
        }
        pairs
    };
    type Case<'a> = (
        &'a str,
        &'a TestClient,
        Vec<(&'static str, String)>,
        ErrorCode,
    );
    let cases: Vec<Case<'_>> = vec![
        ("another client", &other, base(&[]), ErrorCode::InvalidGrant),
        (
            "no redirect_uri",
            &client,
            base(&[("redirect_uri", "")]),
            ErrorCode::InvalidRequest,
        ),
        (
            "another redirect_uri",
            &client,
            base(&[("redirect_uri", "http://127.0.0.1:8080/callback")]),
            ErrorCode::InvalidGrant,
        ),
        (
            "wrong verifier",
            &client,
            base(&[("code_verifier", wrong_verifier.as_str())]),
            ErrorCode::InvalidGrant,
        ),
        (
            "another resource",
            &client,
            base(&[("resource", FILES)]),
            ErrorCode::InvalidTarget,
        ),
        (
            "an unknown code",
            &client,
            base(&[("code", "lkc_unknown")]),
            ErrorCode::InvalidGrant,
        ),
    ];
    for (name, presenter, pairs, expected) in cases {
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        assert_eq!(
            code_of(exchange(&fixture, presenter, &borrowed).await),
            expected,
            "{name}"
        );
    }
    // None of that consumed the code; the canonical spelling of the right
    // resource is accepted.
    let response = exchange(
        &fixture,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", verifier.as_str()),
            ("redirect_uri", &client.redirect_uri),
            ("resource", "HTTPS://MCP.EXAMPLE.COM:443/mcp"),
        ],
    )
    .await;
    assert!(response.is_ok(), "{response:?}");
}

#[tokio::test]
async fn confidential_clients_need_pkce_too() {
    let fixture = Fixture::new().await;
    let client = fixture.confidential_client("client_secret_basic").await;
    let user = fixture.user().await;
    let (code, _verifier) = fixture.code(&client, &user, "read").await;
    let wrong = CodeVerifier::generate(fixture.service.random()).unwrap();
    let outcome = fixture
        .service
        .token(
            &client.credentials(),
            Fixture::exchange_request(&client, &code, &wrong),
        )
        .await;
    assert_eq!(code_of(outcome), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn a_removed_resource_or_disabled_user_is_invalid_grant() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let user = fixture.user().await;
    let (code, verifier) = fixture.code(&client, &user, "read").await;
    let without_mcp = fixture
        .sibling_with(|config| {
            config.resources = crate::config::ResourceRegistry::new([
                crate::config::ConfiguredResource::parse_spec(FILES).unwrap(),
            ])
            .unwrap();
        })
        .await;
    // With or without naming the resource, the code's binding decides: the
    // answer is invalid_grant (the client should authorize again), not
    // invalid_target.
    let named = without_mcp
        .token(
            &client.credentials(),
            Fixture::exchange_request(&client, &code, &verifier),
        )
        .await;
    assert_eq!(code_of(named), ErrorCode::InvalidGrant);
    let unnamed = without_mcp
        .token(
            &client.credentials(),
            token_request(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", verifier.as_str()),
                ("redirect_uri", &client.redirect_uri),
            ]),
        )
        .await;
    assert_eq!(code_of(unnamed), ErrorCode::InvalidGrant);

    fixture.store.set_user_disabled(&user, true).await.unwrap();
    let outcome = fixture
        .service
        .token(
            &client.credentials(),
            Fixture::exchange_request(&client, &code, &verifier),
        )
        .await;
    assert_eq!(code_of(outcome), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn issuing_a_code_checks_client_redirect_policy_and_user() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let machine = fixture
        .service
        .register(
            br#"{"token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"]}"#,
            None,
            std::net::Ipv4Addr::LOCALHOST.into(),
        )
        .await
        .unwrap();
    let user = fixture.user().await;
    let disabled = fixture.user().await;
    fixture
        .store
        .set_user_disabled(&disabled, true)
        .await
        .unwrap();
    let verifier = CodeVerifier::generate(fixture.service.random()).unwrap();
    let approved = |client_id: &str, user_id: &str| ApprovedAuthorization {
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        redirect_uri: "http://127.0.0.1:49152/callback".to_owned(),
        code_challenge: CodeChallenge::s256(&verifier),
        scope: Some(ScopeSet::parse("read").unwrap()),
        resource: Some(ResourceUri::parse(MCP).unwrap()),
        auth_time: fixture.clock_now(),
    };
    // Loopback redirects match on any port (RFC 8252 §7.3).
    let issued = fixture
        .service
        .issue_authorization_code(approved(&client.client_id, &user))
        .await
        .unwrap();
    assert!(issued.code.expose().starts_with("lkc_"));
    assert_eq!(
        issued.expires_at,
        fixture.clock_now() + time::Duration::seconds(60)
    );
    assert!(!format!("{issued:?}").contains(issued.code.expose()));

    let mut wrong_redirect = approved(&client.client_id, &user);
    wrong_redirect.redirect_uri = "https://evil.example/callback".to_owned();
    let mut unknown_resource = approved(&client.client_id, &user);
    unknown_resource.resource = Some(ResourceUri::parse("https://other.example/mcp").unwrap());
    let mut bad_scope = approved(&client.client_id, &user);
    bad_scope.scope = Some(ScopeSet::parse("files").unwrap());
    let cases = [
        (
            "unknown client",
            approved("nobody", &user),
            ErrorCode::InvalidClient,
        ),
        (
            "client_credentials client",
            approved(&machine.client_id, &user),
            ErrorCode::UnauthorizedClient,
        ),
        (
            "unregistered redirect",
            wrong_redirect,
            ErrorCode::InvalidRequest,
        ),
        (
            "unknown resource",
            unknown_resource,
            ErrorCode::InvalidTarget,
        ),
        (
            "scope of another resource",
            bad_scope,
            ErrorCode::InvalidScope,
        ),
        (
            "disabled user",
            approved(&client.client_id, &disabled),
            ErrorCode::AccessDenied,
        ),
        (
            "unknown user",
            approved(&client.client_id, "ghost"),
            ErrorCode::AccessDenied,
        ),
    ];
    for (name, request, expected) in cases {
        match fixture.service.issue_authorization_code(request).await {
            Err(FlowError::OAuth(error)) => assert_eq!(error.code(), expected, "{name}"),
            other => panic!("{name}: expected an OAuth error, got {other:?}"),
        }
    }
}
