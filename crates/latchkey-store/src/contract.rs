//! The backend contract suite: the store traits' semantics as executable
//! checks, run against every backend (in-memory, SQLite, Postgres).
//!
//! Each check is a `pub async fn name(store: Arc<dyn Store>)` that panics
//! with a message saying what the backend did wrong. A backend's test file
//! runs them all with one macro call:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use latchkey_store::contract::Fixture;
//! use latchkey_store::memory::MemoryStore;
//!
//! /// A fresh, empty, migrated store for each check (for a SQL backend: a
//! /// new database, kept alive by `Fixture::with_guard`).
//! async fn fixture() -> Fixture {
//!     Fixture::new(Arc::new(MemoryStore::new()))
//! }
//!
//! latchkey_store::contract_tests!(fixture);
//! # fn main() {}
//! ```
//!
//! [`contract_tests!`](crate::contract_tests) expands to one
//! `#[::tokio::test(flavor = "multi_thread", worker_threads = 4)]` per check,
//! so the crate using it needs `tokio` (features `macros` and
//! `rt-multi-thread`) as a dev-dependency, besides `latchkey-store` with the
//! `testing` feature. The tests are named after the checks; invoke the macro
//! inside a module per backend (`mod sqlite { … }`) to run several backends
//! in one test binary. A backend can also call one check directly, and
//! [`CHECKS`] lists every check name.
//!
//! Invariants of the checks:
//!
//! - Time never comes from the clock: every instant is a whole number of
//!   seconds from one fixed base (`at`), so boundaries are exact.
//! - Every check uses identifiers and secrets prefixed by its own name
//!   (`Names`), so checks cannot collide even on a shared database.
//! - A check asserts on what the traits promise (see the crate docs and
//!   each method's rustdoc), never on backend internals.
//!
//! Adding a check is one function in a submodule plus one line in the list
//! in `__latchkey_store_contract_checks!`; the crate's own test fails if a
//! `pub async fn` is missing from the list.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cleanup;
mod clients;
mod codes;
mod concurrency;
mod consents;
mod keys;
mod refresh;
mod revocation;
mod sessions;
mod timestamps;
mod users;

pub use cleanup::*;
pub use clients::*;
pub use codes::*;
pub use concurrency::*;
pub use consents::*;
pub use keys::*;
pub use refresh::*;
pub use revocation::*;
pub use sessions::*;
pub use timestamps::*;
pub use users::*;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use crate::{
    AuthorizationCodeRecord, ClientOrigin, ClientRecord, CodeConsumption, CodeRedemption,
    ConsentRecord, FirstRefreshToken, IssuedAccessToken, KeyState, NextRefreshToken, PendingRecord,
    RefreshGrant, Rotation, SecretHash, SessionRecord, SigningKeyRecord, Store, StoreError,
    StoreResult, Timestamp, UserRecord,
};

/// What a backend's test hands to each contract check: a fresh, empty,
/// migrated store, and whatever must stay alive while the check runs.
pub struct Fixture {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// Kept until the fixture is dropped, after `store` (fields drop in
    /// declaration order): for example a per-test Postgres database that its
    /// `Drop` removes once the store's pool is gone.
    guard: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture for a store that needs nothing else kept alive.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, guard: None }
    }

    /// A fixture that also keeps `guard` alive until the check has finished.
    pub fn with_guard(store: Arc<dyn Store>, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            guard: Some(Box::new(guard)),
        }
    }
}

impl fmt::Debug for Fixture {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Fixture")
            .field("has_guard", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

/// Every check's name, in the order the macro expands them.
pub const CHECKS: &[&str] = crate::__latchkey_store_contract_checks!(names);

/// The one list of checks. Expands `__latchkey_store_contract_expand!` with
/// the given mode and every check name; not for direct use.
#[doc(hidden)]
#[macro_export]
macro_rules! __latchkey_store_contract_checks {
    ($($mode:tt)*) => {
        $crate::__latchkey_store_contract_expand! {
            [$($mode)*]
            ping_succeeds
            clients_insert_find_and_conflict
            clients_round_trip_every_field
            clients_list_in_order
            clients_upsert_inserts_replaces_and_keeps_grants
            clients_delete_cascades
            users_insert_find_and_conflicts
            users_find_by_email_ignores_case
            users_list_in_order
            users_disable_deletes_only_their_sessions
            users_set_password_hash
            identities_insert_find_list_delete
            users_insert_with_identity_is_atomic
            codes_insert_find_and_conflict
            codes_consume_exactly_once
            codes_expire_at_the_boundary
            codes_consume_creates_the_refresh_family
            codes_consume_conflict_changes_nothing
            refresh_find_returns_token_and_family
            refresh_rotate_live_token
            refresh_reuse_revokes_the_family
            refresh_rotate_in_revoked_family
            refresh_expiry_boundaries
            refresh_rotate_conflict_changes_nothing
            revoke_family_denies_recorded_access_tokens
            revoke_for_user_and_client
            deny_list_semantics
            consents_upsert_find_list_touch_delete
            keys_insert_list_and_conflicts
            keys_activate_rotates_the_active_key
            keys_delete
            sessions_insert_find_and_expiry
            sessions_touch
            sessions_delete
            pending_insert_find_take
            concurrent_code_consumption
            concurrent_refresh_rotation
            concurrent_pending_take
            concurrent_active_key_inserts
            cleanup_deletes_expired_rows_only
            cleanup_batch_bounds_each_kind
            cleanup_until_done_drains_everything
            timestamps_are_truncated_to_utc_seconds
        }
    };
}

/// Expands the check list in one mode: `[names]` gives a `&[&str]` of the
/// names, `[tests factory]` one `#[tokio::test]` per check; not for direct
/// use.
#[doc(hidden)]
#[macro_export]
macro_rules! __latchkey_store_contract_expand {
    ([names] $($check:ident)*) => {
        &[$(::core::stringify!($check)),*]
    };
    ([tests $factory:path] $($check:ident)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let fixture: $crate::contract::Fixture = $factory().await;
                $crate::contract::$check(::std::sync::Arc::clone(&fixture.store)).await;
                // Explicitly last: the guard (a per-test database, say) must
                // outlive the check.
                ::core::mem::drop(fixture);
            }
        )*
    };
}

/// Expands to one `#[::tokio::test(flavor = "multi_thread", worker_threads =
/// 4)]` per contract check, each calling `$factory().await` (an
/// `async fn() -> latchkey_store::contract::Fixture` giving a fresh, empty,
/// migrated store) and then the check.
///
/// The calling crate needs `tokio` with the `macros` and `rt-multi-thread`
/// features (usually as a dev-dependency) and `latchkey-store` with the
/// `testing` feature.
///
/// ```no_run
/// async fn fixture() -> latchkey_store::contract::Fixture {
///     latchkey_store::contract::Fixture::new(std::sync::Arc::new(
///         latchkey_store::memory::MemoryStore::new(),
///     ))
/// }
///
/// // In a module per backend, so several backends share one test binary.
/// mod memory {
///     latchkey_store::contract_tests!(super::fixture);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! contract_tests {
    ($factory:path) => {
        $crate::__latchkey_store_contract_checks! { tests $factory }
    };
}

/// The base instant every check counts from: 2027-01-15T08:00:00Z.
const BASE_UNIX_SECONDS: i64 = 1_800_000_000;

/// The instant `seconds` after (or before, if negative) the base instant.
fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_timestamp(BASE_UNIX_SECONDS + seconds).unwrap()
}

/// Identifiers and secrets unique to one check.
struct Names {
    check: &'static str,
}

impl Names {
    fn new(check: &'static str) -> Self {
        Self { check }
    }

    /// An opaque identifier: the check's name, a slash and `label`.
    fn id(&self, label: &str) -> String {
        format!("{}/{label}", self.check)
    }

    /// The hash of a secret that only this check uses.
    fn secret(&self, label: &str) -> SecretHash {
        SecretHash::of(&format!("secret:{}/{label}", self.check))
    }

    /// An email address unique to this check.
    fn email(&self, local: &str) -> String {
        format!("{local}@{}.example.org", self.check.replace('_', "-"))
    }
}

fn scopes(tokens: &[&str]) -> Vec<String> {
    tokens.iter().map(|token| (*token).to_owned()).collect()
}

fn client(client_id: &str, created_at: Timestamp) -> ClientRecord {
    ClientRecord {
        client_id: client_id.to_owned(),
        secret_hash: None,
        origin: ClientOrigin::Dynamic,
        metadata: serde_json::json!({
            "client_name": client_id,
            "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "token_endpoint_auth_method": "none",
        }),
        created_at,
        expires_at: None,
    }
}

fn user(user_id: &str, email: &str, created_at: Timestamp) -> UserRecord {
    UserRecord {
        user_id: user_id.to_owned(),
        email: email.to_owned(),
        password_hash: Some(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
        ),
        disabled: false,
        created_at,
    }
}

/// An unconsumed code issued at `at(0)` that expires at `expires_at`.
fn code(
    code_hash: SecretHash,
    client_id: &str,
    user_id: &str,
    family_id: &str,
    expires_at: Timestamp,
) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        code_hash,
        client_id: client_id.to_owned(),
        user_id: user_id.to_owned(),
        redirect_uri: "http://127.0.0.1:33418/callback?from=contract".to_owned(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        scopes: scopes(&["mcp:read", "mcp:write"]),
        resource: Some("https://mcp.example.com/mcp".to_owned()),
        family_id: family_id.to_owned(),
        auth_time: at(-30),
        issued_at: at(0),
        expires_at,
        consumed_at: None,
        access_token: None,
    }
}

fn access_token(jti: &str, expires_at: Timestamp) -> IssuedAccessToken {
    IssuedAccessToken {
        jti: jti.to_owned(),
        expires_at,
    }
}

fn first_refresh(
    token_hash: SecretHash,
    idle_expires_at: Timestamp,
    absolute_expires_at: Timestamp,
) -> FirstRefreshToken {
    FirstRefreshToken {
        token_hash,
        idle_expires_at,
        absolute_expires_at,
    }
}

fn next_refresh(
    token_hash: SecretHash,
    token_scopes: &[&str],
    idle_expires_at: Timestamp,
    access: Option<IssuedAccessToken>,
) -> NextRefreshToken {
    NextRefreshToken {
        token_hash,
        scopes: scopes(token_scopes),
        idle_expires_at,
        access_token: access,
    }
}

fn consent(
    user_id: &str,
    client_id: &str,
    resource: &str,
    granted_at: Timestamp,
    expires_at: Timestamp,
) -> ConsentRecord {
    ConsentRecord {
        user_id: user_id.to_owned(),
        client_id: client_id.to_owned(),
        resource: resource.to_owned(),
        scopes: scopes(&["mcp:read"]),
        granted_at,
        expires_at,
        last_used_at: None,
    }
}

fn signing_key(kid: &str, state: KeyState, created_at: Timestamp) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".to_owned(),
        private_key_encrypted: vec![0, 1, 2, 3, 254, 255, 0, 42],
        public_jwk: format!(
            r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}}"#
        ),
        state,
        created_at,
        activated_at: (state == KeyState::Active).then_some(created_at),
        retired_at: None,
        not_after: None,
    }
}

fn session(
    session_hash: SecretHash,
    user_id: &str,
    idle_expires_at: Timestamp,
    absolute_expires_at: Timestamp,
) -> SessionRecord {
    SessionRecord {
        session_hash,
        user_id: user_id.to_owned(),
        auth_time: at(-60),
        created_at: at(-60),
        last_seen_at: at(-10),
        idle_expires_at,
        absolute_expires_at,
    }
}

fn pending(pending_hash: SecretHash, kind: &str, expires_at: Timestamp) -> PendingRecord {
    PendingRecord {
        pending_hash,
        kind: kind.to_owned(),
        payload: r#"{"client_id":"c","state":"xyz","scope":["mcp:read"]}"#.to_owned(),
        expires_at,
    }
}

/// Stores a client and a user for checks that need a grant's parents.
async fn seed_client_and_user(store: &dyn Store, names: &Names) -> (ClientRecord, UserRecord) {
    let client = client(&names.id("client"), at(-1000));
    let user = user(&names.id("user"), &names.email("user"), at(-1000));
    store
        .insert_client(&client)
        .await
        .expect("insert_client of a new client failed");
    store
        .insert_user(&user)
        .await
        .expect("insert_user of a new user failed");
    (client, user)
}

/// A code exchanged for an access token and a first refresh token.
struct Grant {
    /// The code as stored after the exchange.
    code: AuthorizationCodeRecord,
    /// The hash of the first refresh token.
    refresh_hash: SecretHash,
    /// The access token the exchange issued.
    access_token: IssuedAccessToken,
}

/// Issues a code (expiring at `at(60)`) for `client_id`/`user_id` and
/// consumes it at `at(1)`, issuing an access token that expires at
/// `at(3600)` and a first refresh token (idle `at(86_400)`, absolute
/// `at(2_592_000)`).
async fn seed_grant(
    store: &dyn Store,
    names: &Names,
    label: &str,
    client_id: &str,
    user_id: &str,
) -> Grant {
    seed_grant_expiring(
        store,
        names,
        label,
        client_id,
        user_id,
        at(86_400),
        at(2_592_000),
    )
    .await
}

/// [`seed_grant`] with the first refresh token's idle expiry and the
/// family's absolute expiry chosen by the caller.
async fn seed_grant_expiring(
    store: &dyn Store,
    names: &Names,
    label: &str,
    client_id: &str,
    user_id: &str,
    idle_expires_at: Timestamp,
    absolute_expires_at: Timestamp,
) -> Grant {
    let issued = code(
        names.secret(&format!("{label}/code")),
        client_id,
        user_id,
        &names.id(&format!("{label}/family")),
        at(60),
    );
    store
        .insert_code(&issued)
        .await
        .expect("insert_code of a new code failed");
    let refresh_hash = names.secret(&format!("{label}/refresh-1"));
    let access = access_token(&names.id(&format!("{label}/jti-1")), at(3600));
    let redemption = CodeRedemption {
        access_token: access.clone(),
        refresh_token: Some(first_refresh(
            refresh_hash,
            idle_expires_at,
            absolute_expires_at,
        )),
    };
    let consumed = store
        .consume_code(&issued.code_hash, &redemption, at(1))
        .await
        .expect("consume_code of a live code failed");
    let CodeConsumption::Consumed(code) = consumed else {
        panic!("consume_code of a live, unconsumed code returned {consumed:?}, expected Consumed");
    };
    Grant {
        code,
        refresh_hash,
        access_token: access,
    }
}

/// Rotates a live refresh token and returns the new grant, failing the
/// check if the backend does not report `Rotated`.
async fn rotate_live(
    store: &dyn Store,
    old_hash: &SecretHash,
    next: &NextRefreshToken,
    now: Timestamp,
) -> RefreshGrant {
    let rotation = store
        .rotate_refresh(old_hash, next, now)
        .await
        .expect("rotate_refresh of a live token failed");
    let Rotation::Rotated(grant) = rotation else {
        panic!("rotate_refresh of a live token returned {rotation:?}, expected Rotated");
    };
    grant
}

/// Reads a refresh token that must exist, with its family.
async fn refresh_of(store: &dyn Store, token_hash: &SecretHash) -> RefreshGrant {
    store
        .find_refresh(token_hash)
        .await
        .expect("find_refresh failed")
        .expect("find_refresh did not find a refresh token that must exist")
}

/// Asserts that `result` is [`StoreError::Conflict`] naming `entity`.
#[track_caller]
fn assert_conflict<T: fmt::Debug>(result: StoreResult<T>, entity: &str, what: &str) {
    match result {
        Err(StoreError::Conflict { entity: reported }) => assert_eq!(
            reported, entity,
            "{what}: Conflict is right but should name entity {entity:?}, not {reported:?}"
        ),
        other => panic!("{what}: expected Err(Conflict {{ entity: {entity:?} }}), got {other:?}"),
    }
}

/// Asserts that `result` is [`StoreError::NotFound`] (any entity: SQLite
/// cannot say which foreign key failed).
#[track_caller]
fn assert_not_found<T: fmt::Debug>(result: StoreResult<T>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "{what}: expected Err(NotFound {{ .. }}), got {result:?}"
    );
}
