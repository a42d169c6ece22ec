//! SQLite under concurrent writers: 32 tasks writing at once through one
//! store, and two stores (as two processes would) on one file, must never
//! see "database is locked" (`SQLITE_BUSY`) or any other error.

use std::sync::Arc;

use latchkey_store::{
    AuthorizationCodeRecord, ClientOrigin, ClientRecord, CodeConsumption, CodeRedemption,
    FirstRefreshToken, IssuedAccessToken, NextRefreshToken, Rotation, SecretHash, Store, Timestamp,
    UserRecord,
};
use latchkey_store_diesel::PoolOptions;
use latchkey_store_diesel::testing::TestSqlite;
use tokio::sync::Barrier;

const WRITERS: usize = 32;
/// Grants each writer issues, exchanges and refreshes.
const ROUNDS: usize = 5;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
}

/// One writer's workload: a client and a user of its own, then `ROUNDS`
/// times a code inserted, consumed (creating a refresh family) and its
/// refresh token rotated twice, plus a deny-list entry. Every call must
/// succeed with the expected outcome.
async fn write_workload(store: Arc<dyn Store>, writer: String) {
    let client = ClientRecord {
        client_id: format!("{writer}/client"),
        secret_hash: None,
        origin: ClientOrigin::Dynamic,
        metadata: serde_json::json!({ "client_name": writer }),
        created_at: at(0),
        expires_at: None,
    };
    store.insert_client(&client).await.unwrap();
    let user = UserRecord {
        user_id: format!("{writer}/user"),
        email: format!("{writer}@concurrency.example.org"),
        password_hash: None,
        disabled: false,
        created_at: at(0),
    };
    store.insert_user(&user).await.unwrap();
    for round in 0..ROUNDS {
        let code_hash = SecretHash::of(&format!("{writer}/code/{round}"));
        let code = AuthorizationCodeRecord {
            code_hash,
            client_id: client.client_id.clone(),
            user_id: user.user_id.clone(),
            redirect_uri: "http://127.0.0.1/callback".to_owned(),
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
            scopes: vec!["mcp:read".to_owned()],
            resource: None,
            family_id: format!("{writer}/family/{round}"),
            auth_time: at(0),
            issued_at: at(0),
            expires_at: at(60),
            consumed_at: None,
            access_token: None,
        };
        store.insert_code(&code).await.unwrap();
        let first = SecretHash::of(&format!("{writer}/refresh/{round}/0"));
        let redemption = CodeRedemption {
            access_token: IssuedAccessToken {
                jti: format!("{writer}/jti/{round}/0"),
                expires_at: at(3600),
            },
            refresh_token: Some(FirstRefreshToken {
                token_hash: first,
                idle_expires_at: at(86_400),
                absolute_expires_at: at(2_592_000),
            }),
        };
        let consumed = store
            .consume_code(&code_hash, &redemption, at(1))
            .await
            .unwrap();
        assert!(
            matches!(consumed, CodeConsumption::Consumed(_)),
            "{consumed:?}"
        );
        let mut old = first;
        for step in 1..=2 {
            let next = NextRefreshToken {
                token_hash: SecretHash::of(&format!("{writer}/refresh/{round}/{step}")),
                scopes: vec!["mcp:read".to_owned()],
                idle_expires_at: at(90_000),
                access_token: Some(IssuedAccessToken {
                    jti: format!("{writer}/jti/{round}/{step}"),
                    expires_at: at(3600),
                }),
            };
            let rotation = store.rotate_refresh(&old, &next, at(10)).await.unwrap();
            assert!(matches!(rotation, Rotation::Rotated(_)), "{rotation:?}");
            old = next.token_hash;
        }
        store
            .deny_access_token(&format!("{writer}/denied/{round}"), at(3600))
            .await
            .unwrap();
    }
}

/// Runs `WRITERS` workloads at once (released together by a barrier),
/// spread over `stores`, and checks every write landed.
async fn race(stores: Vec<Arc<dyn Store>>) {
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut tasks = Vec::with_capacity(WRITERS);
    for writer in 0..WRITERS {
        let store = Arc::clone(&stores[writer % stores.len()]);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            write_workload(store, format!("writer-{writer}")).await;
        }));
    }
    for task in tasks {
        task.await
            .expect("a writer failed (see its panic message above)");
    }
    let clients = stores[0].list_clients().await.unwrap();
    assert_eq!(
        clients.len(),
        WRITERS,
        "every writer's client must be stored"
    );
    for writer in 0..WRITERS {
        for round in 0..ROUNDS {
            let last = SecretHash::of(&format!("writer-{writer}/refresh/{round}/2"));
            let grant = stores[0].find_refresh(&last).await.unwrap();
            assert!(
                grant.is_some(),
                "writer {writer} round {round}: last refresh token missing"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_writers_on_one_store_never_see_a_locked_database() {
    let database = TestSqlite::create().unwrap();
    let store = database.open(&PoolOptions::default()).await.unwrap();
    race(vec![Arc::new(store)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_two_stores_sharing_a_file_wait_for_each_other() {
    // Two stores have two single-writer locks, as two processes would:
    // here BEGIN IMMEDIATE and busy_timeout do the serializing.
    let database = TestSqlite::create().unwrap();
    let first = database.open(&PoolOptions::default()).await.unwrap();
    let second = database.open(&PoolOptions::default()).await.unwrap();
    race(vec![Arc::new(first), Arc::new(second)]).await;
}
