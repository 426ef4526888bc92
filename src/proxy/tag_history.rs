//! The remembered tag map of repositories under digest verifiers (cosign): every signed digest
//! each tag has resolved to, most recent last, on disk.
//!
//! cosign signs digests, not tags: a registry (or whoever controls it) may point a tag at ANY
//! digest the same key ever signed, an old vulnerable release included, and every signature
//! still verifies. trustgate cannot tell a deliberate rollback from an attack, but it remembers:
//! a tag that moves back to a digest it resolved to earlier is logged and counted
//! (`trustgate_signed_tag_moved_back_total`). The last digest is also what an offline mirror
//! serves the tag as.
//!
//! With `[storage.shared]` the history is also a fleet record ([`super::fleet_tags`]): a replica
//! decides against the fleet's history merged with its own, so a move back that follows another
//! replica's newer digest is seen too. When the store is down it decides from its own file alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::reference::Digest;

/// Digests remembered per tag.
const MAX_HISTORY: usize = 64;
/// Tags whose history is held in memory; the rest is read back from disk.
const MEMORY_ENTRIES: u64 = 100_000;

/// What a new resolution of a tag is, compared with its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// The tag was never seen before.
    First,
    /// The same digest as last time.
    Same,
    /// A digest the tag never had.
    Forward { from: Digest },
    /// A digest the tag had before `from`: moved back.
    Back { from: Digest },
}

pub struct TagHistory {
    dir: PathBuf,
    memory: moka::sync::Cache<String, std::sync::Arc<Mutex<Vec<Digest>>>>,
    fleet: Option<super::fleet_tags::FleetTagHistory>,
}

/// Adds `digest` to a tag's history (most recent last, bounded) and says how the tag moved.
/// Pure, so the local file and the fleet record follow the same rule; `Same` changes nothing.
pub fn advance(h: &mut Vec<Digest>, digest: Digest) -> Movement {
    let movement = match h.last().copied() {
        None => Movement::First,
        Some(last) if last == digest => return Movement::Same,
        Some(last) if h.contains(&digest) => Movement::Back { from: last },
        Some(last) => Movement::Forward { from: last },
    };
    h.retain(|d| *d != digest);
    h.push(digest);
    if h.len() > MAX_HISTORY {
        let extra = h.len() - MAX_HISTORY;
        h.drain(..extra);
    }
    movement
}

impl TagHistory {
    /// Runs pending removals in the memory tier; the entries left ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        crate::housekeeping::settle(&self.memory)
    }

    pub fn new(storage_path: &Path) -> Self {
        Self {
            dir: storage_path.join("signed-tags"),
            memory: moka::sync::Cache::new(MEMORY_ENTRIES),
            fleet: None,
        }
    }

    /// Shares the history with the fleet through the shared store's records.
    pub fn with_fleet(mut self, shared: std::sync::Arc<crate::store::SharedStore>) -> Self {
        self.fleet = Some(super::fleet_tags::FleetTagHistory::new(shared));
        self
    }

    fn key(upstream: &str, repository: &str, tag: &str) -> String {
        format!("{upstream}/{repository}:{tag}")
    }

    fn path(&self, key: &str) -> PathBuf {
        let name: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        self.dir.join(name.replace('.', "%2E"))
    }

    fn entry(&self, key: &str) -> std::sync::Arc<Mutex<Vec<Digest>>> {
        self.memory.get_with(key.to_string(), || {
            let text = std::fs::read_to_string(self.path(key)).unwrap_or_default();
            let v = text
                .lines()
                .filter_map(|l| Digest::parse(l.trim()).ok())
                .collect();
            std::sync::Arc::new(Mutex::new(v))
        })
    }

    /// The digest the tag last resolved to.
    pub fn last(&self, upstream: &str, repository: &str, tag: &str) -> Option<Digest> {
        self.entry(&Self::key(upstream, repository, tag))
            .lock()
            .last()
            .copied()
    }

    /// Records that the tag now resolves to `digest` and says how it moved. Writes only on a
    /// change; a write failure is logged (the history is a warning system, not a gate).
    pub fn observe(&self, upstream: &str, repository: &str, tag: &str, digest: Digest) -> Movement {
        let key = Self::key(upstream, repository, tag);
        let entry = self.entry(&key);
        let mut h = entry.lock();
        let movement = advance(&mut h, digest);
        if movement == Movement::Same {
            return movement;
        }
        let text: String = h.iter().map(|d| format!("{d}\n")).collect();
        drop(h);
        self.write(&key, &text);
        movement
    }

    /// [`TagHistory::observe`] against the fleet's record when the history is shared; when the
    /// shared store cannot be used, against this replica's own history (and the log says so).
    pub async fn observe_shared(
        &self,
        upstream: &str,
        repository: &str,
        tag: &str,
        digest: Digest,
    ) -> Movement {
        let Some(fleet) = &self.fleet else {
            return self.observe(upstream, repository, tag, digest);
        };
        let key = Self::key(upstream, repository, tag);
        let local = self.entry(&key).lock().clone();
        match fleet.observe(&key, &local, digest).await {
            Ok((movement, history)) => {
                if movement != Movement::Same || local != history {
                    self.replace(&key, history);
                }
                movement
            }
            Err(e) => {
                tracing::warn!(tag = %key, error = %e, "fleet tag history unavailable; deciding from this replica's history alone");
                self.observe(upstream, repository, tag, digest)
            }
        }
    }

    /// Takes `history` (the fleet's) as this replica's own, in memory and on disk.
    fn replace(&self, key: &str, history: Vec<Digest>) {
        let text: String = history.iter().map(|d| format!("{d}\n")).collect();
        *self.entry(key).lock() = history;
        self.write(key, &text);
    }

    fn write(&self, key: &str, text: &str) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(text.as_bytes())?;
            tmp.as_file().sync_all()?;
            tmp.persist(self.path(key)).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(tag = %key, error = %e, "could not record the signed tag's digest");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_moving_back_is_seen_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let h = TagHistory::new(dir.path());
        assert_eq!(h.observe("r.io", "app", "v1", a), Movement::First);
        assert_eq!(h.observe("r.io", "app", "v1", a), Movement::Same);
        assert_eq!(
            h.observe("r.io", "app", "v1", b),
            Movement::Forward { from: a }
        );
        let h = TagHistory::new(dir.path());
        assert_eq!(h.last("r.io", "app", "v1"), Some(b));
        assert_eq!(
            h.observe("r.io", "app", "v1", a),
            Movement::Back { from: b }
        );
        assert_eq!(h.last("r.io", "app", "v1"), Some(a));
        assert_eq!(h.last("r.io", "app", "v2"), None);
    }
}
