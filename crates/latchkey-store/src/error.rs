//! The one error type of the storage layer.
//!
//! Messages may carry backend detail for the logs; the HTTP layer never shows
//! them to clients (it maps [`StoreError::Unavailable`] to 503 with
//! `Retry-After` and everything else to a generic 500).

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row the operation needs does not exist (for example the user an
    /// identity should be linked to).
    #[error("{entity} not found")]
    NotFound {
        /// What was missing: `"user"`, `"client"`, ….
        entity: &'static str,
    },
    /// A uniqueness rule was violated.
    #[error("{entity} already exists")]
    Conflict {
        /// What collided: `"client"`, `"user"`, `"identity"`, ….
        entity: &'static str,
    },
    /// The backend cannot be reached right now: database down, connection
    /// refused, pool exhausted or timed out. Retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else the backend reported, including stored data that does
    /// not decode.
    #[error("storage error: {0}")]
    Backend(String),
}
