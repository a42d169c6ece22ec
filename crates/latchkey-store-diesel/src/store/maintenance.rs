//! [`Maintenance`] on both backends: readiness and the batched clean-up of
//! expired rows.
//!
//! Each kind is one `DELETE … WHERE key IN (SELECT key … WHERE expired
//! LIMIT batch)` (`steps::CLEANUP`), portable to both backends, all in one
//! write transaction, so one call deletes at most `batch` rows per kind and
//! holds its locks briefly. What "expired" means per kind is
//! `CleanupReport`'s definition; the statements follow it to the letter,
//! and the indexes of the migrations cover every predicate. Refresh tokens
//! of live families go before expired families, whose tokens then leave by
//! `ON DELETE CASCADE` without being counted.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;
use latchkey_store::{CleanupReport, Maintenance, StoreResult, Timestamp};

use super::steps::Steps;
use super::{Backend, DieselStore};
use crate::connection::{with_connection, write_transaction};
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::to_secs;

/// A row count as the report's integer type.
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

#[async_trait]
impl<B: Backend> Maintenance for DieselStore<B> {
    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.inner.read().await?;
        with_connection!(&mut conn, |c| {
            diesel::select(1_i32.into_sql::<Integer>())
                .get_result::<i32>(c)
                .await
        })
        .map(drop)
        .map_err(from_read)
    }

    async fn cleanup_expired(&self, now: Timestamp, batch: u32) -> StoreResult<CleanupReport> {
        let now = to_secs(now);
        let limit = i64::from(batch);
        let mut writer = self.inner.write().await?;
        let [
            codes,
            refresh_families,
            refresh_tokens,
            consents,
            denied,
            sessions,
            pending,
            keys,
        ] = write_transaction!(&mut writer.conn, |tx| tx.cleanup(now, limit).await)
            .map_err(|error| from_diesel(error, Entities::of("record")))?;
        Ok(CleanupReport {
            codes: count(codes),
            refresh_families: count(refresh_families),
            refresh_tokens: count(refresh_tokens),
            consents: count(consents),
            denied_access_tokens: count(denied),
            sessions: count(sessions),
            pending: count(pending),
            signing_keys: count(keys),
        })
    }
}
