//! [`SessionStore`] on both backends: browser sessions and pending
//! interactions.
//!
//! Liveness is decided in SQL with the caller's `now` (`> now` is live), so
//! a session or interaction never comes back once it has expired, even
//! before `cleanup_expired` removes it. `take_pending` is a single
//! `DELETE … RETURNING`, which is what makes it single-use under
//! concurrency: only one caller's statement deletes the row.

use async_trait::async_trait;
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use latchkey_store::{
    PendingRecord, SecretHash, SessionRecord, SessionStore, StoreResult, Timestamp,
};

use super::{Backend, DieselStore};
use crate::connection::with_connection;
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::{PendingRow, SessionRow, to_secs};
use crate::schema::{pending_interactions, sessions};

const SESSION: Entities = Entities::referencing("session", "user");
const PENDING: Entities = Entities::of("pending");

#[async_trait]
impl<B: Backend> SessionStore for DieselStore<B> {
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        let row = SessionRow::from(session);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(sessions::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, SESSION))
    }

    async fn find_session(
        &self,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<SessionRecord>> {
        let hash = session_hash.as_bytes().as_slice();
        let now = to_secs(now);
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            sessions::table
                .find(hash)
                .filter(sessions::idle_expires_at.gt(now))
                .filter(sessions::absolute_expires_at.gt(now))
                .select(SessionRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(SessionRecord::try_from).transpose()
    }

    async fn touch_session(
        &self,
        session_hash: &SecretHash,
        idle_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let hash = session_hash.as_bytes().as_slice();
        let idle_expires_at = to_secs(idle_expires_at);
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            // min(idle_expires_at, absolute_expires_at), portably: the idle
            // timeout never runs past the absolute one.
            diesel::update(
                sessions::table
                    .find(hash)
                    .filter(sessions::idle_expires_at.gt(now))
                    .filter(sessions::absolute_expires_at.gt(now)),
            )
            .set((
                sessions::idle_expires_at.eq(case_when(
                    sessions::absolute_expires_at.lt(idle_expires_at),
                    sessions::absolute_expires_at,
                )
                .otherwise(idle_expires_at)),
                sessions::last_seen_at.eq(now),
            ))
            .execute(c)
            .await
        })
        .map(|updated| updated > 0)
        .map_err(|error| from_diesel(error, SESSION))
    }

    async fn delete_session(&self, session_hash: &SecretHash) -> StoreResult<bool> {
        let hash = session_hash.as_bytes().as_slice();
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::delete(sessions::table.find(hash)).execute(c).await
        })
        .map(|deleted| deleted > 0)
        .map_err(|error| from_diesel(error, SESSION))
    }

    async fn delete_sessions_for_user(&self, user_id: &str) -> StoreResult<u64> {
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
                .execute(c)
                .await
        })
        .map(|deleted| u64::try_from(deleted).unwrap_or(u64::MAX))
        .map_err(|error| from_diesel(error, SESSION))
    }

    async fn insert_pending(&self, pending: &PendingRecord) -> StoreResult<()> {
        let row = PendingRow::from(pending);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(pending_interactions::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, PENDING))
    }

    async fn find_pending(
        &self,
        pending_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PendingRecord>> {
        let hash = pending_hash.as_bytes().as_slice();
        let now = to_secs(now);
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            pending_interactions::table
                .find(hash)
                .filter(pending_interactions::expires_at.gt(now))
                .select(PendingRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(PendingRecord::try_from).transpose()
    }

    async fn take_pending(
        &self,
        pending_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PendingRecord>> {
        let hash = pending_hash.as_bytes().as_slice();
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        // An expired interaction is left for `cleanup_expired`.
        let row = with_connection!(&mut writer.conn, |c| {
            diesel::delete(
                pending_interactions::table
                    .find(hash)
                    .filter(pending_interactions::expires_at.gt(now)),
            )
            .returning(PendingRow::as_returning())
            .get_result(c)
            .await
            .optional()
        })
        .map_err(|error| from_diesel(error, PENDING))?;
        row.map(PendingRecord::try_from).transpose()
    }
}
