//! Table rows and their conversion to and from the store's records.
//!
//! Each row struct mirrors one table of `schema.rs` and is what diesel reads
//! and writes; the records of `latchkey-store` never meet diesel. The
//! conversions are where the portable column encodings live:
//!
//! - timestamps are whole unix seconds ([`to_secs`], [`from_secs`]); the
//!   store's contract is second precision, so nothing is lost;
//! - scope lists are joined by single spaces, the empty list being the empty
//!   string (scope tokens never contain spaces, RFC 6749 §3.3);
//! - client metadata is JSON text; hashes are 32 raw bytes;
//! - an issued access token is two nullable columns, present together.
//!
//! Decoding never panics: stored data that does not decode is a
//! [`StoreError::Backend`] naming the column, never the value.

use diesel::prelude::*;
use latchkey_store::{
    AuthorizationCodeRecord, ClientOrigin, ClientRecord, ConsentRecord, FederatedIdentityRecord,
    IssuedAccessToken, KeyState, PendingRecord, RefreshFamilyRecord, RefreshTokenRecord,
    SecretHash, SessionRecord, SigningKeyRecord, StoreError, Timestamp, UserRecord,
};

use crate::schema::{
    authorization_codes, clients, consents, federated_identities, pending_interactions,
    refresh_families, refresh_tokens, sessions, signing_keys, users,
};

/// A timestamp as stored: whole unix seconds.
pub(crate) fn to_secs(timestamp: Timestamp) -> i64 {
    timestamp.unix_timestamp()
}

/// A stored timestamp back as a [`Timestamp`].
pub(crate) fn from_secs(seconds: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_timestamp(seconds)
        .map_err(|_| StoreError::Backend(format!("stored timestamp {seconds} is out of range")))
}

fn from_optional_secs(seconds: Option<i64>) -> Result<Option<Timestamp>, StoreError> {
    seconds.map(from_secs).transpose()
}

/// A scope list as stored: tokens joined by single spaces.
pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// A stored scope list back as tokens; the empty string is the empty list.
pub(crate) fn split_scopes(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split(' ').map(str::to_owned).collect()
    }
}

/// The lowercased email that the UNIQUE index compares. Lowercasing is done
/// here (Unicode-aware), not in SQL, because SQLite's `lower()` only folds
/// ASCII and both backends must agree.
pub(crate) fn email_key(email: &str) -> String {
    email.to_lowercase()
}

fn decode_hash(bytes: &[u8], column: &str) -> Result<SecretHash, StoreError> {
    SecretHash::from_slice(bytes)
        .ok_or_else(|| StoreError::Backend(format!("stored {column} is not a 32-byte hash")))
}

fn access_token(
    jti: Option<String>,
    expires_at: Option<i64>,
) -> Result<Option<IssuedAccessToken>, StoreError> {
    match (jti, expires_at) {
        (Some(jti), Some(expires_at)) => Ok(Some(IssuedAccessToken {
            jti,
            expires_at: from_secs(expires_at)?,
        })),
        (None, None) => Ok(None),
        _ => Err(StoreError::Backend(
            "stored access token has only one of jti and expires_at".to_owned(),
        )),
    }
}

/// The two columns an optional issued access token is stored in.
pub(crate) fn access_token_columns(
    token: Option<&IssuedAccessToken>,
) -> (Option<String>, Option<i64>) {
    match token {
        Some(token) => (Some(token.jti.clone()), Some(to_secs(token.expires_at))),
        None => (None, None),
    }
}

/// A row of `clients`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset, QueryableByName)]
#[diesel(table_name = clients, primary_key(client_id), treat_none_as_null = true)]
pub(crate) struct ClientRow {
    pub(crate) client_id: String,
    pub(crate) secret_hash: Option<Vec<u8>>,
    pub(crate) origin: String,
    pub(crate) metadata: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: Option<i64>,
}

impl From<&ClientRecord> for ClientRow {
    fn from(client: &ClientRecord) -> Self {
        Self {
            client_id: client.client_id.clone(),
            secret_hash: client.secret_hash.map(|hash| hash.as_bytes().to_vec()),
            origin: client.origin.as_str().to_owned(),
            metadata: client.metadata.to_string(),
            created_at: to_secs(client.created_at),
            expires_at: client.expires_at.map(to_secs),
        }
    }
}

impl TryFrom<ClientRow> for ClientRecord {
    type Error = StoreError;

    fn try_from(row: ClientRow) -> Result<Self, StoreError> {
        Ok(Self {
            secret_hash: row
                .secret_hash
                .as_deref()
                .map(|bytes| decode_hash(bytes, "clients.secret_hash"))
                .transpose()?,
            origin: ClientOrigin::parse(&row.origin).ok_or_else(|| {
                StoreError::Backend(format!("stored client origin {:?} is unknown", row.origin))
            })?,
            metadata: serde_json::from_str(&row.metadata).map_err(|error| {
                StoreError::Backend(format!("stored client metadata is not JSON: {error}"))
            })?,
            created_at: from_secs(row.created_at)?,
            expires_at: from_optional_secs(row.expires_at)?,
            client_id: row.client_id,
        })
    }
}

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) email_lower: String,
    pub(crate) password_hash: Option<String>,
    pub(crate) disabled: bool,
    pub(crate) created_at: i64,
}

impl From<&UserRecord> for UserRow {
    fn from(user: &UserRecord) -> Self {
        Self {
            user_id: user.user_id.clone(),
            email: user.email.clone(),
            email_lower: email_key(&user.email),
            password_hash: user.password_hash.clone(),
            disabled: user.disabled,
            created_at: to_secs(user.created_at),
        }
    }
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        Ok(Self {
            user_id: row.user_id,
            email: row.email,
            password_hash: row.password_hash,
            disabled: row.disabled,
            created_at: from_secs(row.created_at)?,
        })
    }
}

/// A row of `federated_identities`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = federated_identities)]
pub(crate) struct IdentityRow {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) user_id: String,
    pub(crate) email: Option<String>,
    pub(crate) created_at: i64,
}

impl From<&FederatedIdentityRecord> for IdentityRow {
    fn from(identity: &FederatedIdentityRecord) -> Self {
        Self {
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            user_id: identity.user_id.clone(),
            email: identity.email.clone(),
            created_at: to_secs(identity.created_at),
        }
    }
}

impl TryFrom<IdentityRow> for FederatedIdentityRecord {
    type Error = StoreError;

    fn try_from(row: IdentityRow) -> Result<Self, StoreError> {
        Ok(Self {
            issuer: row.issuer,
            subject: row.subject,
            user_id: row.user_id,
            email: row.email,
            created_at: from_secs(row.created_at)?,
        })
    }
}

/// A row of `authorization_codes`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = authorization_codes)]
pub(crate) struct CodeRow {
    pub(crate) code_hash: Vec<u8>,
    pub(crate) client_id: String,
    pub(crate) user_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) code_challenge: String,
    pub(crate) scopes: String,
    pub(crate) resource: Option<String>,
    pub(crate) family_id: String,
    pub(crate) auth_time: i64,
    pub(crate) issued_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) consumed_at: Option<i64>,
    pub(crate) access_token_jti: Option<String>,
    pub(crate) access_token_expires_at: Option<i64>,
}

impl From<&AuthorizationCodeRecord> for CodeRow {
    fn from(code: &AuthorizationCodeRecord) -> Self {
        let (access_token_jti, access_token_expires_at) =
            access_token_columns(code.access_token.as_ref());
        Self {
            code_hash: code.code_hash.as_bytes().to_vec(),
            client_id: code.client_id.clone(),
            user_id: code.user_id.clone(),
            redirect_uri: code.redirect_uri.clone(),
            code_challenge: code.code_challenge.clone(),
            scopes: join_scopes(&code.scopes),
            resource: code.resource.clone(),
            family_id: code.family_id.clone(),
            auth_time: to_secs(code.auth_time),
            issued_at: to_secs(code.issued_at),
            expires_at: to_secs(code.expires_at),
            consumed_at: code.consumed_at.map(to_secs),
            access_token_jti,
            access_token_expires_at,
        }
    }
}

impl TryFrom<CodeRow> for AuthorizationCodeRecord {
    type Error = StoreError;

    fn try_from(row: CodeRow) -> Result<Self, StoreError> {
        Ok(Self {
            code_hash: decode_hash(&row.code_hash, "authorization_codes.code_hash")?,
            scopes: split_scopes(&row.scopes),
            auth_time: from_secs(row.auth_time)?,
            issued_at: from_secs(row.issued_at)?,
            expires_at: from_secs(row.expires_at)?,
            consumed_at: from_optional_secs(row.consumed_at)?,
            access_token: access_token(row.access_token_jti, row.access_token_expires_at)?,
            client_id: row.client_id,
            user_id: row.user_id,
            redirect_uri: row.redirect_uri,
            code_challenge: row.code_challenge,
            resource: row.resource,
            family_id: row.family_id,
        })
    }
}

/// A row of `refresh_families`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = refresh_families)]
pub(crate) struct FamilyRow {
    pub(crate) family_id: String,
    pub(crate) client_id: String,
    pub(crate) user_id: String,
    pub(crate) resource: Option<String>,
    pub(crate) scopes: String,
    pub(crate) created_at: i64,
    pub(crate) absolute_expires_at: i64,
    pub(crate) revoked_at: Option<i64>,
}

impl TryFrom<FamilyRow> for RefreshFamilyRecord {
    type Error = StoreError;

    fn try_from(row: FamilyRow) -> Result<Self, StoreError> {
        Ok(Self {
            scopes: split_scopes(&row.scopes),
            created_at: from_secs(row.created_at)?,
            absolute_expires_at: from_secs(row.absolute_expires_at)?,
            revoked_at: from_optional_secs(row.revoked_at)?,
            family_id: row.family_id,
            client_id: row.client_id,
            user_id: row.user_id,
            resource: row.resource,
        })
    }
}

/// A row of `refresh_tokens`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, QueryableByName)]
#[diesel(table_name = refresh_tokens)]
pub(crate) struct TokenRow {
    pub(crate) token_hash: Vec<u8>,
    pub(crate) family_id: String,
    pub(crate) scopes: String,
    pub(crate) issued_at: i64,
    pub(crate) idle_expires_at: i64,
    pub(crate) used_at: Option<i64>,
    pub(crate) access_token_jti: Option<String>,
    pub(crate) access_token_expires_at: Option<i64>,
}

impl TryFrom<TokenRow> for RefreshTokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Self, StoreError> {
        Ok(Self {
            token_hash: decode_hash(&row.token_hash, "refresh_tokens.token_hash")?,
            scopes: split_scopes(&row.scopes),
            issued_at: from_secs(row.issued_at)?,
            idle_expires_at: from_secs(row.idle_expires_at)?,
            used_at: from_optional_secs(row.used_at)?,
            access_token: access_token(row.access_token_jti, row.access_token_expires_at)?,
            family_id: row.family_id,
        })
    }
}

/// A row of `consents`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(
    table_name = consents,
    primary_key(user_id, client_id, resource),
    treat_none_as_null = true
)]
pub(crate) struct ConsentRow {
    pub(crate) user_id: String,
    pub(crate) client_id: String,
    pub(crate) resource: String,
    pub(crate) scopes: String,
    pub(crate) granted_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) last_used_at: Option<i64>,
}

impl From<&ConsentRecord> for ConsentRow {
    fn from(consent: &ConsentRecord) -> Self {
        Self {
            user_id: consent.user_id.clone(),
            client_id: consent.client_id.clone(),
            resource: consent.resource.clone(),
            scopes: join_scopes(&consent.scopes),
            granted_at: to_secs(consent.granted_at),
            expires_at: to_secs(consent.expires_at),
            last_used_at: consent.last_used_at.map(to_secs),
        }
    }
}

impl TryFrom<ConsentRow> for ConsentRecord {
    type Error = StoreError;

    fn try_from(row: ConsentRow) -> Result<Self, StoreError> {
        Ok(Self {
            scopes: split_scopes(&row.scopes),
            granted_at: from_secs(row.granted_at)?,
            expires_at: from_secs(row.expires_at)?,
            last_used_at: from_optional_secs(row.last_used_at)?,
            user_id: row.user_id,
            client_id: row.client_id,
            resource: row.resource,
        })
    }
}

/// A row of `signing_keys`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub(crate) struct KeyRow {
    pub(crate) kid: String,
    pub(crate) alg: String,
    pub(crate) private_key_encrypted: Vec<u8>,
    pub(crate) public_jwk: String,
    pub(crate) state: String,
    pub(crate) created_at: i64,
    pub(crate) activated_at: Option<i64>,
    pub(crate) retired_at: Option<i64>,
    pub(crate) not_after: Option<i64>,
}

impl From<&SigningKeyRecord> for KeyRow {
    fn from(key: &SigningKeyRecord) -> Self {
        Self {
            kid: key.kid.clone(),
            alg: key.alg.clone(),
            private_key_encrypted: key.private_key_encrypted.clone(),
            public_jwk: key.public_jwk.clone(),
            state: key.state.as_str().to_owned(),
            created_at: to_secs(key.created_at),
            activated_at: key.activated_at.map(to_secs),
            retired_at: key.retired_at.map(to_secs),
            not_after: key.not_after.map(to_secs),
        }
    }
}

impl TryFrom<KeyRow> for SigningKeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> Result<Self, StoreError> {
        Ok(Self {
            state: KeyState::parse(&row.state).ok_or_else(|| {
                StoreError::Backend(format!("stored key state {:?} is unknown", row.state))
            })?,
            created_at: from_secs(row.created_at)?,
            activated_at: from_optional_secs(row.activated_at)?,
            retired_at: from_optional_secs(row.retired_at)?,
            not_after: from_optional_secs(row.not_after)?,
            kid: row.kid,
            alg: row.alg,
            private_key_encrypted: row.private_key_encrypted,
            public_jwk: row.public_jwk,
        })
    }
}

/// A row of `sessions`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub(crate) struct SessionRow {
    pub(crate) session_hash: Vec<u8>,
    pub(crate) user_id: String,
    pub(crate) auth_time: i64,
    pub(crate) created_at: i64,
    pub(crate) last_seen_at: i64,
    pub(crate) idle_expires_at: i64,
    pub(crate) absolute_expires_at: i64,
}

impl From<&SessionRecord> for SessionRow {
    fn from(session: &SessionRecord) -> Self {
        Self {
            session_hash: session.session_hash.as_bytes().to_vec(),
            user_id: session.user_id.clone(),
            auth_time: to_secs(session.auth_time),
            created_at: to_secs(session.created_at),
            last_seen_at: to_secs(session.last_seen_at),
            idle_expires_at: to_secs(session.idle_expires_at),
            absolute_expires_at: to_secs(session.absolute_expires_at),
        }
    }
}

impl TryFrom<SessionRow> for SessionRecord {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            session_hash: decode_hash(&row.session_hash, "sessions.session_hash")?,
            auth_time: from_secs(row.auth_time)?,
            created_at: from_secs(row.created_at)?,
            last_seen_at: from_secs(row.last_seen_at)?,
            idle_expires_at: from_secs(row.idle_expires_at)?,
            absolute_expires_at: from_secs(row.absolute_expires_at)?,
            user_id: row.user_id,
        })
    }
}

/// A row of `pending_interactions`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = pending_interactions)]
pub(crate) struct PendingRow {
    pub(crate) pending_hash: Vec<u8>,
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) expires_at: i64,
}

impl From<&PendingRecord> for PendingRow {
    fn from(pending: &PendingRecord) -> Self {
        Self {
            pending_hash: pending.pending_hash.as_bytes().to_vec(),
            kind: pending.kind.clone(),
            payload: pending.payload.clone(),
            expires_at: to_secs(pending.expires_at),
        }
    }
}

impl TryFrom<PendingRow> for PendingRecord {
    type Error = StoreError;

    fn try_from(row: PendingRow) -> Result<Self, StoreError> {
        Ok(Self {
            pending_hash: decode_hash(&row.pending_hash, "pending_interactions.pending_hash")?,
            expires_at: from_secs(row.expires_at)?,
            kind: row.kind,
            payload: row.payload,
        })
    }
}

/// Decodes a list of rows, failing on the first that does not decode.
pub(crate) fn decode_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_round_trip_including_the_empty_list() {
        for scopes in [
            vec![],
            vec!["mcp:tools".to_owned()],
            vec![
                "openid".to_owned(),
                "mcp:tools".to_owned(),
                "offline_access".to_owned(),
            ],
        ] {
            let joined = join_scopes(&scopes);
            assert_eq!(split_scopes(&joined), scopes, "joined as {joined:?}");
        }
        assert_eq!(join_scopes(&[]), "");
    }

    #[test]
    fn timestamps_round_trip_at_second_precision() {
        let timestamp = from_secs(1_790_000_000).unwrap();
        assert_eq!(to_secs(timestamp), 1_790_000_000);
        assert!(from_secs(i64::MAX).is_err());
    }

    #[test]
    fn emails_compare_case_insensitively_beyond_ascii() {
        assert_eq!(
            email_key("Ünïcode@Example.COM"),
            email_key("ünïcode@example.com")
        );
    }

    #[test]
    fn a_half_stored_access_token_is_an_error_not_a_panic() {
        assert!(access_token(Some("jti".to_owned()), None).is_err());
        assert_eq!(access_token(None, None).unwrap(), None);
    }
}
