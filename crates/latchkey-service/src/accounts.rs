//! Local accounts: argon2id password hashing, the operator's user commands
//! ([`UserAdmin`], including linking upstream identities by hand), and
//! sign-in ([`Service::login`]) with its rate limits.
//!
//! Passwords:
//! - argon2id with the OWASP parameters (m = 19456 KiB, t = 2, p = 1), a
//!   16-byte salt from `ring`'s `SystemRandom`, stored as a PHC string
//!   (`$argon2id$v=19$m=19456,t=2,p=1$…`). Hashing and verification run in
//!   `tokio::task::spawn_blocking`: each takes tens of milliseconds of CPU
//!   and must not stall the async workers;
//! - at least [`MIN_PASSWORD_CHARS`] characters (NIST SP 800-63B §5.1.1.2)
//!   and at most [`MAX_PASSWORD_BYTES`] bytes, so that a huge password
//!   cannot be used to burn CPU; no composition rules.
//!
//! Sign-in, in order:
//! 1. the per-account (normalized email) and per-address failure limits
//!    are checked without counting; when either is exhausted the answer is
//!    [`LoginError::Locked`] with the time to wait, and the password is not
//!    even looked at (so a locked account cannot be used as a guessing
//!    oracle);
//! 2. the user is looked up by email; the password is verified against the
//!    stored hash, or against [`DUMMY_PASSWORD_HASH`] when there is no such
//!    user or no password, so unknown emails take as long as wrong
//!    passwords;
//! 3. an unknown email, a wrong password, a disabled account and an
//!    account without a password all give the same
//!    [`LoginError::InvalidCredentials`]; the failure is counted against
//!    both the account and the address;
//! 4. success clears the account's failures and starts a new session
//!    ([`crate::sessions`]): a new session id on every sign-in, so a
//!    session id planted before sign-in is worthless (session fixation).
//!
//! Emails are trimmed, must contain exactly one `@` with something on both
//! sides, no whitespace or control characters, and at most
//! [`MAX_EMAIL_LEN`] characters; uniqueness is case-insensitive (the store
//! enforces it). Passwords are [`SecretString`]s and never logged.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use latchkey_protocol::metadata::validate_issuer;
use latchkey_protocol::secret::SecretString;
use latchkey_store::{FederatedIdentityRecord, Store, StoreError, UserRecord};
use ring::rand::SystemRandom;

use crate::Service;
use crate::clock::Clock;
use crate::error::FlowError;
use crate::ratelimit::{Decision, address_key};
use crate::secrets::{generate_identifier, random_bytes};
use crate::sessions::NewSession;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// The longest email accepted, in characters (RFC 5321 §4.5.3.1.3 path).
pub const MAX_EMAIL_LEN: usize = 254;

/// The message every failed sign-in shows, whatever the reason.
pub const INVALID_CREDENTIALS: &str = "The email or password is incorrect.";

/// A well-formed argon2id hash with the same parameters as real hashes and
/// an output drawn at random (so no known password produces it): verifying
/// against it costs what a real verification costs, so an unknown email is
/// not faster to refuse than a wrong password.
pub const DUMMY_PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
    bGF0Y2hrZXktZHVtbXk$C6+/dVIeyvg/Jg+nK8MpyZszSRrHf2wxYUtrbUAu25E";

/// Why an account could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The email is not acceptable.
    #[error("invalid email: {0}")]
    InvalidEmail(&'static str),
    /// The password is not acceptable.
    #[error("invalid password: {0}")]
    InvalidPassword(String),
    /// Another user has this email (compared case-insensitively).
    #[error("a user with this email exists already")]
    EmailTaken,
    /// No user has this id or email.
    #[error("no such user")]
    NotFound,
    /// The issuer or subject of an upstream identity is not acceptable.
    #[error("invalid identity: {0}")]
    InvalidIdentity(String),
    /// The upstream identity is linked to a user already (perhaps this one).
    #[error("the identity is already linked to the user {email} ({user_id})")]
    IdentityTaken {
        /// The user it is linked to.
        user_id: String,
        /// That user's email.
        email: String,
    },
    /// The user has no such linked identity.
    #[error("{0}")]
    IdentityNotLinked(String),
    /// Storage or hashing failed.
    #[error("{0}")]
    Flow(#[from] FlowError),
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> AccountError {
        AccountError::Flow(FlowError::from(error))
    }
}

/// Checks and trims an email address (rules in the module docs).
///
/// ```
/// use latchkey_service::accounts::normalize_email;
///
/// assert_eq!(normalize_email("  Ada@Example.org ").unwrap(), "Ada@Example.org");
/// assert!(normalize_email("ada").is_err());
/// assert!(normalize_email("a@b@c").is_err());
/// assert!(normalize_email("a b@c").is_err());
/// ```
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim();
    if email.is_empty() {
        return Err(AccountError::InvalidEmail("the email is empty"));
    }
    if email.chars().count() > MAX_EMAIL_LEN {
        return Err(AccountError::InvalidEmail("the email is too long"));
    }
    if email
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err(AccountError::InvalidEmail(
            "the email must not contain spaces or control characters",
        ));
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email.to_owned())
        }
        _ => Err(AccountError::InvalidEmail(
            "the email must contain exactly one @ with text on both sides",
        )),
    }
}

/// The key failed sign-ins are counted under: the email, trimmed and
/// lowercased as the store compares them.
pub fn account_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks a new password against the policy (module docs).
pub fn check_password_policy(password: &SecretString) -> Result<(), AccountError> {
    let value = password.expose();
    if value.len() > MAX_PASSWORD_BYTES {
        return Err(AccountError::InvalidPassword(format!(
            "the password must be at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if value.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::InvalidPassword(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// The argon2id instance with the OWASP parameters.
fn argon2() -> Result<Argon2<'static>, FlowError> {
    let params = Params::new(
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        Params::DEFAULT_P_COST,
        None,
    )
    .map_err(|error| FlowError::Internal(format!("argon2 parameters: {error}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password into a PHC string, off the async workers.
pub async fn hash_password(
    random: &SystemRandom,
    password: &SecretString,
) -> Result<String, FlowError> {
    let salt: [u8; 16] = random_bytes(random)?;
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        argon2()?
            .hash_password_with_salt(password.expose().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| FlowError::Internal(format!("password hashing failed: {error}")))
    })
    .await
    .map_err(|error| FlowError::Internal(format!("the password hashing task failed: {error}")))?
}

/// Verifies a password against a PHC string, off the async workers.
/// `false` for a wrong password; a stored hash that does not parse is
/// logged and counts as wrong.
pub async fn verify_password(password: &SecretString, phc: &str) -> Result<bool, FlowError> {
    let password = password.clone();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || {
        match argon2()?.verify_password(password.expose().as_bytes(), phc.as_str()) {
            Ok(()) => Ok(true),
            Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
            Err(error) => {
                tracing::warn!(%error, "a stored password hash does not verify; treating it as wrong");
                Ok(false)
            }
        }
    })
    .await
    .map_err(|error| FlowError::Internal(format!("the password verification task failed: {error}")))?
}

/// The operator's view of the users (`latchkey user …`). Needs only the
/// store and a clock, not the server secret.
#[derive(Clone)]
pub struct UserAdmin {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    random: SystemRandom,
}

impl std::fmt::Debug for UserAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAdmin").finish_non_exhaustive()
    }
}

impl UserAdmin {
    /// User administration on `store`.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> UserAdmin {
        UserAdmin {
            store,
            clock,
            random: SystemRandom::new(),
        }
    }

    /// Creates an enabled user with a password.
    pub async fn add(
        &self,
        email: &str,
        password: &SecretString,
    ) -> Result<UserRecord, AccountError> {
        let email = normalize_email(email)?;
        check_password_policy(password)?;
        let password_hash = hash_password(&self.random, password).await?;
        let now = self.clock.now();
        let user = UserRecord {
            user_id: generate_identifier(&self.random)?,
            email,
            password_hash: Some(password_hash),
            disabled: false,
            created_at: now.replace_nanosecond(0).unwrap_or(now),
        };
        match self.store.insert_user(&user).await {
            Ok(()) => Ok(user),
            Err(StoreError::Conflict { .. }) => Err(AccountError::EmailTaken),
            Err(other) => Err(other.into()),
        }
    }

    /// Every user, oldest first.
    pub async fn list(&self) -> Result<Vec<UserRecord>, AccountError> {
        Ok(self.store.list_users().await?)
    }

    /// Whether any user exists (for the first-run hint of `serve`).
    pub async fn any(&self) -> Result<bool, AccountError> {
        Ok(!self.store.list_users().await?.is_empty())
    }

    /// The user with this id, or else this email.
    pub async fn find(&self, email_or_id: &str) -> Result<UserRecord, AccountError> {
        if let Some(user) = self.store.find_user(email_or_id.trim()).await? {
            return Ok(user);
        }
        self.store
            .find_user_by_email(email_or_id.trim())
            .await?
            .ok_or(AccountError::NotFound)
    }

    /// Disables (signing out everywhere: the store deletes the sessions) or
    /// re-enables a user. Returns the user.
    pub async fn set_disabled(
        &self,
        email_or_id: &str,
        disabled: bool,
    ) -> Result<UserRecord, AccountError> {
        let user = self.find(email_or_id).await?;
        if !self
            .store
            .set_user_disabled(&user.user_id, disabled)
            .await?
        {
            return Err(AccountError::NotFound);
        }
        Ok(UserRecord { disabled, ..user })
    }

    /// Replaces a user's password and signs the user out everywhere.
    pub async fn set_password(
        &self,
        email_or_id: &str,
        password: &SecretString,
    ) -> Result<UserRecord, AccountError> {
        check_password_policy(password)?;
        let user = self.find(email_or_id).await?;
        let password_hash = hash_password(&self.random, password).await?;
        if !self
            .store
            .set_password_hash(&user.user_id, Some(&password_hash))
            .await?
        {
            return Err(AccountError::NotFound);
        }
        // A new password ends every session made with the old one.
        self.store.delete_sessions_for_user(&user.user_id).await?;
        Ok(UserRecord {
            password_hash: Some(password_hash),
            ..user
        })
    }
}

/// The longest upstream subject accepted (OpenID Connect Core §2: `sub`
/// is at most 255 ASCII characters).
pub const MAX_SUBJECT_LEN: usize = 255;

/// Checks an upstream identity's issuer and subject as an operator typed
/// them. Both are kept exactly (ID tokens are compared byte-for-byte), so
/// surrounding whitespace is refused rather than trimmed.
fn check_identity(issuer: &str, subject: &str) -> Result<(), AccountError> {
    validate_issuer(issuer).map_err(|error| {
        AccountError::InvalidIdentity(format!(
            "the issuer {issuer:?} is not valid: {error} (it must be exactly the `iss` of the \
             provider's ID tokens: https://, or http:// on loopback)"
        ))
    })?;
    check_subject(subject)
}

/// Checks a subject (see [`check_identity`]).
fn check_subject(subject: &str) -> Result<(), AccountError> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
        return Err(AccountError::InvalidIdentity(format!(
            "the subject must have 1 to {MAX_SUBJECT_LEN} bytes"
        )));
    }
    if subject.trim() != subject || subject.chars().any(char::is_control) {
        return Err(AccountError::InvalidIdentity(
            "the subject must not have surrounding whitespace or control characters".to_owned(),
        ));
    }
    Ok(())
}

/// Linking upstream identities by hand (`latchkey user link|unlink`).
impl UserAdmin {
    /// The upstream identities linked to a user, ordered by issuer then
    /// subject.
    pub async fn identities(
        &self,
        user_id: &str,
    ) -> Result<Vec<FederatedIdentityRecord>, AccountError> {
        Ok(self.store.list_identities(user_id).await?)
    }

    /// Links the upstream identity `(issuer, subject)` to a user, so that
    /// signing in through that provider signs in as this user. Refused,
    /// with nothing linked, when the identity is linked already: to
    /// another user (named in the error) or to this one.
    pub async fn link_identity(
        &self,
        email_or_id: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<(UserRecord, FederatedIdentityRecord), AccountError> {
        check_identity(issuer, subject)?;
        let user = self.find(email_or_id).await?;
        if let Some(taken) = self.identity_owner(issuer, subject).await? {
            return Err(taken);
        }
        let now = self.clock.now();
        let identity = FederatedIdentityRecord {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            user_id: user.user_id.clone(),
            // Only what the provider reports is recorded here; an operator
            // link has no upstream email.
            email: None,
            created_at: now.replace_nanosecond(0).unwrap_or(now),
        };
        match self.store.insert_identity(&identity).await {
            Ok(()) => Ok((user, identity)),
            // Linked by someone else between the check and the insert.
            Err(StoreError::Conflict { .. }) => Err(self
                .identity_owner(issuer, subject)
                .await?
                .unwrap_or_else(|| {
                    AccountError::InvalidIdentity("the identity is linked already".to_owned())
                })),
            Err(StoreError::NotFound { .. }) => Err(AccountError::NotFound),
            Err(other) => Err(other.into()),
        }
    }

    /// Unlinks a user's identities at `issuer`: the one with `subject`, or
    /// every one when no subject is given. Returns the user and what was
    /// unlinked; an identity of another user is never touched.
    pub async fn unlink_identity(
        &self,
        email_or_id: &str,
        issuer: &str,
        subject: Option<&str>,
    ) -> Result<(UserRecord, Vec<FederatedIdentityRecord>), AccountError> {
        if let Some(subject) = subject {
            check_subject(subject)?;
        }
        let user = self.find(email_or_id).await?;
        let matching: Vec<FederatedIdentityRecord> = self
            .store
            .list_identities(&user.user_id)
            .await?
            .into_iter()
            .filter(|identity| identity.issuer == issuer)
            .filter(|identity| subject.is_none_or(|subject| identity.subject == subject))
            .collect();
        if matching.is_empty() {
            let what = match subject {
                Some(subject) => format!("({issuer}, {subject})"),
                None => format!("at {issuer}"),
            };
            let mut message = format!("{} has no linked identity {what}", user.email);
            if let Some(subject) = subject
                && let Some(AccountError::IdentityTaken { user_id, email }) =
                    self.identity_owner(issuer, subject).await?
            {
                message.push_str(&format!("; it is linked to {email} ({user_id})"));
            }
            return Err(AccountError::IdentityNotLinked(message));
        }
        let mut unlinked = Vec::with_capacity(matching.len());
        for identity in matching {
            if self
                .store
                .delete_identity(&identity.issuer, &identity.subject)
                .await?
            {
                unlinked.push(identity);
            }
        }
        Ok((user, unlinked))
    }

    /// [`AccountError::IdentityTaken`] naming the user `(issuer, subject)`
    /// is linked to, if it is.
    async fn identity_owner(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<AccountError>, AccountError> {
        let Some(existing) = self.store.find_identity(issuer, subject).await? else {
            return Ok(None);
        };
        let email = self
            .store
            .find_user(&existing.user_id)
            .await?
            .map_or_else(|| "(deleted user)".to_owned(), |owner| owner.email);
        Ok(Some(AccountError::IdentityTaken {
            user_id: existing.user_id,
            email,
        }))
    }
}

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown email, wrong password, disabled account or no password: one
    /// answer for all ([`INVALID_CREDENTIALS`]).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many failures for this account or address.
    #[error("too many failed sign-ins; retry in {} seconds", retry_after.as_secs())]
    Locked {
        /// When a retry may be accepted.
        retry_after: Duration,
    },
    /// Storage or hashing failed.
    #[error("{0}")]
    Flow(#[from] FlowError),
}

/// A successful sign-in.
#[derive(Debug)]
pub struct LoginSuccess {
    /// Who signed in.
    pub user_id: String,
    /// The new session (its cookie value goes to the browser).
    pub session: NewSession,
}

/// "Try again in 12 minutes." for a lock-out, rounded up to whole minutes
/// (seconds under one minute).
///
/// ```
/// use std::time::Duration;
/// use latchkey_service::accounts::retry_message;
///
/// assert_eq!(retry_message(Duration::from_secs(691)), "Too many attempts. Try again in 12 minutes.");
/// assert_eq!(retry_message(Duration::from_secs(60)), "Too many attempts. Try again in 1 minute.");
/// assert_eq!(retry_message(Duration::from_secs(5)), "Too many attempts. Try again in 5 seconds.");
/// ```
pub fn retry_message(retry_after: Duration) -> String {
    let seconds = retry_after.as_secs().max(1);
    if seconds < 60 {
        let unit = if seconds == 1 { "second" } else { "seconds" };
        return format!("Too many attempts. Try again in {seconds} {unit}.");
    }
    let minutes = seconds.div_ceil(60);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many attempts. Try again in {minutes} {unit}.")
}

impl Service {
    /// Signs a user in with email and password from `address` (rules in
    /// the module docs) and starts a new session.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &SecretString,
        address: IpAddr,
    ) -> Result<LoginSuccess, LoginError> {
        let now = self.now();
        let account = account_key(email);
        let address = address_key(address);
        let inner = &self.inner;
        let mut wait: Option<Duration> = None;
        if let Some(limiter) = &inner.login_account_limiter
            && let Decision::Limited { retry_after } = limiter.peek(&account, now)
        {
            wait = Some(retry_after);
        }
        if let Some(limiter) = &inner.login_address_limiter
            && let Decision::Limited { retry_after } = limiter.peek(&address, now)
        {
            wait = Some(wait.map_or(retry_after, |other| other.max(retry_after)));
        }
        if let Some(retry_after) = wait {
            tracing::info!("sign-in refused: too many failures for this account or address");
            return Err(LoginError::Locked { retry_after });
        }

        let user = if account.is_empty() || password.expose().len() > MAX_PASSWORD_BYTES {
            None
        } else {
            inner
                .store
                .find_user_by_email(email.trim())
                .await
                .map_err(FlowError::from)?
        };
        let stored_hash = user
            .as_ref()
            .and_then(|user| user.password_hash.as_deref())
            .unwrap_or(DUMMY_PASSWORD_HASH);
        let matches = verify_password(password, stored_hash).await?;
        let accepted = match &user {
            Some(user) => matches && !user.disabled && user.password_hash.is_some(),
            None => false,
        };
        let Some(user) = user.filter(|_| accepted) else {
            if let Some(limiter) = &inner.login_account_limiter {
                limiter.record(&account, now);
            }
            if let Some(limiter) = &inner.login_address_limiter {
                limiter.record(&address, now);
            }
            tracing::info!("sign-in failed");
            return Err(LoginError::InvalidCredentials);
        };
        if let Some(limiter) = &inner.login_account_limiter {
            limiter.forget(&account);
        }
        let session = self.create_session(&user.user_id, now).await?;
        tracing::info!(user_id = %user.user_id, "signed in");
        Ok(LoginSuccess {
            user_id: user.user_id,
            session,
        })
    }

    /// The user with this id, if it exists and is enabled.
    pub async fn enabled_user(&self, user_id: &str) -> Result<Option<UserRecord>, FlowError> {
        Ok(self
            .inner
            .store
            .find_user(user_id)
            .await?
            .filter(|user| !user.disabled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateLimitSettings;
    use crate::testing::Fixture;
    use std::net::Ipv4Addr;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const ELSEWHERE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

    fn secret(value: &str) -> SecretString {
        SecretString::new(value)
    }

    fn admin(fixture: &Fixture) -> UserAdmin {
        UserAdmin::new(Arc::clone(&fixture.store), fixture.clock.clone())
    }

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let random = SystemRandom::new();
        let hash = hash_password(&random, &secret("correct horse"))
            .await
            .unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify_password(&secret("correct horse"), &hash)
                .await
                .unwrap()
        );
        assert!(
            !verify_password(&secret("correct horsE"), &hash)
                .await
                .unwrap()
        );
        let again = hash_password(&random, &secret("correct horse"))
            .await
            .unwrap();
        assert_ne!(hash, again, "every hash has its own salt");
        assert!(
            !verify_password(&secret("x"), "not a phc string")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_dummy_hash_has_the_current_parameters_and_matches_nothing_easy() {
        assert!(DUMMY_PASSWORD_HASH.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        for guess in ["", "password", "latchkey", "dummy"] {
            assert!(
                !verify_password(&secret(guess), DUMMY_PASSWORD_HASH)
                    .await
                    .unwrap()
            );
        }
    }

    #[test]
    fn emails_and_passwords_follow_the_policy() {
        assert_eq!(normalize_email(" a@b ").unwrap(), "a@b");
        for bad in ["", "   ", "@b", "a@", "ab", "a@b@c", "a\tb@c", "a@b\u{7}"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "x".repeat(MAX_EMAIL_LEN));
        assert!(normalize_email(&long).is_err());
        assert_eq!(account_key(" Élodie@Example.org "), "élodie@example.org");
        assert!(check_password_policy(&secret("1234567")).is_err());
        assert!(check_password_policy(&secret("12345678")).is_ok());
        // Characters, not bytes: eight accented letters are enough.
        assert!(check_password_policy(&secret("éééééééé")).is_ok());
        assert!(check_password_policy(&secret(&"x".repeat(MAX_PASSWORD_BYTES + 1))).is_err());
    }

    #[tokio::test]
    async fn the_operator_adds_lists_disables_and_changes_passwords() {
        let fixture = Fixture::new().await;
        let admin = admin(&fixture);
        assert!(!admin.any().await.unwrap());
        let user = admin
            .add(" Ada@Example.org", &secret("first password"))
            .await
            .unwrap();
        assert_eq!(user.email, "Ada@Example.org");
        assert!(admin.any().await.unwrap());
        assert!(matches!(
            admin.add("ada@example.ORG", &secret("another one")).await,
            Err(AccountError::EmailTaken)
        ));
        assert!(matches!(
            admin.add("bob@example.org", &secret("short")).await,
            Err(AccountError::InvalidPassword(_))
        ));
        assert_eq!(
            admin.find("ada@example.org").await.unwrap().user_id,
            user.user_id
        );
        assert_eq!(admin.find(&user.user_id).await.unwrap().email, user.email);
        assert!(matches!(
            admin.find("nobody@example.org").await,
            Err(AccountError::NotFound)
        ));

        let service = &fixture.service;
        service
            .login("ada@example.org", &secret("first password"), HOME)
            .await
            .unwrap();
        let disabled = admin.set_disabled("ada@example.org", true).await.unwrap();
        assert!(disabled.disabled);
        assert!(matches!(
            service
                .login("ada@example.org", &secret("first password"), HOME)
                .await,
            Err(LoginError::InvalidCredentials)
        ));
        admin.set_disabled(&user.user_id, false).await.unwrap();
        let session = service
            .login("ada@example.org", &secret("first password"), HOME)
            .await
            .unwrap()
            .session;
        admin
            .set_password(&user.user_id, &secret("second password"))
            .await
            .unwrap();
        assert!(
            service
                .session(session.cookie_value.expose())
                .await
                .unwrap()
                .is_none(),
            "a new password signs the user out"
        );
        assert!(matches!(
            service
                .login("ada@example.org", &secret("first password"), HOME)
                .await,
            Err(LoginError::InvalidCredentials)
        ));
        service
            .login("ADA@example.org ", &secret("second password"), HOME)
            .await
            .unwrap();
        assert_eq!(admin.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn failures_lock_the_account_and_say_when_to_retry() {
        let fixture = Fixture::with(|config| {
            config.login_rate_limits.per_account = Some(RateLimitSettings {
                max: 3,
                window: Duration::from_secs(900),
            });
            config.login_rate_limits.per_address = None;
        })
        .await;
        admin(&fixture)
            .add("ada@example.org", &secret("right password"))
            .await
            .unwrap();
        let service = &fixture.service;
        for _ in 0..3 {
            assert!(matches!(
                service
                    .login("ada@example.org", &secret("wrong password"), HOME)
                    .await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        // Locked: even the right password is not checked, from anywhere,
        // and under any spelling of the email.
        let Err(LoginError::Locked { retry_after }) = service
            .login(" ADA@example.org", &secret("right password"), ELSEWHERE)
            .await
        else {
            panic!("expected a lock-out");
        };
        assert!(retry_after > Duration::from_secs(0) && retry_after <= Duration::from_secs(1800));
        // Another account is not affected.
        assert!(matches!(
            service
                .login("bob@example.org", &secret("whatever"), HOME)
                .await,
            Err(LoginError::InvalidCredentials)
        ));
        fixture.clock.advance(retry_after);
        service
            .login("ada@example.org", &secret("right password"), HOME)
            .await
            .unwrap();
        // Success cleared the account's failures.
        assert!(matches!(
            service
                .login("ada@example.org", &secret("wrong password"), HOME)
                .await,
            Err(LoginError::InvalidCredentials)
        ));
        service
            .login("ada@example.org", &secret("right password"), HOME)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn failures_from_one_address_lock_that_address() {
        let fixture = Fixture::with(|config| {
            config.login_rate_limits.per_account = None;
            config.login_rate_limits.per_address = Some(RateLimitSettings {
                max: 2,
                window: Duration::from_secs(900),
            });
        })
        .await;
        admin(&fixture)
            .add("ada@example.org", &secret("right password"))
            .await
            .unwrap();
        let service = &fixture.service;
        for email in ["x@example.org", "y@example.org"] {
            assert!(matches!(
                service.login(email, &secret("guess guess"), HOME).await,
                Err(LoginError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            service
                .login("ada@example.org", &secret("right password"), HOME)
                .await,
            Err(LoginError::Locked { .. })
        ));
        service
            .login("ada@example.org", &secret("right password"), ELSEWHERE)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_users_and_users_without_passwords_are_refused_alike() {
        let fixture = Fixture::new().await;
        let without_password = fixture.user().await;
        let email = format!("{without_password}@example.com");
        for email in [email.as_str(), "nobody@example.org", ""] {
            assert!(matches!(
                fixture
                    .service
                    .login(email, &secret("anything at all"), HOME)
                    .await,
                Err(LoginError::InvalidCredentials)
            ));
        }
    }

    #[test]
    fn retry_messages_round_up() {
        assert_eq!(
            retry_message(Duration::from_secs(61)),
            "Too many attempts. Try again in 2 minutes."
        );
        assert_eq!(
            retry_message(Duration::ZERO),
            "Too many attempts. Try again in 1 second."
        );
    }

    #[tokio::test]
    async fn identities_are_linked_listed_and_unlinked_by_hand() {
        let fixture = Fixture::new().await;
        let admin = admin(&fixture);
        let ada = admin
            .add("ada@example.org", &secret("correct horse"))
            .await
            .unwrap();
        let bob = admin
            .add("bob@example.org", &secret("correct horse"))
            .await
            .unwrap();
        const IDP: &str = "https://idp.example.com";
        const OTHER: &str = "https://other.example.com/realms/x";

        let (user, identity) = admin
            .link_identity("Ada@Example.org", IDP, "sub-1")
            .await
            .unwrap();
        assert_eq!(user.user_id, ada.user_id);
        assert_eq!(
            (identity.issuer.as_str(), identity.subject.as_str()),
            (IDP, "sub-1")
        );
        assert_eq!(identity.email, None);
        admin
            .link_identity(&ada.user_id, IDP, "sub-2")
            .await
            .unwrap();
        admin
            .link_identity(&ada.user_id, OTHER, "sub-1")
            .await
            .unwrap();

        // Linked to another user: refused, naming the owner, nothing linked.
        match admin.link_identity("bob@example.org", IDP, "sub-1").await {
            Err(AccountError::IdentityTaken { user_id, email }) => {
                assert_eq!((user_id, email), (ada.user_id.clone(), ada.email.clone()));
            }
            other => panic!("expected IdentityTaken, got {other:?}"),
        }
        assert!(admin.identities(&bob.user_id).await.unwrap().is_empty());
        assert!(matches!(
            admin
                .link_identity("nobody@example.org", IDP, "sub-9")
                .await,
            Err(AccountError::NotFound)
        ));
        for (issuer, subject) in [
            ("http://idp.example.com", "s"),
            ("https://idp.example.com?x=1", "s"),
            ("not a url", "s"),
            (IDP, ""),
            (IDP, " padded"),
            (IDP, "tab\t"),
        ] {
            assert!(
                matches!(
                    admin
                        .link_identity("ada@example.org", issuer, subject)
                        .await,
                    Err(AccountError::InvalidIdentity(_))
                ),
                "{issuer:?} {subject:?}"
            );
        }
        assert!(
            admin
                .link_identity("ada@example.org", IDP, &"s".repeat(MAX_SUBJECT_LEN + 1))
                .await
                .is_err()
        );

        let listed = admin.identities(&ada.user_id).await.unwrap();
        let pairs: Vec<(&str, &str)> = listed
            .iter()
            .map(|identity| (identity.issuer.as_str(), identity.subject.as_str()))
            .collect();
        assert_eq!(pairs, [(IDP, "sub-1"), (IDP, "sub-2"), (OTHER, "sub-1")]);

        // Bob cannot unlink Ada's identity; the error says whose it is.
        match admin
            .unlink_identity("bob@example.org", IDP, Some("sub-1"))
            .await
        {
            Err(AccountError::IdentityNotLinked(message)) => {
                assert!(message.contains("ada@example.org"), "{message}");
            }
            other => panic!("expected IdentityNotLinked, got {other:?}"),
        }
        let (_, unlinked) = admin
            .unlink_identity("ada@example.org", IDP, Some("sub-2"))
            .await
            .unwrap();
        assert_eq!(unlinked.len(), 1);
        let (_, unlinked) = admin
            .unlink_identity("ada@example.org", OTHER, None)
            .await
            .unwrap();
        assert_eq!(unlinked.len(), 1);
        assert_eq!(unlinked[0].issuer, OTHER);
        assert!(matches!(
            admin.unlink_identity("ada@example.org", OTHER, None).await,
            Err(AccountError::IdentityNotLinked(_))
        ));
        let left = admin.identities(&ada.user_id).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].subject, "sub-1");
        // Now Bob may have it.
        admin
            .unlink_identity(&ada.user_id, IDP, Some("sub-1"))
            .await
            .unwrap();
        admin
            .link_identity("bob@example.org", IDP, "sub-1")
            .await
            .unwrap();
    }
}
