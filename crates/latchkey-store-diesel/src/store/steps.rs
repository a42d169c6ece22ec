//! Transaction steps shared by several operations, on either connection.
//!
//! Inside a transaction the connection is concrete (see
//! `connection::write_transaction!`), so a step is a method of [`Steps`],
//! implemented for both connection types by one macro from one body.

use std::future::Future;

use diesel::QueryResult;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

use crate::schema::refresh_families;

/// Puts every unexpired access token recorded under family `$1` (on its
/// code and on its refresh tokens) on the deny-list, keeping the later
/// expiry of an entry that exists already (`$2` is now).
///
/// Portable SQL: both backends support `INSERT … SELECT … ON CONFLICT … DO
/// UPDATE … WHERE`; `GROUP BY` makes each `jti` appear once, which
/// Postgres requires of one `ON CONFLICT DO UPDATE`, and the outer `WHERE`
/// is what SQLite needs to parse `ON CONFLICT` after a `SELECT`. Placeholders
/// are written `$n` and become `?n` for SQLite ([`sqlite_placeholders`]).
pub(crate) const DENY_FAMILY_ACCESS_TOKENS: &str = "\
INSERT INTO denied_access_tokens (jti, expires_at)
SELECT jti, MAX(expires_at) FROM (
    SELECT access_token_jti AS jti, access_token_expires_at AS expires_at
      FROM authorization_codes WHERE family_id = $1
    UNION ALL
    SELECT access_token_jti AS jti, access_token_expires_at AS expires_at
      FROM refresh_tokens WHERE family_id = $1
) AS issued
WHERE jti IS NOT NULL AND expires_at > $2
GROUP BY jti
ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at
WHERE excluded.expires_at > denied_access_tokens.expires_at";

/// The clean-up statements, one per kind in [`CleanupReport`]'s field order
/// (codes, families, tokens, consents, deny-list, sessions, pending, keys),
/// each deleting at most `$2` rows expired at `$1` (now) by the report's
/// definition. They run in this array's order except that tokens of live
/// families go before families (see [`CLEANUP_ORDER`]).
///
/// Each is `DELETE … WHERE key IN (SELECT key … LIMIT $2)`: portable SQL
/// (consents use a row-value `IN`, SQLite 3.15+), and every predicate is
/// covered by an index of the migrations.
///
/// [`CleanupReport`]: latchkey_store::CleanupReport
pub(crate) const CLEANUP: [&str; 8] = [
    "DELETE FROM authorization_codes WHERE code_hash IN (
         SELECT code_hash FROM authorization_codes WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM refresh_families WHERE family_id IN (
         SELECT family_id FROM refresh_families WHERE absolute_expires_at <= $1 LIMIT $2)",
    "DELETE FROM refresh_tokens WHERE token_hash IN (
         SELECT refresh_tokens.token_hash FROM refresh_tokens
           JOIN refresh_families ON refresh_families.family_id = refresh_tokens.family_id
          WHERE refresh_tokens.idle_expires_at <= $1
            AND refresh_families.absolute_expires_at > $1
          LIMIT $2)",
    "DELETE FROM consents WHERE (user_id, client_id, resource) IN (
         SELECT user_id, client_id, resource FROM consents WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM denied_access_tokens WHERE jti IN (
         SELECT jti FROM denied_access_tokens WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM sessions WHERE session_hash IN (
         SELECT session_hash FROM sessions
          WHERE idle_expires_at <= $1 OR absolute_expires_at <= $1 LIMIT $2)",
    "DELETE FROM pending_interactions WHERE pending_hash IN (
         SELECT pending_hash FROM pending_interactions WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM signing_keys WHERE kid IN (
         SELECT kid FROM signing_keys
          WHERE state = 'retired' AND not_after <= $1 LIMIT $2)",
];

/// The order [`CLEANUP`]'s statements run in: refresh tokens (index 2)
/// before families (index 1), so that tokens of families expiring now
/// leave by cascade with their family and are not counted as tokens.
pub(crate) const CLEANUP_ORDER: [usize; 8] = [0, 2, 1, 3, 4, 5, 6, 7];

/// Rewrites `$n` placeholders (Postgres) as `?n` (SQLite's numbered form).
/// The portable statements contain no other `$`.
#[cfg(feature = "sqlite")]
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Steps that run inside an open write transaction.
pub(crate) trait Steps: Send {
    /// Revokes family `family_id` at `now` if it exists and is not revoked
    /// yet, and then deny-lists its unexpired access tokens. Returns
    /// whether it revoked the family.
    ///
    /// On Postgres the `UPDATE` takes the family's row lock before the
    /// deny-list statement starts, so (READ COMMITTED) that statement sees
    /// every rotation committed up to then, and later rotations, which take
    /// a share lock on the family row, find it revoked.
    fn revoke_family(
        &mut self,
        family_id: &str,
        now: i64,
    ) -> impl Future<Output = QueryResult<bool>> + Send;

    /// Runs the [`CLEANUP`] statements with `now` and `limit`; returns how
    /// many rows each deleted, in [`CLEANUP`]'s order.
    fn cleanup(
        &mut self,
        now: i64,
        limit: i64,
    ) -> impl Future<Output = QueryResult<[usize; 8]>> + Send;

    /// Serializes changes to the set of signing keys for the rest of the
    /// transaction, so that two concurrent activations cannot both retire
    /// "the" active key and then collide on the one-active-key index. A
    /// no-op on SQLite, whose write transactions are serial already.
    fn lock_signing_keys(&mut self) -> impl Future<Output = QueryResult<()>> + Send;
}

/// Implements [`Steps`] for a connection type: `$deny_sql` is
/// [`DENY_FAMILY_ACCESS_TOKENS`] and `$cleanup_sql` (indexable by `usize`)
/// is [`CLEANUP`], both in the backend's placeholder style, and
/// `$lock_keys` the statement (if any) locking `signing_keys`.
macro_rules! impl_steps {
    ($connection:ty, $deny_sql:expr, $cleanup_sql:expr, $lock_keys:expr) => {
        impl Steps for $connection {
            async fn revoke_family(&mut self, family_id: &str, now: i64) -> QueryResult<bool> {
                let revoked = diesel::update(
                    refresh_families::table
                        .find(family_id)
                        .filter(refresh_families::revoked_at.is_null()),
                )
                .set(refresh_families::revoked_at.eq(now))
                .execute(self)
                .await?;
                if revoked == 0 {
                    return Ok(false);
                }
                diesel::sql_query($deny_sql)
                    .bind::<Text, _>(family_id)
                    .bind::<BigInt, _>(now)
                    .execute(self)
                    .await?;
                Ok(true)
            }

            async fn cleanup(&mut self, now: i64, limit: i64) -> QueryResult<[usize; 8]> {
                let mut deleted = [0_usize; 8];
                for index in CLEANUP_ORDER {
                    let statement: &str = match $cleanup_sql.get(index) {
                        Some(statement) => statement,
                        None => continue,
                    };
                    let rows = diesel::sql_query(statement)
                        .bind::<BigInt, _>(now)
                        .bind::<BigInt, _>(limit)
                        .execute(&mut *self)
                        .await?;
                    if let Some(slot) = deleted.get_mut(index) {
                        *slot = rows;
                    }
                }
                Ok(deleted)
            }

            async fn lock_signing_keys(&mut self) -> QueryResult<()> {
                let lock: Option<&str> = $lock_keys;
                if let Some(statement) = lock {
                    diesel::sql_query(statement).execute(self).await?;
                }
                Ok(())
            }
        }
    };
}

#[cfg(feature = "postgres")]
impl_steps!(
    crate::connection::PgConnection,
    DENY_FAMILY_ACCESS_TOKENS,
    CLEANUP,
    // SHARE ROW EXCLUSIVE conflicts with itself and with every write, and
    // lets readers (the JWKS) through.
    Some("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
);

#[cfg(feature = "sqlite")]
static SQLITE_DENY_FAMILY_ACCESS_TOKENS: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sqlite_placeholders(DENY_FAMILY_ACCESS_TOKENS));

#[cfg(feature = "sqlite")]
static SQLITE_CLEANUP: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| CLEANUP.iter().map(|sql| sqlite_placeholders(sql)).collect());

#[cfg(feature = "sqlite")]
impl_steps!(
    crate::connection::SqliteConnection,
    SQLITE_DENY_FAMILY_ACCESS_TOKENS.as_str(),
    SQLITE_CLEANUP,
    None
);
