//! In-memory backend: every table in one map behind one `std::sync::Mutex`.
//!
//! Used by unit tests above this crate and by `--database-url memory:`
//! demos; nothing survives a restart. It behaves exactly like the SQL
//! backends, which the contract suite checks on all three:
//!
//! - Every operation takes the lock once, does all its reads and writes, and
//!   releases it before returning, so each trait method is one atomic
//!   transaction and concurrent callers are serialised. No `.await` ever
//!   happens under the lock (the trait methods are synchronous inside).
//! - An operation validates everything (uniqueness, references) before its
//!   first write, so an error leaves the tables as they were.
//! - Every stored timestamp goes through `tables::stored`: truncated to whole
//!   seconds and converted to UTC, as a column of Unix seconds would.
//! - References are enforced like foreign keys, and deleting a client
//!   cascades to its codes, refresh-token families (with their tokens) and
//!   consents, like `ON DELETE CASCADE`.
//! - A poisoned lock (a panic in an earlier operation) is reported as
//!   [`StoreError::Backend`], never a panic.

mod tables;

use std::sync::Mutex;

use async_trait::async_trait;

use crate::{
    AuthorizationCodeRecord, CleanupReport, ClientRecord, ClientStore, CodeConsumption,
    CodeRedemption, ConsentRecord, ConsentStore, FederatedIdentityRecord, GrantStore, KeyStore,
    Maintenance, NextRefreshToken, PendingRecord, RefreshGrant, Rotation, SecretHash,
    SessionRecord, SessionStore, SigningKeyRecord, StoreError, StoreResult, Timestamp, UserRecord,
    UserStore,
};
use tables::{
    Tables, conflict, consent_key, count, email_key, session_is_live, stored, stored_access_token,
    stored_client, stored_opt,
};

/// A complete store held in process memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs one operation with exclusive access to every table.
    ///
    /// The closure is synchronous, so the lock can never be held across an
    /// `.await`.
    fn with_tables<R>(
        &self,
        operation: impl FnOnce(&mut Tables) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let mut tables = self.tables.lock().map_err(|_| {
            StoreError::Backend(
                "the in-memory store's lock is poisoned by an earlier panic".to_owned(),
            )
        })?;
        operation(&mut tables)
    }
}

#[async_trait]
impl ClientStore for MemoryStore {
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            if tables.clients.contains_key(&client.client_id) {
                return Err(conflict("client"));
            }
            tables
                .clients
                .insert(client.client_id.clone(), stored_client(client));
            Ok(())
        })
    }

    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            // Replacing the record alone keeps the client's grants, as an SQL
            // `ON CONFLICT DO UPDATE` does.
            tables
                .clients
                .insert(client.client_id.clone(), stored_client(client));
            Ok(())
        })
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        self.with_tables(|tables| Ok(tables.clients.get(client_id).cloned()))
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.with_tables(|tables| {
            let mut clients: Vec<ClientRecord> = tables.clients.values().cloned().collect();
            clients.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
            Ok(clients)
        })
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        self.with_tables(|tables| {
            if tables.clients.remove(client_id).is_none() {
                return Ok(false);
            }
            // The cascades of `ON DELETE CASCADE` on every table that names
            // the client.
            tables.codes.retain(|_, code| code.client_id != client_id);
            let families: Vec<String> = tables
                .families
                .values()
                .filter(|family| family.client_id == client_id)
                .map(|family| family.family_id.clone())
                .collect();
            tables
                .families
                .retain(|_, family| family.client_id != client_id);
            tables
                .refresh_tokens
                .retain(|_, token| !families.contains(&token.family_id));
            tables
                .consents
                .retain(|(_, consent_client, _), _| consent_client != client_id);
            Ok(true)
        })
    }
}

#[async_trait]
impl UserStore for MemoryStore {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            tables.check_new_user(user)?;
            tables.store_user(user);
            Ok(())
        })
    }

    async fn find_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        self.with_tables(|tables| Ok(tables.users.get(user_id).cloned()))
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let wanted = email_key(email);
        self.with_tables(|tables| {
            Ok(tables
                .users
                .values()
                .find(|user| email_key(&user.email) == wanted)
                .cloned())
        })
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        self.with_tables(|tables| {
            let mut users: Vec<UserRecord> = tables.users.values().cloned().collect();
            users.sort_by(|a, b| (a.created_at, &a.user_id).cmp(&(b.created_at, &b.user_id)));
            Ok(users)
        })
    }

    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<bool> {
        self.with_tables(|tables| {
            let Some(user) = tables.users.get_mut(user_id) else {
                return Ok(false);
            };
            user.disabled = disabled;
            if disabled {
                tables
                    .sessions
                    .retain(|_, session| session.user_id != user_id);
            }
            Ok(true)
        })
    }

    async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
    ) -> StoreResult<bool> {
        self.with_tables(|tables| {
            let Some(user) = tables.users.get_mut(user_id) else {
                return Ok(false);
            };
            user.password_hash = password_hash.map(str::to_owned);
            Ok(true)
        })
    }

    async fn insert_identity(&self, identity: &FederatedIdentityRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            tables.require_user(&identity.user_id)?;
            tables.check_new_identity(identity)?;
            tables.store_identity(identity);
            Ok(())
        })
    }

    async fn insert_user_with_identity(
        &self,
        user: &UserRecord,
        identity: &FederatedIdentityRecord,
    ) -> StoreResult<()> {
        self.with_tables(|tables| {
            // Both checks before either write: a conflict leaves nothing.
            tables.check_new_user(user)?;
            tables.check_new_identity(identity)?;
            if identity.user_id != user.user_id {
                tables.require_user(&identity.user_id)?;
            }
            tables.store_user(user);
            tables.store_identity(identity);
            Ok(())
        })
    }

    async fn find_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentityRecord>> {
        let key = (issuer.to_owned(), subject.to_owned());
        self.with_tables(|tables| Ok(tables.identities.get(&key).cloned()))
    }

    async fn list_identities(&self, user_id: &str) -> StoreResult<Vec<FederatedIdentityRecord>> {
        self.with_tables(|tables| {
            Ok(tables
                .identities
                .values()
                .filter(|identity| identity.user_id == user_id)
                .cloned()
                .collect())
        })
    }

    async fn delete_identity(&self, issuer: &str, subject: &str) -> StoreResult<bool> {
        let key = (issuer.to_owned(), subject.to_owned());
        self.with_tables(|tables| Ok(tables.identities.remove(&key).is_some()))
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn insert_code(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            tables.require_client(&code.client_id)?;
            tables.require_user(&code.user_id)?;
            if tables.codes.contains_key(&code.code_hash) {
                return Err(conflict("code"));
            }
            let record = AuthorizationCodeRecord {
                auth_time: stored(code.auth_time),
                issued_at: stored(code.issued_at),
                expires_at: stored(code.expires_at),
                consumed_at: stored_opt(code.consumed_at),
                access_token: code.access_token.as_ref().map(stored_access_token),
                ..code.clone()
            };
            tables.codes.insert(record.code_hash, record);
            Ok(())
        })
    }

    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> StoreResult<Option<AuthorizationCodeRecord>> {
        self.with_tables(|tables| Ok(tables.codes.get(code_hash).cloned()))
    }

    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        redemption: &CodeRedemption,
        now: Timestamp,
    ) -> StoreResult<CodeConsumption> {
        let now = stored(now);
        self.with_tables(|tables| tables.consume_code(code_hash, redemption, now))
    }

    async fn find_refresh(&self, token_hash: &SecretHash) -> StoreResult<Option<RefreshGrant>> {
        self.with_tables(|tables| tables.find_refresh(token_hash))
    }

    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        next: &NextRefreshToken,
        now: Timestamp,
    ) -> StoreResult<Rotation> {
        let now = stored(now);
        self.with_tables(|tables| tables.rotate_refresh(old_hash, next, now))
    }

    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> StoreResult<bool> {
        let now = stored(now);
        self.with_tables(|tables| Ok(tables.revoke_family(family_id, now)))
    }

    async fn revoke_for(&self, user_id: &str, client_id: &str, now: Timestamp) -> StoreResult<u64> {
        let now = stored(now);
        self.with_tables(|tables| Ok(tables.revoke_for(user_id, client_id, now)))
    }

    async fn deny_access_token(&self, jti: &str, expires_at: Timestamp) -> StoreResult<()> {
        self.with_tables(|tables| {
            tables.deny(jti, expires_at);
            Ok(())
        })
    }

    async fn is_access_token_denied(&self, jti: &str, now: Timestamp) -> StoreResult<bool> {
        let now = stored(now);
        self.with_tables(|tables| {
            Ok(tables
                .denied_access_tokens
                .get(jti)
                .is_some_and(|expires_at| *expires_at > now))
        })
    }
}

#[async_trait]
impl ConsentStore for MemoryStore {
    async fn upsert_consent(&self, consent: &ConsentRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            tables.require_user(&consent.user_id)?;
            tables.require_client(&consent.client_id)?;
            let record = ConsentRecord {
                granted_at: stored(consent.granted_at),
                expires_at: stored(consent.expires_at),
                last_used_at: stored_opt(consent.last_used_at),
                ..consent.clone()
            };
            let key = consent_key(&record.user_id, &record.client_id, &record.resource);
            tables.consents.insert(key, record);
            Ok(())
        })
    }

    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> StoreResult<Option<ConsentRecord>> {
        let key = consent_key(user_id, client_id, resource);
        self.with_tables(|tables| Ok(tables.consents.get(&key).cloned()))
    }

    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<ConsentRecord>> {
        self.with_tables(|tables| {
            let mut consents: Vec<ConsentRecord> = tables
                .consents
                .values()
                .filter(|consent| consent.user_id == user_id)
                .cloned()
                .collect();
            consents.sort_by(|a, b| {
                (a.granted_at, &a.client_id, &a.resource).cmp(&(
                    b.granted_at,
                    &b.client_id,
                    &b.resource,
                ))
            });
            Ok(consents)
        })
    }

    async fn touch_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let key = consent_key(user_id, client_id, resource);
        let now = stored(now);
        self.with_tables(|tables| {
            let Some(consent) = tables.consents.get_mut(&key) else {
                return Ok(false);
            };
            consent.last_used_at = Some(now);
            Ok(true)
        })
    }

    async fn delete_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> StoreResult<bool> {
        let key = consent_key(user_id, client_id, resource);
        self.with_tables(|tables| Ok(tables.consents.remove(&key).is_some()))
    }
}

#[async_trait]
impl KeyStore for MemoryStore {
    async fn insert_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        self.with_tables(|tables| tables.insert_key(key))
    }

    async fn list_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.with_tables(|tables| {
            let mut keys: Vec<SigningKeyRecord> = tables.signing_keys.values().cloned().collect();
            keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
            Ok(keys)
        })
    }

    async fn activate_key(
        &self,
        kid: &str,
        now: Timestamp,
        retired_not_after: Timestamp,
    ) -> StoreResult<bool> {
        let now = stored(now);
        self.with_tables(|tables| Ok(tables.activate_key(kid, now, retired_not_after)))
    }

    async fn delete_key(&self, kid: &str) -> StoreResult<bool> {
        self.with_tables(|tables| Ok(tables.signing_keys.remove(kid).is_some()))
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            tables.require_user(&session.user_id)?;
            if tables.sessions.contains_key(&session.session_hash) {
                return Err(conflict("session"));
            }
            let record = SessionRecord {
                auth_time: stored(session.auth_time),
                created_at: stored(session.created_at),
                last_seen_at: stored(session.last_seen_at),
                idle_expires_at: stored(session.idle_expires_at),
                absolute_expires_at: stored(session.absolute_expires_at),
                ..session.clone()
            };
            tables.sessions.insert(record.session_hash, record);
            Ok(())
        })
    }

    async fn find_session(
        &self,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<SessionRecord>> {
        let now = stored(now);
        self.with_tables(|tables| {
            Ok(tables
                .sessions
                .get(session_hash)
                .filter(|session| session_is_live(session, now))
                .cloned())
        })
    }

    async fn touch_session(
        &self,
        session_hash: &SecretHash,
        idle_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let now = stored(now);
        self.with_tables(|tables| Ok(tables.touch_session(session_hash, idle_expires_at, now)))
    }

    async fn delete_session(&self, session_hash: &SecretHash) -> StoreResult<bool> {
        self.with_tables(|tables| Ok(tables.sessions.remove(session_hash).is_some()))
    }

    async fn delete_sessions_for_user(&self, user_id: &str) -> StoreResult<u64> {
        self.with_tables(|tables| {
            let before = tables.sessions.len();
            tables
                .sessions
                .retain(|_, session| session.user_id != user_id);
            Ok(count(before.saturating_sub(tables.sessions.len())))
        })
    }

    async fn insert_pending(&self, pending: &PendingRecord) -> StoreResult<()> {
        self.with_tables(|tables| {
            if tables.pending.contains_key(&pending.pending_hash) {
                return Err(conflict("pending"));
            }
            let record = PendingRecord {
                expires_at: stored(pending.expires_at),
                ..pending.clone()
            };
            tables.pending.insert(record.pending_hash, record);
            Ok(())
        })
    }

    async fn find_pending(
        &self,
        pending_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PendingRecord>> {
        let now = stored(now);
        self.with_tables(|tables| {
            Ok(tables
                .pending
                .get(pending_hash)
                .filter(|pending| pending.expires_at > now)
                .cloned())
        })
    }

    async fn take_pending(
        &self,
        pending_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PendingRecord>> {
        let now = stored(now);
        self.with_tables(|tables| {
            // An expired interaction stays for `cleanup_expired`, as a SQL
            // `DELETE … WHERE expires_at > $now RETURNING *` leaves it.
            let live = tables
                .pending
                .get(pending_hash)
                .is_some_and(|pending| pending.expires_at > now);
            Ok(if live {
                tables.pending.remove(pending_hash)
            } else {
                None
            })
        })
    }
}

#[async_trait]
impl Maintenance for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        // A poisoned lock makes the store unusable, so readiness reports it.
        self.with_tables(|_| Ok(()))
    }

    async fn cleanup_expired(&self, now: Timestamp, batch: u32) -> StoreResult<CleanupReport> {
        let now = stored(now);
        let batch = usize::try_from(batch).unwrap_or(usize::MAX);
        self.with_tables(|tables| Ok(tables.cleanup_expired(now, batch)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_poisoned_lock_is_a_backend_error_not_a_panic() {
        let store = Arc::new(MemoryStore::new());
        let poisoner = Arc::clone(&store);
        // Poison the lock the way a bug would: panic while holding it.
        let outcome = std::thread::spawn(move || {
            let _guard = poisoner.tables.lock().unwrap();
            panic!("deliberate panic to poison the lock");
        })
        .join();
        assert!(
            outcome.is_err(),
            "the poisoning thread should have panicked"
        );

        let ping = store.ping().await;
        assert!(
            matches!(ping, Err(StoreError::Backend(_))),
            "ping on a poisoned store: {ping:?}"
        );
        let find = store.find_client("anything").await;
        assert!(
            matches!(find, Err(StoreError::Backend(_))),
            "find_client on a poisoned store: {find:?}"
        );
    }
}
