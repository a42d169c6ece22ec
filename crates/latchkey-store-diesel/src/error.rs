//! Turns diesel and pool failures into [`StoreError`]s.
//!
//! The mapping is the store's contract (see `latchkey_store::StoreError`):
//!
//! - unique violations are [`StoreError::Conflict`], naming the entity of
//!   the table that refused the row when the backend says which (Postgres
//!   reports the table, SQLite names it in the message), else the entity the
//!   caller expected;
//! - foreign-key violations are [`StoreError::NotFound`] for the entity the
//!   caller references (neither backend reports the *referenced* table);
//! - connection failures, a closed connection, an exhausted pool, a timeout,
//!   a database shutting down or starting up, and SQLite's "database is
//!   locked" are [`StoreError::Unavailable`]: retrying later may succeed;
//! - anything else is [`StoreError::Backend`].
//!
//! Messages carry the backend's own text for the logs. They never carry
//! bound values: Postgres puts offending keys in `DETAIL`, which is never
//! read here, and SQLite names columns only.

use std::time::Duration;

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use latchkey_store::StoreError;

/// What an operation was about, for naming the entity in an error.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entities {
    /// The entity a uniqueness violation most likely concerns.
    pub(crate) conflict: &'static str,
    /// The entity a foreign-key violation means is missing.
    pub(crate) missing: &'static str,
}

impl Entities {
    /// An operation on one kind of row that references nothing that can be
    /// missing.
    pub(crate) const fn of(entity: &'static str) -> Self {
        Self {
            conflict: entity,
            missing: entity,
        }
    }

    /// An operation inserting `conflict` rows that reference a `missing` one.
    pub(crate) const fn referencing(conflict: &'static str, missing: &'static str) -> Self {
        Self { conflict, missing }
    }
}

/// The entity name for a table, as `latchkey_store` names them in
/// [`StoreError`]s (its "Error entities" convention).
fn entity_of_table(table: &str) -> Option<&'static str> {
    Some(match table {
        "clients" => "client",
        "users" => "user",
        "federated_identities" => "identity",
        "authorization_codes" => "code",
        "refresh_families" => "refresh_family",
        "refresh_tokens" => "refresh_token",
        "denied_access_tokens" => "denied_access_token",
        "consents" => "consent",
        "signing_keys" => "signing_key",
        "sessions" => "session",
        "pending_interactions" => "pending",
        _ => return None,
    })
}

/// The table a SQLite constraint message names: `UNIQUE constraint failed:
/// users.email_lower` (or several `table.column`s, comma-separated).
fn table_in_sqlite_message(message: &str) -> Option<&str> {
    let columns = message.split_once("constraint failed: ")?.1;
    columns.split_once('.').map(|(table, _)| table)
}

/// Server messages (Postgres, SQLite) that mean "not now" rather than "never".
/// Postgres reports these with SQLSTATE classes 57P and 53 and 08, which
/// diesel does not expose, so the English server messages are matched.
const UNAVAILABLE_MESSAGES: &[&str] = &[
    "terminating connection",
    "the database system is shutting down",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "sorry, too many clients already",
    "remaining connection slots are reserved",
    "server closed the connection unexpectedly",
    "connection closed",
    "database is locked",
    "database table is locked",
    "database is busy",
];

fn is_unavailable_message(message: &str) -> bool {
    UNAVAILABLE_MESSAGES
        .iter()
        .any(|needle| message.contains(needle))
}

/// Server messages that mean this connection is gone for good (as opposed
/// to the database being busy): the connection must not be reused.
const CONNECTION_LOST_MESSAGES: &[&str] = &[
    "terminating connection",
    "server closed the connection unexpectedly",
    "connection closed",
];

/// Whether `error` means the connection it happened on is unusable: closed
/// by the server or the network. Such a connection is discarded rather
/// than given back to the pool (see `connection::Tracked`).
pub(crate) fn is_connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
            _,
        ) => true,
        DieselError::DatabaseError(_, info) => CONNECTION_LOST_MESSAGES
            .iter()
            .any(|needle| info.message().contains(needle)),
        _ => false,
    }
}

/// Whether `error` is SQLite's "database is locked" (`SQLITE_BUSY`): another
/// connection holds the lock this one needs.
#[cfg(feature = "sqlite")]
pub(crate) fn is_locked(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(_, info) => info.message().contains("database is locked"),
        _ => false,
    }
}

/// Maps a diesel error from an operation about `entities`.
pub(crate) fn from_diesel(error: DieselError, entities: Entities) -> StoreError {
    match error {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation => StoreError::Conflict {
                entity: info
                    .table_name()
                    .or_else(|| table_in_sqlite_message(info.message()))
                    .and_then(entity_of_table)
                    .unwrap_or(entities.conflict),
            },
            DatabaseErrorKind::ForeignKeyViolation => StoreError::NotFound {
                entity: entities.missing,
            },
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                StoreError::Unavailable(info.message().to_owned())
            }
            _ if is_unavailable_message(info.message()) => {
                StoreError::Unavailable(info.message().to_owned())
            }
            _ => StoreError::Backend(info.message().to_owned()),
        },
        other => {
            let message = other.to_string();
            if is_unavailable_message(&message) {
                StoreError::Unavailable(message)
            } else {
                StoreError::Backend(message)
            }
        }
    }
}

/// Maps a diesel error from a read, where no constraint can be violated.
pub(crate) fn from_read(error: DieselError) -> StoreError {
    from_diesel(error, Entities::of("record"))
}

/// Maps a failure to establish a connection: always [`StoreError::Unavailable`].
pub(crate) fn from_connection(error: &ConnectionError) -> StoreError {
    StoreError::Unavailable(format!("cannot connect to the database: {error}"))
}

/// Maps a failure to get a connection from the pool.
pub(crate) fn from_pool(
    error: bb8::RunError<diesel_async::pooled_connection::PoolError>,
    timeout: Duration,
    last_connect_error: Option<String>,
) -> StoreError {
    use diesel_async::pooled_connection::PoolError;
    match error {
        bb8::RunError::TimedOut => StoreError::Unavailable(match last_connect_error {
            Some(cause) => format!(
                "no database connection within {timeout:?}; last connection attempt: {cause}"
            ),
            None => format!("no database connection within {timeout:?} (pool exhausted)"),
        }),
        bb8::RunError::User(PoolError::ConnectionError(error)) => from_connection(&error),
        bb8::RunError::User(PoolError::QueryError(error)) => {
            StoreError::Unavailable(format!("database connection check failed: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_constraint_messages_name_their_table() {
        assert_eq!(
            table_in_sqlite_message("UNIQUE constraint failed: users.email_lower"),
            Some("users")
        );
        assert_eq!(
            table_in_sqlite_message(
                "UNIQUE constraint failed: federated_identities.issuer, federated_identities.subject"
            ),
            Some("federated_identities")
        );
        assert_eq!(
            table_in_sqlite_message("FOREIGN KEY constraint failed"),
            None
        );
    }

    #[test]
    fn unique_violations_are_conflicts_named_by_table() {
        let error = DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: signing_keys.state".to_owned()),
        );
        assert!(matches!(
            from_diesel(error, Entities::of("record")),
            StoreError::Conflict {
                entity: "signing_key"
            }
        ));
    }

    #[test]
    fn foreign_key_violations_name_the_missing_entity() {
        let error = DieselError::DatabaseError(
            DatabaseErrorKind::ForeignKeyViolation,
            Box::new("FOREIGN KEY constraint failed".to_owned()),
        );
        assert!(matches!(
            from_diesel(error, Entities::referencing("identity", "user")),
            StoreError::NotFound { entity: "user" }
        ));
    }

    #[test]
    fn shutdown_and_lock_messages_are_unavailable() {
        for message in [
            "terminating connection due to administrator command",
            "the database system is shutting down",
            "database is locked",
        ] {
            let error = DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            );
            assert!(
                matches!(
                    from_diesel(error, Entities::of("record")),
                    StoreError::Unavailable(_)
                ),
                "{message}"
            );
        }
        let other = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("syntax error".to_owned()),
        );
        assert!(matches!(from_read(other), StoreError::Backend(_)));
    }

    #[test]
    fn lost_connections_are_told_apart_from_busy_databases() {
        let terminated = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("terminating connection due to administrator command".to_owned()),
        );
        assert!(is_connection_lost(&terminated));
        let closed = DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("closed".to_owned()),
        );
        assert!(is_connection_lost(&closed));
        let locked = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("database is locked".to_owned()),
        );
        assert!(!is_connection_lost(&locked));
        assert!(!is_connection_lost(&DieselError::NotFound));
    }

    #[test]
    fn pool_timeouts_are_unavailable_and_say_why() {
        let error = from_pool(
            bb8::RunError::TimedOut,
            Duration::from_millis(250),
            Some("Connection refused".to_owned()),
        );
        match error {
            StoreError::Unavailable(message) => assert!(message.contains("Connection refused")),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}
