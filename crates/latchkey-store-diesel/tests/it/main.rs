//! Integration tests of latchkey-store-diesel, one binary with a module per
//! concern: the backend contract suite on SQLite and on Postgres, SQLite
//! under concurrent writers, `Unavailable` when the database cannot serve,
//! and migrations.
//!
//! Postgres tests use real databases ([`TestDatabase`]: `DATABASE_URL`, by
//! default the local server) and fail, never skip, when it does not answer.
//!
//! [`TestDatabase`]: latchkey_store_diesel::testing::TestDatabase

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod concurrency;
mod contract_postgres;
mod contract_sqlite;
mod migrations;
mod unavailable;
