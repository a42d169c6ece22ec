//! Contract checks for [`SessionStore`](crate::SessionStore): browser
//! sessions with idle and absolute timeouts, and single-use pending
//! interactions.

use std::sync::Arc;

use super::{Names, assert_conflict, assert_not_found, at, pending, session, user};
use crate::{PendingRecord, SessionRecord, Store};

/// Sessions are found only while both timeouts are later than `now`; the
/// hash is unique and the user must exist.
pub async fn sessions_insert_find_and_expiry(store: Arc<dyn Store>) {
    let names = Names::new("sessions_insert_find_and_expiry");
    let person = user(&names.id("user"), &names.email("user"), at(-100));
    store.insert_user(&person).await.unwrap();
    let idle_bound = session(names.secret("idle"), &person.user_id, at(1000), at(5000));
    // An idle timeout past the absolute one isolates the absolute boundary.
    let absolute_bound = session(
        names.secret("absolute"),
        &person.user_id,
        at(9000),
        at(5000),
    );
    for record in [&idle_bound, &absolute_bound] {
        store
            .insert_session(record)
            .await
            .expect("insert_session of a new session failed");
    }

    assert_eq!(
        store
            .find_session(&idle_bound.session_hash, at(0))
            .await
            .unwrap()
            .as_ref(),
        Some(&idle_bound),
        "find_session must return a live session exactly"
    );
    for (record, now, live, what) in [
        (
            &idle_bound,
            at(999),
            true,
            "one second before idle_expires_at",
        ),
        (&idle_bound, at(1000), false, "exactly at idle_expires_at"),
        (&idle_bound, at(1001), false, "after idle_expires_at"),
        (
            &absolute_bound,
            at(4999),
            true,
            "one second before absolute_expires_at",
        ),
        (
            &absolute_bound,
            at(5000),
            false,
            "exactly at absolute_expires_at",
        ),
    ] {
        let found = store.find_session(&record.session_hash, now).await.unwrap();
        assert_eq!(
            found.is_some(),
            live,
            "find_session {what} must return {}",
            if live { "the session" } else { "None" }
        );
    }
    assert_eq!(
        store
            .find_session(&names.secret("unknown"), at(0))
            .await
            .unwrap(),
        None,
        "find_session of an unknown hash must be None"
    );

    let duplicate = SessionRecord {
        auth_time: at(-5),
        ..idle_bound.clone()
    };
    assert_conflict(
        store.insert_session(&duplicate).await,
        "session",
        "insert_session with an existing session_hash",
    );
    assert_eq!(
        store
            .find_session(&idle_bound.session_hash, at(0))
            .await
            .unwrap()
            .as_ref(),
        Some(&idle_bound),
        "a conflicting insert_session must leave the existing session unchanged"
    );
    assert_not_found(
        store
            .insert_session(&session(
                names.secret("orphan"),
                &names.id("nobody"),
                at(10),
                at(20),
            ))
            .await,
        "insert_session for a user that does not exist",
    );
}

/// `touch_session` extends the idle timeout (capped at the absolute one)
/// and sets `last_seen_at`; a session that is not live is left alone.
pub async fn sessions_touch(store: Arc<dyn Store>) {
    let names = Names::new("sessions_touch");
    let person = user(&names.id("user"), &names.email("user"), at(-100));
    store.insert_user(&person).await.unwrap();
    let long = session(names.secret("long"), &person.user_id, at(1000), at(5000));
    let short = session(names.secret("short"), &person.user_id, at(100), at(5000));
    store.insert_session(&long).await.unwrap();
    store.insert_session(&short).await.unwrap();

    assert!(
        store
            .touch_session(&long.session_hash, at(2000), at(500))
            .await
            .unwrap(),
        "touch_session of a live session must return true"
    );
    let extended = SessionRecord {
        idle_expires_at: at(2000),
        last_seen_at: at(500),
        ..long.clone()
    };
    assert_eq!(
        store
            .find_session(&long.session_hash, at(500))
            .await
            .unwrap()
            .as_ref(),
        Some(&extended),
        "touch_session must set idle_expires_at as given and last_seen_at = now"
    );
    assert!(
        store
            .find_session(&long.session_hash, at(1500))
            .await
            .unwrap()
            .is_some(),
        "a touched session must live past its old idle timeout"
    );

    assert!(
        store
            .touch_session(&long.session_hash, at(9000), at(1500))
            .await
            .unwrap()
    );
    let capped = SessionRecord {
        idle_expires_at: at(5000),
        last_seen_at: at(1500),
        ..long.clone()
    };
    assert_eq!(
        store
            .find_session(&long.session_hash, at(1500))
            .await
            .unwrap()
            .as_ref(),
        Some(&capped),
        "touch_session must never extend idle_expires_at past absolute_expires_at"
    );

    for (record, now, what) in [
        (&long, at(5000), "at its absolute timeout"),
        (&short, at(100), "at its idle timeout"),
    ] {
        assert!(
            !store
                .touch_session(&record.session_hash, at(6000), now)
                .await
                .unwrap(),
            "touch_session of a session {what} must return false"
        );
    }
    assert_eq!(
        store
            .find_session(&long.session_hash, at(4999))
            .await
            .unwrap()
            .as_ref(),
        Some(&capped),
        "touch_session of an expired session must change nothing"
    );
    assert_eq!(
        store
            .find_session(&short.session_hash, at(99))
            .await
            .unwrap()
            .as_ref(),
        Some(&short),
        "touch_session of an idle-expired session must change nothing (no revival)"
    );
    assert!(
        !store
            .touch_session(&names.secret("unknown"), at(6000), at(0))
            .await
            .unwrap(),
        "touch_session of an unknown hash must return false"
    );
}

/// `delete_session` deletes one session; `delete_sessions_for_user` deletes
/// and counts all of one user's sessions, expired ones included.
pub async fn sessions_delete(store: Arc<dyn Store>) {
    let names = Names::new("sessions_delete");
    let person = user(&names.id("user"), &names.email("user"), at(-100));
    let other = user(&names.id("other"), &names.email("other"), at(-100));
    store.insert_user(&person).await.unwrap();
    store.insert_user(&other).await.unwrap();
    let logout = session(names.secret("logout"), &person.user_id, at(1000), at(5000));
    let remaining = session(
        names.secret("remaining"),
        &person.user_id,
        at(1000),
        at(5000),
    );
    let stale = session(names.secret("stale"), &person.user_id, at(-5), at(5000));
    let others = session(names.secret("others"), &other.user_id, at(1000), at(5000));
    for record in [&logout, &remaining, &stale, &others] {
        store.insert_session(record).await.unwrap();
    }

    assert!(
        store.delete_session(&logout.session_hash).await.unwrap(),
        "delete_session of an existing session must return true"
    );
    assert!(
        !store.delete_session(&logout.session_hash).await.unwrap(),
        "delete_session of a deleted session must return false"
    );
    assert_eq!(
        store
            .find_session(&logout.session_hash, at(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_sessions_for_user(&person.user_id)
            .await
            .unwrap(),
        2,
        "delete_sessions_for_user must delete and count all of the user's sessions, the expired \
         one included"
    );
    assert_eq!(
        store
            .find_session(&remaining.session_hash, at(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .delete_sessions_for_user(&person.user_id)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_sessions_for_user(&names.id("nobody"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .find_session(&others.session_hash, at(0))
            .await
            .unwrap()
            .as_ref(),
        Some(&others),
        "another user's session must be untouched"
    );
}

/// Pending interactions: unique hash, found only while `expires_at > now`,
/// taken once, never taken once expired.
pub async fn pending_insert_find_take(store: Arc<dyn Store>) {
    let names = Names::new("pending_insert_find_take");
    let authorize = pending(names.secret("authorize"), "authorize", at(600));
    let upstream = PendingRecord {
        payload: r#"{"nonce":"ñ-✓","verifier":"x","return_to":"/authorize?a=1&b=2"}"#.to_owned(),
        ..pending(names.secret("upstream"), "upstream", at(600))
    };
    for record in [&authorize, &upstream] {
        store
            .insert_pending(record)
            .await
            .expect("insert_pending of a new interaction failed");
    }
    assert_conflict(
        store
            .insert_pending(&pending(authorize.pending_hash, "other", at(700)))
            .await,
        "pending",
        "insert_pending with an existing pending_hash",
    );

    assert_eq!(
        store
            .find_pending(&authorize.pending_hash, at(0))
            .await
            .unwrap()
            .as_ref(),
        Some(&authorize),
        "find_pending must return a live interaction exactly (a conflicting insert changes \
         nothing)"
    );
    assert_eq!(
        store
            .find_pending(&upstream.pending_hash, at(599))
            .await
            .unwrap()
            .as_ref(),
        Some(&upstream),
        "find_pending one second before expires_at must find it, payload exact"
    );
    assert_eq!(
        store
            .find_pending(&upstream.pending_hash, at(600))
            .await
            .unwrap(),
        None,
        "find_pending exactly at expires_at must be None"
    );

    assert_eq!(
        store
            .take_pending(&authorize.pending_hash, at(100))
            .await
            .unwrap()
            .as_ref(),
        Some(&authorize),
        "take_pending of a live interaction must return it"
    );
    assert_eq!(
        store
            .take_pending(&authorize.pending_hash, at(100))
            .await
            .unwrap(),
        None,
        "a second take_pending must be None (single use)"
    );
    assert_eq!(
        store
            .find_pending(&authorize.pending_hash, at(100))
            .await
            .unwrap(),
        None,
        "take_pending must delete the interaction"
    );
    assert_eq!(
        store
            .take_pending(&upstream.pending_hash, at(600))
            .await
            .unwrap(),
        None,
        "take_pending exactly at expires_at must be None"
    );
    assert_eq!(
        store
            .take_pending(&names.secret("unknown"), at(0))
            .await
            .unwrap(),
        None,
        "take_pending of an unknown hash must be None"
    );
}
