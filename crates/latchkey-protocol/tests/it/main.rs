//! Integration tests of latchkey-protocol through its public API only:
//! property tests (every parser total on arbitrary input, round trips hold)
//! and an end-to-end walk through registration, authorization, token
//! exchange and resource access.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod flow;
mod properties;
