//! Contract checks for [`Maintenance`](crate::Maintenance) and
//! [`cleanup_until_done`](crate::cleanup_until_done): exactly the rows
//! [`CleanupReport`](crate::CleanupReport) calls expired go, with the right
//! counts, `batch` bounds each kind, and the loop drains everything.

use std::sync::Arc;

use super::{
    Names, at, code, consent, next_refresh, pending, refresh_of, rotate_live, seed_client_and_user,
    seed_grant, seed_grant_expiring, session, signing_key,
};
use crate::{
    CleanupReport, KeyState, Maintenance, Rotation, SigningKeyRecord, Store, cleanup_until_done,
};

/// `ping` answers on a healthy store.
pub async fn ping_succeeds(store: Arc<dyn Store>) {
    let outcome = store.ping().await;
    assert!(
        outcome.is_ok(),
        "ping of a healthy store failed: {outcome:?}"
    );
}

/// One row of every kind on each side of its expiry rule, then one
/// clean-up with a large batch: the counts are exact, expired rows are
/// gone, live rows (and used-but-unexpired refresh tokens) stay.
pub async fn cleanup_deletes_expired_rows_only(store: Arc<dyn Store>) {
    let names = Names::new("cleanup_deletes_expired_rows_only");
    let now = at(1000);
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let (c, u) = (&client.client_id, &person.user_id);
    let next = |label: &str, idle| next_refresh(names.secret(label), &["mcp:read"], idle, None);

    // Codes: every seeded grant leaves a consumed code expiring at at(60)
    // (four below), plus one unconsumed code expiring exactly now; one live
    // code stays.
    let expired_code = code(
        names.secret("code-expired"),
        c,
        u,
        &names.id("f-expired-code"),
        now,
    );
    let live_code = code(
        names.secret("code-live"),
        c,
        u,
        &names.id("f-live-code"),
        at(1001),
    );
    store.insert_code(&expired_code).await.unwrap();
    store.insert_code(&live_code).await.unwrap();

    // Live family A: its first token is used but not idle-expired (stays, so
    // reuse is still detected); its second is unused and idle-expired (goes).
    let family_a = seed_grant_expiring(&*store, &names, "a", c, u, at(2000), at(10_000)).await;
    let a2 = rotate_live(&*store, &family_a.refresh_hash, &next("a2", now), at(10)).await;
    // Live family B: its first token is used and idle-expired (goes); its
    // second is live (stays).
    let family_b = seed_grant_expiring(&*store, &names, "b", c, u, at(500), at(10_000)).await;
    let b2 = rotate_live(
        &*store,
        &family_b.refresh_hash,
        &next("b2", at(3000)),
        at(20),
    )
    .await;
    // Family E expires exactly now: it goes with both its tokens, which are
    // not counted as refresh tokens.
    let family_e = seed_grant_expiring(&*store, &names, "e", c, u, at(5000), now).await;
    let e2 = rotate_live(
        &*store,
        &family_e.refresh_hash,
        &next("e2", at(6000)),
        at(30),
    )
    .await;
    // A revoked family that has not expired stays, with its tokens.
    let revoked = seed_grant(&*store, &names, "revoked", c, u).await;
    assert!(
        store
            .revoke_family(&revoked.code.family_id, at(40))
            .await
            .unwrap()
    );

    let expired_consent = consent(u, c, "", at(0), now);
    let live_consent = consent(u, c, "https://mcp.example.com/mcp", at(0), at(1001));
    store.upsert_consent(&expired_consent).await.unwrap();
    store.upsert_consent(&live_consent).await.unwrap();

    // The revocation above denied one live access token (expires at(3600)).
    let (denied_now, denied_before, denied_live) = (
        names.id("denied-now"),
        names.id("denied-before"),
        names.id("denied-live"),
    );
    store.deny_access_token(&denied_now, now).await.unwrap();
    store
        .deny_access_token(&denied_before, at(999))
        .await
        .unwrap();
    store
        .deny_access_token(&denied_live, at(1001))
        .await
        .unwrap();

    let idle_expired = session(names.secret("s-idle"), u, now, at(5000));
    let absolute_expired = session(names.secret("s-absolute"), u, at(9000), now);
    let live_session = session(names.secret("s-live"), u, at(1001), at(5000));
    for record in [&idle_expired, &absolute_expired, &live_session] {
        store.insert_session(record).await.unwrap();
    }

    let expired_pending = pending(names.secret("p-expired"), "authorize", now);
    let live_pending = pending(names.secret("p-live"), "authorize", at(1001));
    store.insert_pending(&expired_pending).await.unwrap();
    store.insert_pending(&live_pending).await.unwrap();

    let retired = |label: &str, not_after| SigningKeyRecord {
        retired_at: Some(at(1)),
        not_after,
        ..signing_key(&names.id(label), KeyState::Retired, at(0))
    };
    let retired_expired = retired("retired-expired", Some(now));
    let retired_live = retired("retired-live", Some(at(1001)));
    let retired_open = retired("retired-open", None);
    // An active or next key never goes, whatever its not_after says.
    let active = SigningKeyRecord {
        not_after: Some(at(10)),
        ..signing_key(&names.id("active"), KeyState::Active, at(0))
    };
    let upcoming = SigningKeyRecord {
        not_after: Some(at(10)),
        ..signing_key(&names.id("next"), KeyState::Next, at(0))
    };
    for record in [
        &retired_expired,
        &retired_live,
        &retired_open,
        &active,
        &upcoming,
    ] {
        store.insert_key(record).await.unwrap();
    }

    let report = store.cleanup_expired(now, 100).await.unwrap();
    assert_eq!(
        report,
        CleanupReport {
            codes: 5,
            refresh_families: 1,
            refresh_tokens: 2,
            consents: 1,
            denied_access_tokens: 2,
            sessions: 2,
            pending: 1,
            signing_keys: 1,
        },
        "cleanup_expired counts are wrong; expected: codes with expires_at <= now (4 consumed, \
         1 unconsumed), families with absolute_expires_at <= now (1, its 2 tokens not counted), \
         idle-expired tokens of live families (2: one used, one unused), and per kind the rows \
         with expires_at <= now (sessions: either timeout; keys: retired with not_after <= now)"
    );

    for gone in [
        &expired_code.code_hash,
        &family_a.code.code_hash,
        &revoked.code.code_hash,
    ] {
        assert_eq!(
            store.find_code(gone).await.unwrap(),
            None,
            "an expired code must be deleted"
        );
    }
    assert!(
        store
            .find_code(&live_code.code_hash)
            .await
            .unwrap()
            .is_some(),
        "a code with expires_at > now must stay"
    );
    for (gone, what) in [
        (
            &a2.token.token_hash,
            "an unused, idle-expired token of a live family",
        ),
        (
            &family_b.refresh_hash,
            "a used, idle-expired token of a live family",
        ),
        (
            &family_e.refresh_hash,
            "the first token of an absolutely expired family",
        ),
        (
            &e2.token.token_hash,
            "the second token of an absolutely expired family",
        ),
    ] {
        assert_eq!(
            store.find_refresh(gone).await.unwrap(),
            None,
            "cleanup_expired must delete {what}"
        );
    }
    for (kept, what) in [
        (
            &family_a.refresh_hash,
            "a used token whose idle expiry has not passed",
        ),
        (&b2.token.token_hash, "a live token of a live family"),
        (
            &revoked.refresh_hash,
            "a token of a revoked, unexpired family",
        ),
    ] {
        assert!(
            store.find_refresh(kept).await.unwrap().is_some(),
            "cleanup_expired must keep {what}"
        );
    }
    assert_eq!(
        store.find_consent(u, c, "").await.unwrap(),
        None,
        "an expired consent must be deleted"
    );
    assert_eq!(
        store
            .find_consent(u, c, &live_consent.resource)
            .await
            .unwrap()
            .as_ref(),
        Some(&live_consent),
        "a live consent must stay"
    );
    assert!(
        store
            .is_access_token_denied(&denied_live, at(1000))
            .await
            .unwrap()
    );
    assert!(
        store
            .is_access_token_denied(&revoked.access_token.jti, at(1000))
            .await
            .unwrap(),
        "a live deny-list entry must stay"
    );
    assert!(
        store
            .find_session(&live_session.session_hash, at(999))
            .await
            .unwrap()
            .is_some(),
        "a live session must stay"
    );
    for gone in [&idle_expired, &absolute_expired] {
        assert_eq!(
            store.find_session(&gone.session_hash, at(0)).await.unwrap(),
            None,
            "an expired session must be deleted (seen from an earlier now, it would still be live)"
        );
    }
    assert_eq!(
        store
            .find_pending(&expired_pending.pending_hash, at(0))
            .await
            .unwrap(),
        None,
        "an expired pending interaction must be deleted"
    );
    assert!(
        store
            .find_pending(&live_pending.pending_hash, at(1000))
            .await
            .unwrap()
            .is_some()
    );
    let kids: Vec<String> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|key| key.kid)
        .collect();
    assert_eq!(
        kids,
        vec![active.kid, upcoming.kid, retired_live.kid, retired_open.kid],
        "cleanup_expired must delete only retired keys with not_after <= now"
    );

    assert_eq!(
        store.cleanup_expired(now, 100).await.unwrap(),
        CleanupReport::default(),
        "a second cleanup_expired at the same now must delete nothing"
    );
    assert_eq!(
        store
            .rotate_refresh(&family_a.refresh_hash, &next("thief", at(9000)), now)
            .await
            .unwrap(),
        Rotation::Reused {
            family_id: family_a.code.family_id.clone()
        },
        "a used token kept by cleanup_expired must still be detected as reused"
    );
    assert!(
        refresh_of(&*store, &family_a.refresh_hash)
            .await
            .family
            .revoked_at
            .is_some()
    );
}

/// `batch` bounds each kind separately: with batch 2, five expired codes go
/// 2, 2, 1, and every other kind in step.
pub async fn cleanup_batch_bounds_each_kind(store: Arc<dyn Store>) {
    let names = Names::new("cleanup_batch_bounds_each_kind");
    let now = at(1000);
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let (c, u) = (&client.client_id, &person.user_id);

    // Five grants leave five consumed codes expiring at at(60): two with
    // expired families, three whose live families hold an idle-expired token.
    for label in ["family-1", "family-2"] {
        seed_grant_expiring(&*store, &names, label, c, u, at(400), at(500)).await;
    }
    for label in ["token-1", "token-2", "token-3"] {
        seed_grant_expiring(&*store, &names, label, c, u, at(500), at(10_000)).await;
    }
    for (index, resource) in ["", "https://a.example/mcp", "https://b.example/mcp"]
        .into_iter()
        .enumerate()
    {
        store
            .upsert_consent(&consent(
                u,
                c,
                resource,
                at(0),
                at(100 + i64::try_from(index).unwrap()),
            ))
            .await
            .unwrap();
    }
    for index in 0..3 {
        let label = format!("expired-{index}");
        store
            .deny_access_token(&names.id(&label), at(100 + index))
            .await
            .unwrap();
        store
            .insert_session(&session(names.secret(&label), u, at(100 + index), at(5000)))
            .await
            .unwrap();
        store
            .insert_pending(&pending(names.secret(&label), "authorize", at(100 + index)))
            .await
            .unwrap();
        store
            .insert_key(&SigningKeyRecord {
                retired_at: Some(at(1)),
                not_after: Some(at(100 + index)),
                ..signing_key(&names.id(&label), KeyState::Retired, at(0))
            })
            .await
            .unwrap();
    }

    let rounds = [
        CleanupReport {
            codes: 2,
            refresh_families: 2,
            refresh_tokens: 2,
            consents: 2,
            denied_access_tokens: 2,
            sessions: 2,
            pending: 2,
            signing_keys: 2,
        },
        CleanupReport {
            codes: 2,
            refresh_families: 0,
            refresh_tokens: 1,
            consents: 1,
            denied_access_tokens: 1,
            sessions: 1,
            pending: 1,
            signing_keys: 1,
        },
        CleanupReport {
            codes: 1,
            ..CleanupReport::default()
        },
        CleanupReport::default(),
    ];
    assert_eq!(
        store.cleanup_expired(now, 0).await.unwrap(),
        CleanupReport::default(),
        "cleanup_expired with batch 0 must delete nothing"
    );
    for (round, expected) in rounds.iter().enumerate() {
        assert_eq!(
            &store.cleanup_expired(now, 2).await.unwrap(),
            expected,
            "cleanup_expired round {} with batch 2: each kind must lose at most 2 rows, and \
             exactly min(2, remaining) (5 codes, 2 families, 3 idle-expired tokens of live \
             families, 3 of every other kind)",
            round + 1
        );
    }
}

/// `cleanup_until_done` repeats batches until nothing is left and returns
/// the summed report; live rows survive it.
pub async fn cleanup_until_done_drains_everything(store: Arc<dyn Store>) {
    let names = Names::new("cleanup_until_done_drains_everything");
    let now = at(1000);
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let (c, u) = (&client.client_id, &person.user_id);
    for index in 0..7 {
        let label = format!("code-{index}");
        store
            .insert_code(&code(
                names.secret(&label),
                c,
                u,
                &names.id(&label),
                at(900),
            ))
            .await
            .unwrap();
    }
    for index in 0..5 {
        let label = format!("session-{index}");
        store
            .insert_session(&session(names.secret(&label), u, at(900), at(5000)))
            .await
            .unwrap();
    }
    for index in 0..4 {
        let label = format!("pending-{index}");
        store
            .insert_pending(&pending(names.secret(&label), "upstream", at(900)))
            .await
            .unwrap();
    }
    for index in 0..3 {
        store
            .deny_access_token(&names.id(&format!("jti-{index}")), at(900))
            .await
            .unwrap();
    }
    let live_code = code(
        names.secret("live-code"),
        c,
        u,
        &names.id("live-code"),
        at(1001),
    );
    let live_session = session(names.secret("live-session"), u, at(1001), at(5000));
    store.insert_code(&live_code).await.unwrap();
    store.insert_session(&live_session).await.unwrap();

    let maintenance: &dyn Maintenance = &*store;
    assert_eq!(
        cleanup_until_done(maintenance, now, 0).await.unwrap(),
        CleanupReport::default(),
        "cleanup_until_done with batch 0 must delete nothing and stop"
    );
    assert_eq!(
        cleanup_until_done(maintenance, now, 2).await.unwrap(),
        CleanupReport {
            codes: 7,
            sessions: 5,
            pending: 4,
            denied_access_tokens: 3,
            ..CleanupReport::default()
        },
        "cleanup_until_done must sum every round's report until nothing is left"
    );
    assert_eq!(
        store.cleanup_expired(now, 1000).await.unwrap(),
        CleanupReport::default(),
        "nothing expired may remain after cleanup_until_done"
    );
    assert!(
        store
            .find_code(&live_code.code_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_session(&live_session.session_hash, now)
            .await
            .unwrap()
            .is_some()
    );
}
