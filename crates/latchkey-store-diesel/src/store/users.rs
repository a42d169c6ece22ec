//! [`UserStore`] on both backends: users and their linked upstream
//! identities.
//!
//! Case-insensitive email uniqueness is the `UNIQUE` index on
//! `users.email_lower`, filled with the Unicode lowercase of the email
//! computed in Rust (`rows::email_key`), so both backends agree.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use latchkey_store::{FederatedIdentityRecord, StoreResult, UserRecord, UserStore};

use super::{Backend, DieselStore};
use crate::connection::{with_connection, write_transaction};
use crate::error::{Entities, from_diesel, from_read};
use crate::rows::{IdentityRow, UserRow, decode_all, email_key};
use crate::schema::{federated_identities, sessions, users};

const USER: Entities = Entities::of("user");
const IDENTITY: Entities = Entities::referencing("identity", "user");

#[async_trait]
impl<B: Backend> UserStore for DieselStore<B> {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let row = UserRow::from(user);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(users::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, USER))
    }

    async fn find_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            users::table
                .find(user_id)
                .select(UserRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let key = email_key(email);
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            users::table
                .filter(users::email_lower.eq(&key))
                .select(UserRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(UserRecord::try_from).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let mut conn = self.inner.read().await?;
        let rows = with_connection!(&mut conn, |c| {
            users::table
                .order_by((users::created_at, users::user_id))
                .select(UserRow::as_select())
                .load(c)
                .await
        })
        .map_err(from_read)?;
        decode_all(rows)
    }

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<bool> {
        let mut writer = self.inner.write().await?;
        write_transaction!(&mut writer.conn, |tx| {
            let updated = diesel::update(users::table.find(user_id))
                .set(users::disabled.eq(disabled))
                .execute(tx)
                .await?;
            // Disabling signs the user out everywhere, even if the user was
            // disabled already.
            if updated > 0 && disabled {
                diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id)))
                    .execute(tx)
                    .await?;
            }
            Ok::<bool, diesel::result::Error>(updated > 0)
        })
        .map_err(|error| from_diesel(error, USER))
    }

    async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
    ) -> StoreResult<bool> {
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::update(users::table.find(user_id))
                .set(users::password_hash.eq(password_hash))
                .execute(c)
                .await
        })
        .map(|updated| updated > 0)
        .map_err(|error| from_diesel(error, USER))
    }

    async fn insert_identity(&self, identity: &FederatedIdentityRecord) -> StoreResult<()> {
        let row = IdentityRow::from(identity);
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::insert_into(federated_identities::table)
                .values(&row)
                .execute(c)
                .await
        })
        .map(drop)
        .map_err(|error| from_diesel(error, IDENTITY))
    }

    async fn insert_user_with_identity(
        &self,
        user: &UserRecord,
        identity: &FederatedIdentityRecord,
    ) -> StoreResult<()> {
        let user_row = UserRow::from(user);
        let identity_row = IdentityRow::from(identity);
        let mut writer = self.inner.write().await?;
        // Either insert failing rolls both back; the error names the table
        // that refused its row.
        write_transaction!(&mut writer.conn, |tx| {
            diesel::insert_into(users::table)
                .values(&user_row)
                .execute(tx)
                .await?;
            diesel::insert_into(federated_identities::table)
                .values(&identity_row)
                .execute(tx)
                .await?;
            Ok::<(), diesel::result::Error>(())
        })
        .map_err(|error| from_diesel(error, IDENTITY))
    }

    async fn find_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentityRecord>> {
        let mut conn = self.inner.read().await?;
        let row = with_connection!(&mut conn, |c| {
            federated_identities::table
                .find((issuer, subject))
                .select(IdentityRow::as_select())
                .first(c)
                .await
                .optional()
        })
        .map_err(from_read)?;
        row.map(FederatedIdentityRecord::try_from).transpose()
    }

    async fn list_identities(&self, user_id: &str) -> StoreResult<Vec<FederatedIdentityRecord>> {
        let mut conn = self.inner.read().await?;
        let rows = with_connection!(&mut conn, |c| {
            federated_identities::table
                .filter(federated_identities::user_id.eq(user_id))
                .order_by((federated_identities::issuer, federated_identities::subject))
                .select(IdentityRow::as_select())
                .load(c)
                .await
        })
        .map_err(from_read)?;
        decode_all(rows)
    }

    async fn delete_identity(&self, issuer: &str, subject: &str) -> StoreResult<bool> {
        let mut writer = self.inner.write().await?;
        with_connection!(&mut writer.conn, |c| {
            diesel::delete(federated_identities::table.find((issuer, subject)))
                .execute(c)
                .await
        })
        .map(|deleted| deleted > 0)
        .map_err(|error| from_diesel(error, IDENTITY))
    }
}
