//! Where the validator gets the time.
//!
//! Token checks (`exp`, `nbf`, `iat`), the key-refetch rate limit, the key
//! cache's age and the introspection cache all read one [`Clock`], so a test
//! (or an embedding service with its own notion of time) can drive them
//! exactly: a [`ManualClock`] moves only when told to. Production uses
//! [`SystemClock`]. The clock is wall time since the Unix epoch; a clock that
//! steps backwards only delays a key refetch, never skips a check.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The time elapsed since the Unix epoch.
    fn now(&self) -> Duration;

    /// The current time in whole Unix seconds, as JWT claims count it.
    fn unix_seconds(&self) -> i64 {
        i64::try_from(self.now().as_secs()).unwrap_or(i64::MAX)
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        // A system clock before 1970 is a broken host; treat it as the
        // epoch, which makes every token look expired rather than valid.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use latchkey_resource::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::at_unix_seconds(1_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(shared.unix_seconds(), 1_061);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `seconds` after the Unix epoch.
    pub fn at_unix_seconds(seconds: u64) -> ManualClock {
        ManualClock {
            millis: Arc::new(AtomicU64::new(seconds.saturating_mul(1_000))),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to `seconds` after the Unix epoch.
    pub fn set_unix_seconds(&self, seconds: u64) {
        self.millis
            .store(seconds.saturating_mul(1_000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.unix_seconds() > 1_577_836_800);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_unix_seconds(10);
        assert_eq!(clock.unix_seconds(), 10);
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), Duration::from_millis(11_500));
        assert_eq!(clock.unix_seconds(), 11);
        clock.set_unix_seconds(5);
        assert_eq!(clock.unix_seconds(), 5);
    }
}
