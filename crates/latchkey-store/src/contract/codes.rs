//! Contract checks for authorization codes
//! ([`GrantStore::insert_code`](crate::GrantStore::insert_code),
//! [`find_code`](crate::GrantStore::find_code) and
//! [`consume_code`](crate::GrantStore::consume_code)): single use (RFC 6749
//! §4.1.2), the expiry boundary, and the refresh-token family an exchange
//! creates.

use std::sync::Arc;

use super::{
    Names, access_token, assert_conflict, assert_not_found, at, code, first_refresh,
    seed_client_and_user, seed_grant,
};
use crate::{
    AuthorizationCodeRecord, CodeConsumption, CodeRedemption, RefreshFamilyRecord, RefreshGrant,
    RefreshTokenRecord, Store,
};

/// `insert_code` stores exactly (empty scope lists and absent resources
/// too), refuses a duplicate hash and codes for unknown clients or users.
pub async fn codes_insert_find_and_conflict(store: Arc<dyn Store>) {
    let names = Names::new("codes_insert_find_and_conflict");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let bound = code(
        names.secret("bound"),
        &client.client_id,
        &person.user_id,
        &names.id("family-bound"),
        at(60),
    );
    let unbound = AuthorizationCodeRecord {
        scopes: Vec::new(),
        resource: None,
        ..code(
            names.secret("unbound"),
            &client.client_id,
            &person.user_id,
            &names.id("family-unbound"),
            at(90),
        )
    };
    for record in [&bound, &unbound] {
        store
            .insert_code(record)
            .await
            .expect("insert_code of a new code failed");
    }
    assert_eq!(
        store.find_code(&bound.code_hash).await.unwrap().as_ref(),
        Some(&bound),
        "find_code did not return the inserted code exactly"
    );
    assert_eq!(
        store.find_code(&unbound.code_hash).await.unwrap().as_ref(),
        Some(&unbound),
        "find_code did not return a code with no scopes and no resource exactly (the empty \
         scope list must come back empty, not as [\"\"])"
    );
    assert_eq!(
        store.find_code(&names.secret("unknown")).await.unwrap(),
        None,
        "find_code of an unknown hash must be None"
    );

    let duplicate = AuthorizationCodeRecord {
        redirect_uri: "https://elsewhere.example/cb".to_owned(),
        ..bound.clone()
    };
    assert_conflict(
        store.insert_code(&duplicate).await,
        "code",
        "insert_code with an existing code_hash",
    );
    assert_eq!(
        store.find_code(&bound.code_hash).await.unwrap().as_ref(),
        Some(&bound),
        "a conflicting insert_code must leave the existing code unchanged"
    );

    let no_client = code(
        names.secret("no-client"),
        &names.id("no-such-client"),
        &person.user_id,
        &names.id("family-no-client"),
        at(60),
    );
    assert_not_found(
        store.insert_code(&no_client).await,
        "insert_code for a client that does not exist",
    );
    let no_user = code(
        names.secret("no-user"),
        &client.client_id,
        &names.id("no-such-user"),
        &names.id("family-no-user"),
        at(60),
    );
    assert_not_found(
        store.insert_code(&no_user).await,
        "insert_code for a user that does not exist",
    );
    for refused in [&no_client, &no_user] {
        assert_eq!(
            store.find_code(&refused.code_hash).await.unwrap(),
            None,
            "a refused insert_code must store nothing"
        );
    }
}

/// The first `consume_code` consumes; every later one is `Reused` with the
/// record as the first left it (even after expiry) and issues nothing; an
/// unknown hash is `Unknown`. Without a refresh token no family exists.
pub async fn codes_consume_exactly_once(store: Arc<dyn Store>) {
    let names = Names::new("codes_consume_exactly_once");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let issued = code(
        names.secret("code"),
        &client.client_id,
        &person.user_id,
        &names.id("family"),
        at(60),
    );
    store.insert_code(&issued).await.unwrap();

    let first = CodeRedemption {
        access_token: access_token(&names.id("jti-first"), at(3610)),
        refresh_token: None,
    };
    let expected = AuthorizationCodeRecord {
        consumed_at: Some(at(10)),
        access_token: Some(first.access_token.clone()),
        ..issued.clone()
    };
    assert_eq!(
        store
            .consume_code(&issued.code_hash, &first, at(10))
            .await
            .unwrap(),
        CodeConsumption::Consumed(expected.clone()),
        "the first consume_code of a live code must be Consumed with consumed_at = now and the \
         access token recorded, other fields unchanged"
    );
    assert_eq!(
        store.find_code(&issued.code_hash).await.unwrap().as_ref(),
        Some(&expected),
        "find_code after consume_code must show the consumed record"
    );

    let replay_refresh = names.secret("replay-refresh");
    let replay = CodeRedemption {
        access_token: access_token(&names.id("jti-replay"), at(3611)),
        refresh_token: Some(first_refresh(replay_refresh, at(86_400), at(2_592_000))),
    };
    for (now, when) in [(at(11), "before expiry"), (at(1000), "after expiry")] {
        assert_eq!(
            store
                .consume_code(&issued.code_hash, &replay, now)
                .await
                .unwrap(),
            CodeConsumption::Reused(expected.clone()),
            "consume_code of a consumed code ({when}) must be Reused with the record exactly as \
             the first consume left it"
        );
    }
    assert_eq!(
        store.find_code(&issued.code_hash).await.unwrap().as_ref(),
        Some(&expected),
        "a replayed consume_code must not change the code"
    );
    assert_eq!(
        store.find_refresh(&replay_refresh).await.unwrap(),
        None,
        "a replayed consume_code must not create a refresh token"
    );
    assert_eq!(
        store
            .revoke_for(&person.user_id, &client.client_id, at(12))
            .await
            .unwrap(),
        0,
        "consume_code without a refresh token must not create a refresh-token family"
    );
    assert!(
        !store
            .revoke_family(&issued.family_id, at(12))
            .await
            .unwrap(),
        "consume_code without a refresh token must not create a refresh-token family"
    );

    assert_eq!(
        store
            .consume_code(&names.secret("unknown"), &first, at(10))
            .await
            .unwrap(),
        CodeConsumption::Unknown,
        "consume_code of an unknown hash must be Unknown"
    );
}

/// A code with `expires_at <= now` is `Expired` and stays unconsumed; one
/// second earlier it is consumable.
pub async fn codes_expire_at_the_boundary(store: Arc<dyn Store>) {
    let names = Names::new("codes_expire_at_the_boundary");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let late = code(
        names.secret("late"),
        &client.client_id,
        &person.user_id,
        &names.id("family-late"),
        at(60),
    );
    let in_time = code(
        names.secret("in-time"),
        &client.client_id,
        &person.user_id,
        &names.id("family-in-time"),
        at(60),
    );
    store.insert_code(&late).await.unwrap();
    store.insert_code(&in_time).await.unwrap();

    let refresh_hash = names.secret("late-refresh");
    let redemption = CodeRedemption {
        access_token: access_token(&names.id("jti"), at(3600)),
        refresh_token: Some(first_refresh(refresh_hash, at(86_400), at(2_592_000))),
    };
    for (now, when) in [
        (at(60), "exactly at expires_at"),
        (at(61), "after expires_at"),
    ] {
        assert_eq!(
            store
                .consume_code(&late.code_hash, &redemption, now)
                .await
                .unwrap(),
            CodeConsumption::Expired,
            "consume_code {when} must be Expired (a code is expired when expires_at <= now)"
        );
    }
    assert_eq!(
        store.find_code(&late.code_hash).await.unwrap().as_ref(),
        Some(&late),
        "an Expired consume_code must leave the code unconsumed (no consumed_at, no access token)"
    );
    assert_eq!(
        store.find_refresh(&refresh_hash).await.unwrap(),
        None,
        "an Expired consume_code must not create a refresh token"
    );

    let consumed = store
        .consume_code(&in_time.code_hash, &redemption, at(59))
        .await
        .unwrap();
    let CodeConsumption::Consumed(record) = consumed else {
        panic!("consume_code one second before expires_at must be Consumed, got {consumed:?}");
    };
    assert_eq!(
        store
            .consume_code(&in_time.code_hash, &redemption, at(120))
            .await
            .unwrap(),
        CodeConsumption::Reused(record),
        "a consumed code presented after its expiry must be Reused, not Expired, so the replay \
         is still detected"
    );
}

/// Consuming with a refresh token creates the family (client, user,
/// resource and scopes from the code) and its first token, findable by
/// `find_refresh`.
pub async fn codes_consume_creates_the_refresh_family(store: Arc<dyn Store>) {
    let names = Names::new("codes_consume_creates_the_refresh_family");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let with_resource = code(
        names.secret("with-resource"),
        &client.client_id,
        &person.user_id,
        &names.id("family-with-resource"),
        at(60),
    );
    let without_resource = AuthorizationCodeRecord {
        resource: None,
        scopes: vec!["openid".to_owned()],
        ..code(
            names.secret("without-resource"),
            &client.client_id,
            &person.user_id,
            &names.id("family-without-resource"),
            at(60),
        )
    };
    for (index, issued) in [&with_resource, &without_resource].into_iter().enumerate() {
        store.insert_code(issued).await.unwrap();
        let refresh_hash = names.secret(&format!("refresh-{index}"));
        let access = access_token(&names.id(&format!("jti-{index}")), at(3605));
        let redemption = CodeRedemption {
            access_token: access.clone(),
            refresh_token: Some(first_refresh(refresh_hash, at(86_400), at(2_592_000))),
        };
        let consumed = store
            .consume_code(&issued.code_hash, &redemption, at(5))
            .await
            .unwrap();
        assert_eq!(
            consumed,
            CodeConsumption::Consumed(AuthorizationCodeRecord {
                consumed_at: Some(at(5)),
                access_token: Some(access.clone()),
                ..issued.clone()
            }),
            "consume_code with a refresh token must still return the consumed code"
        );
        let expected = RefreshGrant {
            token: RefreshTokenRecord {
                token_hash: refresh_hash,
                family_id: issued.family_id.clone(),
                scopes: issued.scopes.clone(),
                issued_at: at(5),
                idle_expires_at: at(86_400),
                used_at: None,
                access_token: Some(access),
            },
            family: RefreshFamilyRecord {
                family_id: issued.family_id.clone(),
                client_id: client.client_id.clone(),
                user_id: person.user_id.clone(),
                resource: issued.resource.clone(),
                scopes: issued.scopes.clone(),
                created_at: at(5),
                absolute_expires_at: at(2_592_000),
                revoked_at: None,
            },
        };
        assert_eq!(
            store.find_refresh(&refresh_hash).await.unwrap(),
            Some(expected),
            "the first refresh token and its family must copy client, user, resource and scopes \
             from the code, take issued_at/created_at = now and both expiries from \
             FirstRefreshToken, and record the exchange's access token on the token too \
             (resource {:?})",
            issued.resource
        );
    }
}

/// A `consume_code` whose first refresh token collides with an existing one
/// is a `"refresh_token"` conflict that leaves the code unconsumed and
/// creates no family.
pub async fn codes_consume_conflict_changes_nothing(store: Arc<dyn Store>) {
    let names = Names::new("codes_consume_conflict_changes_nothing");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let existing = seed_grant(
        &*store,
        &names,
        "existing",
        &client.client_id,
        &person.user_id,
    )
    .await;

    let fresh = code(
        names.secret("fresh"),
        &client.client_id,
        &person.user_id,
        &names.id("family-fresh"),
        at(60),
    );
    store.insert_code(&fresh).await.unwrap();
    let colliding = CodeRedemption {
        access_token: access_token(&names.id("jti-fresh"), at(3600)),
        refresh_token: Some(first_refresh(
            existing.refresh_hash,
            at(86_400),
            at(2_592_000),
        )),
    };
    assert_conflict(
        store
            .consume_code(&fresh.code_hash, &colliding, at(5))
            .await,
        "refresh_token",
        "consume_code whose first refresh token hash exists already",
    );
    assert_eq!(
        store.find_code(&fresh.code_hash).await.unwrap().as_ref(),
        Some(&fresh),
        "a failed consume_code must leave the code unconsumed (one transaction)"
    );
    assert!(
        !store.revoke_family(&fresh.family_id, at(5)).await.unwrap(),
        "a failed consume_code must not create the refresh-token family"
    );
    let still = store
        .find_refresh(&existing.refresh_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        still.token.family_id, existing.code.family_id,
        "a failed consume_code must not touch the existing refresh token"
    );

    let retry = CodeRedemption {
        refresh_token: Some(first_refresh(
            names.secret("fresh-refresh"),
            at(86_400),
            at(2_592_000),
        )),
        ..colliding
    };
    let outcome = store
        .consume_code(&fresh.code_hash, &retry, at(6))
        .await
        .unwrap();
    assert!(
        matches!(outcome, CodeConsumption::Consumed(_)),
        "after a failed consume_code the code must still be consumable, got {outcome:?}"
    );
}
