//! Contract checks for the single-use guarantees under contention: many
//! tasks released at once by a barrier race for one code, one refresh
//! token, one pending interaction, or the one active-key slot. Exactly one
//! wins every time; the losers see the outcome the traits promise.
//!
//! The checks run on the multi-threaded runtime the macro sets up, so the
//! tasks really run in parallel against the backend (a pool of connections
//! for the SQL backends).

use std::sync::Arc;

use tokio::sync::Barrier;

use super::{
    Names, access_token, at, code, first_refresh, next_refresh, refresh_of, seed_client_and_user,
    seed_grant, signing_key,
};
use crate::{CodeConsumption, CodeRedemption, KeyState, Rotation, SecretHash, Store, StoreError};

/// How many tasks race for one code.
const CODE_RACERS: usize = 50;
/// How many tasks race to rotate one refresh token or take one pending
/// interaction.
const RACERS: usize = 20;
/// How many tasks race to insert an active signing key.
const KEY_RACERS: usize = 10;

/// Of 50 concurrent `consume_code` calls, exactly one is `Consumed`, the
/// other 49 are `Reused` with the winner's record, and exactly one refresh
/// token (the winner's) exists.
pub async fn concurrent_code_consumption(store: Arc<dyn Store>) {
    let names = Names::new("concurrent_code_consumption");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let issued = code(
        names.secret("code"),
        &client.client_id,
        &person.user_id,
        &names.id("family"),
        at(60),
    );
    store.insert_code(&issued).await.unwrap();

    let barrier = Arc::new(Barrier::new(CODE_RACERS));
    let mut racers = Vec::with_capacity(CODE_RACERS);
    for racer in 0..CODE_RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let code_hash = issued.code_hash;
        let refresh_hash = names.secret(&format!("refresh-{racer}"));
        let redemption = CodeRedemption {
            access_token: access_token(&names.id(&format!("jti-{racer}")), at(3600)),
            refresh_token: Some(first_refresh(refresh_hash, at(86_400), at(2_592_000))),
        };
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = store.consume_code(&code_hash, &redemption, at(5)).await;
            (refresh_hash, outcome)
        }));
    }

    let mut winners = Vec::new();
    let mut replays = Vec::new();
    let mut refresh_hashes: Vec<SecretHash> = Vec::new();
    for racer in racers {
        let (refresh_hash, outcome) = racer.await.expect("a racing task panicked");
        refresh_hashes.push(refresh_hash);
        match outcome {
            Ok(CodeConsumption::Consumed(record)) => winners.push((refresh_hash, record)),
            Ok(CodeConsumption::Reused(record)) => replays.push(record),
            other => panic!(
                "a concurrent consume_code of one live code returned {other:?}; every caller \
                 must get Consumed or Reused (never an error such as a serialization failure \
                 or a lock timeout)"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {CODE_RACERS} concurrent consume_code calls must be Consumed"
    );
    assert_eq!(
        replays.len(),
        CODE_RACERS - 1,
        "all the others must be Reused"
    );
    let (winning_refresh, winning_record) = winners.remove(0);
    for replay in &replays {
        assert_eq!(
            replay, &winning_record,
            "every Reused must report the record exactly as the one winner left it"
        );
    }

    let mut stored = Vec::new();
    for hash in &refresh_hashes {
        if store.find_refresh(hash).await.unwrap().is_some() {
            stored.push(*hash);
        }
    }
    assert_eq!(
        stored,
        vec![winning_refresh],
        "exactly one refresh token, the winner's, may exist after the race"
    );
}

/// Of 20 concurrent rotations of one refresh token, exactly one is
/// `Rotated` and the other 19 are `Reused`; the family ends revoked and
/// exactly one successor token exists.
pub async fn concurrent_refresh_rotation(store: Arc<dyn Store>) {
    let names = Names::new("concurrent_refresh_rotation");
    let (client, person) = seed_client_and_user(&*store, &names).await;
    let grant = seed_grant(&*store, &names, "grant", &client.client_id, &person.user_id).await;

    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::with_capacity(RACERS);
    for racer in 0..RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let old_hash = grant.refresh_hash;
        let next = next_refresh(
            names.secret(&format!("next-{racer}")),
            &["mcp:read"],
            at(90_000),
            Some(access_token(
                &names.id(&format!("jti-next-{racer}")),
                at(3700),
            )),
        );
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = store.rotate_refresh(&old_hash, &next, at(100)).await;
            (next.token_hash, outcome)
        }));
    }

    let mut rotated = Vec::new();
    let mut reused = 0_usize;
    let mut next_hashes = Vec::new();
    for racer in racers {
        let (next_hash, outcome) = racer.await.expect("a racing task panicked");
        next_hashes.push(next_hash);
        match outcome {
            Ok(Rotation::Rotated(new_grant)) => rotated.push(new_grant),
            Ok(Rotation::Reused { family_id }) => {
                assert_eq!(
                    family_id, grant.code.family_id,
                    "Reused must name the token's family"
                );
                reused += 1;
            }
            other => panic!(
                "a concurrent rotate_refresh of one token returned {other:?}; every caller must \
                 get Rotated or Reused (never an error such as a serialization failure)"
            ),
        }
    }
    assert_eq!(
        rotated.len(),
        1,
        "exactly one of {RACERS} concurrent rotations must be Rotated"
    );
    assert_eq!(
        reused,
        RACERS - 1,
        "all the other concurrent rotations must be Reused"
    );
    let winner = rotated.remove(0);

    let mut stored = Vec::new();
    for hash in &next_hashes {
        if store.find_refresh(hash).await.unwrap().is_some() {
            stored.push(*hash);
        }
    }
    assert_eq!(
        stored,
        vec![winner.token.token_hash],
        "exactly one successor token, the winner's, may exist after the race"
    );
    let after = refresh_of(&*store, &grant.refresh_hash).await;
    assert_eq!(after.token.used_at, Some(at(100)));
    assert_eq!(
        after.family.revoked_at,
        Some(at(100)),
        "the losers' reuse must leave the family revoked"
    );
    assert!(
        store
            .is_access_token_denied(&grant.access_token.jti, at(100))
            .await
            .unwrap(),
        "the reuse revocation must deny the family's access tokens"
    );
}

/// Of 20 concurrent `take_pending` calls, exactly one gets the interaction.
pub async fn concurrent_pending_take(store: Arc<dyn Store>) {
    let names = Names::new("concurrent_pending_take");
    let interaction = super::pending(names.secret("pending"), "authorize", at(600));
    store.insert_pending(&interaction).await.unwrap();

    let barrier = Arc::new(Barrier::new(RACERS));
    let mut racers = Vec::with_capacity(RACERS);
    for _ in 0..RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let hash = interaction.pending_hash;
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            store.take_pending(&hash, at(10)).await
        }));
    }
    let mut taken = Vec::new();
    for racer in racers {
        match racer.await.expect("a racing task panicked") {
            Ok(Some(record)) => taken.push(record),
            Ok(None) => {}
            Err(error) => panic!(
                "a concurrent take_pending failed with {error:?}; losers must get None, not an \
                 error"
            ),
        }
    }
    assert_eq!(
        taken,
        vec![interaction],
        "exactly one of {RACERS} concurrent take_pending calls must get the interaction"
    );
}

/// Of 10 instances inserting their own active key at once, exactly one
/// succeeds and the others get a `"signing_key"` conflict.
pub async fn concurrent_active_key_inserts(store: Arc<dyn Store>) {
    let names = Names::new("concurrent_active_key_inserts");
    let barrier = Arc::new(Barrier::new(KEY_RACERS));
    let mut racers = Vec::with_capacity(KEY_RACERS);
    for racer in 0..KEY_RACERS {
        let store = Arc::clone(&store);
        let barrier = Arc::clone(&barrier);
        let key = signing_key(&names.id(&format!("key-{racer}")), KeyState::Active, at(0));
        racers.push(tokio::spawn(async move {
            barrier.wait().await;
            let outcome = store.insert_key(&key).await;
            (key, outcome)
        }));
    }
    let mut inserted = Vec::new();
    for racer in racers {
        let (key, outcome) = racer.await.expect("a racing task panicked");
        match outcome {
            Ok(()) => inserted.push(key),
            Err(StoreError::Conflict {
                entity: "signing_key",
            }) => {}
            Err(error) => panic!(
                "a concurrent insert_key of an Active key failed with {error:?}; losers must get \
                 Conflict {{ entity: \"signing_key\" }}"
            ),
        }
    }
    assert_eq!(
        inserted.len(),
        1,
        "exactly one of {KEY_RACERS} concurrent Active insert_key calls may succeed"
    );
    assert_eq!(
        store.list_keys().await.unwrap(),
        inserted,
        "only the winning active key may be stored"
    );
}
