//! The fill lease: one small object per digest being filled, so that one replica of the fleet
//! fetches a missing digest from the upstream while the others wait for it to appear.
//!
//! The record is JSON, `{"holder":"<replica id>","expires_ms":<unix ms>}`. It is created
//! create-only (`If-None-Match: *`): of two replicas racing for the same digest exactly one
//! creates it. The holder renews it while it fills (a conditional put on the lease's ETag), and
//! deletes it when the object is complete (or the fill failed). A holder killed mid-fill leaves a
//! lease that expires: the next replica to look replaces it, again conditionally on the ETag it
//! read, so two replicas taking over at once still end with one holder.
//!
//! Expiry compares wall clocks of different machines: keep them in sync (NTP), and keep
//! `lease_ttl` well above the clock skew. A skewed clock only costs a second upstream fetch
//! (two holders fill the same digest; both write identical, verified bytes), never wrong bytes.

use std::sync::Arc;

use object_store::path::Path as ObjPath;
use object_store::{PutMode, UpdateVersion};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::SharedStore;

/// What a lease object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The replica filling the digest (its `holder` id: host, process, random suffix).
    pub holder: String,
    /// Until when, in milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// Where the holder's peer endpoint streams the running fill (`[fleet] advertise`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<String>,
}

impl LeaseRecord {
    pub fn new(holder: &str, now_ms: u64, ttl_ms: u64) -> Self {
        Self {
            holder: holder.to_string(),
            expires_ms: now_ms.saturating_add(ttl_ms),
            advertise: None,
        }
    }

    pub fn advertising(mut self, advertise: Option<&str>) -> Self {
        self.advertise = advertise.map(str::to_string);
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        // A struct of a string and a number always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record that does not parse (a torn or foreign object) counts as expired: it must not
    /// block fills forever.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A lease this replica holds: renewed in the background until dropped, then deleted (if it is
/// still ours).
#[derive(Debug)]
pub struct LeaseHandle {
    _stop: oneshot::Sender<()>,
}

impl SharedStore {
    /// Starts renewing the lease at `key` (written at `version`) every third of its lifetime.
    pub(super) fn hold_lease(
        self: &Arc<Self>,
        key: ObjPath,
        version: UpdateVersion,
    ) -> LeaseHandle {
        let (tx, mut rx) = oneshot::channel::<()>();
        let me = self.clone();
        tokio::spawn(async move {
            let ttl_ms = me.lease_ttl.as_millis() as u64;
            let every = me.lease_ttl / 3;
            let mut version = version;
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    _ = tokio::time::sleep(every) => {
                        let rec = LeaseRecord::new(&me.holder, now_ms(), ttl_ms)
                            .advertising(me.advertise());
                        match me.put_versioned(&key, rec.encode(), PutMode::Update(version.clone())).await {
                            Ok(Some(v)) => version = v,
                            Ok(None) => {
                                tracing::warn!(lease = %key, "fill lease was taken over by another replica (this one was too slow to renew it)");
                                return;
                            }
                            // The store is down: keep trying; the lease may expire meanwhile.
                            Err(_) => {}
                        }
                    }
                }
            }
            // Released: delete it unless another replica took it over meanwhile.
            if let Ok(Some(r)) = me.read_record(&key).await {
                if LeaseRecord::decode(&r.bytes).is_some_and(|l| l.holder == me.holder) {
                    let _ = me.delete_record(&key).await;
                }
            }
        });
        LeaseHandle { _stop: tx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_expiry() {
        let r = LeaseRecord::new("a-1", 1_000, 500);
        let back = LeaseRecord::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert!(!back.is_expired(1_499));
        assert!(back.is_expired(1_500));
    }

    #[test]
    fn garbage_is_not_a_lease() {
        assert_eq!(LeaseRecord::decode(b"{\"holder\":"), None);
    }
}
