//! The embedded migrations and how each backend applies them.
//!
//! Both migration trees are compiled into the binary
//! (`diesel_migrations::embed_migrations!`), so `latchkey migrate` and
//! migrate-on-start need no files at run time. diesel records applied
//! migrations in `__diesel_schema_migrations`, which makes re-running a
//! no-op.
//!
//! Concurrency: two instances may start at once against one database.
//! On Postgres the run holds a session-level advisory lock
//! ([`MIGRATION_LOCK_KEY`]), so the second waits and then finds nothing to
//! do. On SQLite the run is one `BEGIN IMMEDIATE` transaction (diesel nests
//! each migration in a savepoint) under the store's single-writer lock.

use diesel::migration::MigrationSource;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use latchkey_store::{StoreError, StoreResult};

use crate::connection::{Inner, Pool};

/// Postgres migrations, from `migrations/postgres`.
#[cfg(feature = "postgres")]
pub(crate) const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// SQLite migrations, from `migrations/sqlite`.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");

/// The Postgres advisory-lock key serializing migration runs: the bytes of
/// "latchkey" read as a big-endian integer.
#[cfg(feature = "postgres")]
pub(crate) const MIGRATION_LOCK_KEY: i64 = 7_809_651_199_139_603_833;

/// Why migrating failed, as a store error.
fn migration_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("migration failed: {error}"))
}

/// Names (`2026-11-23-000000_init`) of the migrations among `source` whose
/// versions are in `applied`, oldest first.
fn names_of<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
    applied: &[diesel::migration::MigrationVersion<'static>],
) -> Result<Vec<String>, StoreError>
where
    EmbeddedMigrations: MigrationSource<DB>,
{
    let migrations = MigrationSource::<DB>::migrations(source).map_err(migration_error)?;
    Ok(migrations
        .iter()
        .filter(|migration| applied.contains(&migration.name().version().as_owned()))
        .map(|migration| migration.name().to_string())
        .collect())
}

/// Applies pending migrations on the store's database; see
/// `DieselStore::run_migrations`.
pub(crate) async fn run(inner: &Inner) -> StoreResult<Vec<String>> {
    match &inner.pool {
        #[cfg(feature = "postgres")]
        Pool::Postgres(pool) => postgres(pool).await,
        #[cfg(feature = "sqlite")]
        Pool::Sqlite(_) => sqlite(inner).await,
    }
}

#[cfg(feature = "postgres")]
async fn postgres(
    pool: &crate::connection::ConnectionPool<crate::connection::PgConnection>,
) -> StoreResult<Vec<String>> {
    use diesel::connection::SimpleConnection;
    use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;

    // A dedicated connection, owned by the blocking task that drives diesel's
    // synchronous migration harness through diesel-async's wrapper (no
    // libpq). Closing it at the end also releases the advisory lock if
    // unlocking failed.
    let connection = pool
        .dedicated_connection()
        .await
        .map_err(|error| crate::error::from_connection(&connection_error(error)))?;
    let task = tokio::task::spawn_blocking(move || -> StoreResult<Vec<String>> {
        let mut wrapper: AsyncConnectionWrapper<crate::connection::PgConnection> =
            AsyncConnectionWrapper::from(connection.connection);
        wrapper
            .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            .map_err(crate::error::from_read)?;
        let outcome = wrapper
            .run_pending_migrations(POSTGRES)
            .map(|applied| {
                applied
                    .into_iter()
                    .map(|version| version.as_owned())
                    .collect::<Vec<_>>()
            })
            .map_err(migration_error)
            .and_then(|applied| names_of::<diesel::pg::Pg>(&POSTGRES, &applied));
        let unlocked = wrapper
            .batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            .map_err(crate::error::from_read);
        let names = outcome?;
        unlocked?;
        Ok(names)
    });
    task.await
        .map_err(|error| StoreError::Backend(format!("migration task failed: {error}")))?
}

#[cfg(feature = "postgres")]
fn connection_error(
    error: diesel_async::pooled_connection::PoolError,
) -> diesel::result::ConnectionError {
    use diesel_async::pooled_connection::PoolError;
    match error {
        PoolError::ConnectionError(error) => error,
        PoolError::QueryError(error) => {
            diesel::result::ConnectionError::CouldntSetupConfiguration(error)
        }
    }
}

#[cfg(feature = "sqlite")]
async fn sqlite(inner: &Inner) -> StoreResult<Vec<String>> {
    let mut writer = inner.write().await?;
    let tracked = writer.conn.as_sqlite().ok_or_else(|| {
        StoreError::Backend("an SQLite store holds a Postgres connection".to_owned())
    })?;
    // The harness reports its own error type, which cannot cross
    // `spawn_blocking`'s `QueryResult`; it travels inside `Ok` instead.
    let outcome = tracked
        .connection
        .spawn_blocking(|connection| {
            Ok(connection.immediate_transaction(|connection| {
                connection
                    .run_pending_migrations(SQLITE)
                    .map(|applied| {
                        applied
                            .into_iter()
                            .map(|version| version.as_owned())
                            .collect::<Vec<_>>()
                    })
                    .map_err(|error| {
                        diesel::result::Error::QueryBuilderError(error.to_string().into())
                    })
            }))
        })
        .await
        .map_err(crate::error::from_read)?;
    let applied = outcome.map_err(migration_error)?;
    names_of::<diesel::sqlite::Sqlite>(&SQLITE, &applied)
}
