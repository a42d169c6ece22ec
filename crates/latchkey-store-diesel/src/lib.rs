//! Latchkey's SQL store: Postgres and embedded SQLite backends for the
//! `latchkey-store` traits, built on diesel 2, diesel-async and bb8.
//!
//! - [`PgStore`] talks to Postgres through `AsyncPgConnection`
//!   (tokio-postgres; no libpq). Open it with [`PgStore::connect`].
//! - [`SqliteStore`] is the zero-setup default: a file opened with
//!   [`SqliteStore::open`], linking the system libsqlite3 (3.37 or newer).
//!
//! Both are a [`DieselStore`] and implement every trait of
//! `latchkey_store::Store`; they share one schema (`schema.rs`), one set of
//! row types and almost all query code. Migrations are embedded (from
//! `migrations/postgres` and `migrations/sqlite` at the repository root) and
//! applied with [`DieselStore::run_migrations`]; the binary's
//! `latchkey migrate` does that.
//!
//! # Invariants
//!
//! - Every operation the traits call atomic is one transaction or one
//!   statement, built from conditional updates whose affected-row count
//!   decides the outcome, never from a read followed by a write that another
//!   caller could interleave with.
//! - Timestamps are stored as whole unix seconds; hashes as 32 raw bytes.
//! - No operation panics; errors map to `StoreError` as `error.rs` says.
//! - Nothing here logs a secret: rows hold only hashes of secrets, and
//!   error messages name columns, never values.
//!
//! Feature `testing` adds [`testing`]: a fresh, migrated Postgres database
//! or SQLite file per test.

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("latchkey-store-diesel needs the `postgres` or the `sqlite` feature (or both)");

mod connection;
mod error;
mod migrations;
mod options;
#[cfg(feature = "postgres")]
mod postgres;
mod rows;
mod schema;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

#[cfg(feature = "testing")]
pub mod testing;

pub use options::PoolOptions;
#[cfg(feature = "testing")]
pub use store::HeldConnection;
pub use store::{Backend, DieselStore};
#[cfg(feature = "postgres")]
pub use store::{PgStore, Postgres};
#[cfg(feature = "sqlite")]
pub use store::{Sqlite, SqliteStore};
