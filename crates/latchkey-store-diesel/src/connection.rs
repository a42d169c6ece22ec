//! Connection pools and the one place where the two backends meet.
//!
//! A store holds a [`Pool`] of either backend. Operations borrow a [`Conn`]
//! and run the *same* diesel query code against whichever connection it
//! holds, through the [`with_connection!`] and [`write_transaction!`] macros:
//! each macro expands its body once per enabled backend, so the body is
//! type-checked against the concrete connection type (`AsyncPgConnection`
//! or `SyncConnectionWrapper<SqliteConnection>`) and no generic diesel
//! bounds are needed. Backend-specific SQL stays in `postgres.rs` and
//! `sqlite.rs`.
//!
//! # Invariants
//!
//! - Every SQLite write holds the store's single-writer lock for its whole
//!   duration ([`Inner::write`]): writers queue in the process instead of
//!   spinning in SQLite's busy handler, and `busy_timeout` only covers
//!   other processes. Postgres writers are never serialized here.
//! - Write transactions on SQLite are `BEGIN IMMEDIATE`, so a transaction
//!   that reads before it writes cannot fail to upgrade its lock.
//! - Getting a connection never waits longer than the pool's
//!   `connection_timeout`; the last connection error is kept so that the
//!   resulting `Unavailable` says why.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolError};
use latchkey_store::{StoreError, StoreResult};

use crate::error;
use crate::options::PoolOptions;

/// The Postgres connection type.
#[cfg(feature = "postgres")]
pub(crate) type PgConnection = diesel_async::AsyncPgConnection;

/// The SQLite connection type: a sync connection whose calls run on
/// tokio's blocking pool.
#[cfg(feature = "sqlite")]
pub(crate) type SqliteConnection =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::SqliteConnection>;

/// A bb8 pool of connections of type `C`.
pub(crate) type ConnectionPool<C> = bb8::Pool<TrackedManager<C>>;

type Pooled<'a, C> = bb8::PooledConnection<'a, TrackedManager<C>>;

/// A pooled connection and whether an operation found it lost (the server
/// ended the session, the socket closed). A lost connection is discarded
/// when it goes back to the pool instead of failing the next operation too.
pub(crate) struct Tracked<C> {
    /// The diesel-async connection.
    pub(crate) connection: C,
    lost: bool,
}

impl<C> Tracked<C> {
    /// A connection not known to be lost.
    pub(crate) fn new(connection: C) -> Self {
        Self {
            connection,
            lost: false,
        }
    }

    /// Records the outcome of an operation on this connection: an error
    /// that means the connection is gone marks it lost.
    pub(crate) fn note<T, E>(&mut self, result: &Result<T, E>)
    where
        E: std::borrow::Borrow<diesel::result::Error>,
    {
        if let Err(error) = result
            && error::is_connection_lost(error.borrow())
        {
            self.lost = true;
        }
    }
}

/// diesel-async's bb8 manager, with [`Tracked`] connections: bb8 drops a
/// connection that diesel-async reports broken or that an operation marked
/// lost.
pub(crate) struct TrackedManager<C>(AsyncDieselConnectionManager<C>);

impl<C> TrackedManager<C> {
    pub(crate) fn new(manager: AsyncDieselConnectionManager<C>) -> Self {
        Self(manager)
    }
}

impl<C> bb8::ManageConnection for TrackedManager<C>
where
    AsyncDieselConnectionManager<C>: bb8::ManageConnection<Connection = C, Error = PoolError>,
    C: Send + 'static,
{
    type Connection = Tracked<C>;
    type Error = PoolError;

    async fn connect(&self) -> Result<Tracked<C>, PoolError> {
        Ok(Tracked::new(self.0.connect().await?))
    }

    async fn is_valid(&self, tracked: &mut Tracked<C>) -> Result<(), PoolError> {
        self.0.is_valid(&mut tracked.connection).await
    }

    fn has_broken(&self, tracked: &mut Tracked<C>) -> bool {
        tracked.lost || self.0.has_broken(&mut tracked.connection)
    }
}

/// A pool of either backend.
pub(crate) enum Pool {
    /// Postgres.
    #[cfg(feature = "postgres")]
    Postgres(ConnectionPool<PgConnection>),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(ConnectionPool<SqliteConnection>),
}

/// A connection borrowed from a [`Pool`].
#[allow(
    clippy::large_enum_variant,
    reason = "one lives on the stack per operation; boxing would allocate per operation"
)]
pub(crate) enum Conn<'a> {
    /// Postgres.
    #[cfg(feature = "postgres")]
    Postgres(Pooled<'a, PgConnection>),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(Pooled<'a, SqliteConnection>),
}

#[cfg(feature = "sqlite")]
impl Conn<'_> {
    /// The SQLite connection, if this is one.
    pub(crate) fn as_sqlite(&mut self) -> Option<&mut Tracked<SqliteConnection>> {
        match self {
            Conn::Sqlite(tracked) => Some(&mut **tracked),
            #[cfg(feature = "postgres")]
            Conn::Postgres(_) => None,
        }
    }
}

/// A connection for writing: on SQLite it comes with the single-writer lock,
/// released after the connection is given back.
pub(crate) struct WriteConn<'a> {
    /// The connection (declared first so that it is dropped first).
    pub(crate) conn: Conn<'a>,
    _writer: Option<tokio::sync::MutexGuard<'a, ()>>,
}

/// Keeps the most recent connection error the pool saw in the background,
/// so that a timeout can report its cause (connection refused, bad
/// password, …) instead of only "timed out".
#[derive(Clone, Debug, Default)]
pub(crate) struct LastError(Arc<Mutex<Option<String>>>);

impl LastError {
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl bb8::ErrorSink<PoolError> for LastError {
    fn sink(&self, error: PoolError) {
        tracing::warn!(%error, "database connection attempt failed");
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<PoolError>> {
        Box::new(self.clone())
    }
}

/// Applies [`PoolOptions`] to a bb8 pool builder.
///
/// Connections are not tested on checkout: that would cost a round trip per
/// operation. A connection the server closed fails the one operation that
/// finds it (as `Unavailable`) and is then discarded, because
/// diesel-async reports it broken when it goes back to the pool.
pub(crate) fn pool_builder<C>(
    options: &PoolOptions,
    last_error: &LastError,
) -> bb8::Builder<TrackedManager<C>>
where
    TrackedManager<C>: bb8::ManageConnection<Error = PoolError>,
{
    bb8::Pool::builder()
        .max_size(options.max_size.max(1))
        .min_idle(options.min_idle)
        .connection_timeout(options.connection_timeout)
        .test_on_check_out(false)
        .error_sink(Box::new(last_error.clone()))
}

/// What every store holds: its pool and the SQLite single-writer lock.
pub(crate) struct Inner {
    pub(crate) pool: Pool,
    #[cfg(feature = "sqlite")]
    writer: tokio::sync::Mutex<()>,
    last_error: LastError,
    connection_timeout: Duration,
}

impl Inner {
    pub(crate) fn new(pool: Pool, options: &PoolOptions, last_error: LastError) -> Self {
        Self {
            pool,
            #[cfg(feature = "sqlite")]
            writer: tokio::sync::Mutex::new(()),
            last_error,
            connection_timeout: options.connection_timeout,
        }
    }

    fn pool_error(&self, error: bb8::RunError<PoolError>) -> StoreError {
        error::from_pool(error, self.connection_timeout, self.last_error.take())
    }

    /// Borrows a connection for reading.
    pub(crate) async fn read(&self) -> StoreResult<Conn<'_>> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(pool) => pool
                .get()
                .await
                .map(Conn::Postgres)
                .map_err(|error| self.pool_error(error)),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => pool
                .get()
                .await
                .map(Conn::Sqlite)
                .map_err(|error| self.pool_error(error)),
        }
    }

    /// Borrows a connection for writing; on SQLite, first waits (at most
    /// the connection timeout) for the single-writer lock.
    pub(crate) async fn write(&self) -> StoreResult<WriteConn<'_>> {
        let writer = match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Postgres(_) => None,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Some(
                tokio::time::timeout(self.connection_timeout, self.writer.lock())
                    .await
                    .map_err(|_| {
                        StoreError::Unavailable(format!(
                            "no turn to write to SQLite within {:?}",
                            self.connection_timeout
                        ))
                    })?,
            ),
        };
        Ok(WriteConn {
            conn: self.read().await?,
            _writer: writer,
        })
    }
}

/// Runs `body` with `$c` bound to the concrete connection inside a [`Conn`]
/// (`&mut Conn` expected). The body is expanded once per backend and must
/// evaluate to a `Result<_, diesel::result::Error>`, which is noted on the
/// connection ([`Tracked::note`]).
macro_rules! with_connection {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::connection::Conn::Postgres(pooled) => {
                let tracked: &mut $crate::connection::Tracked<$crate::connection::PgConnection> =
                    &mut *pooled;
                let result = {
                    let $c: &mut $crate::connection::PgConnection = &mut tracked.connection;
                    $body
                };
                tracked.note(&result);
                result
            }
            #[cfg(feature = "sqlite")]
            $crate::connection::Conn::Sqlite(pooled) => {
                let tracked: &mut $crate::connection::Tracked<
                    $crate::connection::SqliteConnection,
                > = &mut *pooled;
                let result = {
                    let $c: &mut $crate::connection::SqliteConnection = &mut tracked.connection;
                    $body
                };
                tracked.note(&result);
                result
            }
        }
    };
}

/// Runs `body` in a write transaction on a [`Conn`] (`&mut Conn` expected),
/// with `$tx` bound to the concrete connection: a plain transaction on
/// Postgres (READ COMMITTED; the bodies take the row locks they need), a
/// `BEGIN IMMEDIATE` one on SQLite. The body returns a
/// `diesel::QueryResult`; an error rolls back.
macro_rules! write_transaction {
    ($conn:expr, |$tx:ident| $body:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::connection::Conn::Postgres(pooled) => {
                let tracked: &mut $crate::connection::Tracked<$crate::connection::PgConnection> =
                    &mut *pooled;
                let result = diesel_async::AsyncConnection::transaction(
                    &mut tracked.connection,
                    async |$tx: &mut $crate::connection::PgConnection| $body,
                )
                .await;
                tracked.note(&result);
                result
            }
            #[cfg(feature = "sqlite")]
            $crate::connection::Conn::Sqlite(pooled) => {
                let tracked: &mut $crate::connection::Tracked<
                    $crate::connection::SqliteConnection,
                > = &mut *pooled;
                let result = tracked
                    .connection
                    .immediate_transaction(
                        async |$tx: &mut $crate::connection::SqliteConnection| $body,
                    )
                    .await;
                tracked.note(&result);
                result
            }
        }
    };
}

pub(crate) use {with_connection, write_transaction};
