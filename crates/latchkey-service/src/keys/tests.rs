//! Tests of the key life cycle against the in-memory store: first start,
//! restart, wrong secret, rotation and the JWKS at its boundaries, races
//! between instances, signing and verifying.

use std::sync::Arc;
use std::time::Duration;

use latchkey_store::memory::MemoryStore;
use latchkey_store::{KeyState, Store};
use time::OffsetDateTime;

use super::crypto::{KeyEncryption, ServerSecret};
use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn start() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn settings(algorithm: SigningAlgorithm) -> KeySettings {
    KeySettings {
        algorithm,
        access_token_lifetime: Duration::from_secs(900),
        reload_interval: Duration::from_secs(60),
    }
}

fn encryption(secret: &str) -> KeyEncryption {
    KeyEncryption::derive(&ServerSecret::new(secret).unwrap()).unwrap()
}

async fn manager(store: &Arc<dyn Store>, algorithm: SigningAlgorithm) -> KeyManager {
    KeyManager::load_or_create(
        Arc::clone(store),
        encryption(SECRET),
        settings(algorithm),
        start(),
    )
    .await
    .unwrap()
}

fn memory() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

fn kids(jwks: &serde_json::Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_first_start_creates_one_active_key_and_restarts_reuse_it() {
    let store = memory();
    let first = manager(&store, SigningAlgorithm::Es256).await;
    let records = store.list_keys().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, KeyState::Active);
    assert_eq!(records[0].alg, "ES256");
    assert_eq!(records[0].activated_at, Some(start()));
    // The private key is stored encrypted: the PKCS#8 header of a P-256 key
    // does not appear in the stored bytes.
    assert!(
        !records[0]
            .private_key_encrypted
            .windows(3)
            .any(|window| window == [0x30, 0x81, 0x87])
    );

    let second = manager(&store, SigningAlgorithm::Es256).await;
    assert_eq!(first.active_kid(), second.active_kid());
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_error() {
    let store = memory();
    let original = manager(&store, SigningAlgorithm::Es256).await;
    let outcome = KeyManager::load_or_create(
        Arc::clone(&store),
        encryption("another secret of at least 32 characters!"),
        settings(SigningAlgorithm::Es256),
        start(),
    )
    .await;
    match outcome {
        Err(KeyError::WrongSecret { kid }) => assert_eq!(kid, original.active_kid()),
        other => panic!("expected WrongSecret, got {other:?}"),
    }
    let message = KeyError::WrongSecret { kid: "k".into() }.to_string();
    assert!(
        message
            .contains("server secret does not match the one the signing keys were encrypted with"),
        "{message}"
    );
}

#[tokio::test]
async fn instances_starting_together_agree_on_one_key() {
    let store = memory();
    let (left, right) = tokio::join!(
        manager(&store, SigningAlgorithm::Es256),
        manager(&store, SigningAlgorithm::EdDsa)
    );
    assert_eq!(left.active_kid(), right.active_kid());
    let active: Vec<_> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.state == KeyState::Active)
        .collect();
    assert_eq!(active.len(), 1);
}

#[tokio::test]
async fn rotation_retires_the_old_key_and_the_jwks_follows_not_after() {
    let store = memory();
    let keys = manager(&store, SigningAlgorithm::Es256).await;
    let old = keys.active_kid();
    let old_token = keys.sign(br#"{"n":1}"#).unwrap();

    let rotated_at = start() + time::Duration::seconds(100);
    let new = keys.rotate(rotated_at).await.unwrap();
    assert_eq!(new.state, KeyState::Active);
    assert_eq!(keys.active_kid(), new.kid);
    assert_ne!(new.kid, old);

    let records = store.list_keys().await.unwrap();
    let retired = records.iter().find(|record| record.kid == old).unwrap();
    assert_eq!(retired.state, KeyState::Retired);
    assert_eq!(retired.retired_at, Some(rotated_at));
    // Access-token lifetime plus reload interval.
    let not_after = rotated_at + time::Duration::seconds(900 + 60);
    assert_eq!(retired.not_after, Some(not_after));

    // Both keys are published until not_after, and only the new one from then on.
    let both = kids(&keys.jwks(not_after - time::Duration::seconds(1)));
    assert_eq!(both.len(), 2);
    assert!(both.contains(&old) && both.contains(&new.kid));
    assert_eq!(kids(&keys.jwks(not_after)), vec![new.kid.clone()]);

    // Tokens signed before the rotation still verify; new ones use the new key.
    assert!(matches!(keys.verify(&old_token), Verification::Valid(_)));
    let new_token = keys.sign(br#"{"n":2}"#).unwrap();
    assert_eq!(header_kid(&new_token).as_deref(), Some(new.kid.as_str()));
}

#[tokio::test]
async fn another_instance_sees_a_rotation_after_reloading() {
    let store = memory();
    let here = manager(&store, SigningAlgorithm::Es256).await;
    let there = manager(&store, SigningAlgorithm::Es256).await;
    let rotated = there.rotate(start()).await.unwrap();
    let token = there.sign(b"{}").unwrap();

    // Not reloaded yet: the key is unknown here.
    assert!(matches!(here.verify(&token), Verification::UnknownKey));
    // A reload soon after the last one is skipped…
    assert!(!here.reload_if_stale(start()).await.unwrap());
    // …but a later one picks the rotation up.
    let later = start() + time::Duration::seconds(10);
    assert!(here.reload_if_stale(later).await.unwrap());
    assert_eq!(here.active_kid(), rotated.kid);
    assert!(matches!(here.verify(&token), Verification::Valid(_)));
    // Nothing changed since: a reload reports so.
    assert!(!here.reload(later).await.unwrap());
}

#[tokio::test]
async fn every_algorithm_signs_at_jwt_tokens_that_verify() {
    for algorithm in SigningAlgorithm::ALL {
        let store = memory();
        let keys = manager(&store, algorithm).await;
        let token = keys.sign(br#"{"sub":"x"}"#).unwrap();
        let header = josekit::jws::JwsHeader::from_bytes(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                token.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(header.token_type(), Some("at+jwt"));
        assert_eq!(header.algorithm(), Some(algorithm.as_str()));
        assert_eq!(header.key_id(), Some(keys.active_kid().as_str()));
        let Verification::Valid(payload) = keys.verify(&token) else {
            panic!("{algorithm}: own token did not verify");
        };
        assert_eq!(payload, br#"{"sub":"x"}"#);
        let jwks = keys.jwks(start());
        assert_eq!(jwks["keys"][0]["alg"], algorithm.as_str());
        assert!(jwks["keys"][0].get("d").is_none());
    }
}

#[tokio::test]
async fn tampered_and_foreign_tokens_do_not_verify() {
    let store = memory();
    let keys = manager(&store, SigningAlgorithm::Es256).await;
    let token = keys.sign(br#"{"scope":"read"}"#).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"scope":"admin"}"#,
    );
    parts[1] = &forged_payload;
    assert!(matches!(
        keys.verify(&parts.join(".")),
        Verification::Invalid
    ));
    for garbage in ["", "a.b.c", "not a token", &"x".repeat(10_000)] {
        assert!(
            matches!(keys.verify(garbage), Verification::Invalid),
            "{garbage}"
        );
    }
    // Signed by another server's key: its kid is unknown here.
    let other_store = memory();
    let other = manager(&other_store, SigningAlgorithm::Es256).await;
    let foreign = other.sign(b"{}").unwrap();
    assert!(matches!(keys.verify(&foreign), Verification::UnknownKey));
}

#[tokio::test]
async fn an_existing_key_of_another_algorithm_keeps_signing_until_rotation() {
    let store = memory();
    let es = manager(&store, SigningAlgorithm::Es256).await;
    let ed = manager(&store, SigningAlgorithm::EdDsa).await;
    assert_eq!(es.active_kid(), ed.active_kid());
    let rotated = ed.rotate(start()).await.unwrap();
    assert_eq!(rotated.alg, "EdDSA");
}

#[tokio::test]
async fn listing_needs_no_secret() {
    let store = memory();
    let keys = manager(&store, SigningAlgorithm::Es256).await;
    keys.rotate(start()).await.unwrap();
    let listed = KeyManager::list(store.as_ref()).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed
            .iter()
            .filter(|key| key.state == KeyState::Active)
            .count(),
        1
    );
}
