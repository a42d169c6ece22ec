//! Everything Latchkey remembers, as async traits over plain records.
//!
//! This crate is the storage contract between the flows (`latchkey-service`)
//! and the backends (`latchkey-store-diesel` for Postgres and SQLite, and
//! [`memory::MemoryStore`] here). The binary picks a backend; nothing above
//! this crate knows which one it got.
//!
//! # Invariants
//!
//! - No diesel, axum or tokio types in the API (tokio only powers the
//!   contract suite behind the `testing` feature).
//! - Time is passed in (`now`), never read here, so expiry is deterministic
//!   in tests. Backends store timestamps at whole-second precision; every
//!   backend, the in-memory one included, truncates on write (see
//!   [`Timestamp`]).
//! - High-entropy secrets (authorization codes, refresh tokens, client
//!   secrets, session ids) are only ever stored as a [`SecretHash`]. Password
//!   hashes (argon2id PHC strings) are produced by the service.
//! - Operations that must be atomic are single trait methods
//!   ([`GrantStore::consume_code`], [`GrantStore::rotate_refresh`],
//!   [`GrantStore::revoke_family`], [`GrantStore::revoke_for`],
//!   [`KeyStore::activate_key`], [`UserStore::insert_user_with_identity`]);
//!   callers never assemble them from smaller calls.
//! - Uniqueness violations are [`StoreError::Conflict`]; an unreachable
//!   database or exhausted pool is [`StoreError::Unavailable`].
//!
//! # Conventions every backend follows
//!
//! These clarify the method docs below; the contract suite checks them.
//!
//! - **Error entities.** [`StoreError::Conflict`] and [`StoreError::NotFound`]
//!   name the table that collided or was missing: `"client"`, `"user"`,
//!   `"identity"`, `"code"`, `"refresh_family"`, `"refresh_token"`,
//!   `"consent"`, `"signing_key"`, `"session"` or `"pending"`.
//! - **References.** A record that names a client or user (codes, consents,
//!   sessions, identities) can only be stored while that client or user
//!   exists; otherwise the insert is [`StoreError::NotFound`] (a foreign-key
//!   violation in SQL; a backend that cannot tell which parent was missing
//!   may name either).
//! - **Failed writes leave nothing behind.** An operation that returns an
//!   error has changed nothing.
//! - **Ordering.** Lists order strings by their bytes (Unicode code points),
//!   as the `C` collation does, never by a locale.
//! - **Time.** Every stored timestamp is truncated to whole seconds
//!   ([`truncate_to_seconds`]) and comes back in UTC. Since stored instants
//!   are whole seconds, comparing them with `now` or with `floor(now)` gives
//!   the same answer, so a backend may truncate `now` too. A thing whose
//!   expiry is `<= now` is expired: at the boundary instant it is already
//!   gone.
//!
//! The contract every backend must honour is executable: see the `contract`
//! module (feature `testing`), and [`cleanup_until_done`] for the periodic
//! clean-up loop.

mod error;
mod hash;
mod maintenance;
pub mod memory;
mod records;

#[cfg(feature = "testing")]
pub mod contract;

pub use error::StoreError;
pub use hash::SecretHash;
pub use maintenance::{CLEANUP_MAX_ROUNDS, cleanup_until_done};
pub use records::*;

use async_trait::async_trait;

/// A point in time as the store sees it: UTC, whole seconds.
pub type Timestamp = time::OffsetDateTime;

/// Truncates a timestamp to whole seconds, the precision every backend keeps.
pub fn truncate_to_seconds(timestamp: Timestamp) -> Timestamp {
    timestamp.replace_nanosecond(0).unwrap_or(timestamp)
}

/// Shorthand for results of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Registered OAuth clients: admin-created, dynamically registered, or
/// cached Client ID Metadata Documents.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Stores a new client. [`StoreError::Conflict`] if the `client_id` exists.
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// Inserts or replaces a client by `client_id` (used to refresh the
    /// cached copy of a metadata document). Existing grants are kept.
    ///
    /// Replacing overwrites every field with the given record's, including
    /// `created_at`; the client's codes, refresh-token families and consents
    /// are untouched (in SQL: `INSERT … ON CONFLICT DO UPDATE`, never a
    /// delete and re-insert, which would cascade).
    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// Looks a client up by id. Stale metadata-document entries are returned
    /// too: the caller decides whether to re-fetch.
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// All clients, ordered by `created_at` then `client_id` (bytewise).
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Deletes a client and, by cascade, its codes, refresh-token families
    /// and consents. Returns whether it existed.
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
}

/// Local users and the upstream identities linked to them.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Stores a new user. [`StoreError::Conflict`] (entity `"user"`) if the
    /// `user_id` exists or the email is taken, compared case-insensitively.
    ///
    /// "Case-insensitively" means after Unicode lowercasing with
    /// [`str::to_lowercase`], done in Rust so that every backend agrees
    /// (SQLite's `lower()` folds ASCII only): `Élodie@Example.org` and
    /// `élodie@example.org` collide. The email is stored as entered.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Looks a user up by id.
    async fn find_user(&self, user_id: &str) -> StoreResult<Option<UserRecord>>;
    /// Looks a user up by email, case-insensitively (as
    /// [`UserStore::insert_user`] compares them).
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// All users, ordered by `created_at` then `user_id` (bytewise).
    async fn list_users(&self) -> StoreResult<Vec<UserRecord>>;
    /// Disables or re-enables a user. Disabling also deletes the user's
    /// browser sessions (even if the user was already disabled); enabling
    /// leaves sessions alone. Returns whether the user exists.
    async fn set_user_disabled(&self, user_id: &str, disabled: bool) -> StoreResult<bool>;
    /// Replaces a user's password hash (`None` removes password sign-in).
    /// Returns whether the user exists.
    async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: Option<&str>,
    ) -> StoreResult<bool>;

    /// Links an upstream identity to an existing user.
    /// [`StoreError::Conflict`] if `(issuer, subject)` is already linked;
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn insert_identity(&self, identity: &FederatedIdentityRecord) -> StoreResult<()>;
    /// Creates a user and links an upstream identity to it, atomically
    /// (auto-provisioning). Conflicts leave nothing behind: a taken user id
    /// or email ([`StoreError::Conflict`], entity `"user"`) stores no
    /// identity, and a linked `(issuer, subject)` (entity `"identity"`)
    /// stores no user. `identity.user_id` is expected to equal
    /// `user.user_id`.
    async fn insert_user_with_identity(
        &self,
        user: &UserRecord,
        identity: &FederatedIdentityRecord,
    ) -> StoreResult<()>;
    /// Looks an identity up by its unique `(issuer, subject)`.
    async fn find_identity(
        &self,
        issuer: &str,
        subject: &str,
    ) -> StoreResult<Option<FederatedIdentityRecord>>;
    /// The identities linked to a user, ordered by `issuer` then `subject`
    /// (bytewise).
    async fn list_identities(&self, user_id: &str) -> StoreResult<Vec<FederatedIdentityRecord>>;
    /// Unlinks an identity. Returns whether it existed.
    async fn delete_identity(&self, issuer: &str, subject: &str) -> StoreResult<bool>;
}

/// Authorization codes, refresh-token families and the access-token deny-list.
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a freshly issued, unconsumed authorization code.
    /// [`StoreError::Conflict`] if the hash exists;
    /// [`StoreError::NotFound`] if its client or user does not exist.
    async fn insert_code(&self, code: &AuthorizationCodeRecord) -> StoreResult<()>;
    /// Reads a code without consuming it (consumed and expired codes too).
    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> StoreResult<Option<AuthorizationCodeRecord>>;
    /// Consumes a code exactly once, atomically with everything the exchange
    /// issues:
    ///
    /// - an unexpired, unconsumed code is marked consumed at `now` and
    ///   `redemption.access_token` is recorded on it; if
    ///   `redemption.refresh_token` is set, the refresh-token family
    ///   `code.family_id` (user, client, resource and scopes copied from the
    ///   code) and its first token are created in the same transaction.
    ///   Returns [`CodeConsumption::Consumed`] with the updated record;
    /// - a consumed code (expired or not) is left unchanged and reported as
    ///   [`CodeConsumption::Reused`], so the caller can revoke what the first
    ///   exchange issued ([`GrantStore::revoke_family`]);
    /// - an unconsumed code whose `expires_at <= now` is
    ///   [`CodeConsumption::Expired`]; an unknown hash is
    ///   [`CodeConsumption::Unknown`].
    ///
    /// Of any number of concurrent callers, exactly one gets `Consumed`.
    ///
    /// Precisely: the consumed code gets `consumed_at = now`; the family gets
    /// `created_at = now`, `absolute_expires_at` from the
    /// [`FirstRefreshToken`] and `revoked_at = None`; the first token gets
    /// `issued_at = now`, the code's scopes, `used_at = None` and
    /// `access_token = Some(redemption.access_token)`. Recording the access
    /// token on the first refresh token as well as on the code matters:
    /// codes are cleaned up minutes after issue (see [`CleanupReport`]), and
    /// [`GrantStore::revoke_family`] must still find that access token
    /// afterwards. If the first token's hash exists already
    /// ([`StoreError::Conflict`], entity `"refresh_token"`) or the family id
    /// does (entity `"refresh_family"`), nothing changes: the code stays
    /// unconsumed.
    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        redemption: &CodeRedemption,
        now: Timestamp,
    ) -> StoreResult<CodeConsumption>;

    /// Reads a refresh token with its family (used, expired and revoked
    /// ones too).
    async fn find_refresh(&self, token_hash: &SecretHash) -> StoreResult<Option<RefreshGrant>>;
    /// Rotates a refresh token in one transaction:
    ///
    /// - a live token (unused, family not revoked, `idle_expires_at > now`,
    ///   family `absolute_expires_at > now`) is marked used at `now` and
    ///   `next` is stored in the same family; returns
    ///   [`Rotation::Rotated`] with the new token and its family;
    /// - a token that was already used is reuse: the whole family is revoked
    ///   (as [`GrantStore::revoke_family`] does) and [`Rotation::Reused`] is
    ///   returned;
    /// - a token of a revoked family is [`Rotation::Revoked`]; an expired one
    ///   is [`Rotation::Expired`]; an unknown hash is [`Rotation::Unknown`].
    ///
    /// Of any number of concurrent rotations of one token, exactly one gets
    /// `Rotated`; the others are reuse, so the family ends up revoked.
    ///
    /// The checks apply in this order, the first match deciding: unknown,
    /// then used (reuse wins over revoked and expired, so that replaying a
    /// rotated token is always detected, as RFC 9700 §4.14.2 asks; a family
    /// revoked already keeps its first `revoked_at`), then revoked, then
    /// expired (the token's `idle_expires_at <= now` or the family's
    /// `absolute_expires_at <= now`). The new token gets `issued_at = now`,
    /// `used_at = None` and the old token's family; the family itself is
    /// unchanged. If `next.token_hash` exists already
    /// ([`StoreError::Conflict`], entity `"refresh_token"`), nothing changes:
    /// the old token stays unused.
    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        next: &NextRefreshToken,
        now: Timestamp,
    ) -> StoreResult<Rotation>;
    /// Revokes a refresh-token family and puts every unexpired access token
    /// recorded under it (on its code and on its refresh tokens) on the
    /// deny-list, in one transaction. Returns whether the family existed and
    /// was not already revoked.
    ///
    /// Revocation sets the family's `revoked_at = now`. "Unexpired" means
    /// the access token's `expires_at > now`; expired ones are not put on the
    /// deny-list (they are rejected anyway). Revoking a family that is
    /// revoked already changes nothing.
    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> StoreResult<bool>;
    /// Revokes every family of `(user_id, client_id)` as
    /// [`GrantStore::revoke_family`] does and deletes the user's consents for
    /// that client, in one transaction (the "disconnect app" action).
    /// Returns the number of families revoked.
    ///
    /// Families revoked already are left as they are and not counted. The
    /// consents go for every resource of that client, expired or not.
    async fn revoke_for(&self, user_id: &str, client_id: &str, now: Timestamp) -> StoreResult<u64>;

    /// Puts an access token's `jti` on the deny-list until `expires_at`.
    /// Idempotent. If the `jti` is listed already, the entry keeps the later
    /// of the two expiries, so a repeated denial never shortens one.
    async fn deny_access_token(&self, jti: &str, expires_at: Timestamp) -> StoreResult<()>;
    /// Whether a `jti` is on the deny-list and its entry has not expired
    /// (`expires_at > now`).
    async fn is_access_token_denied(&self, jti: &str, now: Timestamp) -> StoreResult<bool>;
}

/// Remembered consent, per user, client and resource.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Inserts or replaces the consent for `(user_id, client_id, resource)`.
    /// Replacing overwrites every field, `last_used_at` included.
    /// [`StoreError::NotFound`] if the user or client does not exist.
    async fn upsert_consent(&self, consent: &ConsentRecord) -> StoreResult<()>;
    /// The consent for `(user_id, client_id, resource)`, if any, expired
    /// ones included.
    async fn find_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> StoreResult<Option<ConsentRecord>>;
    /// A user's consents, ordered by `granted_at` then `client_id` then
    /// `resource` (strings bytewise), expired ones included.
    async fn list_consents(&self, user_id: &str) -> StoreResult<Vec<ConsentRecord>>;
    /// Records that a consent was used at `now` (sets `last_used_at` and
    /// nothing else, expired consents included). Returns whether it exists.
    async fn touch_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes one consent. Returns whether it existed.
    async fn delete_consent(
        &self,
        user_id: &str,
        client_id: &str,
        resource: &str,
    ) -> StoreResult<bool>;
}

/// Token-signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key. [`StoreError::Conflict`] (entity `"signing_key"`) if
    /// the `kid` exists, or if the key is [`KeyState::Active`] while another
    /// active key exists (so that several instances starting at once agree
    /// on one key).
    async fn insert_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// All keys, ordered by `created_at` then `kid` (bytewise).
    async fn list_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Makes `kid` the active key in one transaction: the previously active
    /// key becomes [`KeyState::Retired`] with `retired_at = now` and
    /// `not_after = retired_not_after` (when the last token it signed
    /// expires). Returns whether `kid` exists.
    ///
    /// The activated key gets `state = Active`, `activated_at = now`,
    /// `retired_at = None` and `not_after = None` (re-activating a retired
    /// key is a roll-back). Activating the key that is active already changes
    /// nothing and returns `true`; an unknown `kid` changes nothing and
    /// returns `false`. Keys other than the two are untouched.
    async fn activate_key(
        &self,
        kid: &str,
        now: Timestamp,
        retired_not_after: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes a key. Returns whether it existed.
    async fn delete_key(&self, kid: &str) -> StoreResult<bool>;
}

/// Browser sessions and short-lived pending interactions (an authorization
/// request waiting for login, an upstream sign-in in progress).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session. [`StoreError::Conflict`] if the hash exists;
    /// [`StoreError::NotFound`] if the user does not exist.
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// Looks a session up; only if neither timeout has passed at `now`
    /// (`idle_expires_at > now` and `absolute_expires_at > now`).
    async fn find_session(
        &self,
        session_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<SessionRecord>>;
    /// Extends a live session's idle timeout (never past its absolute
    /// timeout) and records `now` as last seen. Returns whether it was live.
    ///
    /// Precisely: the session's stored `idle_expires_at` becomes the earlier
    /// of the `idle_expires_at` argument and the session's own
    /// `absolute_expires_at`, and `last_seen_at` becomes `now`; a session
    /// that is not live at `now` is left unchanged.
    async fn touch_session(
        &self,
        session_hash: &SecretHash,
        idle_expires_at: Timestamp,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Deletes a session (logout). Returns whether it existed.
    async fn delete_session(&self, session_hash: &SecretHash) -> StoreResult<bool>;
    /// Deletes all of a user's sessions. Returns how many there were.
    async fn delete_sessions_for_user(&self, user_id: &str) -> StoreResult<u64>;

    /// Stores a pending interaction. [`StoreError::Conflict`] if the hash exists.
    async fn insert_pending(&self, pending: &PendingRecord) -> StoreResult<()>;
    /// Looks a pending interaction up; only if `expires_at > now`.
    async fn find_pending(
        &self,
        pending_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PendingRecord>>;
    /// Deletes a pending interaction and returns it if it was live at `now`;
    /// of concurrent callers, at most one gets it (single use). An expired
    /// one is never returned; whether it is deleted now or later by
    /// [`Maintenance::cleanup_expired`] is up to the backend.
    async fn take_pending(
        &self,
        pending_hash: &SecretHash,
        now: Timestamp,
    ) -> StoreResult<Option<PendingRecord>>;
}

/// Housekeeping.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Checks the backend answers (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Deletes at most `batch` expired rows of each kind (see
    /// [`CleanupReport`] for what "expired" means per kind) and reports how
    /// many went. Callers repeat while [`CleanupReport::total`] is positive
    /// (see [`cleanup_until_done`]).
    ///
    /// `batch` bounds each kind separately, and which expired rows of a kind
    /// go first is up to the backend. A `batch` of 0 deletes nothing. A
    /// "live family" in [`CleanupReport`]'s definitions is one whose
    /// `absolute_expires_at > now`, revoked or not: revoked families stay
    /// until they expire, so that their tokens are still recognised.
    async fn cleanup_expired(&self, now: Timestamp, batch: u32) -> StoreResult<CleanupReport>;
}

/// The whole store: what the binary hands to the service.
pub trait Store:
    ClientStore + UserStore + GrantStore + ConsentStore + KeyStore + SessionStore + Maintenance
{
}

impl<T> Store for T where
    T: ClientStore + UserStore + GrantStore + ConsentStore + KeyStore + SessionStore + Maintenance
{
}
