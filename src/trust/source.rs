//! The only door to the outside: a small async trait through which the update algorithm asks for
//! metadata files. A Notary HTTP client implements it elsewhere; [`MemorySource`] serves files from
//! memory (tests, offline re-verification, the proxy's cache).

use std::collections::BTreeMap;
use std::future::Future;

/// A file below `<server>/v2/<GUN>/_trust/tuf/` (`notary:storage/httpstore.go`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MetadataPath {
    /// `root.json` (current root, no checksum known).
    Root,
    /// `<version>.root.json` (root rotation).
    RootVersion(u64),
    /// `timestamp.json`.
    Timestamp,
    /// `<role>.<sha256 hex>.json` (snapshot, targets, delegations: always fetched by checksum).
    ByHash {
        /// Role name, e.g. `targets/releases`.
        role: String,
        /// Lower-case hex sha256 of the expected bytes.
        sha256: String,
    },
    /// `<role>.json` (current version of any role).
    Current(String),
}

impl MetadataPath {
    /// The file name relative to `…/_trust/tuf/`.
    pub fn file_name(&self) -> String {
        match self {
            MetadataPath::Root => "root.json".into(),
            MetadataPath::RootVersion(v) => format!("{v}.root.json"),
            MetadataPath::Timestamp => "timestamp.json".into(),
            MetadataPath::ByHash { role, sha256 } => format!("{role}.{sha256}.json"),
            MetadataPath::Current(role) => format!("{role}.json"),
        }
    }

    /// The role this file belongs to.
    pub fn role(&self) -> &str {
        match self {
            MetadataPath::Root | MetadataPath::RootVersion(_) => "root",
            MetadataPath::Timestamp => "timestamp",
            MetadataPath::ByHash { role, .. } | MetadataPath::Current(role) => role,
        }
    }
}

impl std::fmt::Display for MetadataPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file_name())
    }
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The server has no such file (HTTP 404).
    #[error("not found")]
    NotFound,
    /// The file is larger than `max_len`.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The limit that was passed in.
        limit: u64,
    },
    /// Anything else.
    #[error("{message}")]
    Other {
        /// For the log.
        message: String,
    },
}

/// Where metadata comes from. Implementations must not return more than `max_len` bytes (the
/// verifier checks again).
pub trait MetadataSource {
    /// Fetch one file.
    fn fetch(
        &self,
        path: &MetadataPath,
        max_len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, FetchError>> + Send;
}

/// Files in memory, keyed by [`MetadataPath::file_name`]. A by-checksum request that has no exact
/// entry is served from the plain `<role>.json` entry: the verifier hash-checks it anyway, and a
/// cache of current files (or a copy of a server's directory) then works unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySource {
    files: BTreeMap<String, Vec<u8>>,
}

impl MemorySource {
    /// Empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or replace a file (`root.json`, `targets/releases.json`, `2.root.json`, …).
    pub fn insert(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.files.insert(name.into(), bytes);
    }

    /// Remove a file.
    pub fn remove(&mut self, name: &str) -> Option<Vec<u8>> {
        self.files.remove(name)
    }

    /// A file's bytes.
    pub fn get(&self, name: &str) -> Option<&Vec<u8>> {
        self.files.get(name)
    }

    /// Mutable access to a file's bytes.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Vec<u8>> {
        self.files.get_mut(name)
    }

    /// All file names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    fn lookup(&self, path: &MetadataPath) -> Option<&Vec<u8>> {
        self.files.get(&path.file_name()).or_else(|| match path {
            MetadataPath::ByHash { role, .. } => self.files.get(&format!("{role}.json")),
            _ => None,
        })
    }
}

impl MetadataSource for MemorySource {
    fn fetch(
        &self,
        path: &MetadataPath,
        max_len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, FetchError>> + Send {
        let result = match self.lookup(path) {
            None => Err(FetchError::NotFound),
            Some(b) if b.len() as u64 > max_len => Err(FetchError::TooLarge { limit: max_len }),
            Some(b) => Ok(b.clone()),
        };
        std::future::ready(result)
    }
}
