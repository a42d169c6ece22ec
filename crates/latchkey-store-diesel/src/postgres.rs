//! Postgres specifics: connecting, and the two hot grant operations as one
//! statement each.
//!
//! [`PgStore::connect`] builds a bb8 pool of `AsyncPgConnection`s
//! (tokio-postgres inside, no TLS: the database is expected on a trusted
//! network or a local socket) and checks the database answers within the
//! pool's connection timeout.
//!
//! `consume_code` and `rotate_refresh` are data-modifying CTEs: the
//! conditional `UPDATE` and the `INSERT`s it enables run as one statement,
//! so they are atomic without `BEGIN`/`COMMIT` and cost one round trip
//! (prepared once per connection by diesel-async's statement cache, which
//! is why they are query fragments of their own rather than `sql_query`). Under
//! READ COMMITTED, a concurrent caller's `UPDATE` of the same row waits for
//! the first to commit and then re-checks its `WHERE` on the new row
//! version, so exactly one caller's update matches; the others find out why
//! theirs did not with a plain read afterwards, which can no longer change
//! the answer (consumption and use are never undone).

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, Nullable, Text, Untyped};
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use latchkey_store::{CodeRedemption, Maintenance, NextRefreshToken, SecretHash, StoreResult};

use crate::connection::{Inner, LastError, PgConnection, Pool, TrackedManager, pool_builder};
use crate::options::PoolOptions;
use crate::rows::{CodeRow, FamilyRow, TokenRow, access_token_columns, join_scopes, to_secs};
use crate::schema::{authorization_codes, refresh_families, refresh_tokens};
use crate::store::grants::{CodeOutcome, RotationOutcome};
use crate::store::steps::Steps;
use crate::{PgStore, Postgres};

impl PgStore {
    /// Opens a pool on the Postgres database at `url`
    /// (`postgres://user:password@host:port/database`, or any form
    /// tokio-postgres accepts) and checks that it answers.
    ///
    /// A database that is down or refuses the connection gives
    /// `StoreError::Unavailable` after at most `options.connection_timeout`,
    /// naming the cause. The schema is not touched: call
    /// [`DieselStore::run_migrations`](crate::DieselStore::run_migrations).
    pub async fn connect(url: &str, options: &PoolOptions) -> StoreResult<PgStore> {
        let mut config = ManagerConfig::<PgConnection>::default();
        // Checkout tests are off (see `pool_builder`); recycling stays cheap.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|url: &str| Box::pin(establish(url.to_owned())));
        let manager = AsyncDieselConnectionManager::new_with_config(url, config);
        let last_error = LastError::default();
        let pool = pool_builder(options, &last_error).build_unchecked(TrackedManager::new(manager));
        let store =
            DieselStoreOf::from_inner(Inner::new(Pool::Postgres(pool), options, last_error));
        store.ping().await?;
        Ok(store)
    }
}

type DieselStoreOf = crate::DieselStore<Postgres>;

/// Opens one connection. diesel-async's own `establish` flattens a failed
/// connection to "error connecting to server"; connecting through
/// tokio-postgres here keeps the cause ("Connection refused", "password
/// authentication failed", …) for `StoreError::Unavailable`.
async fn establish(url: String) -> diesel::ConnectionResult<PgConnection> {
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .map_err(|error| diesel::ConnectionError::BadConnection(error_chain(&error)))?;
    PgConnection::try_from_client_and_connection(client, connection).await
}

/// An error's message followed by its causes', each once.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// The statements below take their parameters once each, in order, in a
/// leading `params` CTE, and are diesel query fragments of their own (not
/// `sql_query`, which diesel never prepares for reuse): each is parsed and
/// planned once per connection and then executed in one round trip.
///
/// Pushes `, ` (unless first), the next bind parameter with an explicit
/// cast, and ` AS name`.
fn param<'b, ST, U>(
    out: &mut AstPass<'_, 'b, Pg>,
    first: bool,
    value: &'b U,
    cast: &str,
    name: &str,
) -> QueryResult<()>
where
    Pg: diesel::sql_types::HasSqlType<ST>,
    U: ToSql<ST, Pg>,
{
    if !first {
        out.push_sql(", ");
    }
    out.push_bind_param::<ST, U>(value)?;
    out.push_sql("::");
    out.push_sql(cast);
    out.push_sql(" AS ");
    out.push_sql(name);
    Ok(())
}

/// Consumes a code and creates its refresh-token family and first token in
/// one statement; see `GrantStore::consume_code`.
///
/// `first_hash` is NULL when no refresh token is issued, and then the family
/// and token `INSERT`s select nothing. A unique violation in either
/// `INSERT` fails the whole statement, so the code stays unconsumed.
struct ConsumeCode<'a> {
    code_hash: &'a [u8],
    now: i64,
    jti: Option<&'a str>,
    jti_expires_at: Option<i64>,
    first_hash: Option<&'a [u8]>,
    absolute_expires_at: Option<i64>,
    idle_expires_at: Option<i64>,
}

const CONSUME_CODE_BODY: &str = "
), consumed AS (
    UPDATE authorization_codes AS c
       SET consumed_at = p.now, access_token_jti = p.jti,
           access_token_expires_at = p.jti_expires_at
      FROM params AS p
     WHERE c.code_hash = p.code_hash AND c.consumed_at IS NULL AND c.expires_at > p.now
 RETURNING c.*
), family AS (
    INSERT INTO refresh_families
           (family_id, client_id, user_id, resource, scopes, created_at,
            absolute_expires_at, revoked_at)
    SELECT c.family_id, c.client_id, c.user_id, c.resource, c.scopes, p.now,
           p.absolute_expires_at, NULL
      FROM consumed AS c, params AS p
     WHERE p.first_hash IS NOT NULL
 RETURNING family_id
), first_token AS (
    INSERT INTO refresh_tokens
           (token_hash, family_id, scopes, issued_at, idle_expires_at, used_at,
            access_token_jti, access_token_expires_at)
    SELECT p.first_hash, c.family_id, c.scopes, p.now, p.idle_expires_at, NULL,
           p.jti, p.jti_expires_at
      FROM consumed AS c JOIN family AS f ON f.family_id = c.family_id, params AS p
)
SELECT * FROM consumed";

impl QueryFragment<Pg> for ConsumeCode<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH params AS (SELECT ");
        param::<Binary, _>(&mut out, true, &self.code_hash, "bytea", "code_hash")?;
        param::<BigInt, _>(&mut out, false, &self.now, "bigint", "now")?;
        param::<Nullable<Text>, _>(&mut out, false, &self.jti, "text", "jti")?;
        param::<Nullable<BigInt>, _>(
            &mut out,
            false,
            &self.jti_expires_at,
            "bigint",
            "jti_expires_at",
        )?;
        param::<Nullable<Binary>, _>(&mut out, false, &self.first_hash, "bytea", "first_hash")?;
        param::<Nullable<BigInt>, _>(
            &mut out,
            false,
            &self.absolute_expires_at,
            "bigint",
            "absolute_expires_at",
        )?;
        param::<Nullable<BigInt>, _>(
            &mut out,
            false,
            &self.idle_expires_at,
            "bigint",
            "idle_expires_at",
        )?;
        out.push_sql(CONSUME_CODE_BODY);
        Ok(())
    }
}

impl Query for ConsumeCode<'_> {
    type SqlType = Untyped;
}

/// The statement's text is fixed, so its type identifies it in the
/// statement cache.
impl QueryId for ConsumeCode<'_> {
    type QueryId = ConsumeCode<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// Rotates a live refresh token in one statement; see
/// `GrantStore::rotate_refresh`.
///
/// The family row is read `FOR SHARE`: a concurrent `revoke_family` (an
/// `UPDATE` of that row) waits until this rotation commits and then
/// deny-lists its access token too, or, if the revocation came first, this
/// statement re-reads the row, finds it revoked, and rotates nothing. The
/// old token's `UPDATE` is the exactly-once gate among concurrent rotations.
/// Returns the family's row when it rotated, nothing otherwise.
struct RotateRefresh<'a> {
    old_hash: &'a [u8],
    now: i64,
    next_hash: &'a [u8],
    scopes: &'a str,
    idle_expires_at: i64,
    jti: Option<&'a str>,
    jti_expires_at: Option<i64>,
}

const ROTATE_REFRESH_BODY: &str = "
), family AS (
    SELECT f.* FROM refresh_families AS f, params AS p
     WHERE f.family_id = (SELECT t.family_id FROM refresh_tokens AS t
                           WHERE t.token_hash = p.old_hash)
       AND f.revoked_at IS NULL AND f.absolute_expires_at > p.now
       FOR SHARE OF f
), used AS (
    UPDATE refresh_tokens AS t
       SET used_at = p.now
      FROM family AS f, params AS p
     WHERE t.token_hash = p.old_hash AND t.family_id = f.family_id
       AND t.used_at IS NULL AND t.idle_expires_at > p.now
 RETURNING t.family_id
), next AS (
    INSERT INTO refresh_tokens
           (token_hash, family_id, scopes, issued_at, idle_expires_at, used_at,
            access_token_jti, access_token_expires_at)
    SELECT p.next_hash, u.family_id, p.scopes, p.now, p.idle_expires_at, NULL,
           p.jti, p.jti_expires_at
      FROM used AS u, params AS p
 RETURNING family_id
)
SELECT f.* FROM family AS f JOIN next AS n ON n.family_id = f.family_id";

impl QueryFragment<Pg> for RotateRefresh<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH params AS (SELECT ");
        param::<Binary, _>(&mut out, true, &self.old_hash, "bytea", "old_hash")?;
        param::<BigInt, _>(&mut out, false, &self.now, "bigint", "now")?;
        param::<Binary, _>(&mut out, false, &self.next_hash, "bytea", "next_hash")?;
        param::<Text, _>(&mut out, false, &self.scopes, "text", "scopes")?;
        param::<BigInt, _>(
            &mut out,
            false,
            &self.idle_expires_at,
            "bigint",
            "idle_expires_at",
        )?;
        param::<Nullable<Text>, _>(&mut out, false, &self.jti, "text", "jti")?;
        param::<Nullable<BigInt>, _>(
            &mut out,
            false,
            &self.jti_expires_at,
            "bigint",
            "jti_expires_at",
        )?;
        out.push_sql(ROTATE_REFRESH_BODY);
        Ok(())
    }
}

impl Query for RotateRefresh<'_> {
    type SqlType = Untyped;
}

/// The statement's text is fixed, so its type identifies it in the
/// statement cache.
impl QueryId for RotateRefresh<'_> {
    type QueryId = RotateRefresh<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// How often a consumption or rotation whose gate matched nothing, although
/// a re-read shows the row as still live, is tried again. Under READ
/// COMMITTED this needs a row that changed and changed back; it is bounded
/// anyway.
const ATTEMPTS: usize = 3;

fn changed_under_us(what: &str) -> diesel::result::Error {
    diesel::result::Error::QueryBuilderError(
        format!("{what}: the row kept changing during the operation").into(),
    )
}

/// `GrantStore::consume_code` on Postgres.
pub(crate) async fn consume_code(
    connection: &mut PgConnection,
    code_hash: &SecretHash,
    redemption: &CodeRedemption,
    now: i64,
) -> QueryResult<CodeOutcome> {
    let hash = code_hash.as_bytes().as_slice();
    let (access_token_jti, access_token_expires_at) =
        access_token_columns(Some(&redemption.access_token));
    let first = redemption.refresh_token.as_ref();
    for _ in 0..ATTEMPTS {
        let consumed: Option<CodeRow> = ConsumeCode {
            code_hash: hash,
            now,
            jti: access_token_jti.as_deref(),
            jti_expires_at: access_token_expires_at,
            first_hash: first.map(|first| first.token_hash.as_bytes().as_slice()),
            absolute_expires_at: first.map(|first| to_secs(first.absolute_expires_at)),
            idle_expires_at: first.map(|first| to_secs(first.idle_expires_at)),
        }
        .get_result(connection)
        .await
        .optional()?;
        if let Some(row) = consumed {
            return Ok(CodeOutcome::Consumed(row));
        }
        let found: Option<CodeRow> = authorization_codes::table
            .find(hash)
            .select(CodeRow::as_select())
            .first(connection)
            .await
            .optional()?;
        match found {
            None => return Ok(CodeOutcome::Unknown),
            Some(row) if row.consumed_at.is_some() => return Ok(CodeOutcome::Reused(row)),
            Some(row) if row.expires_at <= now => return Ok(CodeOutcome::Expired),
            Some(_) => continue,
        }
    }
    Err(changed_under_us("consume_code"))
}

/// `GrantStore::rotate_refresh` on Postgres.
pub(crate) async fn rotate_refresh(
    connection: &mut PgConnection,
    old_hash: &SecretHash,
    next: &NextRefreshToken,
    now: i64,
) -> QueryResult<RotationOutcome> {
    let hash = old_hash.as_bytes().as_slice();
    let scopes = join_scopes(&next.scopes);
    let (access_token_jti, access_token_expires_at) =
        access_token_columns(next.access_token.as_ref());
    for _ in 0..ATTEMPTS {
        let rotated: Option<FamilyRow> = RotateRefresh {
            old_hash: hash,
            now,
            next_hash: next.token_hash.as_bytes().as_slice(),
            scopes: scopes.as_str(),
            idle_expires_at: to_secs(next.idle_expires_at),
            jti: access_token_jti.as_deref(),
            jti_expires_at: access_token_expires_at,
        }
        .get_result(connection)
        .await
        .optional()?;
        if let Some(family) = rotated {
            return Ok(RotationOutcome::Rotated(family));
        }
        let found: Option<(TokenRow, FamilyRow)> = refresh_tokens::table
            .inner_join(refresh_families::table)
            .filter(refresh_tokens::token_hash.eq(hash))
            .select((TokenRow::as_select(), FamilyRow::as_select()))
            .first(connection)
            .await
            .optional()?;
        let Some((token, family)) = found else {
            return Ok(RotationOutcome::Unknown);
        };
        // The order of checks is the trait's: reuse, revoked, expired.
        if token.used_at.is_some() {
            let family_id = family.family_id;
            diesel_async::AsyncConnection::transaction(
                connection,
                async |tx: &mut PgConnection| tx.revoke_family(&family_id, now).await,
            )
            .await?;
            return Ok(RotationOutcome::Reused(family_id));
        }
        if family.revoked_at.is_some() {
            return Ok(RotationOutcome::Revoked);
        }
        if token.idle_expires_at <= now || family.absolute_expires_at <= now {
            return Ok(RotationOutcome::Expired);
        }
    }
    Err(changed_under_us("rotate_refresh"))
}
