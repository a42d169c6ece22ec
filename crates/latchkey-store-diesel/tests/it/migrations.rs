//! Migrations create the whole schema from nothing, re-running them is a
//! no-op, and concurrent runs (several instances starting at once) agree.

use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, RunQueryDsl};
use latchkey_store_diesel::testing::{TestSqlite, postgres_server_url};
use latchkey_store_diesel::{PgStore, PoolOptions, SqliteStore};

const TABLES: [&str; 11] = [
    "authorization_codes",
    "clients",
    "consents",
    "denied_access_tokens",
    "federated_identities",
    "pending_interactions",
    "refresh_families",
    "refresh_tokens",
    "sessions",
    "signing_keys",
    "users",
];

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// A database on the test server that is empty: not from the migrated
/// template, so the migrations really start from nothing.
struct EmptyPostgresDatabase {
    name: String,
}

async fn admin() -> diesel_async::AsyncPgConnection {
    diesel_async::AsyncPgConnection::establish(&postgres_server_url())
        .await
        .expect("Postgres must be running (see DATABASE_URL)")
}

impl EmptyPostgresDatabase {
    async fn create(label: &str) -> Self {
        let name = format!(
            "latchkey_test_{}_{label}_{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            std::process::id()
        );
        diesel_async::SimpleAsyncConnection::batch_execute(
            &mut admin().await,
            &format!("CREATE DATABASE \"{name}\""),
        )
        .await
        .unwrap();
        Self { name }
    }

    fn url(&self) -> String {
        let mut url = url::Url::parse(&postgres_server_url()).unwrap();
        url.set_path(&format!("/{}", self.name));
        url.to_string()
    }

    async fn drop_now(self) {
        diesel_async::SimpleAsyncConnection::batch_execute(
            &mut admin().await,
            &format!("DROP DATABASE \"{}\" WITH (FORCE)", self.name),
        )
        .await
        .unwrap();
    }
}

async fn postgres_tables(url: &str) -> Vec<String> {
    let mut connection = diesel_async::AsyncPgConnection::establish(url)
        .await
        .unwrap();
    diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_%' ORDER BY 1",
    )
    .load::<Name>(&mut connection)
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.name)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrations_create_the_schema_and_rerun_as_a_no_op() {
    let database = EmptyPostgresDatabase::create("migrate").await;
    let store = PgStore::connect(&database.url(), &PoolOptions::default())
        .await
        .unwrap();
    assert!(
        postgres_tables(&database.url()).await.is_empty(),
        "the database starts empty"
    );

    let applied = store.run_migrations().await.unwrap();
    assert_eq!(applied, vec!["2026-11-23-000000_init".to_owned()]);
    assert_eq!(postgres_tables(&database.url()).await, TABLES);

    let again = store.run_migrations().await.unwrap();
    assert!(again.is_empty(), "re-running applied {again:?}");
    drop(store);
    database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_postgres_migrations_apply_once() {
    let database = EmptyPostgresDatabase::create("race").await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        let url = database.url();
        runs.push(tokio::spawn(async move {
            let store = PgStore::connect(&url, &PoolOptions::default())
                .await
                .unwrap();
            store.run_migrations().await
        }));
    }
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(
            run.await
                .unwrap()
                .expect("a concurrent migration run failed"),
        );
    }
    assert_eq!(
        applied,
        vec!["2026-11-23-000000_init".to_owned()],
        "exactly one of the concurrent runs applies the migration"
    );
    assert_eq!(postgres_tables(&database.url()).await, TABLES);
    database.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_migrations_create_the_schema_and_rerun_as_a_no_op() {
    let database = TestSqlite::create().unwrap();
    // A directory that does not exist yet: opening creates it and the file.
    let url = format!(
        "sqlite://{}/nested/dir/latchkey.db",
        database.directory().display()
    );
    let store = SqliteStore::open(&url, &PoolOptions::default())
        .await
        .unwrap();
    let applied = store.run_migrations().await.unwrap();
    assert_eq!(applied, vec!["2026-11-23-000000_init".to_owned()]);

    let path = database.directory().join("nested/dir/latchkey.db");
    let mut connection = diesel_async::sync_connection_wrapper::SyncConnectionWrapper::<
        diesel::SqliteConnection,
    >::establish(path.to_str().unwrap())
    .await
    .unwrap();
    let tables: Vec<String> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE '\\_\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%' ORDER BY 1",
    )
    .load::<Name>(&mut connection)
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.name)
    .collect();
    assert_eq!(tables, TABLES);

    let again = store.run_migrations().await.unwrap();
    assert!(again.is_empty(), "re-running applied {again:?}");
    // A second store on the same file (a restart) finds nothing to do.
    let reopened = SqliteStore::open(&url, &PoolOptions::default())
        .await
        .unwrap();
    assert!(reopened.run_migrations().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sqlite_migrations_apply_once() {
    let database = TestSqlite::create().unwrap();
    let mut runs = Vec::new();
    for _ in 0..4 {
        let url = database.url();
        runs.push(tokio::spawn(async move {
            // Separate stores, as separate processes would have.
            let store = SqliteStore::open(&url, &PoolOptions::default())
                .await
                .unwrap();
            store.run_migrations().await
        }));
    }
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(
            run.await
                .unwrap()
                .expect("a concurrent migration run failed"),
        );
    }
    assert_eq!(applied, vec!["2026-11-23-000000_init".to_owned()]);
}
