//! An in-process sliding-window rate limiter, generic over the key (a
//! client address for registration; an account or an address for failed
//! sign-ins).
//!
//! Algorithm: the sliding-window counter. Time is cut into fixed windows;
//! each key keeps the count of its current and previous window, and the
//! estimate at any instant is `previous × (share of the previous window
//! still inside the sliding window) + current`. Unlike a fixed window, it
//! does not reset all at once at a boundary, so a client cannot send the
//! whole allowance at the end of one window and again at the start of the
//! next; unlike a log of timestamps, it needs two counters per key.
//!
//! Invariants:
//! - refused events are not counted, so a client that waits out its
//!   `retry_after` gets through;
//! - memory is bounded: at most `max_keys` keys are tracked. When the table
//!   is full, keys whose windows are over are dropped first, then the key
//!   with the lowest estimate (the least likely to be limited), so an
//!   attacker cycling through addresses cannot evict a busy key cheaply;
//! - time comes in as an argument, like everywhere in the service.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// The default bound on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// What the limiter decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The event is allowed and counted.
    Allowed,
    /// The event is refused; the estimate falls below the limit again
    /// after this long (at least one second).
    Limited {
        /// When to retry.
        retry_after: Duration,
    },
}

/// One key's counters.
#[derive(Debug, Clone, Copy)]
struct Counter {
    /// The index of the window `current` counts.
    window: i128,
    current: u32,
    previous: u32,
}

/// A sliding-window rate limiter: at most `limit` events per `window` per
/// key.
///
/// ```
/// use std::time::Duration;
/// use latchkey_service::ratelimit::{Decision, SlidingWindowLimiter};
/// use time::OffsetDateTime;
///
/// let limiter = SlidingWindowLimiter::new(2, Duration::from_secs(60), 1000);
/// let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
/// assert_eq!(limiter.check(&"10.0.0.1", now), Decision::Allowed);
/// assert_eq!(limiter.check(&"10.0.0.1", now), Decision::Allowed);
/// assert!(matches!(limiter.check(&"10.0.0.1", now), Decision::Limited { .. }));
/// assert_eq!(limiter.check(&"10.0.0.2", now), Decision::Allowed);
/// ```
#[derive(Debug)]
pub struct SlidingWindowLimiter<K> {
    limit: u32,
    window: Duration,
    max_keys: usize,
    counters: Mutex<HashMap<K, Counter>>,
}

impl<K: Eq + Hash + Clone> SlidingWindowLimiter<K> {
    /// A limiter allowing `limit` events per `window` per key, tracking at
    /// most `max_keys` keys. A zero window is treated as one second.
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> SlidingWindowLimiter<K> {
        SlidingWindowLimiter {
            limit,
            window: window.max(Duration::from_secs(1)),
            max_keys: max_keys.max(1),
            counters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an event for `key` at `now` if the estimate allows it.
    ///
    /// The arithmetic is exact: everything is scaled by the window length
    /// in nanoseconds, so boundary instants decide the same way every time.
    pub fn check(&self, key: &K, now: OffsetDateTime) -> Decision {
        self.decide(key, now, true)
    }

    /// Whether one more event for `key` would be refused at `now`, without
    /// counting anything: for limits that count only failures (sign-in),
    /// where the check comes before the outcome is known.
    pub fn peek(&self, key: &K, now: OffsetDateTime) -> Decision {
        self.decide(key, now, false)
    }

    /// Counts an event for `key` at `now` whatever the estimate (a failure
    /// that already happened).
    pub fn record(&self, key: &K, now: OffsetDateTime) {
        let (window, index, elapsed) = self.position(now);
        let mut counters = self.lock();
        let counter = counters
            .get(key)
            .copied()
            .map(|counter| roll(counter, index));
        if counter.is_none() && counters.len() >= self.max_keys {
            evict(&mut counters, index, window, elapsed);
        }
        let (current, previous) =
            counter.map_or((0, 0), |counter| (counter.current, counter.previous));
        counters.insert(
            key.clone(),
            Counter {
                window: index,
                current: current.saturating_add(1),
                previous,
            },
        );
    }

    /// Forgets every event counted for `key` (a successful sign-in clears
    /// the account's failures).
    pub fn forget(&self, key: &K) {
        self.lock().remove(key);
    }

    /// The window length, the index of the window `now` falls in, and how
    /// far into it `now` is, all in nanoseconds.
    fn position(&self, now: OffsetDateTime) -> (i128, i128, i128) {
        let window = i128::try_from(self.window.as_nanos()).unwrap_or(i128::MAX);
        let now_nanos = now.unix_timestamp_nanos();
        (
            window,
            now_nanos.div_euclid(window),
            now_nanos.rem_euclid(window),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Counter>> {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn decide(&self, key: &K, now: OffsetDateTime, count: bool) -> Decision {
        let (window, index, elapsed) = self.position(now);
        let mut counters = self.lock();
        let counter = counters
            .get(key)
            .copied()
            .map(|counter| roll(counter, index));
        let (current, previous) =
            counter.map_or((0, 0), |counter| (counter.current, counter.previous));
        let room = i128::from(self.limit) - 1;
        if scaled_estimate(current, previous, window, elapsed) > room.saturating_mul(window) {
            return Decision::Limited {
                retry_after: retry_after(current, previous, room, window, elapsed),
            };
        }
        if !count {
            return Decision::Allowed;
        }
        if counter.is_none() && counters.len() >= self.max_keys {
            evict(&mut counters, index, window, elapsed);
        }
        counters.insert(
            key.clone(),
            Counter {
                window: index,
                current: current.saturating_add(1),
                previous,
            },
        );
        Decision::Allowed
    }

    /// How many keys are tracked (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.lock().len()
    }
}

/// Brings a counter to window `index`: one window later, current becomes
/// previous; more than one, both are zero.
fn roll(counter: Counter, index: i128) -> Counter {
    match index - counter.window {
        0 => counter,
        1 => Counter {
            window: index,
            current: 0,
            previous: counter.current,
        },
        _ => Counter {
            window: index,
            current: 0,
            previous: 0,
        },
    }
}

/// The estimate `previous × (1 − elapsed / window) + current`, multiplied
/// by `window` so that it is an integer.
fn scaled_estimate(current: u32, previous: u32, window: i128, elapsed: i128) -> i128 {
    i128::from(previous)
        .saturating_mul(window - elapsed)
        .saturating_add(i128::from(current).saturating_mul(window))
}

/// How long until the estimate, with no further events, leaves room for
/// one more (`estimate ≤ room`), rounded up to whole seconds, at least one.
fn retry_after(current: u32, previous: u32, room: i128, window: i128, elapsed: i128) -> Duration {
    let current = i128::from(current);
    let previous = i128::from(previous);
    let wait_nanos = if room < 0 {
        // A limit of zero never admits anything; say "a window".
        window
    } else if current > room {
        // Only the next window helps: wait for it, then until the current
        // count (by then "previous") has decayed to `room`:
        // current × (1 − e / window) ≤ room  ⇔  e ≥ window × (current − room) / current.
        (window - elapsed) + ceil_div(window.saturating_mul(current - room), current)
    } else if previous > 0 {
        // previous × (1 − e / window) + current ≤ room
        //   ⇔  e ≥ window × (previous + current − room) / previous.
        ceil_div(window.saturating_mul(previous + current - room), previous) - elapsed
    } else {
        0
    };
    let nanos_per_second = 1_000_000_000_i128;
    let seconds = ceil_div(wait_nanos.max(0), nanos_per_second).max(1);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX))
}

/// `numerator / denominator` rounded up, for positive denominators.
fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    if denominator <= 0 {
        return numerator;
    }
    numerator.div_euclid(denominator) + i128::from(numerator.rem_euclid(denominator) != 0)
}

/// Frees room for one key: drops every key whose counts have expired;
/// if that frees nothing, drops the key with the lowest estimate.
fn evict<K: Eq + Hash + Clone>(
    counters: &mut HashMap<K, Counter>,
    index: i128,
    window: i128,
    elapsed: i128,
) {
    let before = counters.len();
    counters.retain(|_, counter| index - counter.window <= 1);
    if counters.len() < before {
        return;
    }
    let lowest = counters
        .iter()
        .map(|(key, counter)| {
            let rolled = roll(*counter, index);
            (
                key,
                scaled_estimate(rolled.current, rolled.previous, window, elapsed),
            )
        })
        .min_by_key(|(_, estimate)| *estimate)
        .map(|(key, _)| key.clone());
    if let Some(key) = lowest {
        counters.remove(&key);
    }
}

/// The key to rate-limit an address by: IPv4 addresses as they are, IPv6
/// addresses by their /64 prefix (one host usually holds a whole /64, so
/// per-address limits would be trivial to evade), IPv4-mapped IPv6 as IPv4.
pub fn address_key(address: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                let mut prefix = [0_u16; 8];
                for (target, source) in prefix.iter_mut().zip(segments.iter()).take(4) {
                    *target = *source;
                }
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        // A window-aligned origin: 1_800_000_000 is a multiple of 3600.
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    fn hourly(limit: u32) -> SlidingWindowLimiter<&'static str> {
        SlidingWindowLimiter::new(limit, Duration::from_secs(3600), 1000)
    }

    #[test]
    fn the_limit_holds_within_a_window() {
        let limiter = hourly(3);
        for _ in 0..3 {
            assert_eq!(limiter.check(&"a", at(10)), Decision::Allowed);
        }
        assert!(matches!(
            limiter.check(&"a", at(20)),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check(&"b", at(20)), Decision::Allowed);
    }

    #[test]
    fn a_burst_at_a_boundary_is_still_limited() {
        // A fixed window would allow 3 at 3599 s and 3 more at 3600 s.
        let limiter = hourly(3);
        for _ in 0..3 {
            assert_eq!(limiter.check(&"a", at(3599)), Decision::Allowed);
        }
        let decision = limiter.check(&"a", at(3600));
        let Decision::Limited { retry_after } = decision else {
            panic!("the new window must still see the previous burst: {decision:?}");
        };
        // 3 × (1 - t/3600) + 0 + 1 <= 3 needs t >= 1200 s.
        assert_eq!(retry_after, Duration::from_secs(1200));
        assert!(matches!(
            limiter.check(&"a", at(3600 + 1199)),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check(&"a", at(3600 + 1200)), Decision::Allowed);
    }

    #[test]
    fn retry_after_points_at_the_first_allowed_instant() {
        let limiter = hourly(2);
        assert_eq!(limiter.check(&"a", at(0)), Decision::Allowed);
        assert_eq!(limiter.check(&"a", at(0)), Decision::Allowed);
        let Decision::Limited { retry_after } = limiter.check(&"a", at(600)) else {
            panic!("expected a limit");
        };
        // current = 2 > room = 1: wait 3000 s for the next window, then
        // until 2 × (1 - t) <= 1, i.e. half a window.
        assert_eq!(retry_after, Duration::from_secs(3000 + 1800));
        let later = at(600) + retry_after;
        assert!(matches!(
            limiter.check(&"a", later - time::Duration::seconds(1)),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.check(&"a", later), Decision::Allowed);
    }

    #[test]
    fn refused_events_are_not_counted() {
        let limiter = hourly(1);
        assert_eq!(limiter.check(&"a", at(0)), Decision::Allowed);
        for _ in 0..50 {
            assert!(matches!(
                limiter.check(&"a", at(10)),
                Decision::Limited { .. }
            ));
        }
        // Two windows later everything has decayed.
        assert_eq!(limiter.check(&"a", at(7200)), Decision::Allowed);
    }

    #[test]
    fn memory_is_bounded_and_busy_keys_survive_eviction() {
        let limiter = SlidingWindowLimiter::new(5, Duration::from_secs(60), 3);
        let busy = "busy";
        for _ in 0..5 {
            assert_eq!(limiter.check(&busy, at(0)), Decision::Allowed);
        }
        for key in ["a", "b", "c", "d", "e", "f"] {
            assert_eq!(limiter.check(&key, at(1)), Decision::Allowed);
            assert!(limiter.tracked_keys() <= 3);
        }
        assert!(
            matches!(limiter.check(&busy, at(2)), Decision::Limited { .. }),
            "the busy key must not have been evicted"
        );
        // Stale keys go first once their windows are over.
        assert_eq!(limiter.check(&"g", at(600)), Decision::Allowed);
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[test]
    fn peek_counts_nothing_and_record_counts_regardless() {
        let limiter = hourly(2);
        for _ in 0..5 {
            assert_eq!(limiter.peek(&"a", at(0)), Decision::Allowed);
        }
        limiter.record(&"a", at(0));
        assert_eq!(limiter.peek(&"a", at(1)), Decision::Allowed);
        limiter.record(&"a", at(1));
        assert!(matches!(
            limiter.peek(&"a", at(2)),
            Decision::Limited { .. }
        ));
        // Recording past the limit still counts, so the lock lasts longer.
        limiter.record(&"a", at(2));
        let Decision::Limited { retry_after } = limiter.peek(&"a", at(3)) else {
            panic!("expected a limit");
        };
        // current = 3 > room = 1: the rest of this window, then two thirds of the next.
        assert_eq!(retry_after, Duration::from_secs(3597 + 2400));
        limiter.forget(&"a");
        assert_eq!(limiter.peek(&"a", at(4)), Decision::Allowed);
        assert_eq!(limiter.tracked_keys(), 0);
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_slash_64() {
        let one: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: std::net::IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(one), address_key(two));
        assert_ne!(address_key(one), address_key(other));
        let mapped: std::net::IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            address_key(mapped),
            "192.0.2.7".parse::<std::net::IpAddr>().unwrap()
        );
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(address_key(v4), v4);
    }
}
