//! The signed closure: under enforce, a digest is served only when a signed tag reaches it (the
//! signed manifest or index, its child manifests, and their configs and layers).
//!
//! Each repository's closure is built from its verified trust data and rebuilt from scratch
//! when the signed targets change (a tag re-signed to another image, or removed): the old image
//! is then no longer reachable from a signed tag and must not stay servable by digest. The
//! closures of at most [`MAX_REPOSITORIES`] repositories are held; an evicted one is rebuilt by
//! walking the signed targets again.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

use super::audit;
use super::{Proxy, PullError, Target};
use crate::decision::Reason;
use crate::reference::Digest;
use crate::trust::VerifiedRepository;

/// Repositories whose closure is held in memory.
const MAX_REPOSITORIES: u64 = 10_000;
/// At most this many manifests are walked to build a repository's closure.
const MAX_CLOSURE_MANIFESTS: usize = 10_000;

/// Digests reachable from the signed tags of one repository.
#[derive(Default)]
struct Closure {
    allowed: HashSet<Digest>,
    /// Manifests whose references are in `allowed` already: serving one again (every warm pull
    /// of a tag) need not parse it again (BENCHMARKS.md, "Against the peers": the parse was a
    /// tenth of a cached tag's cost).
    expanded: HashSet<Digest>,
    /// The trust data whose every signed target has been walked (so a miss is final).
    walked_for: Option<Arc<VerifiedRepository>>,
    /// The trust data `allowed` was built from.
    basis: Option<Arc<VerifiedRepository>>,
}

/// The closures of the repositories seen, by GUN; bounded.
pub(crate) struct Closures {
    by_gun: moka::sync::Cache<String, Arc<Mutex<Closure>>>,
}

impl Closures {
    pub fn new() -> Self {
        Self {
            by_gun: moka::sync::Cache::new(MAX_REPOSITORIES),
        }
    }

    fn of(&self, gun: &str) -> Arc<Mutex<Closure>> {
        if let Some(c) = self.by_gun.get(gun) {
            return c;
        }
        self.by_gun.get_with(gun.to_string(), Default::default)
    }

    /// Keep the closure of `gun` only while it was built from the same signed targets as `repo`.
    pub fn rebase(&self, gun: &str, repo: &Arc<VerifiedRepository>) {
        let c = self.of(gun);
        let mut c = c.lock();
        let same = match &c.basis {
            Some(b) if Arc::ptr_eq(b, repo) => return,
            Some(b) => target_digests(b) == target_digests(repo),
            None => false,
        };
        if same {
            c.basis = Some(repo.clone());
        } else {
            tracing::debug!(gun, "signed targets changed: the signed closure is rebuilt");
            *c = Closure {
                basis: Some(repo.clone()),
                ..Closure::default()
            };
        }
    }

    /// Adds a checked manifest and what it refers to.
    pub(crate) fn allow_manifest(&self, gun: &str, manifest: Digest, bytes: &[u8]) {
        let c = self.of(gun);
        if c.lock().expanded.contains(&manifest) {
            return;
        }
        let (manifests, blobs) = references(bytes);
        let mut c = c.lock();
        c.allowed.insert(manifest);
        c.allowed.extend(manifests);
        c.allowed.extend(blobs);
        c.expanded.insert(manifest);
    }

    fn allow_digest(&self, gun: &str, digest: Digest) {
        self.of(gun).lock().allowed.insert(digest);
    }

    /// A signature artifact read by discovery (an index, a signature manifest, a signature
    /// blob): servable by digest, but its own references are NOT added (an index or manifest
    /// the registry lists as a signature must not make anything else servable).
    pub(crate) fn allow_trust_data(&self, gun: &str, digest: Digest) {
        let c = self.of(gun);
        let mut c = c.lock();
        c.allowed.insert(digest);
        c.expanded.insert(digest);
    }

    /// Whether `digest`'s references have been added already.
    pub(crate) fn contains_expanded(&self, gun: &str, digest: &Digest) -> bool {
        self.by_gun
            .get(gun)
            .is_some_and(|c| c.lock().expanded.contains(digest))
    }

    pub(crate) fn contains(&self, gun: &str, digest: &Digest) -> bool {
        self.by_gun
            .get(gun)
            .is_some_and(|c| c.lock().allowed.contains(digest))
    }

    fn walked_for(&self, gun: &str, repo: &Arc<VerifiedRepository>) -> bool {
        self.by_gun.get(gun).is_some_and(|c| {
            c.lock()
                .walked_for
                .as_ref()
                .is_some_and(|w| Arc::ptr_eq(w, repo))
        })
    }

    fn mark_walked(&self, gun: &str, repo: &Arc<VerifiedRepository>) {
        self.of(gun).lock().walked_for = Some(repo.clone());
    }
}

/// What decides a closure: the signed (sha256, length) pairs.
fn target_digests(repo: &VerifiedRepository) -> Vec<([u8; 32], u64)> {
    let mut v: Vec<_> = repo
        .signed_targets()
        .iter()
        .map(|t| (t.sha256, t.length))
        .collect();
    v.sort_unstable();
    v
}

/// What a manifest refers to: child manifests (of an index) and blobs (config, layers).
pub fn references(bytes: &[u8]) -> (Vec<Digest>, Vec<Digest>) {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(default)]
        manifests: Vec<Descriptor>,
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let Ok(shape) = serde_json::from_slice::<Shape>(bytes) else {
        return (Vec::new(), Vec::new());
    };
    let parse = |d: &Descriptor| d.digest.as_deref().and_then(|s| Digest::parse(s).ok());
    let manifests = shape.manifests.iter().filter_map(parse).collect();
    let blobs = shape
        .config
        .iter()
        .chain(shape.layers.iter())
        .filter_map(parse)
        .collect();
    (manifests, blobs)
}

impl Proxy {
    /// Enforced digest requests: allowed only inside the signed closure (unless the policy
    /// switches that rule off). Builds the closure by walking every signed target on a miss.
    /// `manifest`: asked for as a manifest (under digest verifiers, a manifest may be signed
    /// itself).
    pub(crate) async fn require_in_closure(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        manifest: bool,
    ) -> Result<(), PullError> {
        if !t.policy.require_signed_closure {
            return Ok(());
        }
        if let crate::policy::Signatures::Digest { .. } = t.policy.signatures {
            return self.require_in_digest_closure(t, digest, manifest).await;
        }
        let image = format!("{}@{digest}", t.gun);
        // Reachability is decided by the current trust data (a cache hit while fresh).
        let repo = self
            .signed_set(t, None)
            .await
            .inspect_err(|e| audit::refused(e, image.clone(), None, Some(digest)))?;
        self.closures.rebase(&t.gun, &repo);
        if !self.closures.contains(&t.gun, digest) && !self.closures.walked_for(&t.gun, &repo) {
            self.walk_closure(t, &repo).await;
        }
        if self.closures.contains(&t.gun, digest) {
            audit::allow(image, Reason::InSignedClosure, None, Some(digest));
            Ok(())
        } else {
            let e = PullError::OutsideClosure {
                gun: t.gun.clone(),
                digest: *digest,
            };
            audit::refused(&e, image, None, Some(digest));
            Err(e)
        }
    }

    async fn walk_closure(&self, t: &Target<'_>, repo: &Arc<VerifiedRepository>) {
        let roots: Vec<(Digest, Option<u64>)> = repo
            .signed_targets()
            .iter()
            .map(|t| (Digest::from_bytes(t.sha256), Some(t.length)))
            .collect();
        self.walk_from(t, roots).await;
        self.closures.mark_walked(&t.gun, repo);
    }

    /// Adds the closure of each root (digest and signed length, when there is one).
    pub(crate) async fn walk_from(&self, t: &Target<'_>, roots: Vec<(Digest, Option<u64>)>) {
        let mut queue = roots;
        let mut seen = HashSet::new();
        while let Some((digest, length)) = queue.pop() {
            if !seen.insert(digest) || seen.len() > MAX_CLOSURE_MANIFESTS {
                continue;
            }
            match self.checked_manifest(t, &digest, length, None).await {
                Ok(m) => {
                    self.closures.allow_manifest(&t.gun, digest, &m.bytes);
                    let (children, _) = references(&m.bytes);
                    queue.extend(children.into_iter().map(|c| (c, None)));
                }
                // A signed target that is a blob rather than a manifest, or gone upstream: it
                // adds nothing to walk; the digest itself stays allowed.
                Err(e) => {
                    tracing::debug!(gun = %t.gun, digest = %digest, error = %e, "closure walk: manifest not fetched");
                    self.closures.allow_digest(&t.gun, digest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_indexes_and_manifests() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}},{{"digest":"{}"}}]}}"#,
            d('a'),
            d('b')
        );
        let (m, b) = references(index.as_bytes());
        assert_eq!(m.len(), 2);
        assert!(b.is_empty());
        let manifest = format!(
            r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}},{{"digest":"bogus"}}]}}"#,
            d('c'),
            d('e')
        );
        let (m, b) = references(manifest.as_bytes());
        assert!(m.is_empty());
        assert_eq!(
            b,
            vec![
                Digest::parse(&d('c')).unwrap(),
                Digest::parse(&d('e')).unwrap()
            ]
        );
        assert_eq!(references(b"not json"), (vec![], vec![]));
    }
}
