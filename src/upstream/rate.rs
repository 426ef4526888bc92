//! The minimum transfer rate of an upstream body (`[[upstream]] min_rate` over
//! `min_rate_window`): pure bookkeeping, no I/O.
//!
//! `idle_timeout` bounds *silence*; an upstream that sends one byte every few seconds is never
//! silent for long, so without a floor on the *rate* a stalled trickle holds a fill (and its
//! client) forever. A whole-transfer deadline would be the other way to bound it, but a deadline
//! scaled by size either cuts large layers on slow links or lets a small blob trickle for hours.
//! A floor over a window does neither: a body is cut only when a whole window passed with fewer
//! than `min_rate × window` bytes, so a 10 GiB layer at 100 KiB/s streams to its end while a
//! 1 byte/s trickle ends after one window. The windows are consecutive (not sliding): one
//! counter, one deadline, nothing kept per chunk.

use std::time::Duration;

use tokio::time::Instant;

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

/// The floor applied to one body: bytes counted in the current window, and its end.
#[derive(Debug, Clone)]
pub struct RateFloor {
    rate: MinRate,
    window_end: Instant,
    in_window: u64,
}

impl RateFloor {
    /// A floor starting at `start` (when the headers arrived), or `None` when `rate` is off.
    pub fn start(rate: MinRate, start: Instant) -> Option<RateFloor> {
        (!rate.is_off()).then(|| RateFloor {
            rate,
            window_end: start + rate.window,
            in_window: 0,
        })
    }

    /// When the current window ends: the body must be checked then even if no chunk arrives.
    pub fn window_end(&self) -> Instant {
        self.window_end
    }

    /// `n` body bytes arrived.
    pub fn record(&mut self, n: u64) {
        self.in_window = self.in_window.saturating_add(n);
    }

    /// Check at `now`: nothing to say before the window ends; at its end, the next window
    /// starts when it brought enough bytes, and the body is too slow otherwise.
    pub fn check(&mut self, now: Instant) -> Result<(), TooSlow> {
        if now < self.window_end {
            return Ok(());
        }
        if self.in_window < self.rate.per_window() {
            return Err(TooSlow {
                received: self.in_window,
                window: self.rate.window,
            });
        }
        self.in_window = 0;
        // The next window starts now, not at the old end: a check that ran late (a chunk that
        // arrived after the end) gives the next window its full length.
        self.window_end = now + self.rate.window;
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

    #[test]
    fn off_when_rate_or_window_is_zero() {
        let t = Instant::now();
        assert!(RateFloor::start(rate(0, 60), t).is_none());
        assert!(RateFloor::start(rate(1024, 0), t).is_none());
        assert!(RateFloor::start(MinRate::OFF, t).is_none());
        assert!(RateFloor::start(MinRate::DEFAULT, t).is_some());
    }

    #[test]
    fn a_trickle_is_cut_at_the_end_of_its_first_window() {
        let t = Instant::now();
        let mut f = RateFloor::start(rate(1024, 60), t).unwrap();
        assert_eq!(f.window_end(), t + Duration::from_secs(60));
        // One byte a second: never silent, always below the floor.
        for s in 1..60 {
            f.record(1);
            assert_eq!(f.check(t + Duration::from_secs(s)), Ok(()), "{s} s");
        }
        assert_eq!(
            f.check(t + Duration::from_secs(60)),
            Err(TooSlow {
                received: 59,
                window: Duration::from_secs(60)
            })
        );
    }

    #[test]
    fn a_slow_but_steady_large_transfer_is_never_cut() {
        let t = Instant::now();
        let mut f = RateFloor::start(rate(1024, 60), t).unwrap();
        // 2 KiB/s for an hour: every window brings twice the floor.
        for s in 1..=3600u64 {
            f.record(2048);
            assert_eq!(f.check(t + Duration::from_secs(s)), Ok(()), "{s} s");
        }
    }

    #[test]
    fn exactly_the_floor_passes_and_one_byte_less_fails() {
        let t = Instant::now();
        let end = t + Duration::from_secs(10);
        let mut f = RateFloor::start(rate(100, 10), t).unwrap();
        f.record(1000);
        assert_eq!(f.check(end), Ok(()));
        let mut f = RateFloor::start(rate(100, 10), t).unwrap();
        f.record(999);
        assert!(f.check(end).is_err());
    }

    #[test]
    fn each_window_is_judged_on_its_own_bytes() {
        let t = Instant::now();
        let mut f = RateFloor::start(rate(100, 10), t).unwrap();
        // A fast first window does not pay for a stalled second one.
        f.record(1_000_000);
        assert_eq!(f.check(t + Duration::from_secs(10)), Ok(()));
        assert_eq!(f.window_end(), t + Duration::from_secs(20));
        f.record(10);
        assert_eq!(
            f.check(t + Duration::from_secs(20)),
            Err(TooSlow {
                received: 10,
                window: Duration::from_secs(10)
            })
        );
    }

    #[test]
    fn a_late_check_gives_the_next_window_its_full_length() {
        let t = Instant::now();
        let mut f = RateFloor::start(rate(100, 10), t).unwrap();
        f.record(5000);
        assert_eq!(f.check(t + Duration::from_secs(13)), Ok(()));
        assert_eq!(f.window_end(), t + Duration::from_secs(23));
    }
}
