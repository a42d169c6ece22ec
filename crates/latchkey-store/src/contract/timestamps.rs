//! Contract check for time precision: every timestamp written with
//! sub-second precision and a non-UTC offset comes back as whole UTC
//! seconds, and expiry is decided on the truncated value, so a backend
//! storing Unix seconds and one storing microseconds behave the same.

use std::sync::Arc;

use time::{Duration, UtcOffset};

use super::{
    Names, access_token, at, client, code, consent, first_refresh, next_refresh, pending,
    refresh_of, rotate_live, session, signing_key, user,
};
use crate::{
    AuthorizationCodeRecord, ClientRecord, CodeConsumption, CodeRedemption, ConsentRecord,
    FederatedIdentityRecord, KeyState, PendingRecord, SessionRecord, SigningKeyRecord, Store,
    Timestamp, UserRecord,
};

/// `whole` plus 0.987654321 s, expressed at UTC+02:00: the same instant
/// would be stored as `whole`.
fn fractional(whole: Timestamp) -> Timestamp {
    let offset = UtcOffset::from_hms(2, 0, 0).unwrap();
    (whole + Duration::nanoseconds(987_654_321)).to_offset(offset)
}

/// Asserts a timestamp came back as exactly `expected`, in UTC.
#[track_caller]
fn assert_stored(actual: Timestamp, expected: Timestamp, what: &str) {
    assert_eq!(
        actual, expected,
        "{what}: stored timestamps must be truncated to whole seconds"
    );
    assert_eq!(
        actual.offset(),
        UtcOffset::UTC,
        "{what}: stored timestamps must come back in UTC"
    );
}

/// Every record's timestamps, and the `now` of every operation that stores
/// one, come back truncated to whole UTC seconds; expiry uses the truncated
/// value.
pub async fn timestamps_are_truncated_to_utc_seconds(store: Arc<dyn Store>) {
    let names = Names::new("timestamps_are_truncated_to_utc_seconds");

    let client_record = ClientRecord {
        created_at: fractional(at(-100)),
        expires_at: Some(fractional(at(100))),
        ..client(&names.id("client"), at(0))
    };
    store.insert_client(&client_record).await.unwrap();
    let stored_client = store
        .find_client(&client_record.client_id)
        .await
        .unwrap()
        .unwrap();
    assert_stored(stored_client.created_at, at(-100), "client created_at");
    assert_stored(
        stored_client.expires_at.unwrap(),
        at(100),
        "client expires_at",
    );

    let person = UserRecord {
        created_at: fractional(at(-90)),
        ..user(&names.id("user"), &names.email("user"), at(0))
    };
    store.insert_user(&person).await.unwrap();
    let stored_user = store.find_user(&person.user_id).await.unwrap().unwrap();
    assert_stored(stored_user.created_at, at(-90), "user created_at");

    let identity = FederatedIdentityRecord {
        issuer: "https://idp.example".to_owned(),
        subject: names.id("subject"),
        user_id: person.user_id.clone(),
        email: None,
        created_at: fractional(at(-80)),
    };
    store.insert_identity(&identity).await.unwrap();
    let stored_identity = store
        .find_identity(&identity.issuer, &identity.subject)
        .await
        .unwrap()
        .unwrap();
    assert_stored(stored_identity.created_at, at(-80), "identity created_at");

    let (c, u) = (&client_record.client_id, &person.user_id);
    let issued = AuthorizationCodeRecord {
        auth_time: fractional(at(-70)),
        issued_at: fractional(at(0)),
        expires_at: fractional(at(60)),
        ..code(names.secret("code"), c, u, &names.id("family"), at(0))
    };
    store.insert_code(&issued).await.unwrap();
    let stored_code = store.find_code(&issued.code_hash).await.unwrap().unwrap();
    assert_stored(stored_code.auth_time, at(-70), "code auth_time");
    assert_stored(stored_code.issued_at, at(0), "code issued_at");
    assert_stored(stored_code.expires_at, at(60), "code expires_at");

    // Stored as at(60), the code is expired at 60.3 s even though the
    // written expiry (60.98… s) is later.
    let refresh_hash = names.secret("refresh-1");
    let redemption = CodeRedemption {
        access_token: access_token(&names.id("jti-1"), fractional(at(3600))),
        refresh_token: Some(first_refresh(
            refresh_hash,
            fractional(at(86_400)),
            fractional(at(2_592_000)),
        )),
    };
    assert_eq!(
        store
            .consume_code(
                &issued.code_hash,
                &redemption,
                at(60) + Duration::milliseconds(300)
            )
            .await
            .unwrap(),
        CodeConsumption::Expired,
        "expiry must be decided on the stored (truncated) expires_at: a code written to expire \
         at 60.98 s is stored as 60 s and is expired at 60.3 s"
    );
    let consumed = store
        .consume_code(&issued.code_hash, &redemption, fractional(at(10)))
        .await
        .unwrap();
    let CodeConsumption::Consumed(consumed) = consumed else {
        panic!("consume_code of a live code returned {consumed:?}");
    };
    assert_stored(
        consumed.consumed_at.unwrap(),
        at(10),
        "code consumed_at (from now)",
    );
    let recorded = consumed.access_token.unwrap();
    assert_stored(
        recorded.expires_at,
        at(3600),
        "code access_token expires_at",
    );

    let first = refresh_of(&*store, &refresh_hash).await;
    assert_stored(
        first.token.issued_at,
        at(10),
        "first refresh token issued_at (from now)",
    );
    assert_stored(
        first.token.idle_expires_at,
        at(86_400),
        "first refresh token idle_expires_at",
    );
    assert_stored(
        first.token.access_token.unwrap().expires_at,
        at(3600),
        "first refresh token access_token expires_at",
    );
    assert_stored(
        first.family.created_at,
        at(10),
        "family created_at (from now)",
    );
    assert_stored(
        first.family.absolute_expires_at,
        at(2_592_000),
        "family absolute_expires_at",
    );

    let second_hash = names.secret("refresh-2");
    let second = rotate_live(
        &*store,
        &refresh_hash,
        &next_refresh(
            second_hash,
            &["mcp:read"],
            fractional(at(90_000)),
            Some(access_token(&names.id("jti-2"), fractional(at(3700)))),
        ),
        fractional(at(20)),
    )
    .await;
    for (grant, what) in [
        (second, "as returned by rotate_refresh"),
        (refresh_of(&*store, &second_hash).await, "as found"),
    ] {
        assert_stored(
            grant.token.issued_at,
            at(20),
            &format!("rotated token issued_at {what}"),
        );
        assert_stored(
            grant.token.idle_expires_at,
            at(90_000),
            &format!("rotated token idle_expires_at {what}"),
        );
        assert_stored(
            grant.token.access_token.unwrap().expires_at,
            at(3700),
            &format!("rotated token access_token expires_at {what}"),
        );
    }
    let used = refresh_of(&*store, &refresh_hash).await;
    assert_stored(
        used.token.used_at.unwrap(),
        at(20),
        "rotated-away token used_at (from now)",
    );
    assert!(
        store
            .revoke_family(&used.family.family_id, fractional(at(30)))
            .await
            .unwrap()
    );
    let revoked = refresh_of(&*store, &refresh_hash).await;
    assert_stored(
        revoked.family.revoked_at.unwrap(),
        at(30),
        "family revoked_at (from now)",
    );

    // A deny-list entry written to expire at 100.98 s is stored as 100 s.
    let jti = names.id("denied");
    store
        .deny_access_token(&jti, fractional(at(100)))
        .await
        .unwrap();
    assert!(store.is_access_token_denied(&jti, at(99)).await.unwrap());
    assert!(
        !store.is_access_token_denied(&jti, at(100)).await.unwrap(),
        "a deny-list entry written to expire at 100.98 s must be stored as 100 s, so it has \
         lapsed at 100 s"
    );

    let remembered = ConsentRecord {
        granted_at: fractional(at(1)),
        expires_at: fractional(at(1000)),
        last_used_at: Some(fractional(at(2))),
        ..consent(u, c, "", at(0), at(0))
    };
    store.upsert_consent(&remembered).await.unwrap();
    let stored_consent = store.find_consent(u, c, "").await.unwrap().unwrap();
    assert_stored(stored_consent.granted_at, at(1), "consent granted_at");
    assert_stored(stored_consent.expires_at, at(1000), "consent expires_at");
    assert_stored(
        stored_consent.last_used_at.unwrap(),
        at(2),
        "consent last_used_at",
    );
    assert!(
        store
            .touch_consent(u, c, "", fractional(at(3)))
            .await
            .unwrap()
    );
    let touched = store.find_consent(u, c, "").await.unwrap().unwrap();
    assert_stored(
        touched.last_used_at.unwrap(),
        at(3),
        "consent last_used_at (from now)",
    );

    let retired = SigningKeyRecord {
        created_at: fractional(at(-50)),
        activated_at: Some(fractional(at(-40))),
        retired_at: Some(fractional(at(-30))),
        not_after: Some(fractional(at(5000))),
        ..signing_key(&names.id("retired"), KeyState::Retired, at(0))
    };
    let active = SigningKeyRecord {
        created_at: fractional(at(-20)),
        activated_at: Some(fractional(at(-10))),
        ..signing_key(&names.id("active"), KeyState::Active, at(0))
    };
    let upcoming = signing_key(&names.id("upcoming"), KeyState::Next, at(-5));
    for record in [&retired, &active, &upcoming] {
        store.insert_key(record).await.unwrap();
    }
    let keys = store.list_keys().await.unwrap();
    assert_stored(keys[0].created_at, at(-50), "key created_at");
    assert_stored(keys[0].activated_at.unwrap(), at(-40), "key activated_at");
    assert_stored(keys[0].retired_at.unwrap(), at(-30), "key retired_at");
    assert_stored(keys[0].not_after.unwrap(), at(5000), "key not_after");
    assert!(
        store
            .activate_key(&upcoming.kid, fractional(at(40)), fractional(at(4000)))
            .await
            .unwrap()
    );
    let keys = store.list_keys().await.unwrap();
    let now_retired = keys.iter().find(|key| key.kid == active.kid).unwrap();
    assert_stored(
        now_retired.retired_at.unwrap(),
        at(40),
        "key retired_at (from now)",
    );
    assert_stored(
        now_retired.not_after.unwrap(),
        at(4000),
        "key not_after (from activate_key)",
    );
    let now_active = keys.iter().find(|key| key.kid == upcoming.kid).unwrap();
    assert_stored(
        now_active.activated_at.unwrap(),
        at(40),
        "key activated_at (from now)",
    );

    let browser = SessionRecord {
        auth_time: fractional(at(-60)),
        created_at: fractional(at(-59)),
        last_seen_at: fractional(at(-58)),
        idle_expires_at: fractional(at(600)),
        absolute_expires_at: fractional(at(5000)),
        ..session(names.secret("session"), u, at(0), at(0))
    };
    store.insert_session(&browser).await.unwrap();
    let stored_session = store
        .find_session(&browser.session_hash, at(0))
        .await
        .unwrap()
        .unwrap();
    assert_stored(stored_session.auth_time, at(-60), "session auth_time");
    assert_stored(stored_session.created_at, at(-59), "session created_at");
    assert_stored(stored_session.last_seen_at, at(-58), "session last_seen_at");
    assert_stored(
        stored_session.idle_expires_at,
        at(600),
        "session idle_expires_at",
    );
    assert_stored(
        stored_session.absolute_expires_at,
        at(5000),
        "session absolute_expires_at",
    );
    assert!(
        store
            .touch_session(
                &browser.session_hash,
                fractional(at(700)),
                fractional(at(50))
            )
            .await
            .unwrap()
    );
    let touched = store
        .find_session(&browser.session_hash, at(50))
        .await
        .unwrap()
        .unwrap();
    assert_stored(
        touched.idle_expires_at,
        at(700),
        "session idle_expires_at (from touch)",
    );
    assert_stored(
        touched.last_seen_at,
        at(50),
        "session last_seen_at (from now)",
    );

    let interaction = PendingRecord {
        expires_at: fractional(at(600)),
        ..pending(names.secret("pending"), "authorize", at(0))
    };
    store.insert_pending(&interaction).await.unwrap();
    let stored_pending = store
        .find_pending(&interaction.pending_hash, at(0))
        .await
        .unwrap()
        .unwrap();
    assert_stored(stored_pending.expires_at, at(600), "pending expires_at");
    assert_eq!(
        store
            .find_pending(
                &interaction.pending_hash,
                at(600) + Duration::milliseconds(500)
            )
            .await
            .unwrap(),
        None,
        "a pending interaction written to expire at 600.98 s is stored as 600 s and is gone at \
         600.5 s"
    );
}
