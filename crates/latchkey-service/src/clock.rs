//! The service's only source of time.
//!
//! Every flow asks a [`Clock`] for `now` once and passes it down, so expiry
//! is decided against one instant per request and tests move time forward
//! with [`TestClock::advance`] instead of sleeping. [`SystemClock`] is the
//! production clock; nothing else in the service reads the system time.

use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// Where the service gets the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that stands still until told to move: for tests of expiry at
/// exact boundaries, in this crate and in the crates above it.
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<OffsetDateTime>,
}

impl TestClock {
    /// A clock showing `start`.
    pub fn new(start: OffsetDateTime) -> TestClock {
        TestClock {
            now: Mutex::new(start),
        }
    }

    /// A clock showing the current wall-clock time, truncated to whole
    /// seconds (what the store keeps), so that tokens look real to
    /// verifiers that check `iat` and `exp` against their own clock.
    pub fn starting_now() -> TestClock {
        let now = OffsetDateTime::now_utc();
        TestClock::new(now.replace_nanosecond(0).unwrap_or(now))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        *now = add(*now, by);
    }

    /// Sets the clock to `instant`.
    pub fn set(&self, instant: OffsetDateTime) {
        *self.lock() = instant;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OffsetDateTime> {
        // A poisoned lock only means a test panicked while holding it; the
        // value inside is still a valid instant.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.lock()
    }
}

/// `instant + duration`, saturating at the largest representable instant
/// instead of overflowing (a configured lifetime of centuries is odd, not
/// a reason to panic).
pub(crate) fn add(instant: OffsetDateTime, duration: Duration) -> OffsetDateTime {
    let duration = time::Duration::try_from(duration).unwrap_or(time::Duration::MAX);
    instant.saturating_add(duration)
}

/// A duration in whole seconds, saturating.
pub(crate) fn whole_seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_clock_moves_only_when_told() {
        let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let clock = TestClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().unix_timestamp(), 1_800_000_090);
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn arithmetic_saturates() {
        let start = OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(add(start, Duration::MAX).year(), time::Date::MAX.year());
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 1);
        assert_eq!(whole_seconds(Duration::MAX), i64::MAX);
    }

    #[test]
    fn starting_now_is_whole_seconds() {
        assert_eq!(TestClock::starting_now().now().nanosecond(), 0);
    }
}
