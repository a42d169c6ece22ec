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
// Shared with the federation tests: the upstream OpenID provider fixture.
#[path = "../support/upstream_op.rs"]
mod upstream_op;

mod account;
mod authorize;
mod cimd;
mod cors;
mod discovery;
mod federation;
mod hostile;
mod introspection;
mod login;
mod registration;
mod token;
mod unavailable;
mod upstream_fixture;
