//! Bounding the shared tier: `[storage.shared] max_size` and `max_age` (issue 14).
//!
//! Every replica wakes every `sweep_interval`; the one that wins the sweep lease
//! (`leases/sweep`, the same create-only record as a fill lease, renewed while it works) lists
//! `content/sha256/` once and deletes, oldest first, what is older than `max_age` and then
//! what keeps the total above `max_size`. The others see the lease and skip that round, so the
//! fleet sweeps once, not once per replica.
//!
//! What "oldest" means: the object's `Last-Modified`, which the listing gives for free (one
//! LIST request per 1000 objects, no HEAD per object). Content objects are written once and
//! never rewritten, so that is when the object was stored. S3 keeps no access time, and
//! recording use on every shared hit would cost a write per hit; the hot set is held by each
//! replica's local tier (LRU) anyway, so the bucket works as a fleet-wide FIFO: an object that
//! is still popular when it ages out costs one refetch, shared again by the fleet.
//!
//! What is never deleted: anything outside `content/` (trust pins, role-version floors,
//! verdicts and tag maps live under their own prefixes, and the listing never sees them); an
//! object with a fill lease present (it is being filled, or its holder died, in which case the
//! lease's next claim clears it); incomplete multipart uploads (invisible to the listing).
//!
//! Deleting an object another replica is reading is safe: S3 finishes a GET already under way,
//! and a reader that finds the object gone (before or during its read) fetches it again from the
//! fleet or the upstream ([`super::source`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;

use super::lease::now_ms;
use super::source::Claim;
use super::{SharedError, SharedStore};

/// `max_size` and `max_age` of `[storage.shared]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    pub max_size: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Bounds {
    pub fn is_unbounded(&self) -> bool {
        self.max_size.is_none() && self.max_age.is_none()
    }
}

/// One content object as the listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The digest's hex (the key's last segment).
    pub name: String,
    pub size: u64,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub stored_ms: u64,
}

/// Which objects to delete (by index into `objects`), oldest first: those older than
/// `max_age`, then the oldest until the total fits `max_size`. Objects in `busy` (a fill lease
/// exists) are kept and still count towards the total.
pub fn choose(
    objects: &[Listed],
    bounds: Bounds,
    now_ms: u64,
    busy: &HashSet<String>,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..objects.len()).collect();
    order.sort_by_key(|&i| (objects[i].stored_ms, objects[i].name.clone()));
    let mut total: u64 = objects.iter().map(|o| o.size).sum();
    let max_age_ms = bounds.max_age.map(|a| a.as_millis() as u64);
    let mut out = Vec::new();
    for i in order {
        let o = &objects[i];
        if busy.contains(&o.name) {
            continue;
        }
        let too_old = max_age_ms.is_some_and(|a| now_ms.saturating_sub(o.stored_ms) > a);
        let too_big = bounds.max_size.is_some_and(|m| total > m);
        if too_old || too_big {
            total -= o.size;
            out.push(i);
        }
    }
    out
}

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub objects: u64,
    pub bytes: u64,
    /// Left in the bucket's `content/` afterwards.
    pub remaining_bytes: u64,
}

impl SharedStore {
    /// Enforces `bounds` once if this replica wins the sweep lease; `None` when another replica
    /// is sweeping.
    pub async fn sweep(self: &Arc<Self>, bounds: Bounds) -> Result<Option<Swept>, SharedError> {
        let key = self.key("leases/sweep");
        let _lease = match self.claim_key(&key).await? {
            Claim::Mine(lease) => lease,
            Claim::Theirs { holder, .. } => {
                tracing::debug!(%holder, "shared store: another replica is sweeping");
                return Ok(None);
            }
        };
        let listed = self.list_meta("content/sha256").await?;
        let leased = self.list_meta("leases/sha256").await?;
        let busy: HashSet<String> = leased
            .iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect();
        let objects: Vec<Listed> = listed
            .iter()
            .filter_map(|m| {
                Some(Listed {
                    name: m.location.filename()?.to_string(),
                    size: m.size,
                    stored_ms: m.last_modified.timestamp_millis().max(0) as u64,
                })
            })
            .collect();
        let total: u64 = objects.iter().map(|o| o.size).sum();
        let mut swept = Swept {
            remaining_bytes: total,
            ..Swept::default()
        };
        for i in choose(&objects, bounds, now_ms(), &busy) {
            let o = &objects[i];
            let k = self.key(&format!("content/sha256/{}", o.name));
            // Missing already (another sweep, a damaged object deleted by a reader) is fine.
            let _ = self.call("delete", self.store.delete(&k)).await?;
            swept.objects += 1;
            swept.bytes += o.size;
            swept.remaining_bytes -= o.size;
        }
        if swept.objects > 0 {
            tracing::info!(store = %self.describe, objects = swept.objects, bytes = swept.bytes,
                remaining_bytes = swept.remaining_bytes, "shared store: deleted the oldest objects to keep its bounds");
        }
        Ok(Some(swept))
    }

    /// Sweeps every `every` until `stop` completes (nothing to do without bounds).
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        bounds: Bounds,
        every: Duration,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        if bounds.is_unbounded() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(every) => {
                        if let Err(e) = me.sweep(bounds).await {
                            tracing::warn!(store = %me.describe, error = %e, "shared store: sweep failed; trying again next round");
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, size: u64, stored_ms: u64) -> Listed {
        Listed {
            name: name.into(),
            size,
            stored_ms,
        }
    }

    #[test]
    fn oldest_go_first_until_the_total_fits() {
        let objs = [obj("c", 40, 300), obj("a", 40, 100), obj("b", 40, 200)];
        let b = Bounds {
            max_size: Some(50),
            max_age: None,
        };
        assert_eq!(choose(&objs, b, 1_000, &HashSet::new()), vec![1, 2]);
        let b = Bounds {
            max_size: Some(120),
            max_age: None,
        };
        assert!(choose(&objs, b, 1_000, &HashSet::new()).is_empty());
    }

    #[test]
    fn age_bound_deletes_what_is_older_only() {
        let objs = [obj("a", 1, 100), obj("b", 1, 900)];
        let b = Bounds {
            max_size: None,
            max_age: Some(Duration::from_millis(500)),
        };
        assert_eq!(choose(&objs, b, 1_000, &HashSet::new()), vec![0]);
    }

    #[test]
    fn leased_objects_are_kept_and_still_counted() {
        let objs = [obj("a", 40, 100), obj("b", 40, 200), obj("c", 40, 300)];
        let busy: HashSet<String> = ["a".to_string()].into();
        let b = Bounds {
            max_size: Some(50),
            max_age: Some(Duration::from_millis(1)),
        };
        assert_eq!(choose(&objs, b, 1_000, &busy), vec![1, 2]);
    }
}
