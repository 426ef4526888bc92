//! Trust state shared by a fleet (issue 14): the pins of every replica in one record per GUN in
//! the shared store, `trust/<GUN, URL-encoded>.json` (the same JSON as the local file).
//!
//! - **First contact is create-only.** A replica that verified a repository nobody had pinned
//!   publishes its state with a create-only put; of two replicas racing, one wins, and the other
//!   verifies again against the winner's root (a Notary server that handed it a different root
//!   now fails the check: it refuses, or converges when its server serves the same root).
//! - **Versions never go backwards anywhere.** Before verifying, a replica takes the fleet's
//!   record as its pins, with each role's floor the highest version either the record or its own
//!   file saw under that root; after verifying it publishes with a compare-and-swap on the ETag
//!   it read, and a lost swap means another replica moved on: read again, verify again.
//! - **`trust reset` is fleet-wide**: it deletes the record too.
//!
//! When the shared store is down a replica verifies against its own file, as a single trustgate
//! does (and says so in the log): the fleet's floors are then only as fresh as the last record it
//! read, which is what a lone replica guarantees anyway.
//!
//! Where other shared trust records join (cosign/Notation verdicts, the tag map of unenforced
//! tags): each is a small JSON record under its own prefix, read with
//! [`SharedStore::read_record`] and written with [`SharedStore::create_record`] (first writer
//! wins) or [`SharedStore::update_record`] (compare-and-swap); [`shared_record_key`] names them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use object_store::path::Path as ObjPath;
use object_store::UpdateVersion;

use crate::store::shared::{SharedError, SharedStore, Written};
use crate::trust::{TrustError, TrustState, VerifiedRepository};

/// Attempts at publishing before settling for a verification against the latest record read.
const PUBLISH_ATTEMPTS: usize = 3;

/// The key of a fleet-wide record of `kind` (`trust`, `verdicts`, `tag-map`, ...) for `name`.
pub fn shared_record_key(shared: &SharedStore, kind: &str, name: &str) -> ObjPath {
    let enc: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    shared.record_key(&format!("{kind}/{enc}.json"))
}

/// The fleet's trust records.
#[derive(Debug, Clone)]
pub struct FleetTrust {
    shared: Arc<SharedStore>,
}

/// A verification against the given pins (the caller's `trust::update`).
pub type VerifyFn<'a> = Box<
    dyn FnMut(
            Option<TrustState>,
        )
            -> Pin<Box<dyn Future<Output = Result<VerifiedRepository, TrustError>> + Send + 'a>>
        + Send
        + 'a,
>;

impl FleetTrust {
    pub fn new(shared: Arc<SharedStore>) -> Self {
        Self { shared }
    }

    fn key(&self, gun: &str) -> ObjPath {
        shared_record_key(&self.shared, "trust", gun)
    }

    /// The fleet's state of `gun` and its version; `None` when no replica pinned it. A record
    /// that does not parse, or names another GUN, is treated as absent here and replaced only by
    /// compare-and-swap (never silently trusted).
    pub async fn load(
        &self,
        gun: &str,
    ) -> Result<Option<(Option<TrustState>, UpdateVersion)>, SharedError> {
        let Some(r) = self.shared.read_record(&self.key(gun)).await? else {
            return Ok(None);
        };
        let state = serde_json::from_slice::<TrustState>(&r.bytes)
            .ok()
            .filter(|s| s.gun == gun);
        if state.is_none() {
            tracing::warn!(gun, key = %self.key(gun), "fleet trust record is unreadable; it will be replaced by the next verified state");
        }
        Ok(Some((state, r.version)))
    }

    async fn publish(
        &self,
        state: &TrustState,
        read: Option<UpdateVersion>,
    ) -> Result<Written, SharedError> {
        let bytes = serde_json::to_vec_pretty(state).unwrap_or_default();
        let key = self.key(&state.gun);
        match read {
            None => self.shared.create_record(&key, bytes).await,
            Some(v) => self.shared.update_record(&key, bytes, v).await,
        }
    }

    /// Forgets the fleet's pins of `gun`.
    pub async fn reset(&self, gun: &str) -> Result<bool, SharedError> {
        let key = self.key(gun);
        let existed = self.shared.read_record(&key).await?.is_some();
        self.shared.delete_record(&key).await?;
        Ok(existed)
    }

    /// Verifies with the fleet's pins merged with `local`, then publishes the result (see the
    /// module comment). Verification errors are returned as they are.
    pub async fn verify_shared(
        &self,
        gun: &str,
        local: Option<&TrustState>,
        mut verify: VerifyFn<'_>,
    ) -> Result<VerifiedRepository, TrustError> {
        let mut record = match self.load(gun).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(gun, error = %e, "fleet trust state unavailable: verifying against this replica's own pins");
                return verify(local.cloned()).await;
            }
        };
        for _ in 0..PUBLISH_ATTEMPTS {
            let fleet_state = record.as_ref().and_then(|(s, _)| s.as_ref());
            let pins = merge(local, fleet_state);
            let repo = verify(pins).await?;
            if fleet_state == Some(&repo.new_state) {
                return Ok(repo);
            }
            match self
                .publish(&repo.new_state, record.as_ref().map(|(_, v)| v.clone()))
                .await
            {
                Ok(Written::Done) => return Ok(repo),
                Ok(Written::Lost) => {
                    tracing::info!(gun, "another replica changed the fleet's trust state meanwhile; verifying again against it");
                    record = match self.load(gun).await {
                        Ok(r) => r,
                        Err(_) => return Ok(repo),
                    };
                }
                Err(e) => {
                    tracing::warn!(gun, error = %e, "could not publish verified trust state to the fleet");
                    return Ok(repo);
                }
            }
        }
        // The record keeps moving: a verification against its latest state is sound to serve.
        let fleet_state = record.as_ref().and_then(|(s, _)| s.as_ref());
        verify(merge(local, fleet_state)).await
    }
}

/// The pins to verify against: the fleet's state when there is one (its root is the fleet's
/// pin), each role's version floor raised to this replica's own where both share that root;
/// else this replica's own state.
pub fn merge(local: Option<&TrustState>, fleet: Option<&TrustState>) -> Option<TrustState> {
    match (local, fleet) {
        (l, None) => l.cloned(),
        (None, Some(f)) => Some(f.clone()),
        (Some(l), Some(f)) => {
            let mut m = f.clone();
            if l.root == f.root {
                for (role, v) in &l.versions {
                    let floor = m.versions.entry(role.clone()).or_insert(0);
                    *floor = (*floor).max(*v);
                }
            }
            Some(m)
        }
    }
}

#[cfg(test)]
mod tests;
