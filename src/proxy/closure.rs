//! The signed closure: under enforce, a digest is served only when a signed tag reaches it (the
//! signed manifest or index, its child manifests, and their configs and layers).
//!
//! Each repository's closure is built from its verified trust data and rebuilt from scratch
//! when the signed targets change (a tag re-signed to another image, or removed): the old image
//! is then no longer reachable from a signed tag and must not stay servable by digest. The
//! closures of at most [`MAX_REPOSITORIES`] repositories are held; an evicted one is rebuilt by
//! walking the signed targets again.
//!
//! A walk fetches manifests from the upstream, so the trust data may be refreshed while it runs.
//! Each build of a closure has its own [`Generation`]: a walk (or a pull) adds what it found
//! only to the build it started from, and a digest is admitted only when the build it was
//! checked against is still the repository's current one; otherwise the check runs again
//! against the signed set in force (issue 15: a walk over the previous signed set could leave
//! its digests servable under the new one).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
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
/// How many times a closure check starts again when the signed set changed under it, before
/// the digest is refused (trust data changing that fast is itself a reason to fail closed).
const MAX_CLOSURE_ATTEMPTS: usize = 3;

/// One build of a repository's closure. Numbers are unique across repositories and evictions,
/// so work begun on a build that was since replaced (or evicted and made again) never matches
/// the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(u64);

/// Digests reachable from the signed tags of one repository.
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
    /// This build.
    generation: Generation,
}

impl Closure {
    fn new(generation: Generation, basis: Option<Arc<VerifiedRepository>>) -> Self {
        Closure {
            allowed: HashSet::new(),
            expanded: HashSet::new(),
            walked_for: None,
            basis,
            generation,
        }
    }

    /// Whether additions made for `at` belong here (`None`: not tied to a build, as under
    /// digest verifiers, whose closure has no signed-set basis).
    fn accepts(&self, at: Option<Generation>) -> bool {
        at.is_none_or(|g| g == self.generation)
    }
}

/// The closures of the repositories seen, by GUN; bounded.
pub(crate) struct Closures {
    by_gun: moka::sync::Cache<String, Arc<Mutex<Closure>>>,
    next_generation: AtomicU64,
}

impl Closures {
    pub fn new() -> Self {
        Self {
            by_gun: moka::sync::Cache::new(MAX_REPOSITORIES),
            next_generation: AtomicU64::new(0),
        }
    }

    /// Runs pending removals; the entries left ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        crate::housekeeping::settle(&self.by_gun)
    }

    fn next_generation(&self) -> Generation {
        Generation(self.next_generation.fetch_add(1, Ordering::Relaxed))
    }

    fn of(&self, gun: &str) -> Arc<Mutex<Closure>> {
        if let Some(c) = self.by_gun.get(gun) {
            return c;
        }
        self.by_gun.get_with(gun.to_string(), || {
            Arc::new(Mutex::new(Closure::new(self.next_generation(), None)))
        })
    }

    /// Keep the closure of `gun` only while it was built from the same signed targets as `repo`;
    /// the build that now stands for `repo`.
    ///
    /// `repo` may be older than the basis (a pull that resolved its tag before a refresh): the
    /// closure is then rebuilt for it, and the next check against the current signed set
    /// rebuilds it again. Every admission is decided against a build of the signed set its
    /// request read, so such a flip costs work, never a wrong answer.
    pub fn rebase(&self, gun: &str, repo: &Arc<VerifiedRepository>) -> Generation {
        let c = self.of(gun);
        let mut c = c.lock();
        let same = match &c.basis {
            Some(b) if Arc::ptr_eq(b, repo) => return c.generation,
            Some(b) => target_digests(b) == target_digests(repo),
            None => false,
        };
        if same {
            c.basis = Some(repo.clone());
        } else {
            tracing::debug!(gun, "signed targets changed: the signed closure is rebuilt");
            *c = Closure::new(self.next_generation(), Some(repo.clone()));
        }
        c.generation
    }

    /// Adds a checked manifest and what it refers to.
    pub(crate) fn allow_manifest(&self, gun: &str, manifest: Digest, bytes: &[u8]) {
        self.allow_manifest_at(gun, None, manifest, bytes);
    }

    /// [`Closures::allow_manifest`] to build `at` only (when given): dropped when the closure
    /// is another build by now.
    pub(crate) fn allow_manifest_at(
        &self,
        gun: &str,
        at: Option<Generation>,
        manifest: Digest,
        bytes: &[u8],
    ) {
        let c = self.of(gun);
        {
            let c = c.lock();
            if !c.accepts(at) || c.expanded.contains(&manifest) {
                return;
            }
        }
        let (manifests, blobs) = references(bytes);
        let mut c = c.lock();
        if !c.accepts(at) {
            return;
        }
        c.allowed.insert(manifest);
        c.allowed.extend(manifests);
        c.allowed.extend(blobs);
        c.expanded.insert(manifest);
    }

    fn allow_digest(&self, gun: &str, at: Option<Generation>, digest: Digest) {
        let c = self.of(gun);
        let mut c = c.lock();
        if c.accepts(at) {
            c.allowed.insert(digest);
        }
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

    /// Whether `digest` is in build `at` of the closure: `None` when the closure is another
    /// build by now (the signed set changed under the caller, who must check again).
    fn contains_at(&self, gun: &str, at: Generation, digest: &Digest) -> Option<bool> {
        let c = self.by_gun.get(gun)?;
        let c = c.lock();
        (c.generation == at).then(|| c.allowed.contains(digest))
    }

    fn walked_for(&self, gun: &str, repo: &Arc<VerifiedRepository>) -> bool {
        self.by_gun.get(gun).is_some_and(|c| {
            c.lock()
                .walked_for
                .as_ref()
                .is_some_and(|w| Arc::ptr_eq(w, repo))
        })
    }

    fn mark_walked(&self, gun: &str, at: Generation, repo: &Arc<VerifiedRepository>) {
        let c = self.of(gun);
        let mut c = c.lock();
        if c.generation == at {
            c.walked_for = Some(repo.clone());
        }
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
    /// itself). Returns the closure build the digest was admitted under, when there is one:
    /// what the caller then adds for the digest goes to that build only.
    pub(crate) async fn require_in_closure(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        manifest: bool,
    ) -> Result<Option<Generation>, PullError> {
        if !t.policy.require_signed_closure {
            return Ok(None);
        }
        if let crate::policy::Signatures::Digest { .. } = t.policy.signatures {
            return self
                .require_in_digest_closure(t, digest, manifest)
                .await
                .map(|()| None);
        }
        let image = format!("{}@{digest}", t.gun);
        for _ in 0..MAX_CLOSURE_ATTEMPTS {
            // Reachability is decided by the current trust data (a cache hit while fresh).
            let repo = self
                .signed_set(t, None)
                .await
                .inspect_err(|e| audit::refused(e, image.clone(), None, Some(digest)))?;
            let at = self.closures.rebase(&t.gun, &repo);
            if self.closures.contains_at(&t.gun, at, digest) != Some(true)
                && !self.closures.walked_for(&t.gun, &repo)
            {
                self.walk_closure(t, &repo, at).await;
            }
            match self.closures.contains_at(&t.gun, at, digest) {
                Some(true) => {
                    audit::allow(image, Reason::InSignedClosure, None, Some(digest));
                    return Ok(Some(at));
                }
                Some(false) => break,
                // The trust data changed while the closure was walked: what the walk found
                // belongs to the previous signed set. Check again under the current one.
                None => {
                    tracing::debug!(gun = %t.gun, digest = %digest,
                        "signed set changed during the closure walk; checking again");
                }
            }
        }
        let e = PullError::OutsideClosure {
            gun: t.gun.clone(),
            digest: *digest,
        };
        audit::refused(&e, image, None, Some(digest));
        Err(e)
    }

    async fn walk_closure(&self, t: &Target<'_>, repo: &Arc<VerifiedRepository>, at: Generation) {
        let roots: Vec<(Digest, Option<u64>)> = repo
            .signed_targets()
            .iter()
            .map(|t| (Digest::from_bytes(t.sha256), Some(t.length)))
            .collect();
        self.walk_at(t, roots, Some(at)).await;
        self.closures.mark_walked(&t.gun, at, repo);
    }

    /// Adds the closure of each root (digest and signed length, when there is one).
    pub(crate) async fn walk_from(&self, t: &Target<'_>, roots: Vec<(Digest, Option<u64>)>) {
        self.walk_at(t, roots, None).await;
    }

    /// [`Proxy::walk_from`], adding to closure build `at` only (when given): a walk outlived
    /// by its build adds nothing.
    async fn walk_at(
        &self,
        t: &Target<'_>,
        roots: Vec<(Digest, Option<u64>)>,
        at: Option<Generation>,
    ) {
        let mut queue = roots;
        let mut seen = HashSet::new();
        while let Some((digest, length)) = queue.pop() {
            if !seen.insert(digest) || seen.len() > MAX_CLOSURE_MANIFESTS {
                continue;
            }
            match self.checked_manifest(t, &digest, length, None).await {
                Ok(m) => {
                    self.closures
                        .allow_manifest_at(&t.gun, at, digest, &m.bytes);
                    let (children, _) = references(&m.bytes);
                    queue.extend(children.into_iter().map(|c| (c, None)));
                }
                // A signed target that is a blob rather than a manifest, or gone upstream: it
                // adds nothing to walk; the digest itself stays allowed.
                Err(e) => {
                    tracing::debug!(gun = %t.gun, digest = %digest, error = %e, "closure walk: manifest not fetched");
                    self.closures.allow_digest(&t.gun, at, digest);
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

    /// The repository with `latest` signed to `manifest`.
    fn signed(manifest: &[u8], version: u64) -> Arc<VerifiedRepository> {
        use crate::trust::testkit::{verify, TestRepo};
        let mut r = TestRepo::new("registry.test/app");
        r.target_files = [("latest".to_string(), manifest.to_vec())]
            .into_iter()
            .collect();
        r.timestamp.version = version;
        Arc::new(verify(&r.build(), "registry.test/app", None).unwrap())
    }

    #[test]
    fn work_begun_on_a_replaced_build_adds_nothing() {
        let gun = "registry.test/app";
        let closures = Closures::new();
        let old = signed(b"old", 1);
        let new = signed(b"new", 2);
        let d = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let manifest = format!(r#"{{"config":{{"digest":"{}"}},"layers":[]}}"#, d('c'));

        let at_old = closures.rebase(gun, &old);
        // The same signed targets keep the build; other targets replace it.
        assert_eq!(closures.rebase(gun, &old), at_old);
        assert_eq!(closures.rebase(gun, &signed(b"old", 3)), at_old);
        let at_new = closures.rebase(gun, &new);
        assert_ne!(at_new, at_old);

        // A walk that began on the old build finds a manifest and a digest: both dropped.
        closures.allow_manifest_at(gun, Some(at_old), d('a'), manifest.as_bytes());
        closures.allow_digest(gun, Some(at_old), d('b'));
        closures.mark_walked(gun, at_old, &old);
        for x in ['a', 'b', 'c'] {
            assert!(!closures.contains(gun, &d(x)), "{x}");
        }
        assert!(!closures.walked_for(gun, &old));
        // A check made against the old build is told to start again.
        assert_eq!(closures.contains_at(gun, at_old, &d('a')), None);

        // Work on the current build lands.
        closures.allow_manifest_at(gun, Some(at_new), d('a'), manifest.as_bytes());
        assert_eq!(closures.contains_at(gun, at_new, &d('a')), Some(true));
        assert_eq!(closures.contains_at(gun, at_new, &d('c')), Some(true));
        // Additions tied to no build (digest verifiers) always land.
        closures.allow_digest(gun, None, d('e'));
        assert!(closures.contains(gun, &d('e')));
    }
}
