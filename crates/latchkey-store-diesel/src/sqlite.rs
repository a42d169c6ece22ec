//! SQLite specifics: opening a database file, the per-connection settings
//! that make it safe under concurrent use, and the two hot grant operations
//! as `BEGIN IMMEDIATE` transactions.
//!
//! # URLs
//!
//! [`SqliteStore::open`] takes `sqlite://<path>` with the path taken exactly
//! as written after the scheme, or a bare path:
//!
//! - `sqlite:///var/lib/latchkey/latchkey.db`: absolute;
//! - `sqlite://./data/latchkey.db` or `sqlite://data/latchkey.db`: relative
//!   to the working directory;
//! - `/tmp/latchkey.db`: a bare path, the same as `sqlite:///tmp/latchkey.db`.
//!
//! The parent directory and the file are created if missing. The path is
//! handed to SQLite as a plain filename, never as a `file:` URI, so `?` and
//! `#` in it are just characters. In-memory databases are not offered: each
//! pooled connection would get its own (use the `memory:` store instead).
//!
//! # Concurrency
//!
//! Every connection runs, when opened, `PRAGMA busy_timeout = 5000` (another
//! process's writer is waited for, not failed on), `journal_mode = WAL`
//! (readers never block the writer or each other), `foreign_keys = ON` (the
//! schema's references and cascades are enforced) and `synchronous = NORMAL`
//! (durable at checkpoints, safe in WAL mode). Within the process, writes
//! are serialized by the store's single-writer lock and multi-statement
//! writes run in `BEGIN IMMEDIATE` transactions, so no transaction ever has
//! to upgrade a read lock into a write lock (the case SQLite cannot wait on
//! and fails with `SQLITE_BUSY`). Each statement runs on tokio's blocking
//! pool (`SyncConnectionWrapper`), never on an async worker.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, RunQueryDsl, SimpleAsyncConnection};
use latchkey_store::{
    CodeRedemption, Maintenance, NextRefreshToken, SecretHash, StoreError, StoreResult,
};

use crate::connection::{
    Inner, LastError, Pool, SqliteConnection, Tracked, TrackedManager, pool_builder,
};
use crate::error;
use crate::options::PoolOptions;
use crate::rows::{CodeRow, FamilyRow, TokenRow, access_token_columns};
use crate::schema::{authorization_codes, refresh_families, refresh_tokens};
use crate::store::grants::{CodeOutcome, RotationOutcome, first_grant_rows, next_token_row};
use crate::store::steps::Steps;
use crate::{Sqlite, SqliteStore};

/// How long a connection waits for another connection's lock; the
/// `busy_timeout` of [`CONNECTION_PRAGMAS`] says the same in milliseconds.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// The per-connection settings every new connection gets, besides the
/// journal mode; see the module docs.
const CONNECTION_PRAGMAS: &str = "\
PRAGMA busy_timeout = 5000;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;";

/// Switches the database file to WAL (a no-op once it is). The switch needs
/// an exclusive lock, and when several connections make it at once on a new
/// file, SQLite reports "database is locked" at once rather than wait (each
/// holds the shared lock the other needs released), so it is retried.
const WAL_PRAGMA: &str = "PRAGMA journal_mode = WAL;";

/// The pause between attempts to switch to WAL.
const WAL_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// The scheme of SQLite database URLs.
pub(crate) const SQLITE_SCHEME: &str = "sqlite://";

/// The database file a `sqlite://<path>` URL or bare path names; see the
/// module docs. `None` for an empty path.
pub(crate) fn sqlite_path(url_or_path: &str) -> Option<PathBuf> {
    let path = url_or_path
        .strip_prefix(SQLITE_SCHEME)
        .unwrap_or(url_or_path);
    if path.is_empty() {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the SQLite database at `url_or_path`
    /// (`sqlite://<path>` or a bare path; see the module docs) with a pool
    /// of `options.max_size` connections, and checks it answers.
    ///
    /// The schema is not touched: call
    /// [`DieselStore::run_migrations`](crate::DieselStore::run_migrations).
    pub async fn open(url_or_path: &str, options: &PoolOptions) -> StoreResult<SqliteStore> {
        let path = sqlite_path(url_or_path).ok_or_else(|| {
            StoreError::Backend(format!(
                "SQLite database URL {url_or_path:?} names no file; expected sqlite://<path>"
            ))
        })?;
        create_parent_directory(&path)?;
        let filename = path.to_str().ok_or_else(|| {
            StoreError::Backend("the SQLite database path is not valid UTF-8".to_owned())
        })?;
        // SQLite would read a filename starting with "file:" as a URI; "./"
        // keeps it a plain relative path.
        let filename = if filename.starts_with("file:") {
            format!("./{filename}")
        } else {
            filename.to_owned()
        };
        // The first connection is opened here rather than by the pool, so
        // that a file SQLite cannot open (a directory, no permission, not a
        // database) fails at once with SQLite's reason instead of after the
        // pool's connection timeout. It then serves as the pool's first.
        let first = establish(filename.clone()).await.map_err(|error| {
            StoreError::Backend(format!(
                "cannot open the SQLite database {}: {error}",
                path.display()
            ))
        })?;
        let mut config = ManagerConfig::<SqliteConnection>::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|filename: &str| Box::pin(establish(filename.to_owned())));
        let manager = AsyncDieselConnectionManager::new_with_config(filename, config);
        let last_error = LastError::default();
        let pool = pool_builder(options, &last_error).build_unchecked(TrackedManager::new(manager));
        // Only fails when the pool is full, which a new pool never is; the
        // connection is then simply closed.
        let _ = pool.add(Tracked::new(first));
        let store = crate::DieselStore::<Sqlite>::from_inner(Inner::new(
            Pool::Sqlite(pool),
            options,
            last_error,
        ));
        store.ping().await?;
        Ok(store)
    }
}

/// Opens one connection to `filename` with the settings of
/// [`CONNECTION_PRAGMAS`] and [`WAL_PRAGMA`].
async fn establish(filename: String) -> diesel::ConnectionResult<SqliteConnection> {
    let mut connection = SqliteConnection::establish(&filename).await?;
    connection
        .batch_execute(CONNECTION_PRAGMAS)
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match connection.batch_execute(WAL_PRAGMA).await {
            Ok(()) => return Ok(connection),
            Err(error) if error::is_locked(&error) && Instant::now() < deadline => {
                tokio::time::sleep(WAL_RETRY_PAUSE).await;
            }
            Err(error) => return Err(diesel::ConnectionError::CouldntSetupConfiguration(error)),
        }
    }
}

fn create_parent_directory(path: &Path) -> StoreResult<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|error| {
                StoreError::Backend(format!(
                    "cannot create the directory {} for the SQLite database: {error}",
                    parent.display()
                ))
            })
        }
        _ => Ok(()),
    }
}

/// `GrantStore::consume_code` on SQLite: read, decide and write in one
/// `BEGIN IMMEDIATE` transaction, which holds the database's write lock
/// from its first statement, so nothing can change between the read and the
/// writes.
pub(crate) async fn consume_code(
    connection: &mut SqliteConnection,
    code_hash: &SecretHash,
    redemption: &CodeRedemption,
    now: i64,
) -> QueryResult<CodeOutcome> {
    let hash = code_hash.as_bytes().to_vec();
    let (access_token_jti, access_token_expires_at) =
        access_token_columns(Some(&redemption.access_token));
    connection
        .immediate_transaction(async |tx: &mut SqliteConnection| {
            let found: Option<CodeRow> = authorization_codes::table
                .find(&hash)
                .select(CodeRow::as_select())
                .first(tx)
                .await
                .optional()?;
            let mut code = match found {
                None => return Ok(CodeOutcome::Unknown),
                Some(row) if row.consumed_at.is_some() => return Ok(CodeOutcome::Reused(row)),
                Some(row) if row.expires_at <= now => return Ok(CodeOutcome::Expired),
                Some(row) => row,
            };
            diesel::update(authorization_codes::table.find(&hash))
                .set((
                    authorization_codes::consumed_at.eq(now),
                    authorization_codes::access_token_jti.eq(&access_token_jti),
                    authorization_codes::access_token_expires_at.eq(access_token_expires_at),
                ))
                .execute(tx)
                .await?;
            if let Some(first) = first_grant_rows(&code, redemption, now) {
                diesel::insert_into(refresh_families::table)
                    .values(&first.family)
                    .execute(tx)
                    .await?;
                diesel::insert_into(refresh_tokens::table)
                    .values(&first.token)
                    .execute(tx)
                    .await?;
            }
            code.consumed_at = Some(now);
            code.access_token_jti = access_token_jti.clone();
            code.access_token_expires_at = access_token_expires_at;
            Ok(CodeOutcome::Consumed(code))
        })
        .await
}

/// `GrantStore::rotate_refresh` on SQLite, in one `BEGIN IMMEDIATE`
/// transaction (see [`consume_code`]); reuse revokes the family in the same
/// transaction.
pub(crate) async fn rotate_refresh(
    connection: &mut SqliteConnection,
    old_hash: &SecretHash,
    next: &NextRefreshToken,
    now: i64,
) -> QueryResult<RotationOutcome> {
    let hash = old_hash.as_bytes().to_vec();
    connection
        .immediate_transaction(async |tx: &mut SqliteConnection| {
            let found: Option<(TokenRow, FamilyRow)> = refresh_tokens::table
                .inner_join(refresh_families::table)
                .filter(refresh_tokens::token_hash.eq(&hash))
                .select((TokenRow::as_select(), FamilyRow::as_select()))
                .first(tx)
                .await
                .optional()?;
            let Some((token, family)) = found else {
                return Ok(RotationOutcome::Unknown);
            };
            // The order of checks is the trait's: reuse, revoked, expired.
            if token.used_at.is_some() {
                tx.revoke_family(&family.family_id, now).await?;
                return Ok(RotationOutcome::Reused(family.family_id));
            }
            if family.revoked_at.is_some() {
                return Ok(RotationOutcome::Revoked);
            }
            if token.idle_expires_at <= now || family.absolute_expires_at <= now {
                return Ok(RotationOutcome::Expired);
            }
            diesel::update(refresh_tokens::table.find(&hash))
                .set(refresh_tokens::used_at.eq(now))
                .execute(tx)
                .await?;
            diesel::insert_into(refresh_tokens::table)
                .values(&next_token_row(next, family.family_id.clone(), now))
                .execute(tx)
                .await?;
            Ok(RotationOutcome::Rotated(family))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_path_as_written() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/latchkey/latchkey.db"),
            Some(PathBuf::from("/var/lib/latchkey/latchkey.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://./data/latchkey.db"),
            Some(PathBuf::from("./data/latchkey.db"))
        );
        assert_eq!(
            sqlite_path("data/latchkey.db"),
            Some(PathBuf::from("data/latchkey.db"))
        );
        assert_eq!(sqlite_path("sqlite://"), None);
        assert_eq!(sqlite_path(""), None);
    }
}
