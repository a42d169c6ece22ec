//! Contract checks for [`KeyStore`](crate::KeyStore): the at-most-one
//! active signing key, rotation by `activate_key`, ordering and deletion.

use std::sync::Arc;

use super::{Names, assert_conflict, at, signing_key};
use crate::{KeyState, SigningKeyRecord, Store};

/// Keys round-trip exactly, list in order, and both uniqueness rules hold:
/// one `kid`, one active key.
pub async fn keys_insert_list_and_conflicts(store: Arc<dyn Store>) {
    let names = Names::new("keys_insert_list_and_conflicts");
    assert_eq!(
        store.list_keys().await.unwrap(),
        Vec::<SigningKeyRecord>::new(),
        "a fresh store must list no keys"
    );
    let retired = SigningKeyRecord {
        alg: "RS256".to_owned(),
        private_key_encrypted: (0..=255).collect(),
        activated_at: Some(at(1)),
        retired_at: Some(at(6)),
        not_after: Some(at(100)),
        ..signing_key(&names.id("z-retired"), KeyState::Retired, at(5))
    };
    let upper_next = SigningKeyRecord {
        alg: "EdDSA".to_owned(),
        ..signing_key(&names.id("B-next"), KeyState::Next, at(10))
    };
    let lower_active = signing_key(&names.id("b-active"), KeyState::Active, at(10));
    for record in [&lower_active, &retired, &upper_next] {
        store
            .insert_key(record)
            .await
            .expect("insert_key of a new key (at most one active) failed");
    }
    let expected = vec![retired.clone(), upper_next.clone(), lower_active.clone()];
    assert_eq!(
        store.list_keys().await.unwrap(),
        expected,
        "list_keys must return the keys exactly (bytes, JWK, optional times), ordered by \
         created_at then kid bytewise ('B' < 'b')"
    );

    assert_conflict(
        store
            .insert_key(&signing_key(&upper_next.kid, KeyState::Next, at(20)))
            .await,
        "signing_key",
        "insert_key with an existing kid",
    );
    assert_conflict(
        store
            .insert_key(&signing_key(
                &names.id("second-active"),
                KeyState::Active,
                at(20),
            ))
            .await,
        "signing_key",
        "insert_key of a second Active key",
    );
    assert_eq!(
        store.list_keys().await.unwrap(),
        expected,
        "refused insert_key calls must change nothing"
    );
}

/// `activate_key` retires the active key (`retired_at = now`, `not_after`
/// as given) and activates the chosen one; unknown kids change nothing,
/// the active key is a no-op, and a retired key can be rolled back to.
pub async fn keys_activate_rotates_the_active_key(store: Arc<dyn Store>) {
    let names = Names::new("keys_activate_rotates_the_active_key");
    let first = signing_key(&names.id("k1"), KeyState::Next, at(0));
    store.insert_key(&first).await.unwrap();
    assert!(
        store
            .activate_key(&first.kid, at(100), at(9999))
            .await
            .unwrap(),
        "activate_key of an existing key must return true"
    );
    let first_active = SigningKeyRecord {
        state: KeyState::Active,
        activated_at: Some(at(100)),
        ..first.clone()
    };
    assert_eq!(
        store.list_keys().await.unwrap(),
        vec![first_active.clone()],
        "activate_key with no active key must just activate (activated_at = now)"
    );

    let second = signing_key(&names.id("k2"), KeyState::Next, at(1));
    store.insert_key(&second).await.unwrap();
    assert!(
        store
            .activate_key(&second.kid, at(200), at(3800))
            .await
            .unwrap()
    );
    let first_retired = SigningKeyRecord {
        state: KeyState::Retired,
        retired_at: Some(at(200)),
        not_after: Some(at(3800)),
        ..first_active.clone()
    };
    let second_active = SigningKeyRecord {
        state: KeyState::Active,
        activated_at: Some(at(200)),
        ..second.clone()
    };
    assert_eq!(
        store.list_keys().await.unwrap(),
        vec![first_retired.clone(), second_active.clone()],
        "activate_key must retire the previous active key (retired_at = now, not_after as \
         given, activated_at kept) and activate the new one (activated_at = now)"
    );

    let third = signing_key(&names.id("k3"), KeyState::Next, at(2));
    store.insert_key(&third).await.unwrap();
    let before = store.list_keys().await.unwrap();
    assert!(
        !store
            .activate_key(&names.id("no-such-kid"), at(300), at(4000))
            .await
            .unwrap(),
        "activate_key of an unknown kid must return false"
    );
    assert_eq!(
        store.list_keys().await.unwrap(),
        before,
        "activate_key of an unknown kid must change nothing (the active key stays active)"
    );
    assert!(
        store
            .activate_key(&second.kid, at(310), at(4100))
            .await
            .unwrap(),
        "activate_key of the active key must return true"
    );
    assert_eq!(
        store.list_keys().await.unwrap(),
        before,
        "activate_key of the key that is active already must change nothing"
    );

    assert!(
        store
            .activate_key(&first.kid, at(400), at(4000))
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_keys().await.unwrap(),
        vec![
            SigningKeyRecord {
                state: KeyState::Active,
                activated_at: Some(at(400)),
                retired_at: None,
                not_after: None,
                ..first_retired
            },
            SigningKeyRecord {
                state: KeyState::Retired,
                retired_at: Some(at(400)),
                not_after: Some(at(4000)),
                ..second_active
            },
            third,
        ],
        "re-activating a retired key must make it Active with activated_at = now and clear \
         retired_at and not_after, retire the active one, and leave other keys alone"
    );
}

/// `delete_key` deletes one key and reports whether it existed; deleting
/// the active key frees the "one active key" slot.
pub async fn keys_delete(store: Arc<dyn Store>) {
    let names = Names::new("keys_delete");
    let active = signing_key(&names.id("active"), KeyState::Active, at(0));
    let retired = SigningKeyRecord {
        retired_at: Some(at(5)),
        not_after: Some(at(50)),
        ..signing_key(&names.id("retired"), KeyState::Retired, at(1))
    };
    store.insert_key(&active).await.unwrap();
    store.insert_key(&retired).await.unwrap();

    assert!(
        store.delete_key(&retired.kid).await.unwrap(),
        "delete_key of an existing key must return true"
    );
    assert!(
        !store.delete_key(&retired.kid).await.unwrap(),
        "delete_key of a deleted key must return false"
    );
    assert!(!store.delete_key(&names.id("never")).await.unwrap());
    assert_eq!(store.list_keys().await.unwrap(), vec![active.clone()]);

    assert!(store.delete_key(&active.kid).await.unwrap());
    let replacement = signing_key(&names.id("replacement"), KeyState::Active, at(2));
    store
        .insert_key(&replacement)
        .await
        .expect("after the active key is deleted, a new active key must be accepted");
    assert_eq!(store.list_keys().await.unwrap(), vec![replacement]);
}
