//! Slowing down password guessing: after a few failed logins from one client address, the
//! answer to each further failure is held back, twice as long each time up to a cap.
//!
//! The policy is pure ([`Backoff`], with the time passed in); [`Throttle`] keeps one small record
//! per address in a bounded cache whose entries expire when the address has been quiet for the
//! window, so a flood of addresses cannot grow memory without limit (the oldest records are then
//! evicted, which only ever makes the throttle more lenient, never stricter for a real user).
//! Successful logins are never delayed and do not clear the record: a client holding one valid
//! account must not be able to reset the count while guessing another's password.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// When failures start to cost time, and how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures within the window that are answered at once.
    pub free_failures: u32,
    /// Delay of the first failure past the free ones; doubled for each further one.
    pub first_delay: Duration,
    /// Upper bound of the delay.
    pub max_delay: Duration,
    /// A client with no failure for this long starts again from zero.
    pub window: Duration,
}

/// trustgate's throttle: 5 free failures, then 1 s, 2 s, 4 s … up to 30 s per failed attempt;
/// forgotten after 10 minutes without a failure.
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    free_failures: 5,
    first_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(30),
    window: Duration::from_secs(600),
};

/// The failures of one client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Failures since the record (re)started.
    pub count: u32,
    pub last: Instant,
}

impl Backoff {
    /// The record after one more failure at `now`.
    pub fn record(&self, previous: Option<Failures>, now: Instant) -> Failures {
        let count = match previous {
            Some(p) if now.saturating_duration_since(p.last) <= self.window => {
                p.count.saturating_add(1)
            }
            _ => 1,
        };
        Failures { count, last: now }
    }

    /// How long the answer to the failure that produced `f` is held back.
    pub fn delay(&self, f: &Failures) -> Duration {
        let Some(over) = f.count.checked_sub(self.free_failures.saturating_add(1)) else {
            return Duration::ZERO;
        };
        // 2^over, without overflowing for large counts.
        let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .map_or(self.max_delay, |d| d.min(self.max_delay))
    }
}

/// Records kept at most; beyond this the least recently used go first.
const MAX_CLIENTS: u64 = 100_000;

/// The per-address failure records.
pub struct Throttle {
    backoff: Backoff,
    records: moka::sync::Cache<IpAddr, Failures>,
}

impl Throttle {
    pub fn new(backoff: Backoff) -> Self {
        Self::with_capacity(backoff, MAX_CLIENTS)
    }

    /// A throttle that keeps at most `capacity` records.
    pub fn with_capacity(backoff: Backoff, capacity: u64) -> Self {
        Self {
            backoff,
            records: moka::sync::Cache::builder()
                .max_capacity(capacity)
                // Each failure rewrites the record, so this is "quiet for the window".
                .time_to_live(backoff.window)
                .build(),
        }
    }

    /// Counts a failed login from `ip` at `now`; returns the failures counted so far and how
    /// long to hold the answer back.
    pub fn failed(&self, ip: IpAddr, now: Instant) -> (u32, Duration) {
        let backoff = self.backoff;
        let entry = self
            .records
            .entry(client_key(ip))
            .and_upsert_with(|prev| backoff.record(prev.map(|e| e.into_value()), now));
        let f = entry.into_value();
        (f.count, backoff.delay(&f))
    }

    /// Records currently kept (after pending evictions ran).
    pub fn tracked(&self) -> u64 {
        crate::housekeeping::settle(&self.records)
    }
}

/// The key of a client: its IPv4 address, or the /64 network of an IPv6 one (one host usually
/// holds a whole /64, and could otherwise rotate through it to dodge the throttle).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        free_failures: 3,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(1000),
        window: Duration::from_secs(60),
    };

    #[test]
    fn free_failures_then_doubling_up_to_the_cap() {
        let t0 = Instant::now();
        let mut f = None;
        let mut delays = Vec::new();
        for i in 0..10 {
            let r = B.record(f, t0 + Duration::from_secs(i));
            delays.push(B.delay(&r).as_millis());
            f = Some(r);
        }
        assert_eq!(delays, [0, 0, 0, 100, 200, 400, 800, 1000, 1000, 1000]);
    }

    #[test]
    fn a_quiet_window_starts_over() {
        let t0 = Instant::now();
        let mut f = None;
        for _ in 0..5 {
            f = Some(B.record(f, t0));
        }
        assert_eq!(f.map(|f| f.count), Some(5));
        // Still within the window of the last failure: counting goes on.
        let g = B.record(f, t0 + B.window);
        assert_eq!(g.count, 6);
        // Quiet for longer than the window: free again.
        let h = B.record(Some(g), t0 + B.window + B.window + Duration::from_millis(1));
        assert_eq!(h.count, 1);
        assert_eq!(B.delay(&h), Duration::ZERO);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let f = Failures {
            count: u32::MAX,
            last: Instant::now(),
        };
        assert_eq!(B.delay(&f), B.max_delay);
        assert_eq!(B.record(Some(f), f.last).count, u32::MAX);
    }

    #[test]
    fn the_default_matches_its_documentation() {
        let t0 = Instant::now();
        let mut f = None;
        let mut delays = Vec::new();
        for _ in 0..12 {
            let r = DEFAULT_BACKOFF.record(f, t0);
            delays.push(DEFAULT_BACKOFF.delay(&r).as_secs());
            f = Some(r);
        }
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn addresses_are_counted_apart_and_ipv6_by_its_64() {
        let t = Throttle::new(B);
        let now = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..4 {
            t.failed(a, now);
        }
        assert_eq!(t.failed(a, now), (5, Duration::from_millis(200)));
        assert_eq!(t.failed(b, now), (1, Duration::ZERO));
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.failed(v6a, now);
        assert_eq!(t.failed(v6b, now).0, 2, "same /64");
        assert_eq!(t.failed(v6c, now).0, 1, "another /64");
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(t.failed(mapped, now).0, 2, "IPv4-mapped counts as IPv4");
        assert_eq!(t.tracked(), 4);
    }

    #[test]
    fn the_table_is_bounded() {
        let t = Throttle::with_capacity(B, 1_000);
        let now = Instant::now();
        for i in 0..5_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000u32 + i));
            t.failed(ip, now);
        }
        assert!(t.tracked() <= 1_000, "{}", t.tracked());
    }
}
