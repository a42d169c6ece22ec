//! Test databases for this crate's tests and for every crate above it
//! (feature `testing`).
//!
//! - [`TestDatabase`]: a fresh, migrated Postgres database per test, on the
//!   server named by `DATABASE_URL` (default
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the value
//!   is dropped. If the server does not answer, [`TestDatabase::create`]
//!   fails with a message saying so: Postgres tests never skip.
//! - [`TestSqlite`]: a fresh SQLite file in its own temporary directory,
//!   removed when the value is dropped.
//!
//! ```no_run
//! # async fn example() -> Result<(), latchkey_store::StoreError> {
//! use latchkey_store_diesel::PoolOptions;
//! use latchkey_store_diesel::testing::TestDatabase;
//!
//! let database = TestDatabase::create().await?;
//! let store = database.connect(&PoolOptions::default()).await?;
//! // … use `store`; keep `database` alive until the store is dropped.
//! drop(store);
//! # Ok(())
//! # }
//! ```
//!
//! # How databases are made
//!
//! Each [`TestDatabase::create`] runs `CREATE DATABASE` and then the
//! embedded migrations, which take some 20 ms on the local server. (A
//! migrated template copied per test would save little, and under a
//! process-per-test runner such as nextest every process would leave its own
//! template behind.) Names are `latchkey_test_<unix seconds>_<random>`, so
//! that the first call in each process can sweep databases left over by
//! crashed runs: any `latchkey_test_*` database created more than an hour ago
//! is dropped. Dropping uses `DROP DATABASE … WITH (FORCE)` on a separate
//! thread with its own small runtime, so it works from `Drop` inside or
//! outside a tokio runtime, and it never panics: a failure is printed to
//! stderr and left for the next sweep.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use latchkey_store::{StoreError, StoreResult};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::OnceCell;

use crate::{PgStore, PoolOptions, SqliteStore};

/// The server tests use when `DATABASE_URL` is not set.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The prefix of every database this module creates.
pub const TEST_DATABASE_PREFIX: &str = "latchkey_test_";

/// How old a leftover test database must be before a sweep drops it.
const SWEEP_AGE: Duration = Duration::from_secs(3600);

/// How long an administrative connection or statement may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The Postgres server URL tests use: `DATABASE_URL`, else
/// [`DEFAULT_POSTGRES_URL`]. Its database is only used to create and drop
/// test databases.
pub fn postgres_server_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` with its password (if any) replaced, for messages.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        // Only fails for URLs that cannot have a password, which then have
        // none to hide.
        let _ = shown.set_password(Some("****"));
    }
    shown.to_string()
}

/// `server` with its database replaced by `database`.
fn database_url(server: &url::Url, database: &str) -> String {
    let mut url = server.clone();
    url.set_path(&format!("/{database}"));
    url.to_string()
}

fn setup_error(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

/// A random lowercase-hex suffix for database names.
fn random_suffix() -> StoreResult<String> {
    let mut bytes = [0_u8; 6];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Backend("the system random generator failed".to_owned()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn unix_seconds_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// A new database name: `latchkey_test_<unix seconds>_<random>`.
fn new_database_name() -> StoreResult<String> {
    Ok(format!(
        "{TEST_DATABASE_PREFIX}{}_{}",
        unix_seconds_now(),
        random_suffix()?
    ))
}

/// When a test database was created, from its name.
fn created_at_of(name: &str) -> Option<u64> {
    name.strip_prefix(TEST_DATABASE_PREFIX)?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// Quotes a database name as a SQL identifier. Names here are generated
/// (letters, digits, `_`) or read from `pg_database`; quoting keeps any
/// name safe anyway.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An administrative connection to the server's own database.
async fn admin_connection(server: &url::Url) -> StoreResult<AsyncPgConnection> {
    let connecting = AsyncPgConnection::establish(server.as_str());
    match tokio::time::timeout(ADMIN_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(setup_error(format!(
            "Postgres at {} did not accept a connection: {error}. The Postgres tests need a \
             running server: start one, or set DATABASE_URL to one (trust or password auth, \
             a role allowed to CREATE DATABASE).",
            redacted(server)
        ))),
        Err(_) => Err(setup_error(format!(
            "Postgres at {} did not answer within {ADMIN_TIMEOUT:?}. The Postgres tests need a \
             running server: start one, or set DATABASE_URL to one.",
            redacted(server)
        ))),
    }
}

async fn admin_execute(connection: &mut AsyncPgConnection, statement: &str) -> StoreResult<()> {
    match tokio::time::timeout(ADMIN_TIMEOUT, connection.batch_execute(statement)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(setup_error(format!("`{statement}` failed: {error}"))),
        Err(_) => Err(setup_error(format!(
            "`{statement}` took longer than {ADMIN_TIMEOUT:?}"
        ))),
    }
}

#[derive(diesel::QueryableByName)]
struct DatabaseName {
    #[diesel(sql_type = diesel::sql_types::Text)]
    datname: String,
}

/// Drops `latchkey_test_*` databases created more than [`SWEEP_AGE`] ago.
async fn sweep_leftovers(connection: &mut AsyncPgConnection) -> StoreResult<()> {
    let names: Vec<DatabaseName> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'latchkey_test_')",
    )
    .load(connection)
    .await
    .map_err(|error| setup_error(format!("listing leftover test databases failed: {error}")))?;
    let cutoff = unix_seconds_now().saturating_sub(SWEEP_AGE.as_secs());
    for DatabaseName { datname } in names {
        if created_at_of(&datname).is_some_and(|created| created < cutoff) {
            admin_execute(
                connection,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&datname)),
            )
            .await?;
        }
    }
    Ok(())
}

/// Whether this process has swept leftovers yet (once is enough).
static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Creates database `name` on `server` and migrates it; drops it again if
/// migrating fails.
async fn create_migrated(server: &url::Url, name: &str) -> StoreResult<()> {
    let mut admin = admin_connection(server).await?;
    SWEPT
        .get_or_try_init(|| sweep_leftovers(&mut admin))
        .await?;
    admin_execute(&mut admin, &format!("CREATE DATABASE {}", quoted(name))).await?;
    drop(admin);
    let options = PoolOptions {
        max_size: 1,
        ..PoolOptions::default()
    };
    let migrated = async {
        let store = PgStore::connect(&database_url(server, name), &options).await?;
        store.run_migrations().await.map(drop)
    }
    .await;
    if let Err(error) = migrated {
        drop_database_blocking(server.clone(), name.to_owned());
        return Err(error);
    }
    Ok(())
}

/// A fresh, migrated Postgres database for one test, dropped with this
/// value. Keep it alive until every store connected to it is dropped.
pub struct TestDatabase {
    server: url::Url,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a database on the server of [`postgres_server_url`], with
    /// the schema migrated. Fails with `StoreError::Unavailable` saying why
    /// if the server cannot be reached or refuses.
    pub async fn create() -> StoreResult<TestDatabase> {
        Self::create_on(&postgres_server_url()).await
    }

    /// [`TestDatabase::create`] on the server at `server_url`.
    pub async fn create_on(server_url: &str) -> StoreResult<TestDatabase> {
        let server = url::Url::parse(server_url)
            .map_err(|error| setup_error(format!("DATABASE_URL is not a valid URL ({error})")))?;
        let name = new_database_name()?;
        create_migrated(&server, &name).await?;
        let url = database_url(&server, &name);
        Ok(TestDatabase { server, name, url })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name (`latchkey_test_…`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connects a store to the database (already migrated).
    pub async fn connect(&self, options: &PoolOptions) -> StoreResult<PgStore> {
        PgStore::connect(&self.url, options).await
    }
}

impl std::fmt::Debug for TestDatabase {
    /// Shows the server without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("server", &redacted(&self.server))
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop_database_blocking(self.server.clone(), std::mem::take(&mut self.name));
    }
}

/// Drops database `name` with `WITH (FORCE)` (ending its connections), on a
/// thread of its own with a one-thread runtime, and waits for it. Never
/// panics; failures are reported on stderr.
fn drop_database_blocking(server: url::Url, name: String) {
    if name.is_empty() {
        return;
    }
    let worker = std::thread::Builder::new()
        .name("latchkey-test-db-drop".to_owned())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => return Err(format!("no runtime to drop {name}: {error}")),
            };
            runtime
                .block_on(async {
                    let mut admin = admin_connection(&server).await?;
                    admin_execute(
                        &mut admin,
                        &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&name)),
                    )
                    .await
                })
                .map_err(|error| format!("dropping test database {name} failed: {error}"))
        });
    let outcome = match worker {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| Err("the thread dropping a test database panicked".to_owned())),
        Err(error) => Err(format!(
            "cannot start a thread to drop a test database: {error}"
        )),
    };
    if let Err(message) = outcome {
        eprintln!("latchkey-store-diesel testing: {message}; a later run sweeps it");
    }
}

/// A fresh SQLite database file in a temporary directory of its own,
/// removed (with its WAL files) when this value is dropped.
#[derive(Debug)]
pub struct TestSqlite {
    directory: tempfile::TempDir,
    path: PathBuf,
}

impl TestSqlite {
    /// Creates the directory; the file is created by the first
    /// [`TestSqlite::open`].
    pub fn create() -> StoreResult<TestSqlite> {
        let directory = tempfile::Builder::new()
            .prefix("latchkey-test-")
            .tempdir()
            .map_err(|error| {
                StoreError::Backend(format!("cannot create a temporary directory: {error}"))
            })?;
        let path = directory.path().join("latchkey.db");
        Ok(TestSqlite { directory, path })
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database's URL: `sqlite://<absolute path>`.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    /// Opens a store on the file and migrates it.
    pub async fn open(&self, options: &PoolOptions) -> StoreResult<SqliteStore> {
        let store = SqliteStore::open(&self.url(), options).await?;
        store.run_migrations().await?;
        Ok(store)
    }

    /// The temporary directory holding the file.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_creation_time() {
        let name = new_database_name().unwrap();
        let created = created_at_of(&name).unwrap();
        assert!(created.abs_diff(unix_seconds_now()) < 5, "{name}");
        assert_eq!(created_at_of("latchkey_test_12_abcd"), Some(12));
        assert_eq!(created_at_of("postgres"), None);
        assert_eq!(created_at_of("latchkey_test_notanumber"), None);
    }

    #[test]
    fn urls_swap_the_database_and_hide_passwords() {
        let server =
            url::Url::parse("postgres://app:s3cret@db.internal:5433/postgres?sslmode=disable")
                .unwrap();
        assert_eq!(
            database_url(&server, "latchkey_test_1_ab"),
            "postgres://app:s3cret@db.internal:5433/latchkey_test_1_ab?sslmode=disable"
        );
        assert!(!redacted(&server).contains("s3cret"));
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quoted("plain"), "\"plain\"");
        assert_eq!(quoted("we\"ird"), "\"we\"\"ird\"");
    }
}
