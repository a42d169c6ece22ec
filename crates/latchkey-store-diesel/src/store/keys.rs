//! [`KeyStore`] on both backends.
//!
//! "At most one active key" is the schema's partial unique index
//! `signing_keys_one_active_idx`, so two instances inserting an active key
//! at once get one success and one `Conflict`, whatever the backend.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use latchkey_store::{KeyState, KeyStore, SigningKeyRecord, StoreResult, Timestamp};

use super::steps::Steps;
use super::{Backend, DieselStore};
use crate::connection::{with_connection, write_transaction};
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::{KeyRow, decode_all, to_secs};
use crate::schema::signing_keys;

const SIGNING_KEY: Entities = Entities::of("signing_key");

#[async_trait]
impl<B: Backend> KeyStore for DieselStore<B> {
    async fn insert_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let row = KeyRow::from(key);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(signing_keys::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, SIGNING_KEY))
    }

    async fn list_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let mut conn = self.inner.read().await?;
        let rows = with_connection!(&mut conn, |c| {
            signing_keys::table
                .order_by((signing_keys::created_at, signing_keys::kid))
                .select(KeyRow::as_select())
                .load(c)
                .await
        })
        .map_err(from_read)?;
        decode_all(rows)
    }

    async fn activate_key(
        &self,
        kid: &str,
        now: Timestamp,
        retired_not_after: Timestamp,
    ) -> StoreResult<bool> {
        let now = to_secs(now);
        let retired_not_after = to_secs(retired_not_after);
        let active = KeyState::Active.as_str();
        let mut writer = self.inner.write().await?;
        write_transaction!(&mut writer.conn, |tx| {
            tx.lock_signing_keys().await?;
            let state: Option<String> = signing_keys::table
                .find(kid)
                .select(signing_keys::state)
                .first(tx)
                .await
                .optional()?;
            match state.as_deref() {
                None => return Ok(false),
                Some(state) if state == active => return Ok(true),
                Some(_) => {}
            }
            // Retire first: the one-active-key index would refuse a second
            // active row even within the transaction.
            diesel::update(signing_keys::table.filter(signing_keys::state.eq(active)))
                .set((
                    signing_keys::state.eq(KeyState::Retired.as_str()),
                    signing_keys::retired_at.eq(now),
                    signing_keys::not_after.eq(retired_not_after),
                ))
                .execute(tx)
                .await?;
            diesel::update(signing_keys::table.find(kid))
                .set((
                    signing_keys::state.eq(active),
                    signing_keys::activated_at.eq(now),
                    signing_keys::retired_at.eq(None::<i64>),
                    signing_keys::not_after.eq(None::<i64>),
                ))
                .execute(tx)
                .await?;
            Ok::<bool, diesel::result::Error>(true)
        })
        .map_err(|error| from_diesel(error, SIGNING_KEY))
    }

    async fn delete_key(&self, kid: &str) -> StoreResult<bool> {
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::delete(signing_keys::table.find(kid))
                .execute(c)
                .await
        })
        .map(|deleted| deleted > 0)
        .map_err(|error| from_diesel(error, SIGNING_KEY))
    }
}
