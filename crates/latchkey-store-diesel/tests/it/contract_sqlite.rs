//! The backend contract suite on SQLite: a fresh, migrated database file
//! per check.

use std::sync::Arc;

use latchkey_store::contract::Fixture;
use latchkey_store_diesel::PoolOptions;
use latchkey_store_diesel::testing::TestSqlite;

async fn fixture() -> Fixture {
    let database = TestSqlite::create().expect("a temporary directory for SQLite");
    let store = database
        .open(&PoolOptions::default())
        .await
        .expect("opening and migrating a fresh SQLite database");
    Fixture::with_guard(Arc::new(store), database)
}

latchkey_store::contract_tests!(fixture);
