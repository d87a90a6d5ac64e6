//! How long a request body may keep the server waiting: the idle timeout between bytes
//! (`--timeout-request-body`) and the minimum rate after a grace period
//! (`--limit-request-body-rate`, `common/settings.rs`'s `MinRate`).
//!
//! Only the time spent waiting for the client is counted. While the app leaves the body
//! unread (the buffer is full, or `Expect: 100-continue` has not been answered) the reader
//! does not wait on the client, so a slow app never gets its client cut off.

use std::time::Duration;

use crate::common::settings::MinRate;

/// Why a wait for body bytes ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// No bytes for the idle timeout.
    Idle,
    /// Below the minimum rate once the grace period has passed.
    TooSlow,
}

/// One request body's waiting so far.
#[derive(Debug, Clone)]
pub struct BodyPace {
    idle: Option<Duration>,
    min_rate: Option<MinRate>,
    /// Time spent waiting for the client's bytes.
    waited: Duration,
    /// Body bytes received.
    received: u64,
}

impl BodyPace {
    /// A body that has not been waited for yet.
    pub fn new(idle: Option<Duration>, min_rate: Option<MinRate>) -> BodyPace {
        BodyPace {
            idle,
            min_rate,
            waited: Duration::ZERO,
            received: 0,
        }
    }

    /// The longest the next wait for bytes may last, and what running out of it means;
    /// `None` when nothing bounds it.
    pub fn next_wait(&self) -> Option<(Duration, Overdue)> {
        let idle = self.idle.map(|d| (d, Overdue::Idle));
        let rate = self.min_rate.map(|rate| {
            let earned = Duration::try_from_secs_f64(self.received as f64 / rate.bytes_per_sec)
                .unwrap_or(Duration::MAX);
            let allowance = rate.grace.saturating_add(earned);
            (allowance.saturating_sub(self.waited), Overdue::TooSlow)
        });
        match (idle, rate) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// A wait of `waited` ended with `bytes` more of the body.
    pub fn record(&mut self, waited: Duration, bytes: usize) {
        self.waited = self.waited.saturating_add(waited);
        self.received += bytes as u64;
    }

    /// Bytes read before any waiting was counted (the prefetch).
    pub fn received_before(&mut self, bytes: u64) {
        self.received += bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn rate(bytes_per_sec: f64, grace: Duration) -> Option<MinRate> {
        Some(MinRate {
            bytes_per_sec,
            grace,
        })
    }

    #[test]
    fn the_grace_period_comes_first() {
        let pace = BodyPace::new(Some(60 * SEC), rate(500.0, 20 * SEC));
        assert_eq!(pace.next_wait(), Some((20 * SEC, Overdue::TooSlow)));
    }

    #[test]
    fn each_chunk_earns_time_at_the_rate() {
        let mut pace = BodyPace::new(None, rate(500.0, 20 * SEC));
        pace.record(15 * SEC, 1000); // 2 s earned, 15 s spent
        assert_eq!(pace.next_wait(), Some((7 * SEC, Overdue::TooSlow)));
    }

    #[test]
    fn a_trickle_runs_out_and_a_steady_client_never_does() {
        // One byte every 2 s: 20 s of grace, then out.
        let mut trickle = BodyPace::new(Some(60 * SEC), rate(500.0, 20 * SEC));
        let mut waited = Duration::ZERO;
        while let Some((left, _)) = trickle.next_wait().filter(|(d, _)| *d >= 2 * SEC) {
            assert!(left >= 2 * SEC);
            trickle.record(2 * SEC, 1);
            waited += 2 * SEC;
        }
        assert!(waited <= 22 * SEC, "{waited:?}");
        // 1,000 bytes a second for an hour: always ahead.
        let mut steady = BodyPace::new(Some(60 * SEC), rate(500.0, 20 * SEC));
        for _ in 0..3600 {
            steady.record(SEC, 1000);
        }
        let (left, why) = steady.next_wait().unwrap();
        assert_eq!(why, Overdue::Idle, "{left:?}");
    }

    #[test]
    fn the_idle_timeout_wins_when_shorter() {
        let pace = BodyPace::new(Some(5 * SEC), rate(500.0, 20 * SEC));
        assert_eq!(pace.next_wait(), Some((5 * SEC, Overdue::Idle)));
        assert_eq!(BodyPace::new(None, None).next_wait(), None);
    }
}
