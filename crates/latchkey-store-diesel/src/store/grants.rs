//! [`GrantStore`] on both backends: codes, refresh-token families and the
//! access-token deny-list.
//!
//! The two hot paths, [`GrantStore::consume_code`] and
//! [`GrantStore::rotate_refresh`], are written per backend (`postgres.rs`
//! runs each as one statement, `sqlite.rs` as one `BEGIN IMMEDIATE`
//! transaction) and report a [`CodeOutcome`] or [`RotationOutcome`] that is
//! turned into records here, the same way for both.

use async_trait::async_trait;
use diesel::dsl::{case_when, exists};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use latchkey_store::{
    AuthorizationCodeRecord, CodeConsumption, CodeRedemption, GrantStore, NextRefreshToken,
    RefreshFamilyRecord, RefreshGrant, RefreshTokenRecord, Rotation, SecretHash, StoreResult,
    Timestamp,
};

use super::steps::Steps;
use super::{Backend, DieselStore};
use crate::connection::{Conn, with_connection, write_transaction};
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::{CodeRow, FamilyRow, TokenRow, access_token_columns, join_scopes, to_secs};
use crate::schema::{
    authorization_codes, consents, denied_access_tokens, refresh_families, refresh_tokens,
};

/// Codes reference a client and a user; SQLite cannot say which one is
/// missing, so "client" stands for either.
const CODE: Entities = Entities::referencing("code", "client");
/// Consuming a code creates a family and a token, either of which may
/// collide (the table decides which is reported).
const GRANT: Entities = Entities::referencing("refresh_token", "client");
const FAMILY: Entities = Entities::of("refresh_family");
const DENIED: Entities = Entities::of("denied_access_token");

/// What a backend's `consume_code` found, before decoding.
#[derive(Debug)]
pub(crate) enum CodeOutcome {
    /// This call consumed the code; the row as stored afterwards.
    Consumed(CodeRow),
    /// The code had been consumed before.
    Reused(CodeRow),
    /// The code expired unconsumed.
    Expired,
    /// No such code.
    Unknown,
}

/// What a backend's `rotate_refresh` did, before decoding.
#[derive(Debug)]
pub(crate) enum RotationOutcome {
    /// The old token is used and `next` is stored in this family.
    Rotated(FamilyRow),
    /// The old token had been used: its family (this id) is now revoked.
    Reused(String),
    /// The family had been revoked.
    Revoked,
    /// The token or its family expired.
    Expired,
    /// No such token.
    Unknown,
}

/// The row of a refresh token that replaces a rotated one in `family_id`,
/// exactly as both backends store it.
pub(crate) fn next_token_row(next: &NextRefreshToken, family_id: String, now: i64) -> TokenRow {
    let (access_token_jti, access_token_expires_at) =
        access_token_columns(next.access_token.as_ref());
    TokenRow {
        token_hash: next.token_hash.as_bytes().to_vec(),
        family_id,
        scopes: join_scopes(&next.scopes),
        issued_at: now,
        idle_expires_at: to_secs(next.idle_expires_at),
        used_at: None,
        access_token_jti,
        access_token_expires_at,
    }
}

/// The rows that consuming a code creates when it issues a refresh token.
#[cfg(feature = "sqlite")]
pub(crate) struct FirstGrantRows {
    pub(crate) family: FamilyRow,
    pub(crate) token: TokenRow,
}

/// The family and first token created by consuming `code` at `now`, if the
/// redemption issues a refresh token: the family copies the code's user,
/// client, resource and scopes, and the token records the access token too
/// (see `GrantStore::consume_code`). Postgres builds the same rows in SQL
/// (`postgres::CONSUME_CODE`).
#[cfg(feature = "sqlite")]
pub(crate) fn first_grant_rows(
    code: &CodeRow,
    redemption: &CodeRedemption,
    now: i64,
) -> Option<FirstGrantRows> {
    let first = redemption.refresh_token.as_ref()?;
    let (access_token_jti, access_token_expires_at) =
        access_token_columns(Some(&redemption.access_token));
    Some(FirstGrantRows {
        family: FamilyRow {
            family_id: code.family_id.clone(),
            client_id: code.client_id.clone(),
            user_id: code.user_id.clone(),
            resource: code.resource.clone(),
            scopes: code.scopes.clone(),
            created_at: now,
            absolute_expires_at: to_secs(first.absolute_expires_at),
            revoked_at: None,
        },
        token: TokenRow {
            token_hash: first.token_hash.as_bytes().to_vec(),
            family_id: code.family_id.clone(),
            scopes: code.scopes.clone(),
            issued_at: now,
            idle_expires_at: to_secs(first.idle_expires_at),
            used_at: None,
            access_token_jti,
            access_token_expires_at,
        },
    })
}

#[async_trait]
impl<B: Backend> GrantStore for DieselStore<B> {
    async fn insert_code(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        let row = CodeRow::from(code);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(authorization_codes::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, CODE))
    }

    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> StoreResult<Option<AuthorizationCodeRecord>> {
        let hash = code_hash.as_bytes().as_slice();
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            authorization_codes::table
                .find(hash)
                .select(CodeRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(AuthorizationCodeRecord::try_from).transpose()
    }

    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        redemption: &CodeRedemption,
        now: Timestamp,
    ) -> StoreResult<CodeConsumption> {
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        let outcome = match &mut writer.conn {
            #[cfg(feature = "postgres")]
            Conn::Postgres(tracked) => {
                let result = crate::postgres::consume_code(
                    &mut tracked.connection,
                    code_hash,
                    redemption,
                    now,
                )
                .await;
                tracked.note(&result);
                result
            }
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(tracked) => {
                let result = crate::sqlite::consume_code(
                    &mut tracked.connection,
                    code_hash,
                    redemption,
                    now,
                )
                .await;
                tracked.note(&result);
                result
            }
        }
        .map_err(|error| from_diesel(error, GRANT))?;
        Ok(match outcome {
            CodeOutcome::Consumed(row) => CodeConsumption::Consumed(row.try_into()?),
            CodeOutcome::Reused(row) => CodeConsumption::Reused(row.try_into()?),
            CodeOutcome::Expired => CodeConsumption::Expired,
            CodeOutcome::Unknown => CodeConsumption::Unknown,
        })
    }

    async fn find_refresh(&self, token_hash: &SecretHash) -> StoreResult<Option<RefreshGrant>> {
        let hash = token_hash.as_bytes().as_slice();
        let mut conn = self.inner.read().await?;
        let found = with_connection!(&mut conn, |c| {
            refresh_tokens::table
                .inner_join(refresh_families::table)
                .filter(refresh_tokens::token_hash.eq(hash))
                .select((TokenRow::as_select(), FamilyRow::as_select()))
                .first::<(TokenRow, FamilyRow)>(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        found
            .map(|(token, family)| {
                Ok(RefreshGrant {
                    token: token.try_into()?,
                    family: family.try_into()?,
                })
            })
            .transpose()
    }

    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        next: &NextRefreshToken,
        now: Timestamp,
    ) -> StoreResult<Rotation> {
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        let outcome = match &mut writer.conn {
            #[cfg(feature = "postgres")]
            Conn::Postgres(tracked) => {
                let result =
                    crate::postgres::rotate_refresh(&mut tracked.connection, old_hash, next, now)
                        .await;
                tracked.note(&result);
                result
            }
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(tracked) => {
                let result =
                    crate::sqlite::rotate_refresh(&mut tracked.connection, old_hash, next, now)
                        .await;
                tracked.note(&result);
                result
            }
        }
        .map_err(|error| from_diesel(error, Entities::of("refresh_token")))?;
        Ok(match outcome {
            RotationOutcome::Rotated(family) => {
                let family = RefreshFamilyRecord::try_from(family)?;
                let token = RefreshTokenRecord::try_from(next_token_row(
                    next,
                    family.family_id.clone(),
                    now,
                ))?;
                Rotation::Rotated(RefreshGrant { token, family })
            }
            RotationOutcome::Reused(family_id) => Rotation::Reused { family_id },
            RotationOutcome::Revoked => Rotation::Revoked,
            RotationOutcome::Expired => Rotation::Expired,
            RotationOutcome::Unknown => Rotation::Unknown,
        })
    }

    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> StoreResult<bool> {
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        write_transaction!(&mut writer.conn, |tx| tx
            .revoke_family(family_id, now)
            .await)
        .map_err(|error| from_diesel(error, FAMILY))
    }

    async fn revoke_for(&self, user_id: &str, client_id: &str, now: Timestamp) -> StoreResult<u64> {
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        write_transaction!(&mut writer.conn, |tx| {
            let family_ids: Vec<String> = refresh_families::table
                .filter(refresh_families::user_id.eq(user_id))
                .filter(refresh_families::client_id.eq(client_id))
                .filter(refresh_families::revoked_at.is_null())
                .order_by(refresh_families::family_id)
                .select(refresh_families::family_id)
                .load(tx)
                .await?;
            let mut revoked: u64 = 0;
            for family_id in &family_ids {
                if tx.revoke_family(family_id, now).await? {
                    revoked = revoked.saturating_add(1);
                }
            }
            diesel::delete(
                consents::table
                    .filter(consents::user_id.eq(user_id))
                    .filter(consents::client_id.eq(client_id)),
            )
            .execute(tx)
            .await?;
            Ok::<u64, diesel::result::Error>(revoked)
        })
        .map_err(|error| from_diesel(error, FAMILY))
    }

    async fn deny_access_token(&self, jti: &str, expires_at: Timestamp) -> StoreResult<()> {
        let expires_at = to_secs(expires_at);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            // A repeated denial keeps the later expiry, never shortening one.
            diesel::insert_into(denied_access_tokens::table)
                .values((
                    denied_access_tokens::jti.eq(jti),
                    denied_access_tokens::expires_at.eq(expires_at),
                ))
                .on_conflict(denied_access_tokens::jti)
                .do_update()
                .set(
                    denied_access_tokens::expires_at.eq(case_when(
                        excluded(denied_access_tokens::expires_at)
                            .gt(denied_access_tokens::expires_at),
                        excluded(denied_access_tokens::expires_at),
                    )
                    .otherwise(denied_access_tokens::expires_at)),
                )
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, DENIED))
    }

    async fn is_access_token_denied(&self, jti: &str, now: Timestamp) -> StoreResult<bool> {
        let now = to_secs(now);
        let mut conn = self.inner.read().await?;
        with_connection!(&mut conn, |c| {
            diesel::select(exists(
                denied_access_tokens::table
                    .filter(denied_access_tokens::jti.eq(jti))
                    .filter(denied_access_tokens::expires_at.gt(now)),
            ))
            .get_result::<bool>(c)
            .await
        })
        .map_err(from_read)
    }
}
