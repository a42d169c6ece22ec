//! [`ClientStore`] on both backends.
//!
//! Deleting a client relies on the schema's `ON DELETE CASCADE` foreign keys
//! to remove its codes, refresh-token families (and their tokens) and
//! consents in the same statement.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use latchkey_store::{ClientRecord, ClientStore, StoreResult};

use super::{Backend, DieselStore};
use crate::connection::with_connection;
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::{ClientRow, decode_all};
use crate::schema::clients;

const CLIENT: Entities = Entities::of("client");

#[async_trait]
impl<B: Backend> ClientStore for DieselStore<B> {
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let row = ClientRow::from(client);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(clients::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, CLIENT))
    }

    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        // `ON CONFLICT DO UPDATE` replaces the row in place, so the foreign
        // keys of the client's grants never see it disappear.
        let row = ClientRow::from(client);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(clients::table)
                .values(&row)
                .on_conflict(clients::client_id)
                .do_update()
                .set(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, CLIENT))
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            clients::table
                .find(client_id)
                .select(ClientRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(ClientRecord::try_from).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let mut conn = self.inner.read().await?;
        let rows = with_connection!(&mut conn, |c| {
            clients::table
                .order_by((clients::created_at, clients::client_id))
                .select(ClientRow::as_select())
                .load(c)
                .await
        })
        .map_err(from_read)?;
        decode_all(rows)
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::delete(clients::table.find(client_id))
                .execute(c)
                .await
        })
        .map(|deleted| deleted > 0)
        .map_err(|error| from_diesel(error, CLIENT))
    }
}
