//! `StoreError::Unavailable` when the database cannot serve: nothing
//! listening, the pool exhausted, a connection killed by the server. Each
//! must fail fast (bounded by the connection timeout) and the store must
//! recover once the cause is gone. An SQLite file that cannot be opened at
//! all is a configuration error (`Backend`), reported at once.

use std::time::{Duration, Instant};

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use latchkey_store::{ClientStore, Maintenance, StoreError};
use latchkey_store_diesel::testing::{TestDatabase, TestSqlite, postgres_server_url};
use latchkey_store_diesel::{PgStore, PoolOptions};

fn short_timeout(max_size: u32) -> PoolOptions {
    PoolOptions {
        max_size,
        min_idle: None,
        connection_timeout: Duration::from_millis(300),
    }
}

/// A loopback port with nothing listening: bound, then released.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_refused_port_is_unavailable_within_the_timeout() {
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", refused_port());
    let started = Instant::now();
    let outcome = PgStore::connect(&url, &short_timeout(4)).await;
    let elapsed = started.elapsed();
    match outcome {
        Err(StoreError::Unavailable(message)) => assert!(
            message.to_lowercase().contains("refused"),
            "the message should say the connection was refused: {message}"
        ),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        elapsed < Duration::from_secs(3),
        "took {elapsed:?}, not bounded by the timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_postgres_pool_is_unavailable_and_recovers() {
    let database = TestDatabase::create().await.unwrap();
    let store = database.connect(&short_timeout(1)).await.unwrap();
    let held = store.hold_connection().await.unwrap();
    let started = Instant::now();
    let outcome = store.find_client("anyone").await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "with the only connection held: {outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(held);
    assert_eq!(store.find_client("anyone").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_sqlite_pool_is_unavailable_and_recovers() {
    let database = TestSqlite::create().unwrap();
    let store = database.open(&short_timeout(1)).await.unwrap();
    let held = store.hold_connection().await.unwrap();
    let read = store.find_client("anyone").await;
    assert!(
        matches!(read, Err(StoreError::Unavailable(_))),
        "read: {read:?}"
    );
    let write = store.delete_client("anyone").await;
    assert!(
        matches!(write, Err(StoreError::Unavailable(_))),
        "write: {write:?}"
    );
    drop(held);
    assert!(!store.delete_client("anyone").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_by_the_server_is_unavailable_once_then_replaced() {
    let database = TestDatabase::create().await.unwrap();
    let store = database.connect(&short_timeout(1)).await.unwrap();
    store.ping().await.unwrap();

    // What an administrator or a failover does: end the store's session.
    let mut admin = diesel_async::AsyncPgConnection::establish(&postgres_server_url())
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            database.name()
        ))
        .await
        .unwrap();

    let outcome = store.find_client("anyone").await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "the first operation on the killed connection: {outcome:?}"
    );
    // The broken connection was discarded; the next operation reconnects.
    assert_eq!(store.find_client("anyone").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sqlite_path_that_cannot_be_opened_fails_at_once_with_the_reason() {
    let database = TestSqlite::create().unwrap();
    // A directory where the database file should be.
    let started = Instant::now();
    let outcome = latchkey_store_diesel::SqliteStore::open(
        &format!("sqlite://{}", database.directory().display()),
        &PoolOptions::default(),
    )
    .await;
    match outcome {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("unable to open"), "{message}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not bounded: {:?}",
        started.elapsed()
    );
}
