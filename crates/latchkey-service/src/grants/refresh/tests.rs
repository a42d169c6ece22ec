//! Every outcome of a refresh: rotation, reuse, concurrency, narrowing,
//! resource binding, expiry, revocation and disabled users.

use std::time::Duration;

use latchkey_protocol::ErrorCode;
use latchkey_store::SecretHash;

use crate::config::{ConfiguredResource, ResourceRegistry};
use crate::error::FlowError;
use crate::grants::TokenResponse;
use crate::testing::{FILES, Fixture, MCP, TestClient, token_request};

fn code_of(outcome: Result<TokenResponse, FlowError>) -> ErrorCode {
    match outcome {
        Err(FlowError::OAuth(error)) => error.code(),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

async fn refresh(
    fixture: &Fixture,
    client: &TestClient,
    refresh_token: &str,
    extra: &[(&str, &str)],
) -> Result<TokenResponse, FlowError> {
    let mut pairs = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    pairs.extend_from_slice(extra);
    fixture
        .service
        .token(&client.credentials(), token_request(&pairs))
        .await
}

async fn jti(fixture: &Fixture, access_token: &str) -> String {
    fixture
        .service
        .verify_access_token(access_token)
        .await
        .unwrap()
        .unwrap()
        .jti
}

#[tokio::test]
async fn every_refresh_rotates_the_token() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let first = fixture.code_grant_tokens(&client, "read").await;
    let old = first.refresh_token.unwrap();
    let second = refresh(&fixture, &client, &old, &[]).await.unwrap();
    let new = second.refresh_token.clone().unwrap();
    assert_ne!(old, new);
    assert_eq!(second.scope.as_deref(), Some("read"));
    assert_eq!(second.expires_in, 900);
    let claims = fixture
        .service
        .verify_access_token(&second.access_token)
        .await
        .unwrap()
        .unwrap();
    assert!(claims.aud.contains(MCP));
    assert_eq!(claims.auth_time, None);
    let old_record = fixture
        .store
        .find_refresh(&SecretHash::of(&old))
        .await
        .unwrap()
        .unwrap();
    assert!(old_record.token.used_at.is_some());
    assert!(refresh(&fixture, &client, &new, &[]).await.is_ok());
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let first = fixture.code_grant_tokens(&client, "read").await;
    let old = first.refresh_token.clone().unwrap();
    let second = refresh(&fixture, &client, &old, &[]).await.unwrap();

    // The replay, even with an otherwise invalid request, is detected.
    let replay = refresh(&fixture, &client, &old, &[("scope", "files")]).await;
    assert_eq!(code_of(replay), ErrorCode::InvalidGrant);
    let current = refresh(
        &fixture,
        &client,
        second.refresh_token.as_deref().unwrap(),
        &[],
    )
    .await;
    assert_eq!(code_of(current), ErrorCode::InvalidGrant);
    let now = fixture.clock_now();
    for access_token in [&first.access_token, &second.access_token] {
        let jti = jti(&fixture, access_token).await;
        assert!(
            fixture
                .store
                .is_access_token_denied(&jti, now)
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn of_two_concurrent_refreshes_one_wins_and_the_family_is_revoked() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let token = tokens.refresh_token.unwrap();
    let (left, right) = tokio::join!(
        refresh(&fixture, &client, &token, &[]),
        refresh(&fixture, &client, &token, &[])
    );
    let (winner, loser) = match (left, right) {
        (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
        other => panic!("exactly one refresh must succeed: {other:?}"),
    };
    assert_eq!(code_of(Err(loser)), ErrorCode::InvalidGrant);
    // Strict policy: the winner's new token dies with the family.
    let after = refresh(
        &fixture,
        &client,
        winner.refresh_token.as_deref().unwrap(),
        &[],
    )
    .await;
    assert_eq!(code_of(after), ErrorCode::InvalidGrant);
    let jti = jti(&fixture, &winner.access_token).await;
    assert!(
        fixture
            .store
            .is_access_token_denied(&jti, fixture.clock_now())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn scopes_may_narrow_but_never_widen() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture
        .code_grant_tokens(&client, "read write offline_access")
        .await;
    let narrowed = refresh(
        &fixture,
        &client,
        tokens.refresh_token.as_deref().unwrap(),
        &[("scope", "read")],
    )
    .await
    .unwrap();
    assert_eq!(narrowed.scope.as_deref(), Some("read"));
    let claims = fixture
        .service
        .verify_access_token(&narrowed.access_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.scope.as_deref(), Some("read"));

    // The refresh token kept the family's scopes: a later refresh without a
    // scope gets all of them back…
    let restored = refresh(
        &fixture,
        &client,
        narrowed.refresh_token.as_deref().unwrap(),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(restored.scope.as_deref(), Some("read write offline_access"));

    // …but nothing beyond them, even a scope the resource allows.
    let current = restored.refresh_token.unwrap();
    for wider in ["read files", "admin", "read write offline_access extra"] {
        let outcome = refresh(&fixture, &client, &current, &[("scope", wider)]).await;
        assert_eq!(code_of(outcome), ErrorCode::InvalidScope, "{wider}");
    }
    // Refused requests did not use the token up.
    assert!(refresh(&fixture, &client, &current, &[]).await.is_ok());
}

#[tokio::test]
async fn scopes_the_resource_no_longer_allows_are_dropped() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read write").await;
    let reduced = fixture
        .sibling_with(|config| {
            config.resources =
                ResourceRegistry::new([
                    ConfiguredResource::parse_spec(&format!("{MCP}=read")).unwrap()
                ])
                .unwrap();
        })
        .await;
    let token = tokens.refresh_token.unwrap();
    let explicit = reduced
        .token(
            &client.credentials(),
            token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("scope", "write"),
            ]),
        )
        .await;
    assert_eq!(code_of(explicit), ErrorCode::InvalidScope);
    let implicit = reduced
        .token(
            &client.credentials(),
            token_request(&[("grant_type", "refresh_token"), ("refresh_token", &token)]),
        )
        .await
        .unwrap();
    assert_eq!(implicit.scope.as_deref(), Some("read"));
}

#[tokio::test]
async fn the_resource_stays_bound() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let token = tokens.refresh_token.unwrap();
    let other = refresh(&fixture, &client, &token, &[("resource", FILES)]).await;
    assert_eq!(code_of(other), ErrorCode::InvalidTarget);
    // The SDKs resend the resource, possibly as `URL.href`.
    let same = refresh(
        &fixture,
        &client,
        &token,
        &[("resource", "https://MCP.example.com/mcp")],
    )
    .await
    .unwrap();
    let claims = fixture
        .service
        .verify_access_token(&same.access_token)
        .await
        .unwrap()
        .unwrap();
    assert!(claims.aud.contains(MCP));
}

#[tokio::test]
async fn a_removed_resource_is_invalid_grant_so_clients_reauthorize() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let without_mcp = fixture
        .sibling_with(|config| {
            config.resources =
                ResourceRegistry::new([ConfiguredResource::parse_spec(FILES).unwrap()]).unwrap();
        })
        .await;
    for extra in [vec![], vec![("resource", MCP)]] {
        let mut pairs = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token.as_deref().unwrap()),
        ];
        pairs.extend(extra);
        let outcome = without_mcp
            .token(&client.credentials(), token_request(&pairs))
            .await;
        match outcome {
            Err(FlowError::OAuth(error)) => {
                assert_eq!(error.code(), ErrorCode::InvalidGrant);
                assert!(error.description().unwrap().contains("no longer served"));
            }
            other => panic!("expected invalid_grant, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn other_clients_unknown_revoked_and_disabled_are_invalid_grant() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let thief = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let token = tokens.refresh_token.unwrap();

    let stolen = refresh(&fixture, &thief, &token, &[]).await;
    assert_eq!(code_of(stolen), ErrorCode::InvalidGrant);
    let unknown = refresh(&fixture, &client, "lkr_unknown", &[]).await;
    assert_eq!(code_of(unknown), ErrorCode::InvalidGrant);

    let grant = fixture
        .store
        .find_refresh(&SecretHash::of(&token))
        .await
        .unwrap()
        .unwrap();
    fixture
        .store
        .set_user_disabled(&grant.family.user_id, true)
        .await
        .unwrap();
    let disabled = refresh(&fixture, &client, &token, &[]).await;
    assert_eq!(code_of(disabled), ErrorCode::InvalidGrant);
    fixture
        .store
        .set_user_disabled(&grant.family.user_id, false)
        .await
        .unwrap();

    fixture
        .store
        .revoke_family(&grant.family.family_id, fixture.clock_now())
        .await
        .unwrap();
    let revoked = refresh(&fixture, &client, &token, &[]).await;
    assert_eq!(code_of(revoked), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn idle_expiry_is_thirty_days() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let first = fixture.code_grant_tokens(&client, "read").await;
    let second = fixture.code_grant_tokens(&client, "read").await;
    let day = Duration::from_secs(24 * 3600);
    fixture.clock.advance(day * 30 - Duration::from_secs(1));
    assert!(
        refresh(
            &fixture,
            &client,
            first.refresh_token.as_deref().unwrap(),
            &[]
        )
        .await
        .is_ok()
    );
    fixture.clock.advance(Duration::from_secs(1));
    let expired = refresh(
        &fixture,
        &client,
        second.refresh_token.as_deref().unwrap(),
        &[],
    )
    .await;
    assert_eq!(code_of(expired), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn the_family_ends_at_its_absolute_lifetime_however_often_it_rotates() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let mut token = tokens.refresh_token.unwrap();
    let day = Duration::from_secs(24 * 3600);
    for _ in 0..3 {
        fixture.clock.advance(day * 29);
        token = refresh(&fixture, &client, &token, &[])
            .await
            .unwrap()
            .refresh_token
            .unwrap();
    }
    // Day 87: the newest token's idle expiry is capped at day 90.
    let grant = fixture
        .store
        .find_refresh(&SecretHash::of(&token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grant.token.idle_expires_at,
        grant.family.absolute_expires_at
    );
    fixture.clock.advance(day * 3);
    let expired = refresh(&fixture, &client, &token, &[]).await;
    assert_eq!(code_of(expired), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn clients_without_the_refresh_grant_cannot_refresh() {
    let fixture = Fixture::new().await;
    let client = fixture.public_client().await;
    let tokens = fixture.code_grant_tokens(&client, "read").await;
    let no_refresh = fixture.public_client_without_refresh().await;
    let outcome = refresh(
        &fixture,
        &no_refresh,
        tokens.refresh_token.as_deref().unwrap(),
        &[],
    )
    .await;
    assert_eq!(code_of(outcome), ErrorCode::UnauthorizedClient);
}
