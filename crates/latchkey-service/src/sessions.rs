//! Browser sessions and the CSRF tokens of the server's own forms.
//!
//! Sessions:
//! - the cookie carries 256 random bits (base64url, 43 characters); the
//!   store keeps only their SHA-256, so a database leak yields no usable
//!   session;
//! - a session ends after `sessions.idle` without use (default 1 hour) or
//!   `sessions.absolute` after sign-in (default 12 hours), whichever comes
//!   first; using it extends the idle timeout, never past the absolute one.
//!   The extension is written at most once a minute
//!   ([`TOUCH_INTERVAL`]), so a busy page does not write on every request;
//! - a sign-in always creates a new session (session fixation); logout
//!   deletes it; disabling a user or changing the password deletes all of
//!   the user's sessions.
//!
//! CSRF tokens (OWASP "signed double-submit cookie" and "synchronizer
//! token" patterns, both keyed by a secret derived from the server secret
//! with HKDF, so every instance sharing the secret accepts them):
//! - signed in: `HMAC-SHA256(key, "session" ‖ SHA-256(session id))`,
//!   base64url, in a hidden field of every form; it is stable for the
//!   session's life and worthless without the session cookie;
//! - before sign-in there is no session, so the login form is protected by
//!   a random `latchkey-csrf` cookie and a hidden field holding
//!   `HMAC-SHA256(key, "login" ‖ cookie ‖ pending handle)`: an attacker can
//!   neither read the victim's cookie nor forge the MAC, and the token is
//!   bound to the one authorization request the form continues.
//!
//! Every comparison is constant-time (`ring::hmac::verify`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_protocol::secret::SecretString;
use latchkey_store::{SecretHash, SessionRecord, StoreError};
use ring::hmac;
use time::OffsetDateTime;

use crate::Service;
use crate::clock::add;
use crate::error::FlowError;
use crate::secrets::random_bytes;

/// A session's idle timeout is written back at most this often.
pub const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);

/// The length of a session id or login CSRF cookie: 32 bytes, base64url.
pub const RANDOM_VALUE_LEN: usize = 43;

/// A signed-in browser session. `Debug` shows a hash prefix only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    hash: SecretHash,
    /// The signed-in user.
    pub user_id: String,
    /// When the user authenticated.
    pub auth_time: OffsetDateTime,
    /// When the session ends unless used first.
    pub idle_expires_at: OffsetDateTime,
    /// When the session ends regardless.
    pub absolute_expires_at: OffsetDateTime,
}

impl Session {
    fn from_record(record: &SessionRecord) -> Session {
        Session {
            hash: record.session_hash,
            user_id: record.user_id.clone(),
            auth_time: record.auth_time,
            idle_expires_at: record.idle_expires_at,
            absolute_expires_at: record.absolute_expires_at,
        }
    }
}

/// A session just created; its cookie value is shown to the browser once.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value (never logged).
    pub cookie_value: SecretString,
    /// The session.
    pub session: Session,
}

/// Whether `value` looks like one of our random values (43 base64url
/// characters): anything else is not looked up at all.
fn well_formed(value: &str) -> bool {
    value.len() == RANDOM_VALUE_LEN
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// The message a session CSRF token signs.
fn session_message(hash: &SecretHash) -> Vec<u8> {
    let mut message = b"session\0".to_vec();
    message.extend_from_slice(hash.as_bytes());
    message
}

/// The message a login CSRF token signs; the lengths keep the two fields
/// from sliding into each other.
fn login_message(cookie: &str, handle: &str) -> Vec<u8> {
    let mut message = b"login\0".to_vec();
    message.extend_from_slice(&(cookie.len() as u64).to_be_bytes());
    message.extend_from_slice(cookie.as_bytes());
    message.extend_from_slice(&(handle.len() as u64).to_be_bytes());
    message.extend_from_slice(handle.as_bytes());
    message
}

/// Verifies a base64url MAC over `message` in constant time.
fn verify_mac(key: &hmac::Key, message: &[u8], token: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(token.trim()) {
        Ok(tag) => hmac::verify(key, message, &tag).is_ok(),
        Err(_) => false,
    }
}

impl Service {
    /// Starts a session for `user_id`, authenticated at `auth_time`.
    pub(crate) async fn create_session(
        &self,
        user_id: &str,
        auth_time: OffsetDateTime,
    ) -> Result<NewSession, FlowError> {
        let now = self.now();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let settings = self.config().sessions;
        let absolute_expires_at = add(now, settings.absolute);
        // A 256-bit id colliding is astronomically unlikely; one retry
        // covers it anyway.
        for _ in 0..2 {
            let bytes: [u8; 32] = random_bytes(self.random())?;
            let cookie_value = SecretString::new(URL_SAFE_NO_PAD.encode(bytes));
            let record = SessionRecord {
                session_hash: SecretHash::of(cookie_value.expose()),
                user_id: user_id.to_owned(),
                auth_time: auth_time.replace_nanosecond(0).unwrap_or(auth_time),
                created_at: now,
                last_seen_at: now,
                idle_expires_at: add(now, settings.idle).min(absolute_expires_at),
                absolute_expires_at,
            };
            match self.inner.store.insert_session(&record).await {
                Ok(()) => {
                    return Ok(NewSession {
                        cookie_value,
                        session: Session::from_record(&record),
                    });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(FlowError::Internal(
            "two session id collisions in a row".to_owned(),
        ))
    }

    /// The live session a cookie value names, if any. Using a session
    /// extends its idle timeout (written at most once a minute).
    pub async fn session(&self, cookie_value: &str) -> Result<Option<Session>, FlowError> {
        if !well_formed(cookie_value) {
            return Ok(None);
        }
        let now = self.now();
        let hash = SecretHash::of(cookie_value);
        let Some(record) = self.inner.store.find_session(&hash, now).await? else {
            return Ok(None);
        };
        let mut session = Session::from_record(&record);
        if now - record.last_seen_at >= TOUCH_INTERVAL {
            let idle_expires_at = add(now, self.config().sessions.idle);
            if !self
                .inner
                .store
                .touch_session(&hash, idle_expires_at, now)
                .await?
            {
                return Ok(None);
            }
            session.idle_expires_at = idle_expires_at.min(record.absolute_expires_at);
        }
        Ok(Some(session))
    }

    /// Ends the session a cookie value names. Returns whether it existed.
    pub async fn logout(&self, cookie_value: &str) -> Result<bool, FlowError> {
        if !well_formed(cookie_value) {
            return Ok(false);
        }
        Ok(self
            .inner
            .store
            .delete_session(&SecretHash::of(cookie_value))
            .await?)
    }

    /// The CSRF token of `session`'s forms.
    pub fn csrf_token(&self, session: &Session) -> String {
        let tag = hmac::sign(&self.inner.csrf_key, &session_message(&session.hash));
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `token` is `session`'s CSRF token (constant time).
    pub fn verify_csrf(&self, session: &Session, token: &str) -> bool {
        verify_mac(&self.inner.csrf_key, &session_message(&session.hash), token)
    }

    /// A new random value for the login form's `latchkey-csrf` cookie.
    pub fn new_login_csrf_cookie(&self) -> Result<String, FlowError> {
        let bytes: [u8; 32] = random_bytes(self.random())?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whether `value` can be a login CSRF cookie (a value we made).
    pub fn is_login_csrf_cookie(value: &str) -> bool {
        well_formed(value)
    }

    /// The login form's CSRF token for a cookie value and the pending
    /// authorization handle it continues (empty when there is none).
    pub fn login_csrf_token(&self, cookie: &str, handle: &str) -> String {
        let tag = hmac::sign(&self.inner.csrf_key, &login_message(cookie, handle));
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `token` is the login CSRF token for `cookie` and `handle`
    /// (constant time); a cookie we did not make never verifies.
    pub fn verify_login_csrf(&self, cookie: &str, handle: &str, token: &str) -> bool {
        well_formed(cookie)
            && verify_mac(&self.inner.csrf_key, &login_message(cookie, handle), token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fixture;
    use std::time::Duration;

    #[tokio::test]
    async fn sessions_end_at_the_idle_timeout_unless_used() {
        let fixture = Fixture::new().await;
        let user = fixture.user().await;
        let now = fixture.clock_now();
        let created = fixture.service.create_session(&user, now).await.unwrap();
        let cookie = created.cookie_value.expose().to_owned();
        assert_eq!(cookie.len(), RANDOM_VALUE_LEN);
        let session = fixture.service.session(&cookie).await.unwrap().unwrap();
        assert_eq!(session.user_id, user);
        assert_eq!(session.auth_time, now);
        assert_eq!(session.idle_expires_at, now + time::Duration::hours(1));
        assert_eq!(session.absolute_expires_at, now + time::Duration::hours(12));

        // Used after 59 minutes: extended by another hour from then.
        fixture.clock.advance(Duration::from_secs(59 * 60));
        let used = fixture.service.session(&cookie).await.unwrap().unwrap();
        assert_eq!(
            used.idle_expires_at,
            now + time::Duration::minutes(59) + time::Duration::hours(1)
        );
        fixture.clock.advance(Duration::from_secs(3599));
        assert!(fixture.service.session(&cookie).await.unwrap().is_some());
        fixture.clock.advance(Duration::from_secs(3600));
        assert!(fixture.service.session(&cookie).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn touches_are_written_at_most_once_a_minute() {
        let fixture = Fixture::new().await;
        let user = fixture.user().await;
        let created = fixture
            .service
            .create_session(&user, fixture.clock_now())
            .await
            .unwrap();
        let cookie = created.cookie_value.expose().to_owned();
        let before = created.session.idle_expires_at;
        fixture.clock.advance(Duration::from_secs(59));
        let seen = fixture.service.session(&cookie).await.unwrap().unwrap();
        assert_eq!(seen.idle_expires_at, before, "no write within a minute");
        fixture.clock.advance(Duration::from_secs(1));
        let seen = fixture.service.session(&cookie).await.unwrap().unwrap();
        assert_eq!(seen.idle_expires_at, before + time::Duration::seconds(60));
    }

    #[tokio::test]
    async fn sessions_end_at_the_absolute_timeout_however_used() {
        let fixture = Fixture::new().await;
        let user = fixture.user().await;
        let created = fixture
            .service
            .create_session(&user, fixture.clock_now())
            .await
            .unwrap();
        let cookie = created.cookie_value.expose().to_owned();
        for _ in 0..23 {
            fixture.clock.advance(Duration::from_secs(30 * 60));
            assert!(fixture.service.session(&cookie).await.unwrap().is_some());
        }
        fixture.clock.advance(Duration::from_secs(30 * 60));
        assert!(fixture.service.session(&cookie).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn logout_and_malformed_cookies() {
        let fixture = Fixture::new().await;
        let user = fixture.user().await;
        let created = fixture
            .service
            .create_session(&user, fixture.clock_now())
            .await
            .unwrap();
        let cookie = created.cookie_value.expose().to_owned();
        for bad in ["", "x", &"a".repeat(44), &format!("{}!", &cookie[1..])] {
            assert!(fixture.service.session(bad).await.unwrap().is_none());
            assert!(!fixture.service.logout(bad).await.unwrap());
        }
        assert!(fixture.service.logout(&cookie).await.unwrap());
        assert!(!fixture.service.logout(&cookie).await.unwrap());
        assert!(fixture.service.session(&cookie).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn csrf_tokens_are_bound_to_their_session_or_cookie_and_handle() {
        let fixture = Fixture::new().await;
        let user = fixture.user().await;
        let service = &fixture.service;
        let one = service
            .create_session(&user, fixture.clock_now())
            .await
            .unwrap();
        let two = service
            .create_session(&user, fixture.clock_now())
            .await
            .unwrap();
        let token = service.csrf_token(&one.session);
        assert!(service.verify_csrf(&one.session, &token));
        assert!(!service.verify_csrf(&two.session, &token));
        assert!(!service.verify_csrf(&one.session, ""));
        assert!(!service.verify_csrf(&one.session, "not base64!"));
        assert!(!service.verify_csrf(&one.session, &token[1..]));

        let cookie = service.new_login_csrf_cookie().unwrap();
        let other_cookie = service.new_login_csrf_cookie().unwrap();
        assert_ne!(cookie, other_cookie);
        let login = service.login_csrf_token(&cookie, "handle");
        assert!(service.verify_login_csrf(&cookie, "handle", &login));
        assert!(!service.verify_login_csrf(&other_cookie, "handle", &login));
        assert!(!service.verify_login_csrf(&cookie, "other", &login));
        assert!(!service.verify_login_csrf(&cookie, "", &login));
        // A cookie value we did not make never verifies, even with its MAC.
        let forged = service.login_csrf_token("short", "");
        assert!(!service.verify_login_csrf("short", "", &forged));

        // Another instance with the same secret accepts the tokens.
        let sibling = fixture.sibling("https://auth.example.com").await;
        assert!(sibling.verify_csrf(&one.session, &token));
        assert!(sibling.verify_login_csrf(&cookie, "handle", &login));
    }
}
