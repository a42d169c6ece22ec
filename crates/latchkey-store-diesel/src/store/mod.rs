//! [`DieselStore`]: the store type both backends share, and its trait
//! implementations, one module per trait.
//!
//! The backend is a type parameter ([`Postgres`] or [`Sqlite`]) that only
//! labels the store: which pool it holds is fixed by its constructor
//! ([`PgStore::connect`], [`SqliteStore::open`]), and the trait
//! implementations are written once, dispatching on the pool per query (see
//! `connection.rs`). Statements that differ between the backends live in
//! `postgres.rs` and `sqlite.rs`.

use std::fmt;
use std::marker::PhantomData;

use latchkey_store::StoreResult;

use crate::connection::Inner;

mod clients;
mod consents;
pub(crate) mod grants;
mod keys;
mod maintenance;
mod sessions;
pub(crate) mod steps;
mod users;

mod sealed {
    pub trait Sealed {}
}

/// Which database a [`DieselStore`] talks to. Implemented by [`Postgres`]
/// and [`Sqlite`] only.
pub trait Backend: sealed::Sealed + Send + Sync + 'static {
    /// The backend's name, as in log lines and benchmark output.
    const NAME: &'static str;
}

/// Marks a [`DieselStore`] backed by Postgres.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub enum Postgres {}

#[cfg(feature = "postgres")]
impl sealed::Sealed for Postgres {}

#[cfg(feature = "postgres")]
impl Backend for Postgres {
    const NAME: &'static str = "postgres";
}

/// Marks a [`DieselStore`] backed by an SQLite file.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
pub enum Sqlite {}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for Sqlite {}

#[cfg(feature = "sqlite")]
impl Backend for Sqlite {
    const NAME: &'static str = "sqlite";
}

/// A store on Postgres; see [`PgStore::connect`].
#[cfg(feature = "postgres")]
pub type PgStore = DieselStore<Postgres>;

/// A store in an SQLite file; see [`SqliteStore::open`].
#[cfg(feature = "sqlite")]
pub type SqliteStore = DieselStore<Sqlite>;

/// A `latchkey_store::Store` on a SQL database through a bb8 pool.
pub struct DieselStore<B: Backend> {
    pub(crate) inner: Inner,
    backend: PhantomData<fn() -> B>,
}

impl<B: Backend> DieselStore<B> {
    pub(crate) fn from_inner(inner: Inner) -> Self {
        Self {
            inner,
            backend: PhantomData,
        }
    }

    /// The backend's name: `"postgres"` or `"sqlite"`.
    pub fn backend_name(&self) -> &'static str {
        B::NAME
    }

    /// Applies the embedded migrations that the database lacks and returns
    /// their names (`2026-11-23-000000_init`, …), oldest first; empty when
    /// the schema is up to date. Safe to call on every start: diesel
    /// records what it applied, and concurrent callers (several instances
    /// starting at once) are serialized (a Postgres advisory lock; an
    /// SQLite write transaction).
    pub async fn run_migrations(&self) -> StoreResult<Vec<String>> {
        crate::migrations::run(&self.inner).await
    }
}

/// A pooled connection taken out of a store's pool and held, so that tests
/// can exhaust the pool on purpose (feature `testing`). The connection goes
/// back when this is dropped.
#[cfg(feature = "testing")]
pub struct HeldConnection<'a> {
    _connection: crate::connection::Conn<'a>,
}

#[cfg(feature = "testing")]
impl fmt::Debug for HeldConnection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldConnection").finish_non_exhaustive()
    }
}

#[cfg(feature = "testing")]
impl<B: Backend> DieselStore<B> {
    /// Takes a connection out of the pool until the returned value is
    /// dropped (feature `testing`): with a pool of one, every operation
    /// meanwhile waits `connection_timeout` and fails as unavailable.
    pub async fn hold_connection(&self) -> StoreResult<HeldConnection<'_>> {
        Ok(HeldConnection {
            _connection: self.inner.read().await?,
        })
    }
}

impl<B: Backend> fmt::Debug for DieselStore<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselStore")
            .field("backend", &B::NAME)
            .finish_non_exhaustive()
    }
}
