//! Contract checks for revocation (RFC 7009) and the access-token
//! deny-list: `revoke_family` denies what a grant issued, `revoke_for` is the
//! "disconnect app" action, and deny-list entries lapse with the token.

use std::sync::Arc;

use super::{
    Names, access_token, at, client, code, consent, first_refresh, next_refresh, refresh_of,
    rotate_live, seed_client_and_user, seed_grant, user,
};
use crate::{CodeConsumption, CodeRedemption, ConsentRecord, RefreshFamilyRecord, Store};

/// `revoke_family` returns `true` once, sets `revoked_at`, and denies the
/// recorded access tokens that have not expired, until they expire; it
/// puts no expired ones on the deny-list.
pub async fn revoke_family_denies_recorded_access_tokens(store: Arc<dyn Store>) {
    let names = Names::new("revoke_family_denies_recorded_access_tokens");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let grant = seed_grant(&*store, &names, "grant", &client.client_id, &person.user_id).await;
    let family_id = grant.code.family_id.clone();

    let expiring_access = access_token(&names.id("jti-expiring"), at(200));
    let second_hash = names.secret("refresh-2");
    rotate_live(
        &*store,
        &grant.refresh_hash,
        &next_refresh(
            second_hash,
            &["mcp:read"],
            at(90_000),
            Some(expiring_access.clone()),
        ),
        at(100),
    )
    .await;
    let live_access = access_token(&names.id("jti-live"), at(3750));
    let third_hash = names.secret("refresh-3");
    rotate_live(
        &*store,
        &second_hash,
        &next_refresh(
            third_hash,
            &["mcp:read"],
            at(90_000),
            Some(live_access.clone()),
        ),
        at(150),
    )
    .await;
    let fourth_hash = names.secret("refresh-4");
    rotate_live(
        &*store,
        &third_hash,
        &next_refresh(fourth_hash, &["mcp:read"], at(90_000), None),
        at(160),
    )
    .await;

    for access in [&grant.access_token, &live_access, &expiring_access] {
        assert!(
            !store
                .is_access_token_denied(&access.jti, at(199))
                .await
                .unwrap(),
            "no access token may be denied before revocation"
        );
    }
    assert!(
        store.revoke_family(&family_id, at(200)).await.unwrap(),
        "revoke_family of a live family must return true"
    );
    assert_eq!(
        refresh_of(&*store, &fourth_hash).await.family.revoked_at,
        Some(at(200)),
        "revoke_family must set revoked_at = now"
    );
    for (access, origin) in [
        (&grant.access_token, "the code exchange's"),
        (&live_access, "a rotated token's"),
    ] {
        assert!(
            store
                .is_access_token_denied(&access.jti, at(200))
                .await
                .unwrap(),
            "revoke_family must deny {origin} unexpired access token"
        );
        assert!(
            store
                .is_access_token_denied(&access.jti, access.expires_at - time::Duration::SECOND)
                .await
                .unwrap(),
            "a denied access token must stay denied until its expiry"
        );
        assert!(
            !store
                .is_access_token_denied(&access.jti, access.expires_at)
                .await
                .unwrap(),
            "a deny-list entry must lapse at the access token's expires_at"
        );
    }
    assert!(
        !store
            .is_access_token_denied(&expiring_access.jti, at(200))
            .await
            .unwrap(),
        "an access token expiring exactly at now is expired and must not read as denied"
    );
    let report = store.cleanup_expired(at(200), 100).await.unwrap();
    assert_eq!(
        report.denied_access_tokens, 0,
        "revoke_family put an access token that had already expired on the deny-list \
         (cleanup_expired found an expired entry)"
    );

    assert!(
        !store.revoke_family(&family_id, at(300)).await.unwrap(),
        "revoke_family of a revoked family must return false"
    );
    assert_eq!(
        refresh_of(&*store, &fourth_hash).await.family.revoked_at,
        Some(at(200)),
        "revoke_family of a revoked family must keep the first revoked_at"
    );
    assert!(
        !store
            .revoke_family(&names.id("no-such-family"), at(300))
            .await
            .unwrap(),
        "revoke_family of an unknown family must return false"
    );

    // The exchange's access token recorded only on the code: the first
    // refresh token (used, idle-expired) has been cleaned up while the
    // long-lived code is still there.
    let long_lived = code(
        names.secret("long-lived-code"),
        &client.client_id,
        &person.user_id,
        &names.id("long-lived-family"),
        at(10_000),
    );
    store.insert_code(&long_lived).await.unwrap();
    let code_only_access = access_token(&names.id("jti-code-only"), at(3800));
    let first_hash = names.secret("long-lived-refresh-1");
    let consumed = store
        .consume_code(
            &long_lived.code_hash,
            &CodeRedemption {
                access_token: code_only_access.clone(),
                refresh_token: Some(first_refresh(first_hash, at(250), at(2_592_000))),
            },
            at(210),
        )
        .await
        .unwrap();
    assert!(matches!(consumed, CodeConsumption::Consumed(_)));
    rotate_live(
        &*store,
        &first_hash,
        &next_refresh(names.secret("long-lived-refresh-2"), &[], at(90_000), None),
        at(220),
    )
    .await;
    let report = store.cleanup_expired(at(300), 100).await.unwrap();
    assert_eq!(
        report.refresh_tokens, 1,
        "cleanup_expired must delete a used, idle-expired token of a live family"
    );
    assert!(
        store
            .find_code(&long_lived.code_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .revoke_family(&long_lived.family_id, at(310))
            .await
            .unwrap()
    );
    assert!(
        store
            .is_access_token_denied(&code_only_access.jti, at(310))
            .await
            .unwrap(),
        "revoke_family must deny the access token recorded on the family's code (found by the \
         code's family_id), even once the refresh token that also recorded it is gone"
    );
}

/// `revoke_for` revokes every live family of one `(user, client)` pair and
/// deletes that pair's consents (every resource), counting only families it
/// revoked, and touches no other pair.
pub async fn revoke_for_user_and_client(store: Arc<dyn Store>) {
    let names = Names::new("revoke_for_user_and_client");
    let (target_client, target_user) = seed_client_and_user(&*store, &names).await;
    let other_client = client(&names.id("other-client"), at(-900));
    let other_user = user(&names.id("other-user"), &names.email("other"), at(-900));
    store.insert_client(&other_client).await.unwrap();
    store.insert_user(&other_user).await.unwrap();
    let (tc, tu) = (&target_client.client_id, &target_user.user_id);
    let (oc, ou) = (&other_client.client_id, &other_user.user_id);

    let first = seed_grant(&*store, &names, "first", tc, tu).await;
    let second = seed_grant(&*store, &names, "second", tc, tu).await;
    let earlier = seed_grant(&*store, &names, "earlier", tc, tu).await;
    assert!(
        store
            .revoke_family(&earlier.code.family_id, at(10))
            .await
            .unwrap()
    );
    let other_client_grant = seed_grant(&*store, &names, "other-client", oc, tu).await;
    let other_user_grant = seed_grant(&*store, &names, "other-user", tc, ou).await;

    let resource = "https://mcp.example.com/mcp";
    let doomed = [
        consent(tu, tc, "", at(0), at(9000)),
        consent(tu, tc, resource, at(0), at(5)),
    ];
    let kept = [
        consent(tu, oc, "", at(0), at(9000)),
        consent(ou, tc, "", at(0), at(9000)),
    ];
    for record in doomed.iter().chain(kept.iter()) {
        store.upsert_consent(record).await.unwrap();
    }

    assert_eq!(
        store.revoke_for(tu, tc, at(100)).await.unwrap(),
        2,
        "revoke_for must count the families it revoked (two live; one was revoked already)"
    );
    for grant in [&first, &second] {
        assert_eq!(
            refresh_of(&*store, &grant.refresh_hash)
                .await
                .family
                .revoked_at,
            Some(at(100)),
            "revoke_for must revoke every live family of the pair at now"
        );
        assert!(
            store
                .is_access_token_denied(&grant.access_token.jti, at(100))
                .await
                .unwrap(),
            "revoke_for must deny the families' unexpired access tokens"
        );
    }
    assert_eq!(
        refresh_of(&*store, &earlier.refresh_hash)
            .await
            .family
            .revoked_at,
        Some(at(10)),
        "revoke_for must leave a family revoked earlier as it was"
    );
    for (grant, whose) in [
        (
            &other_client_grant,
            "the same user's family with another client",
        ),
        (
            &other_user_grant,
            "another user's family with the same client",
        ),
    ] {
        assert_eq!(
            refresh_of(&*store, &grant.refresh_hash)
                .await
                .family
                .revoked_at,
            None,
            "revoke_for must not revoke {whose}"
        );
        assert!(
            !store
                .is_access_token_denied(&grant.access_token.jti, at(100))
                .await
                .unwrap(),
            "revoke_for must not deny the access token of {whose}"
        );
    }
    for record in &doomed {
        assert_eq!(
            store
                .find_consent(&record.user_id, &record.client_id, &record.resource)
                .await
                .unwrap(),
            None,
            "revoke_for must delete the pair's consent for resource {:?} (expired ones too)",
            record.resource
        );
    }
    for record in &kept {
        assert_eq!(
            store
                .find_consent(&record.user_id, &record.client_id, &record.resource)
                .await
                .unwrap()
                .as_ref(),
            Some(record),
            "revoke_for must not delete other pairs' consents"
        );
    }

    assert_eq!(
        store.revoke_for(tu, tc, at(200)).await.unwrap(),
        0,
        "a second revoke_for must revoke nothing"
    );
    assert_eq!(
        store
            .revoke_for(&names.id("nobody"), tc, at(200))
            .await
            .unwrap(),
        0,
        "revoke_for of an unknown user must revoke nothing"
    );
    let remaining: Vec<ConsentRecord> = store.list_consents(tu).await.unwrap();
    assert_eq!(remaining, vec![kept[0].clone()]);
    let untouched: RefreshFamilyRecord = refresh_of(&*store, &other_client_grant.refresh_hash)
        .await
        .family;
    assert_eq!(untouched.revoked_at, None);
}

/// The deny-list: unknown `jti`s are not denied; an entry denies while
/// `expires_at > now`; denying again is idempotent and keeps the later
/// expiry.
pub async fn deny_list_semantics(store: Arc<dyn Store>) {
    let names = Names::new("deny_list_semantics");
    let jti = names.id("jti");
    let other = names.id("other-jti");
    assert!(
        !store.is_access_token_denied(&jti, at(0)).await.unwrap(),
        "an unknown jti must not be denied"
    );
    store.deny_access_token(&jti, at(100)).await.unwrap();
    store
        .deny_access_token(&jti, at(100))
        .await
        .expect("deny_access_token must be idempotent");
    for (now, denied, what) in [
        (at(0), true, "well before expires_at"),
        (at(99), true, "one second before expires_at"),
        (at(100), false, "exactly at expires_at"),
        (at(101), false, "after expires_at"),
    ] {
        assert_eq!(
            store.is_access_token_denied(&jti, now).await.unwrap(),
            denied,
            "is_access_token_denied {what} must be {denied} (denied while expires_at > now)"
        );
    }
    assert!(
        !store.is_access_token_denied(&other, at(0)).await.unwrap(),
        "denying one jti must not deny another"
    );

    store.deny_access_token(&jti, at(200)).await.unwrap();
    assert!(
        store.is_access_token_denied(&jti, at(150)).await.unwrap(),
        "denying a listed jti with a later expiry must extend the entry"
    );
    store.deny_access_token(&jti, at(120)).await.unwrap();
    assert!(
        store.is_access_token_denied(&jti, at(150)).await.unwrap(),
        "denying a listed jti with an earlier expiry must not shorten the entry"
    );
    assert!(!store.is_access_token_denied(&jti, at(200)).await.unwrap());
}
