//! Integration tests of `latchkey-resource`, one binary with a module per
//! concern. Everything runs for real on loopback: a token issuer with
//! josekit keys, an MCP-like upstream, the guard proxy, and reqwest as the
//! MCP client. No mocks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod challenge;
mod introspection;
mod layer;
mod metadata;
mod proxy;
mod support;
mod validation;
