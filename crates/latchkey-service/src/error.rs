//! The errors of the service's flows.
//!
//! [`FlowError`] says *what* went wrong in OAuth terms; the HTTP layer
//! (`latchkey-http/src/error.rs`) alone decides the status code and the
//! response shape. Invariants:
//! - an [`OAuthError`] inside a `FlowError` is safe to show to the client
//!   (the protocol crate sanitizes descriptions) and never carries a
//!   secret, a token or an internal cause;
//! - [`FlowError::Unavailable`] and [`FlowError::Internal`] carry the cause
//!   for the log only; the client sees a generic message.

use std::time::Duration;

use latchkey_protocol::OAuthError;
use latchkey_store::StoreError;

/// Why a flow failed.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// An OAuth error for the client, with the RFC's status.
    #[error("{0}")]
    OAuth(OAuthError),
    /// The request is understood but refused by policy (dynamic
    /// registration while registration is closed, RFC 7591 §3).
    #[error("refused by policy: {0}")]
    Forbidden(OAuthError),
    /// Too many requests from one source; retry after the given time.
    #[error("rate limited: {error}")]
    RateLimited {
        /// The error for the client.
        error: OAuthError,
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// Storage cannot be reached right now; a retry may succeed. The
    /// message is for the log.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Something that should not happen (a backend error, a key that does
    /// not load). The message is for the log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl FlowError {
    /// The OAuth error for the client, if this is one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            FlowError::OAuth(error)
            | FlowError::Forbidden(error)
            | FlowError::RateLimited { error, .. } => Some(error),
            FlowError::Unavailable(_) | FlowError::Internal(_) => None,
        }
    }
}

impl From<OAuthError> for FlowError {
    fn from(error: OAuthError) -> FlowError {
        FlowError::OAuth(error)
    }
}

impl From<StoreError> for FlowError {
    /// An unreachable store is [`FlowError::Unavailable`]; everything else
    /// the store reports at this point is unexpected, so internal. Flows
    /// that expect a `Conflict` or `NotFound` match on it before this
    /// conversion.
    fn from(error: StoreError) -> FlowError {
        match error {
            StoreError::Unavailable(message) => FlowError::Unavailable(message),
            other => FlowError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_protocol::ErrorCode;

    #[test]
    fn store_errors_map_to_unavailable_or_internal() {
        assert!(matches!(
            FlowError::from(StoreError::Unavailable("pool timed out".into())),
            FlowError::Unavailable(message) if message == "pool timed out"
        ));
        assert!(matches!(
            FlowError::from(StoreError::Conflict { entity: "client" }),
            FlowError::Internal(message) if message.contains("client")
        ));
        assert!(
            FlowError::from(StoreError::Backend("x".into()))
                .oauth()
                .is_none()
        );
    }

    #[test]
    fn oauth_errors_are_exposed() {
        let error = FlowError::from(OAuthError::invalid_grant("expired"));
        assert_eq!(error.oauth().unwrap().code(), ErrorCode::InvalidGrant);
        let limited = FlowError::RateLimited {
            error: OAuthError::temporarily_unavailable("slow down"),
            retry_after: Duration::from_secs(3),
        };
        assert_eq!(
            limited.oauth().unwrap().code(),
            ErrorCode::TemporarilyUnavailable
        );
    }
}
