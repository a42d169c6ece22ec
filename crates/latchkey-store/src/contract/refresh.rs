//! Contract checks for refresh-token families: lookup, rotation with reuse
//! detection (RFC 9700 §4.14.2), the precedence of rotation outcomes, expiry
//! boundaries and atomicity.

use std::sync::Arc;

use super::{
    Names, access_token, assert_conflict, at, next_refresh, refresh_of, rotate_live,
    seed_client_and_user, seed_grant, seed_grant_expiring,
};
use crate::{RefreshGrant, RefreshTokenRecord, Rotation, Store};

/// `find_refresh` returns the token with its family, used and revoked ones
/// too; an unknown hash is `None`.
pub async fn refresh_find_returns_token_and_family(store: Arc<dyn Store>) {
    let names = Names::new("refresh_find_returns_token_and_family");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let grant = seed_grant(&*store, &names, "grant", &client.client_id, &person.user_id).await;

    let found = refresh_of(&*store, &grant.refresh_hash).await;
    assert_eq!(found.token.token_hash, grant.refresh_hash);
    assert_eq!(
        found.token.family_id, grant.code.family_id,
        "find_refresh must return the token's family id as allocated with the code"
    );
    assert_eq!(
        found.family.family_id, grant.code.family_id,
        "find_refresh must return the token's own family"
    );
    assert_eq!(found.token.access_token, Some(grant.access_token.clone()));
    assert_eq!(
        store.find_refresh(&names.secret("unknown")).await.unwrap(),
        None,
        "find_refresh of an unknown hash must be None"
    );

    let next_hash = names.secret("refresh-2");
    rotate_live(
        &*store,
        &grant.refresh_hash,
        &next_refresh(next_hash, &["mcp:read"], at(90_000), None),
        at(100),
    )
    .await;
    assert!(
        store
            .revoke_family(&grant.code.family_id, at(200))
            .await
            .unwrap(),
        "revoke_family of a live family must return true"
    );
    let used = refresh_of(&*store, &grant.refresh_hash).await;
    assert_eq!(
        used.token.used_at,
        Some(at(100)),
        "find_refresh must return used tokens too, with used_at"
    );
    assert_eq!(
        used.family.revoked_at,
        Some(at(200)),
        "find_refresh must return tokens of revoked families too, with revoked_at"
    );
    let newer = refresh_of(&*store, &next_hash).await;
    assert_eq!(
        newer.family, used.family,
        "both tokens belong to one family"
    );
}

/// Rotating a live token marks it used at `now` and stores the next token
/// (issued now, in the same family, with the given scopes, idle expiry and
/// access token); the family is unchanged.
pub async fn refresh_rotate_live_token(store: Arc<dyn Store>) {
    let names = Names::new("refresh_rotate_live_token");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let grant = seed_grant(&*store, &names, "grant", &client.client_id, &person.user_id).await;
    let before = refresh_of(&*store, &grant.refresh_hash).await;

    let second_hash = names.secret("refresh-2");
    let second_access = access_token(&names.id("jti-2"), at(3700));
    let rotation = store
        .rotate_refresh(
            &grant.refresh_hash,
            &next_refresh(
                second_hash,
                &["mcp:read"],
                at(90_000),
                Some(second_access.clone()),
            ),
            at(100),
        )
        .await
        .unwrap();
    let expected = RefreshGrant {
        token: RefreshTokenRecord {
            token_hash: second_hash,
            family_id: grant.code.family_id.clone(),
            scopes: vec!["mcp:read".to_owned()],
            issued_at: at(100),
            idle_expires_at: at(90_000),
            used_at: None,
            access_token: Some(second_access),
        },
        family: before.family.clone(),
    };
    assert_eq!(
        rotation,
        Rotation::Rotated(expected.clone()),
        "rotate_refresh of a live token must be Rotated with the new token (issued_at = now, \
         the given scopes, idle expiry and access token) and the unchanged family"
    );
    assert_eq!(
        refresh_of(&*store, &grant.refresh_hash).await,
        RefreshGrant {
            token: RefreshTokenRecord {
                used_at: Some(at(100)),
                ..before.token.clone()
            },
            family: before.family.clone(),
        },
        "rotate_refresh must mark the old token used at now and change nothing else"
    );
    assert_eq!(
        refresh_of(&*store, &second_hash).await,
        expected,
        "find_refresh must return the new token as rotate_refresh reported it"
    );

    let third_hash = names.secret("refresh-3");
    let third = rotate_live(
        &*store,
        &second_hash,
        &next_refresh(third_hash, &[], at(95_000), None),
        at(200),
    )
    .await;
    assert_eq!(
        third.token.access_token, None,
        "a rotation without an access token must store none"
    );
    assert_eq!(
        third.token.scopes,
        Vec::<String>::new(),
        "a rotation to an empty scope list must store an empty list"
    );
    assert_eq!(refresh_of(&*store, &third_hash).await, third);
}

/// Presenting a used token again is reuse: the family is revoked at `now`,
/// every unexpired access token recorded under it (on the code and on each
/// token) is denied, no new token is stored, and reuse keeps winning over
/// "revoked" for every used token.
pub async fn refresh_reuse_revokes_the_family(store: Arc<dyn Store>) {
    let names = Names::new("refresh_reuse_revokes_the_family");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let grant = seed_grant(&*store, &names, "grant", &client.client_id, &person.user_id).await;
    let family_id = grant.code.family_id.clone();

    let second_hash = names.secret("refresh-2");
    let second_access = access_token(&names.id("jti-2"), at(3700));
    rotate_live(
        &*store,
        &grant.refresh_hash,
        &next_refresh(
            second_hash,
            &["mcp:read"],
            at(90_000),
            Some(second_access.clone()),
        ),
        at(100),
    )
    .await;
    let third_hash = names.secret("refresh-3");
    let short_access = access_token(&names.id("jti-3-short"), at(300));
    rotate_live(
        &*store,
        &second_hash,
        &next_refresh(
            third_hash,
            &["mcp:read"],
            at(90_000),
            Some(short_access.clone()),
        ),
        at(200),
    )
    .await;

    let thief_hash = names.secret("thief");
    let thief_next = next_refresh(thief_hash, &["mcp:read"], at(90_000), None);
    assert_eq!(
        store
            .rotate_refresh(&grant.refresh_hash, &thief_next, at(400))
            .await
            .unwrap(),
        Rotation::Reused {
            family_id: family_id.clone()
        },
        "rotate_refresh of a used token must be Reused with its family id"
    );
    let family = refresh_of(&*store, &third_hash).await.family;
    assert_eq!(
        family.revoked_at,
        Some(at(400)),
        "reuse must revoke the family at now"
    );
    assert_eq!(
        store.find_refresh(&thief_hash).await.unwrap(),
        None,
        "reuse must not store the next token"
    );
    for (access, origin) in [
        (&grant.access_token, "the code exchange's"),
        (&second_access, "a rotated token's"),
    ] {
        assert!(
            store
                .is_access_token_denied(&access.jti, at(400))
                .await
                .unwrap(),
            "reuse must deny {origin} unexpired access token"
        );
    }
    assert!(
        !store
            .is_access_token_denied(&short_access.jti, at(400))
            .await
            .unwrap(),
        "an access token that expired before the reuse must not read as denied"
    );

    assert_eq!(
        store
            .rotate_refresh(&third_hash, &thief_next, at(410))
            .await
            .unwrap(),
        Rotation::Revoked,
        "rotating the unused token of a revoked family must be Revoked"
    );
    for (used_hash, which) in [(&grant.refresh_hash, "first"), (&second_hash, "second")] {
        assert_eq!(
            store
                .rotate_refresh(used_hash, &thief_next, at(500))
                .await
                .unwrap(),
            Rotation::Reused {
                family_id: family_id.clone()
            },
            "rotating the used {which} token of an already revoked family must still be Reused \
             (reuse is checked before revocation)"
        );
    }
    assert_eq!(
        refresh_of(&*store, &third_hash).await.family.revoked_at,
        Some(at(400)),
        "reuse in a family revoked already must keep the first revoked_at"
    );
    assert_eq!(
        refresh_of(&*store, &third_hash).await.token.used_at,
        None,
        "a Revoked rotation must not mark the token used"
    );
}

/// Rotating a token of a revoked family is `Revoked` and changes nothing.
pub async fn refresh_rotate_in_revoked_family(store: Arc<dyn Store>) {
    let names = Names::new("refresh_rotate_in_revoked_family");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let grant = seed_grant(&*store, &names, "grant", &client.client_id, &person.user_id).await;
    assert!(
        store
            .revoke_family(&grant.code.family_id, at(50))
            .await
            .unwrap()
    );
    let before = refresh_of(&*store, &grant.refresh_hash).await;

    let next_hash = names.secret("refresh-2");
    assert_eq!(
        store
            .rotate_refresh(
                &grant.refresh_hash,
                &next_refresh(next_hash, &["mcp:read"], at(90_000), None),
                at(60),
            )
            .await
            .unwrap(),
        Rotation::Revoked,
        "rotate_refresh of an unused token in a revoked family must be Revoked"
    );
    assert_eq!(
        refresh_of(&*store, &grant.refresh_hash).await,
        before,
        "a Revoked rotation must change nothing"
    );
    assert_eq!(
        store.find_refresh(&next_hash).await.unwrap(),
        None,
        "a Revoked rotation must not store the next token"
    );
    assert_eq!(
        store
            .rotate_refresh(
                &names.secret("unknown"),
                &next_refresh(next_hash, &[], at(90_000), None),
                at(60),
            )
            .await
            .unwrap(),
        Rotation::Unknown,
        "rotate_refresh of an unknown hash must be Unknown"
    );
}

/// A token whose idle expiry, or whose family's absolute expiry, is `<= now`
/// is `Expired` (and left unused); one second earlier it rotates.
pub async fn refresh_expiry_boundaries(store: Arc<dyn Store>) {
    let names = Names::new("refresh_expiry_boundaries");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let idle = |label: &'static str| {
        seed_grant_expiring(
            &*store,
            &names,
            label,
            &client.client_id,
            &person.user_id,
            at(1000),
            at(5000),
        )
    };
    let idle_late = idle("idle-late").await;
    let idle_in_time = idle("idle-in-time").await;
    let absolute = |label: &'static str| {
        seed_grant_expiring(
            &*store,
            &names,
            label,
            &client.client_id,
            &person.user_id,
            at(9000),
            at(5000),
        )
    };
    let absolute_late = absolute("absolute-late").await;
    let absolute_in_time = absolute("absolute-in-time").await;

    let next = |label: &str| next_refresh(names.secret(label), &["mcp:read"], at(90_000), None);
    for (grant, now, what) in [
        (
            &idle_late,
            at(1000),
            "exactly at the token's idle_expires_at",
        ),
        (&idle_late, at(1001), "after the token's idle_expires_at"),
        (
            &absolute_late,
            at(5000),
            "exactly at the family's absolute_expires_at",
        ),
        (
            &absolute_late,
            at(5001),
            "after the family's absolute_expires_at",
        ),
    ] {
        let before = refresh_of(&*store, &grant.refresh_hash).await;
        assert_eq!(
            store
                .rotate_refresh(&grant.refresh_hash, &next("late-next"), now)
                .await
                .unwrap(),
            Rotation::Expired,
            "rotate_refresh {what} must be Expired"
        );
        assert_eq!(
            refresh_of(&*store, &grant.refresh_hash).await,
            before,
            "an Expired rotation ({what}) must change nothing: no used_at, no revocation"
        );
    }
    assert_eq!(
        store
            .find_refresh(&names.secret("late-next"))
            .await
            .unwrap(),
        None,
        "an Expired rotation must not store the next token"
    );

    rotate_live(
        &*store,
        &idle_in_time.refresh_hash,
        &next("idle-next"),
        at(999),
    )
    .await;
    rotate_live(
        &*store,
        &absolute_in_time.refresh_hash,
        &next("absolute-next"),
        at(4999),
    )
    .await;
}

/// A rotation whose next hash exists already is a `"refresh_token"`
/// conflict that leaves the old token unused.
pub async fn refresh_rotate_conflict_changes_nothing(store: Arc<dyn Store>) {
    let names = Names::new("refresh_rotate_conflict_changes_nothing");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let mine = seed_grant(&*store, &names, "mine", &client.client_id, &person.user_id).await;
    let theirs = seed_grant(
        &*store,
        &names,
        "theirs",
        &client.client_id,
        &person.user_id,
    )
    .await;
    let before = refresh_of(&*store, &mine.refresh_hash).await;
    let theirs_before = refresh_of(&*store, &theirs.refresh_hash).await;

    for (colliding, what) in [
        (theirs.refresh_hash, "another family's token"),
        (mine.refresh_hash, "the old token itself"),
    ] {
        assert_conflict(
            store
                .rotate_refresh(
                    &mine.refresh_hash,
                    &next_refresh(colliding, &["mcp:read"], at(90_000), None),
                    at(100),
                )
                .await,
            "refresh_token",
            &format!("rotate_refresh whose next hash is {what}"),
        );
        assert_eq!(
            refresh_of(&*store, &mine.refresh_hash).await,
            before,
            "a failed rotation must leave the old token unused (one transaction)"
        );
    }
    assert_eq!(
        refresh_of(&*store, &theirs.refresh_hash).await,
        theirs_before,
        "a failed rotation must not touch the colliding token"
    );
    rotate_live(
        &*store,
        &mine.refresh_hash,
        &next_refresh(names.secret("mine-2"), &["mcp:read"], at(90_000), None),
        at(101),
    )
    .await;
}
