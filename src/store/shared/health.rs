//! Whether the shared store is usable right now.
//!
//! A request that fails for a reason other than the object's own state (not found, already
//! there, precondition) marks the store down: for `retry_after` every replica request skips it
//! (pulls go on from the local tier and the upstream, and fills are streamed without being
//! stored), then the next request tries again and marks it up when it works. Each change is
//! logged once, counted in `trustgate_shared_store_up`, and shown in `/readyz`'s detail.

use parking_lot::Mutex;
use tokio::time::{Duration, Instant};

use crate::metrics::metrics;

#[derive(Debug)]
pub struct Health {
    describe: String,
    retry_after: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone)]
enum State {
    Up,
    Down { since: Instant, reason: String },
}

impl Health {
    pub fn new(describe: &str, retry_after: Duration) -> Self {
        metrics().shared_store_up(true);
        Self {
            describe: describe.to_string(),
            retry_after,
            state: Mutex::new(State::Up),
        }
    }

    /// False while the store is marked down and not yet due for another try.
    pub fn usable(&self) -> bool {
        match &*self.state.lock() {
            State::Up => true,
            State::Down { since, .. } => since.elapsed() >= self.retry_after,
        }
    }

    /// Why the store is down, when it is.
    pub fn problem(&self) -> Option<String> {
        match &*self.state.lock() {
            State::Up => None,
            State::Down { reason, .. } => Some(format!(
                "shared store {} unavailable (serving from the local tier and the upstream, fills not stored): {reason}",
                self.describe
            )),
        }
    }

    pub fn up(&self) {
        let mut st = self.state.lock();
        if let State::Down { reason, .. } = &*st {
            tracing::info!(store = %self.describe, previous_error = %reason,
                "shared store reachable again: fills are stored and read from it again");
            *st = State::Up;
            metrics().shared_store_up(true);
        }
    }

    pub fn down(&self, reason: &str) {
        let mut st = self.state.lock();
        if matches!(*st, State::Up) {
            tracing::warn!(store = %self.describe, error = %reason, retry_after_secs = self.retry_after.as_secs(),
                "shared store unavailable: serving from the local tier and the upstream; fills are streamed without being stored");
            metrics().shared_store_up(false);
        }
        *st = State::Down {
            since: Instant::now(),
            reason: reason.to_string(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn down_then_retry_after_then_up() {
        let h = Health::new("s3://t", Duration::from_secs(5));
        assert!(h.usable() && h.problem().is_none());
        h.down("connection refused");
        assert!(!h.usable());
        assert!(h.problem().unwrap().contains("connection refused"));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(h.usable(), "due for another try");
        h.up();
        assert!(h.problem().is_none());
    }
}
