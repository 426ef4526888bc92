//! The last digest each unenforced tag resolved to, on disk, for serving while the upstream is
//! unreachable or the mirror is offline. (Enforced tags need none: their digests come from the
//! persisted, re-verifiable trust data, or for cosign from `tag_history.rs`.) It also holds the
//! digests of signature tags and referrers lists read by cosign discovery, so an offline mirror
//! finds the stored signatures of a digest.
//!
//! It stays per replica with `[storage.shared]` (issue 14): it is a cache of what the upstream
//! said, not trust state. No decision to serve or refuse reads it while the upstream answers;
//! unenforced tags carry no trust claim to protect, and signature/referrer digests found here
//! are verified again before anything is served. A replica whose map is older than another's
//! serves an older but still verified answer only while offline, as a lone trustgate would.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::reference::Digest;

/// Tag resolutions held in memory; older ones are read back from disk.
const MEMORY_ENTRIES: u64 = 100_000;

pub struct TagMap {
    dir: PathBuf,
    /// Recent resolutions, bounded: the disk holds them all.
    memory: moka::sync::Cache<String, Digest>,
}

impl TagMap {
    /// Runs pending removals in the memory tier; the entries left ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        crate::housekeeping::settle(&self.memory)
    }

    pub fn new(storage_path: &Path) -> Self {
        Self {
            dir: storage_path.join("tags"),
            memory: moka::sync::Cache::new(MEMORY_ENTRIES),
        }
    }

    fn key(upstream: &str, repository: &str, tag: &str) -> String {
        format!("{upstream}/{repository}:{tag}")
    }

    fn path(&self, key: &str) -> PathBuf {
        let name: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        self.dir.join(name.replace('.', "%2E"))
    }

    /// Records a resolution; writes only when it changed. Failures are logged, not fatal: the
    /// map only helps when the upstream is gone.
    pub fn record(&self, upstream: &str, repository: &str, tag: &str, digest: Digest) {
        let key = Self::key(upstream, repository, tag);
        if self.memory.get(&key) == Some(digest) {
            return;
        }
        self.memory.insert(key.clone(), digest);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(digest.to_string().as_bytes())?;
            tmp.as_file().sync_all()?;
            tmp.persist(self.path(&key)).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(tag = %key, error = %e, "could not record the tag's digest for offline serving");
        }
    }

    pub fn lookup(&self, upstream: &str, repository: &str, tag: &str) -> Option<Digest> {
        let key = Self::key(upstream, repository, tag);
        if let Some(d) = self.memory.get(&key) {
            return Some(d);
        }
        let text = std::fs::read_to_string(self.path(&key)).ok()?;
        let d = Digest::parse(text.trim()).ok()?;
        self.memory.insert(key, d);
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::of(b"x");
        TagMap::new(dir.path()).record("a.io", "team/app", "v1", d);
        let fresh = TagMap::new(dir.path());
        assert_eq!(fresh.lookup("a.io", "team/app", "v1"), Some(d));
        assert_eq!(fresh.lookup("a.io", "team/app", "v2"), None);
        assert_eq!(fresh.lookup("b.io", "team/app", "v1"), None);
    }
}
