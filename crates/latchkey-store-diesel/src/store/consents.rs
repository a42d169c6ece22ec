//! [`ConsentStore`] on both backends.
//!
//! A consent's key is `(user_id, client_id, resource)`, with the empty
//! string for "no resource", so the primary key needs no NULL.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use latchkey_store::{ConsentRecord, ConsentStore, StoreResult, Timestamp};

use super::{Backend, DieselStore};
use crate::connection::with_connection;
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::{ConsentRow, decode_all, to_secs};
use crate::schema::consents;

/// Consents reference a user and a client; "user" stands for either when
/// the backend cannot say which is missing.
const CONSENT: Entities = Entities::referencing("consent", "user");

#[async_trait]
impl<B: Backend> ConsentStore for DieselStore<B> {
    async fn upsert_consent(&self, consent: &ConsentRecord) -> StoreResult<()> {
        let row = ConsentRow::from(consent);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(consents::table)
                .values(&row)
                .on_conflict((consents::user_id, consents::client_id, consents::resource))
                .do_update()
                .set(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, CONSENT))
    }

    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> StoreResult<Option<ConsentRecord>> {
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            consents::table
                .find((user_id, client_id, resource))
                .select(ConsentRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(ConsentRecord::try_from).transpose()
    }

    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<ConsentRecord>> {
        let mut conn = self.inner.read().await?;
        let rows = with_connection!(&mut conn, |c| {
            consents::table
                .filter(consents::user_id.eq(user_id))
                .order_by((
                    consents::granted_at,
                    consents::client_id,
                    consents::resource,
                ))
                .select(ConsentRow::as_select())
                .load(c)
                .await
        })
        .map_err(from_read)?;
        decode_all(rows)
    }

    async fn touch_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let now = to_secs(now);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::update(consents::table.find((user_id, client_id, resource)))
                .set(consents::last_used_at.eq(now))
                .execute(c)
                .await
        })
        .map(|updated| updated > 0)
        .map_err(|error| from_diesel(error, CONSENT))
    }

    async fn delete_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> StoreResult<bool> {
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::delete(consents::table.find((user_id, client_id, resource)))
                .execute(c)
                .await
        })
        .map(|deleted| deleted > 0)
        .map_err(|error| from_diesel(error, CONSENT))
    }
}
