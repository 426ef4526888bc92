//! What the store tells the operator when it cannot keep content: a counter per reason, a log
//! line per reason at most once a [`LOG_EVERY`] (a full disk under load would otherwise write one
//! per request), and the disk fault `/readyz` reports until a write succeeds again.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::space::Unstored;
use crate::metrics::metrics;

/// At most one log line per reason in this time; the next one says how many it stood for.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Condition {
    state: Mutex<State>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) reason: Unstored,
    pub(crate) detail: String,
    /// The length of the content refused (0 when unknown).
    pub(crate) needed: u64,
}

#[derive(Default)]
struct State {
    /// The last disk fault (full, read-only, write errors, no room above the floor), what the
    /// OS said, and how many bytes the refused content needed.
    fault: Option<Fault>,
    /// Per reason: when the last line was logged, and how many events went unlogged since.
    logged: HashMap<Unstored, (Instant, u64)>,
    /// Content served without being stored since the store opened, and why the last was.
    unstored: u64,
    last: Option<String>,
}

impl Condition {
    /// Counts one pull or put served without being stored, and says why (rate-limited).
    pub(crate) fn unstored(&self, reason: Unstored, detail: &str, needed: u64) {
        metrics().store_unstored(reason.as_str());
        let mut st = self.state.lock();
        st.unstored += 1;
        st.last = Some(format!("{} ({detail})", reason.describe()));
        if reason.is_disk_fault() {
            st.fault = Some(Fault {
                reason,
                detail: detail.to_string(),
                needed,
            });
        }
        let now = Instant::now();
        let (log, skipped) = match st.logged.get_mut(&reason) {
            Some((at, skipped)) if now.duration_since(*at) < LOG_EVERY => {
                *skipped += 1;
                (false, 0)
            }
            Some((at, skipped)) => {
                let n = *skipped;
                *at = now;
                *skipped = 0;
                (true, n)
            }
            None => {
                st.logged.insert(reason, (now, 0));
                (true, 0)
            }
        };
        drop(st);
        if log {
            tracing::warn!(
                reason = reason.as_str(),
                detail,
                also_since_last_report = skipped,
                "store: {}; content is served to clients without being stored (still checked \
                 against its digest)",
                reason.describe()
            );
        }
    }

    /// A write went through: a disk fault (if any) is over. A refusal for the floor is not:
    /// a small object fitting says nothing about the large one that did not
    /// ([`Condition::clear`] ends it once there is room for it).
    pub(crate) fn write_succeeded(&self) {
        let mut st = self.state.lock();
        if st
            .fault
            .as_ref()
            .is_some_and(|f| f.reason != Unstored::MinFree)
        {
            let was = st.fault.take();
            drop(st);
            Self::cleared(was);
        }
    }

    /// The fault is over (the probe found the disk writable, or room for what was refused).
    pub(crate) fn clear(&self) {
        let was = self.state.lock().fault.take();
        Self::cleared(was);
    }

    fn cleared(was: Option<Fault>) {
        if let Some(f) = was {
            tracing::info!(
                was = f.reason.as_str(),
                "store: the disk takes content again; pulls are stored again"
            );
        }
    }

    /// How much content was served without being stored since the store opened, and why the
    /// last of it was.
    pub(crate) fn unstored_so_far(&self) -> (u64, Option<String>) {
        let st = self.state.lock();
        (st.unstored, st.last.clone())
    }

    /// The disk fault in effect, if any.
    pub(crate) fn fault(&self) -> Option<Fault> {
        self.state.lock().fault.clone()
    }
}
