//! Connection-pool settings shared by both backends.

use std::time::Duration;

/// How a store's bb8 connection pool is sized and how long an operation
/// waits for a connection.
///
/// The defaults suit both backends: 16 connections, none kept idle ahead of
/// demand, and 5 seconds to get a connection before the operation fails
/// with `StoreError::Unavailable`. For SQLite the connections serve reads in
/// parallel (WAL mode); writes are serialized by the store whatever the
/// pool size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most connections the pool opens.
    pub max_size: u32,
    /// How many idle connections the pool keeps open ahead of demand;
    /// `None` opens connections only when needed.
    pub min_idle: Option<u32>,
    /// How long an operation waits for a connection (a fresh one or one
    /// given back by another operation) before it fails as unavailable. It
    /// also bounds how long connecting to a database that is down takes.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            min_idle: None,
            connection_timeout: Duration::from_secs(5),
        }
    }
}
