//! The periodic clean-up loop over [`Maintenance::cleanup_expired`].
//!
//! Backends delete expired rows in bounded batches so that one clean-up
//! never holds long locks; this module repeats the batches until a round
//! deletes nothing. It awaits nothing but the store, so it runs on any async
//! runtime; the binary decides how often to call it.
//!
//! Invariant: the loop is bounded by [`CLEANUP_MAX_ROUNDS`], so a store that
//! keeps reporting deletions (rows expiring faster than they are deleted,
//! or a faulty backend) cannot keep the caller busy forever.

use crate::{CleanupReport, Maintenance, StoreResult, Timestamp};

/// The most rounds [`cleanup_until_done`] runs before returning what it has
/// deleted so far; the next scheduled run carries on.
pub const CLEANUP_MAX_ROUNDS: u32 = 1000;

/// Calls [`Maintenance::cleanup_expired`] until a round deletes nothing (or
/// [`CLEANUP_MAX_ROUNDS`] rounds have run) and returns the summed report.
///
/// An error from any round is returned at once; rows deleted by earlier
/// rounds stay deleted (each round is complete in itself).
pub async fn cleanup_until_done(
    store: &dyn Maintenance,
    now: Timestamp,
    batch: u32,
) -> StoreResult<CleanupReport> {
    let mut total = CleanupReport::default();
    for _ in 0..CLEANUP_MAX_ROUNDS {
        let round = store.cleanup_expired(now, batch).await?;
        if round.total() == 0 {
            break;
        }
        total = sum(total, round);
    }
    Ok(total)
}

/// Adds two reports field by field, saturating rather than overflowing.
fn sum(left: CleanupReport, right: CleanupReport) -> CleanupReport {
    CleanupReport {
        codes: left.codes.saturating_add(right.codes),
        refresh_families: left.refresh_families.saturating_add(right.refresh_families),
        refresh_tokens: left.refresh_tokens.saturating_add(right.refresh_tokens),
        consents: left.consents.saturating_add(right.consents),
        denied_access_tokens: left
            .denied_access_tokens
            .saturating_add(right.denied_access_tokens),
        sessions: left.sessions.saturating_add(right.sessions),
        pending: left.pending.saturating_add(right.pending),
        signing_keys: left.signing_keys.saturating_add(right.signing_keys),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::StoreError;

    /// A backend whose rows never run out: every round reports one deleted
    /// code. No real backend can be made to do this on demand, and it is the
    /// only way to observe the round limit.
    struct NeverDrains {
        rounds: AtomicU32,
    }

    #[async_trait]
    impl Maintenance for NeverDrains {
        async fn ping(&self) -> StoreResult<()> {
            Ok(())
        }

        async fn cleanup_expired(
            &self,
            _now: Timestamp,
            _batch: u32,
        ) -> StoreResult<CleanupReport> {
            self.rounds.fetch_add(1, Ordering::SeqCst);
            Ok(CleanupReport {
                codes: 1,
                ..CleanupReport::default()
            })
        }
    }

    /// A backend that deletes for two rounds and then fails.
    struct FailsOnThirdRound {
        rounds: AtomicU32,
    }

    #[async_trait]
    impl Maintenance for FailsOnThirdRound {
        async fn ping(&self) -> StoreResult<()> {
            Ok(())
        }

        async fn cleanup_expired(
            &self,
            _now: Timestamp,
            _batch: u32,
        ) -> StoreResult<CleanupReport> {
            if self.rounds.fetch_add(1, Ordering::SeqCst) >= 2 {
                return Err(StoreError::Unavailable("database went away".to_owned()));
            }
            Ok(CleanupReport {
                sessions: 3,
                ..CleanupReport::default()
            })
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[tokio::test]
    async fn stops_after_the_round_limit() {
        let store = NeverDrains {
            rounds: AtomicU32::new(0),
        };
        let report = cleanup_until_done(&store, now(), 10).await.unwrap();
        assert_eq!(store.rounds.load(Ordering::SeqCst), CLEANUP_MAX_ROUNDS);
        assert_eq!(report.codes, u64::from(CLEANUP_MAX_ROUNDS));
        assert_eq!(report.total(), u64::from(CLEANUP_MAX_ROUNDS));
    }

    #[tokio::test]
    async fn returns_the_first_error() {
        let store = FailsOnThirdRound {
            rounds: AtomicU32::new(0),
        };
        let outcome = cleanup_until_done(&store, now(), 10).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "expected the third round's error, got {outcome:?}"
        );
        assert_eq!(store.rounds.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn sum_saturates() {
        let big = CleanupReport {
            codes: u64::MAX,
            pending: 2,
            ..CleanupReport::default()
        };
        let summed = sum(big, big);
        assert_eq!(summed.codes, u64::MAX);
        assert_eq!(summed.pending, 4);
    }
}
