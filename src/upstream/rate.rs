//! The minimum transfer rate of an upstream body (`[[upstream]] min_rate` over
//! `min_rate_window`): pure bookkeeping, no I/O.
//!
//! `idle_timeout` bounds *silence*; an upstream that sends one byte every few seconds is never
//! silent for long, so without a floor on the *rate* a stalled trickle holds a fill (and its
//! client) forever. A whole-transfer deadline would be the other way to bound it, but a deadline
//! scaled by size either cuts large layers on slow links or lets a small blob trickle for hours.
//! A floor over a window does neither: a body is cut only when a whole window passed with fewer
//! than `min_rate × window` bytes, so a 10 GiB layer at 100 KiB/s streams to its end while a
//! 1 byte/s trickle ends after one window. The windows are consecutive (not sliding) and
//! measure only the time spent waiting on the upstream: two counters, nothing kept per chunk.

use std::time::Duration;

/// A configured floor: `bytes_per_sec` averaged over each `window`. `bytes_per_sec == 0` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    pub window: Duration,
}

impl MinRate {
    /// Off: no floor (only `idle_timeout` bounds a body).
    pub const OFF: MinRate = MinRate {
        bytes_per_sec: 0,
        window: Duration::from_secs(60),
    };

    /// The default: 1 KiB/s over 60 s windows. Far below any link that can pull an image at
    /// all (a 1 GiB layer at that rate would take 12 days), far above a stalled trickle.
    pub const DEFAULT: MinRate = MinRate {
        bytes_per_sec: 1024,
        window: Duration::from_secs(60),
    };

    pub fn is_off(&self) -> bool {
        self.bytes_per_sec == 0 || self.window.is_zero()
    }

    /// Bytes a window must bring (rounded down, at least 1).
    fn per_window(&self) -> u64 {
        let ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        (self.bytes_per_sec.saturating_mul(ms) / 1000).max(1)
    }
}

impl Default for MinRate {
    fn default() -> Self {
        MinRate::DEFAULT
    }
}

/// A window that ended with too few bytes: what arrived in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow {
    pub received: u64,
    pub window: Duration,
}

/// The floor applied to one body: the time spent waiting for it in the current window, and the
/// bytes that came meanwhile.
///
/// Only time spent *waiting on the upstream* counts: while the reader is busy elsewhere (a
/// client taking its time over bytes streamed through unstored), the upstream is not to blame.
#[derive(Debug, Clone)]
pub struct RateFloor {
    rate: MinRate,
    waited: Duration,
    in_window: u64,
}

impl RateFloor {
    /// A floor for one body, or `None` when `rate` is off.
    pub fn start(rate: MinRate) -> Option<RateFloor> {
        (!rate.is_off()).then_some(RateFloor {
            rate,
            waited: Duration::ZERO,
            in_window: 0,
        })
    }

    /// How much longer the reader may wait before the current window must be judged.
    pub fn remaining(&self) -> Duration {
        self.rate.window.saturating_sub(self.waited)
    }

    /// A wait of `waited` brought `bytes` (0 when it timed out). Once the window's waiting time
    /// is full it is judged: the next window starts when it brought enough bytes, the body is
    /// too slow otherwise.
    pub fn waited(&mut self, waited: Duration, bytes: u64) -> Result<(), TooSlow> {
        self.waited = self.waited.saturating_add(waited);
        self.in_window = self.in_window.saturating_add(bytes);
        if self.waited < self.rate.window {
            return Ok(());
        }
        if self.in_window < self.rate.per_window() {
            return Err(TooSlow {
                received: self.in_window,
                window: self.rate.window,
            });
        }
        self.waited = Duration::ZERO;
        self.in_window = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(bytes_per_sec: u64, secs: u64) -> MinRate {
        MinRate {
            bytes_per_sec,
            window: Duration::from_secs(secs),
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn off_when_rate_or_window_is_zero() {
        assert!(RateFloor::start(rate(0, 60)).is_none());
        assert!(RateFloor::start(rate(1024, 0)).is_none());
        assert!(RateFloor::start(MinRate::OFF).is_none());
        assert!(RateFloor::start(MinRate::DEFAULT).is_some());
    }

    #[test]
    fn a_trickle_is_cut_at_the_end_of_its_first_window() {
        let mut f = RateFloor::start(rate(1024, 60)).unwrap();
        assert_eq!(f.remaining(), 60 * SEC);
        // One byte a second: never silent, always below the floor.
        for s in 1..60 {
            assert_eq!(f.waited(SEC, 1), Ok(()), "{s} s");
            assert_eq!(f.remaining(), (60 - s) * SEC);
        }
        assert_eq!(
            f.waited(SEC, 1),
            Err(TooSlow {
                received: 60,
                window: 60 * SEC
            })
        );
    }

    #[test]
    fn a_slow_but_steady_large_transfer_is_never_cut() {
        let mut f = RateFloor::start(rate(1024, 60)).unwrap();
        // 2 KiB/s for an hour: every window brings twice the floor.
        for s in 1..=3600u64 {
            assert_eq!(f.waited(SEC, 2048), Ok(()), "{s} s");
        }
    }

    #[test]
    fn exactly_the_floor_passes_and_one_byte_less_fails() {
        let mut f = RateFloor::start(rate(100, 10)).unwrap();
        assert_eq!(f.waited(10 * SEC, 1000), Ok(()));
        let mut f = RateFloor::start(rate(100, 10)).unwrap();
        assert!(f.waited(10 * SEC, 999).is_err());
    }

    #[test]
    fn each_window_is_judged_on_its_own_bytes() {
        let mut f = RateFloor::start(rate(100, 10)).unwrap();
        // A fast first window does not pay for a stalled second one.
        assert_eq!(f.waited(10 * SEC, 1_000_000), Ok(()));
        assert_eq!(f.remaining(), 10 * SEC);
        assert_eq!(f.waited(5 * SEC, 10), Ok(()));
        assert_eq!(
            f.waited(5 * SEC, 0),
            Err(TooSlow {
                received: 10,
                window: 10 * SEC
            })
        );
    }

    #[test]
    fn only_time_spent_waiting_counts() {
        // A reader that waits 0.1 s per chunk of 100 bytes, however long it spends between
        // chunks, sees 1000 bytes/s: never below a floor of 500.
        let mut f = RateFloor::start(rate(500, 2)).unwrap();
        for _ in 0..1000 {
            assert_eq!(f.waited(Duration::from_millis(100), 100), Ok(()));
        }
    }
}
