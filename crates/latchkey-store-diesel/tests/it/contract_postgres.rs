//! The backend contract suite on Postgres: a fresh, migrated database per
//! check, dropped afterwards.

use std::sync::Arc;

use latchkey_store::contract::Fixture;
use latchkey_store_diesel::PoolOptions;
use latchkey_store_diesel::testing::TestDatabase;

async fn fixture() -> Fixture {
    let database = TestDatabase::create()
        .await
        .expect("a fresh Postgres test database (is Postgres running? see DATABASE_URL)");
    let store = database
        .connect(&PoolOptions::default())
        .await
        .expect("connecting to the fresh Postgres test database");
    Fixture::with_guard(Arc::new(store), database)
}

latchkey_store::contract_tests!(fixture);
