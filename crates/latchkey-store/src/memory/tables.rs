//! The tables of [`MemoryStore`](super::MemoryStore) and every operation
//! that reads or writes more than one of them, each run under the store's
//! one lock.
//!
//! Invariants: an operation validates (uniqueness, references) before its
//! first write, so an error leaves the tables as they were; every timestamp
//! is written through [`stored`]; a refresh token's family always exists
//! (tokens are created with or after their family and deleted with it).

use std::collections::{BTreeMap, HashMap};

use time::UtcOffset;

use crate::{
    AuthorizationCodeRecord, CleanupReport, ClientRecord, CodeConsumption, CodeRedemption,
    ConsentRecord, FederatedIdentityRecord, IssuedAccessToken, KeyState, NextRefreshToken,
    PendingRecord, RefreshFamilyRecord, RefreshGrant, RefreshTokenRecord, Rotation, SecretHash,
    SessionRecord, SigningKeyRecord, StoreError, StoreResult, Timestamp, UserRecord,
    truncate_to_seconds,
};

/// The key of a consent: `(user_id, client_id, resource)`.
pub(super) type ConsentKey = (String, String, String);

/// Every table. Maps are keyed by each table's primary key; the other unique
/// rules (email, one active key) are checked by scanning, which is fine at
/// the sizes this backend is meant for.
#[derive(Debug, Default)]
pub(super) struct Tables {
    pub(super) clients: HashMap<String, ClientRecord>,
    pub(super) users: HashMap<String, UserRecord>,
    /// Keyed by `(issuer, subject)`; the `BTreeMap` keeps the listing order.
    pub(super) identities: BTreeMap<(String, String), FederatedIdentityRecord>,
    pub(super) codes: HashMap<SecretHash, AuthorizationCodeRecord>,
    pub(super) families: HashMap<String, RefreshFamilyRecord>,
    pub(super) refresh_tokens: HashMap<SecretHash, RefreshTokenRecord>,
    /// `jti` to the instant the entry expires.
    pub(super) denied_access_tokens: HashMap<String, Timestamp>,
    pub(super) consents: BTreeMap<ConsentKey, ConsentRecord>,
    pub(super) signing_keys: HashMap<String, SigningKeyRecord>,
    pub(super) sessions: HashMap<SecretHash, SessionRecord>,
    pub(super) pending: HashMap<SecretHash, PendingRecord>,
}

/// A timestamp as a SQL backend would give it back: whole seconds, UTC.
pub(super) fn stored(timestamp: Timestamp) -> Timestamp {
    let truncated = truncate_to_seconds(timestamp);
    truncated
        .checked_to_offset(UtcOffset::UTC)
        .unwrap_or(truncated)
}

/// [`stored`] for optional timestamps.
pub(super) fn stored_opt(timestamp: Option<Timestamp>) -> Option<Timestamp> {
    timestamp.map(stored)
}

/// An access-token record with its expiry as stored.
pub(super) fn stored_access_token(access_token: &IssuedAccessToken) -> IssuedAccessToken {
    IssuedAccessToken {
        jti: access_token.jti.clone(),
        expires_at: stored(access_token.expires_at),
    }
}

/// The email form used for case-insensitive uniqueness and lookup (see
/// [`UserStore::insert_user`]).
pub(super) fn email_key(email: &str) -> String {
    email.to_lowercase()
}

/// A row count as the report's integer type.
pub(super) fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

pub(super) fn conflict(entity: &'static str) -> StoreError {
    StoreError::Conflict { entity }
}

fn not_found(entity: &'static str) -> StoreError {
    StoreError::NotFound { entity }
}

pub(super) fn consent_key(user_id: &str, client_id: &str, resource: &str) -> ConsentKey {
    (
        user_id.to_owned(),
        client_id.to_owned(),
        resource.to_owned(),
    )
}

/// Whether a session is usable at `now` (both timeouts strictly later).
pub(super) fn session_is_live(session: &SessionRecord, now: Timestamp) -> bool {
    session.idle_expires_at > now && session.absolute_expires_at > now
}

impl Tables {
    pub(super) fn require_client(&self, client_id: &str) -> StoreResult<()> {
        if self.clients.contains_key(client_id) {
            Ok(())
        } else {
            Err(not_found("client"))
        }
    }

    pub(super) fn require_user(&self, user_id: &str) -> StoreResult<()> {
        if self.users.contains_key(user_id) {
            Ok(())
        } else {
            Err(not_found("user"))
        }
    }

    /// Checks the uniqueness rules of a new user without writing.
    pub(super) fn check_new_user(&self, user: &UserRecord) -> StoreResult<()> {
        let email = email_key(&user.email);
        let taken = self.users.contains_key(&user.user_id)
            || self
                .users
                .values()
                .any(|existing| email_key(&existing.email) == email);
        if taken { Err(conflict("user")) } else { Ok(()) }
    }

    pub(super) fn check_new_identity(&self, identity: &FederatedIdentityRecord) -> StoreResult<()> {
        let key = (identity.issuer.clone(), identity.subject.clone());
        if self.identities.contains_key(&key) {
            Err(conflict("identity"))
        } else {
            Ok(())
        }
    }

    pub(super) fn store_user(&mut self, user: &UserRecord) {
        let record = UserRecord {
            created_at: stored(user.created_at),
            ..user.clone()
        };
        self.users.insert(record.user_id.clone(), record);
    }

    pub(super) fn store_identity(&mut self, identity: &FederatedIdentityRecord) {
        let record = FederatedIdentityRecord {
            created_at: stored(identity.created_at),
            ..identity.clone()
        };
        self.identities
            .insert((record.issuer.clone(), record.subject.clone()), record);
    }

    /// Puts a `jti` on the deny-list, keeping the later expiry if it is
    /// listed already.
    pub(super) fn deny(&mut self, jti: &str, expires_at: Timestamp) {
        let expires_at = stored(expires_at);
        self.denied_access_tokens
            .entry(jti.to_owned())
            .and_modify(|current| {
                if expires_at > *current {
                    *current = expires_at;
                }
            })
            .or_insert(expires_at);
    }

    /// [`GrantStore::revoke_family`] inside an open transaction.
    pub(super) fn revoke_family(&mut self, family_id: &str, now: Timestamp) -> bool {
        let Some(family) = self.families.get_mut(family_id) else {
            return false;
        };
        if family.revoked_at.is_some() {
            return false;
        }
        family.revoked_at = Some(now);
        // Every access token issued under the grant: the one the code
        // exchange issued and one per refresh. Expired ones need no entry.
        let recorded: Vec<IssuedAccessToken> = self
            .codes
            .values()
            .filter(|code| code.family_id == family_id)
            .filter_map(|code| code.access_token.clone())
            .chain(
                self.refresh_tokens
                    .values()
                    .filter(|token| token.family_id == family_id)
                    .filter_map(|token| token.access_token.clone()),
            )
            .filter(|access_token| access_token.expires_at > now)
            .collect();
        for access_token in recorded {
            self.deny(&access_token.jti, access_token.expires_at);
        }
        true
    }

    pub(super) fn consume_code(
        &mut self,
        code_hash: &SecretHash,
        redemption: &CodeRedemption,
        now: Timestamp,
    ) -> StoreResult<CodeConsumption> {
        let Some(code) = self.codes.get_mut(code_hash) else {
            return Ok(CodeConsumption::Unknown);
        };
        // A replay is reported even after expiry, so the caller can still
        // revoke what the first exchange issued (RFC 6749 §4.1.2).
        if code.consumed_at.is_some() {
            return Ok(CodeConsumption::Reused(code.clone()));
        }
        if code.expires_at <= now {
            return Ok(CodeConsumption::Expired);
        }
        let access_token = stored_access_token(&redemption.access_token);
        let first = match &redemption.refresh_token {
            Some(first) => {
                if self.refresh_tokens.contains_key(&first.token_hash) {
                    return Err(conflict("refresh_token"));
                }
                if self.families.contains_key(&code.family_id) {
                    return Err(conflict("refresh_family"));
                }
                let family = RefreshFamilyRecord {
                    family_id: code.family_id.clone(),
                    client_id: code.client_id.clone(),
                    user_id: code.user_id.clone(),
                    resource: code.resource.clone(),
                    scopes: code.scopes.clone(),
                    created_at: now,
                    absolute_expires_at: stored(first.absolute_expires_at),
                    revoked_at: None,
                };
                let token = RefreshTokenRecord {
                    token_hash: first.token_hash,
                    family_id: code.family_id.clone(),
                    scopes: code.scopes.clone(),
                    issued_at: now,
                    idle_expires_at: stored(first.idle_expires_at),
                    used_at: None,
                    access_token: Some(access_token.clone()),
                };
                Some((family, token))
            }
            None => None,
        };
        code.consumed_at = Some(now);
        code.access_token = Some(access_token);
        let consumed = code.clone();
        if let Some((family, token)) = first {
            self.families.insert(family.family_id.clone(), family);
            self.refresh_tokens.insert(token.token_hash, token);
        }
        Ok(CodeConsumption::Consumed(consumed))
    }

    pub(super) fn find_refresh(
        &self,
        token_hash: &SecretHash,
    ) -> StoreResult<Option<RefreshGrant>> {
        let Some(token) = self.refresh_tokens.get(token_hash) else {
            return Ok(None);
        };
        let family = self.family_of(token)?;
        Ok(Some(RefreshGrant {
            token: token.clone(),
            family: family.clone(),
        }))
    }

    /// The family of a stored token; its absence is a broken invariant
    /// (tokens are only ever created with, and deleted with, their family).
    fn family_of(&self, token: &RefreshTokenRecord) -> StoreResult<&RefreshFamilyRecord> {
        self.families
            .get(&token.family_id)
            .ok_or_else(|| StoreError::Backend("a refresh token's family is missing".to_owned()))
    }

    pub(super) fn rotate_refresh(
        &mut self,
        old_hash: &SecretHash,
        next: &NextRefreshToken,
        now: Timestamp,
    ) -> StoreResult<Rotation> {
        let Some(old) = self.refresh_tokens.get(old_hash) else {
            return Ok(Rotation::Unknown);
        };
        let family = self.family_of(old)?;
        let family_id = family.family_id.clone();
        // Reuse first: a rotated token presented again means it leaked, so
        // the grant is revoked whatever else holds (RFC 9700 §4.14.2).
        if old.used_at.is_some() {
            self.revoke_family(&family_id, now);
            return Ok(Rotation::Reused { family_id });
        }
        if family.revoked_at.is_some() {
            return Ok(Rotation::Revoked);
        }
        if old.idle_expires_at <= now || family.absolute_expires_at <= now {
            return Ok(Rotation::Expired);
        }
        if self.refresh_tokens.contains_key(&next.token_hash) {
            return Err(conflict("refresh_token"));
        }
        let family = family.clone();
        let token = RefreshTokenRecord {
            token_hash: next.token_hash,
            family_id,
            scopes: next.scopes.clone(),
            issued_at: now,
            idle_expires_at: stored(next.idle_expires_at),
            used_at: None,
            access_token: next.access_token.as_ref().map(stored_access_token),
        };
        if let Some(old) = self.refresh_tokens.get_mut(old_hash) {
            old.used_at = Some(now);
        }
        self.refresh_tokens.insert(token.token_hash, token.clone());
        Ok(Rotation::Rotated(RefreshGrant { token, family }))
    }

    pub(super) fn revoke_for(&mut self, user_id: &str, client_id: &str, now: Timestamp) -> u64 {
        let family_ids: Vec<String> = self
            .families
            .values()
            .filter(|family| family.user_id == user_id && family.client_id == client_id)
            .map(|family| family.family_id.clone())
            .collect();
        let revoked = family_ids
            .iter()
            .filter(|family_id| self.revoke_family(family_id, now))
            .count();
        self.consents
            .retain(|(consent_user, consent_client, _), _| {
                !(consent_user == user_id && consent_client == client_id)
            });
        count(revoked)
    }

    pub(super) fn insert_key(&mut self, key: &SigningKeyRecord) -> StoreResult<()> {
        if self.signing_keys.contains_key(&key.kid) {
            return Err(conflict("signing_key"));
        }
        let another_active = self
            .signing_keys
            .values()
            .any(|existing| existing.state == KeyState::Active);
        if key.state == KeyState::Active && another_active {
            return Err(conflict("signing_key"));
        }
        let record = SigningKeyRecord {
            created_at: stored(key.created_at),
            activated_at: stored_opt(key.activated_at),
            retired_at: stored_opt(key.retired_at),
            not_after: stored_opt(key.not_after),
            ..key.clone()
        };
        self.signing_keys.insert(record.kid.clone(), record);
        Ok(())
    }

    pub(super) fn activate_key(
        &mut self,
        kid: &str,
        now: Timestamp,
        retired_not_after: Timestamp,
    ) -> bool {
        match self.signing_keys.get(kid) {
            None => return false,
            Some(key) if key.state == KeyState::Active => return true,
            Some(_) => {}
        }
        for key in self.signing_keys.values_mut() {
            if key.state == KeyState::Active {
                key.state = KeyState::Retired;
                key.retired_at = Some(now);
                key.not_after = Some(stored(retired_not_after));
            }
        }
        if let Some(key) = self.signing_keys.get_mut(kid) {
            key.state = KeyState::Active;
            key.activated_at = Some(now);
            key.retired_at = None;
            key.not_after = None;
        }
        true
    }

    pub(super) fn touch_session(
        &mut self,
        session_hash: &SecretHash,
        idle_expires_at: Timestamp,
        now: Timestamp,
    ) -> bool {
        match self.sessions.get_mut(session_hash) {
            Some(session) if session_is_live(session, now) => {
                session.idle_expires_at = stored(idle_expires_at).min(session.absolute_expires_at);
                session.last_seen_at = now;
                true
            }
            _ => false,
        }
    }

    pub(super) fn cleanup_expired(&mut self, now: Timestamp, batch: usize) -> CleanupReport {
        let codes = take_keys(
            self.codes
                .iter()
                .filter(|(_, code)| code.expires_at <= now)
                .map(|(hash, _)| *hash),
            batch,
        );
        for hash in &codes {
            self.codes.remove(hash);
        }

        // Tokens of live families first: tokens of expired families go with
        // their family below and are not counted here.
        let families = &self.families;
        let refresh_tokens = take_keys(
            self.refresh_tokens
                .iter()
                .filter(|(_, token)| token.idle_expires_at <= now)
                .filter(|(_, token)| {
                    families
                        .get(&token.family_id)
                        .is_some_and(|family| family.absolute_expires_at > now)
                })
                .map(|(hash, _)| *hash),
            batch,
        );
        for hash in &refresh_tokens {
            self.refresh_tokens.remove(hash);
        }

        let expired_families = take_keys(
            self.families
                .values()
                .filter(|family| family.absolute_expires_at <= now)
                .map(|family| family.family_id.clone()),
            batch,
        );
        for family_id in &expired_families {
            self.families.remove(family_id);
        }
        self.refresh_tokens
            .retain(|_, token| !expired_families.contains(&token.family_id));

        let consents = take_keys(
            self.consents
                .iter()
                .filter(|(_, consent)| consent.expires_at <= now)
                .map(|(key, _)| key.clone()),
            batch,
        );
        for key in &consents {
            self.consents.remove(key);
        }

        let denied = take_keys(
            self.denied_access_tokens
                .iter()
                .filter(|(_, expires_at)| **expires_at <= now)
                .map(|(jti, _)| jti.clone()),
            batch,
        );
        for jti in &denied {
            self.denied_access_tokens.remove(jti);
        }

        let sessions = take_keys(
            self.sessions
                .iter()
                .filter(|(_, session)| !session_is_live(session, now))
                .map(|(hash, _)| *hash),
            batch,
        );
        for hash in &sessions {
            self.sessions.remove(hash);
        }

        let pending = take_keys(
            self.pending
                .iter()
                .filter(|(_, pending)| pending.expires_at <= now)
                .map(|(hash, _)| *hash),
            batch,
        );
        for hash in &pending {
            self.pending.remove(hash);
        }

        // Only retired keys ever go: the active key signs, and a next key is
        // about to.
        let signing_keys = take_keys(
            self.signing_keys
                .values()
                .filter(|key| key.state == KeyState::Retired)
                .filter(|key| key.not_after.is_some_and(|not_after| not_after <= now))
                .map(|key| key.kid.clone()),
            batch,
        );
        for kid in &signing_keys {
            self.signing_keys.remove(kid);
        }

        CleanupReport {
            codes: count(codes.len()),
            refresh_families: count(expired_families.len()),
            refresh_tokens: count(refresh_tokens.len()),
            consents: count(consents.len()),
            denied_access_tokens: count(denied.len()),
            sessions: count(sessions.len()),
            pending: count(pending.len()),
            signing_keys: count(signing_keys.len()),
        }
    }
}

/// At most `batch` keys from an iterator, collected so the borrow of the
/// table ends before the deletes.
fn take_keys<K>(keys: impl Iterator<Item = K>, batch: usize) -> Vec<K> {
    keys.take(batch).collect()
}

pub(super) fn stored_client(client: &ClientRecord) -> ClientRecord {
    ClientRecord {
        created_at: stored(client.created_at),
        expires_at: stored_opt(client.expires_at),
        ..client.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn stored_timestamps_are_whole_utc_seconds() {
        let offset = UtcOffset::from_hms(2, 0, 0).unwrap();
        let original = at(0)
            .replace_nanosecond(999_999_999)
            .unwrap()
            .to_offset(offset);
        let kept = stored(original);
        assert_eq!(kept, at(0));
        assert_eq!(kept.offset(), UtcOffset::UTC);
        assert_eq!(kept.nanosecond(), 0);
    }

    #[test]
    fn emails_compare_after_unicode_lowercasing() {
        assert_eq!(
            email_key("Élodie@Example.ORG"),
            email_key("élodie@example.org")
        );
        assert_ne!(email_key("a@example.org"), email_key("b@example.org"));
    }
}
