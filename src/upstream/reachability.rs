//! Whether an upstream (a registry, or a Notary server) is answering, as its exchanges show:
//! for `/readyz`'s degraded lines, the `trustgate_upstream_up` gauge, and one log line when it
//! goes down and one when it answers again (not one per failed request).
//!
//! Down is what [`super::UpstreamError::is_unreachable`] calls unreachable: a refused or lost
//! connection, a timeout, a 5xx. Any other answer (a 404 or a 401 included) shows that the
//! server is up. A failure of a request sent before the server's latest answer says nothing
//! new (it was in flight while the server came back) and does not count.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// An upstream that stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// The first failure of the outage.
    pub since: Instant,
    /// Requests that failed since then.
    pub failures: u64,
    /// The latest failure.
    pub last_failure: Instant,
    /// The latest failure, for the operator.
    pub last_error: String,
}

/// What one exchange changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing: up and answering, or down and still failing.
    None,
    /// The first failure after answers (or after start).
    WentDown,
    /// An answer after an outage of `lasted`, with `failures` failed requests.
    CameBack { lasted: Duration, failures: u64 },
}

#[derive(Debug, Default)]
struct State {
    outage: Option<Outage>,
    last_answer: Option<Instant>,
}

/// One upstream's reachability; shared by every request to it.
#[derive(Debug, Default)]
pub struct Reachability {
    state: Mutex<State>,
}

impl Reachability {
    /// The upstream answered at `now`.
    pub fn answered(&self, now: Instant) -> Change {
        let mut st = self.state.lock();
        if st.last_answer.is_none_or(|t| t < now) {
            st.last_answer = Some(now);
        }
        match st.outage.take() {
            Some(o) => Change::CameBack {
                lasted: now.saturating_duration_since(o.since),
                failures: o.failures,
            },
            None => Change::None,
        }
    }

    /// A request sent at `sent` failed at `now` because the upstream did not answer.
    pub fn failed(&self, error: String, sent: Instant, now: Instant) -> Change {
        let mut st = self.state.lock();
        if st.last_answer.is_some_and(|t| t > sent) {
            return Change::None;
        }
        match &mut st.outage {
            Some(o) => {
                o.failures += 1;
                o.last_failure = now;
                o.last_error = error;
                Change::None
            }
            None => {
                st.outage = Some(Outage {
                    since: now,
                    failures: 1,
                    last_failure: now,
                    last_error: error,
                });
                Change::WentDown
            }
        }
    }

    /// The outage in progress, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.state.lock().outage.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn answers_keep_it_up_and_the_first_failure_takes_it_down() {
        let r = Reachability::default();
        let t = Instant::now();
        assert_eq!(r.answered(at(t, 0)), Change::None);
        assert_eq!(r.outage(), None);
        assert_eq!(
            r.failed("refused".into(), at(t, 10), at(t, 11)),
            Change::WentDown
        );
        assert_eq!(
            r.failed("timed out".into(), at(t, 20), at(t, 30)),
            Change::None
        );
        let o = r.outage().expect("down");
        assert_eq!(o.since, at(t, 11));
        assert_eq!(o.failures, 2);
        assert_eq!(o.last_failure, at(t, 30));
        assert_eq!(o.last_error, "timed out");
    }

    #[test]
    fn an_answer_ends_the_outage_and_says_how_long_it_lasted() {
        let r = Reachability::default();
        let t = Instant::now();
        r.failed("refused".into(), at(t, 0), at(t, 0));
        r.failed("refused".into(), at(t, 500), at(t, 500));
        assert_eq!(
            r.answered(at(t, 1500)),
            Change::CameBack {
                lasted: Duration::from_millis(1500),
                failures: 2
            }
        );
        assert_eq!(r.outage(), None);
        assert_eq!(r.answered(at(t, 1600)), Change::None);
    }

    #[test]
    fn a_failure_of_a_request_sent_before_the_latest_answer_does_not_count() {
        let r = Reachability::default();
        let t = Instant::now();
        r.answered(at(t, 100));
        // Sent at 50, while the server was still restarting; failed after it answered.
        assert_eq!(
            r.failed("refused".into(), at(t, 50), at(t, 120)),
            Change::None
        );
        assert_eq!(r.outage(), None);
        // Sent after the answer: it counts.
        assert_eq!(
            r.failed("refused".into(), at(t, 130), at(t, 140)),
            Change::WentDown
        );
    }

    #[test]
    fn an_answer_that_lands_late_does_not_move_the_latest_answer_back() {
        let r = Reachability::default();
        let t = Instant::now();
        r.answered(at(t, 200));
        r.answered(at(t, 100));
        assert_eq!(
            r.failed("refused".into(), at(t, 150), at(t, 300)),
            Change::None
        );
    }
}
