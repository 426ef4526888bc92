//! Pinned trust state on disk: one JSON file per GUN under `<storage.path>/trust/`.
//!
//! The file holds the trusted root, the highest version seen per role and the last verified
//! metadata, so a restart keeps pins and rollback protection and an unreachable Notary server
//! can be bridged by re-verifying what was stored. Writes go to a temporary file that is fsynced
//! and renamed into place: a crash leaves the old state or the new one, never half of either.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::trust::TrustState;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("trust state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("trust state {path} is unreadable ({reason}); refusing to guess. Inspect it, or forget the repository's pins with `trustgate trust reset {gun}`")]
    Corrupt {
        path: PathBuf,
        gun: String,
        reason: String,
    },
}

/// The folder of pinned states.
#[derive(Debug, Clone)]
pub struct TrustStore {
    dir: PathBuf,
}

impl TrustStore {
    pub fn new(storage_path: &Path) -> Self {
        Self {
            dir: storage_path.join("trust"),
        }
    }

    /// `127.0.0.1:5101/team/app` → `127.0.0.1%3A5101%2Fteam%2Fapp.json`: readable, one level.
    pub fn path_for(&self, gun: &str) -> PathBuf {
        let name: String = url::form_urlencoded::byte_serialize(gun.as_bytes()).collect();
        // byte_serialize leaves `.` alone; a GUN never starts with one (it starts with a host),
        // but make sure no name can be `.` or `..`.
        let name = match name.strip_prefix('.') {
            Some(rest) => format!("%2E{rest}"),
            None => name,
        };
        self.dir.join(format!("{name}.json"))
    }

    pub fn load(&self, gun: &str) -> Result<Option<TrustState>, PersistError> {
        let path = self.path_for(gun);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(PersistError::Io { path, source }),
        };
        let state: TrustState =
            serde_json::from_slice(&bytes).map_err(|e| PersistError::Corrupt {
                path: path.clone(),
                gun: gun.to_string(),
                reason: e.to_string(),
            })?;
        if state.gun != gun {
            return Err(PersistError::Corrupt {
                path,
                gun: gun.to_string(),
                reason: format!("it belongs to {:?}", state.gun),
            });
        }
        Ok(Some(state))
    }

    pub fn save(&self, state: &TrustState) -> Result<(), PersistError> {
        let path = self.path_for(&state.gun);
        let io = |source| PersistError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        tmp.write_all(&json).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        // The rename itself is durable only once the directory is synced.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Forgets the pins of `gun`; true when there was something to forget.
    pub fn reset(&self, gun: &str) -> Result<bool, PersistError> {
        let path = self.path_for(gun);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(PersistError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::StoredBytes;

    fn state(gun: &str) -> TrustState {
        TrustState {
            gun: gun.into(),
            root: StoredBytes(b"{}".to_vec()),
            versions: [("root".to_string(), 2u64)].into_iter().collect(),
            metadata: Default::default(),
            signers: Default::default(),
        }
    }

    #[test]
    fn save_load_reset_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::new(dir.path());
        let gun = "127.0.0.1:5101/team/app";
        assert!(store.load(gun).unwrap().is_none());
        store.save(&state(gun)).unwrap();
        assert_eq!(store.load(gun).unwrap(), Some(state(gun)));
        assert_eq!(
            store.path_for(gun).file_name().unwrap(),
            "127.0.0.1%3A5101%2Fteam%2Fapp.json"
        );
        assert!(store.reset(gun).unwrap());
        assert!(!store.reset(gun).unwrap());
        assert!(store.load(gun).unwrap().is_none());
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::new(dir.path());
        std::fs::create_dir_all(dir.path().join("trust")).unwrap();
        std::fs::write(store.path_for("a.io/x"), b"{not json").unwrap();
        let e = store.load("a.io/x").unwrap_err().to_string();
        assert!(e.contains("trustgate trust reset a.io/x"), "{e}");
        // A file holding another GUN's state is not accepted either.
        std::fs::write(
            store.path_for("a.io/y"),
            serde_json::to_vec(&state("a.io/x")).unwrap(),
        )
        .unwrap();
        assert!(store.load("a.io/y").is_err());
    }

    #[test]
    fn names_cannot_escape_the_folder() {
        let store = TrustStore::new(Path::new("/s"));
        for gun in ["../x", "a/../../b", ".."] {
            let p = store.path_for(gun);
            assert_eq!(p.parent().unwrap(), Path::new("/s/trust"), "{gun}");
        }
    }
}
