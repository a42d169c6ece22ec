//! Integration tests of the HTTP layer: the real router on a loopback
//! port, over SQLite and Postgres (every scenario runs on both), driven
//! with reqwest. Tokens are verified against `/jwks.json` with josekit,
//! independently of the service's own checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod browser;
mod support;

mod account;
mod authorize;
mod cimd;
mod cors;
mod discovery;
mod hostile;
mod introspection;
mod login;
mod registration;
mod token;
mod unavailable;
