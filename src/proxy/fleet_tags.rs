//! The signed tag history as a fleet record (issue 14): one small JSON record per
//! upstream/repository:tag, `signed-tags/<key, URL-encoded>.json` in the shared store, holding
//! the digests the fleet served for the tag (most recent last, at most the local bound).
//!
//! A replica decides how a tag moved against the fleet's history merged with its own, then
//! publishes the new history: create-only for a tag nobody recorded, compare-and-swap on the
//! version it read otherwise; a lost swap means another replica moved the tag meanwhile, so it
//! reads again and decides again. The rule itself is [`super::tag_history::advance`], shared
//! with the local file, so a lone replica and a fleet judge a move back the same way.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::tag_history::{advance, Movement};
use crate::enforce::fleet::shared_record_key;
use crate::reference::Digest;
use crate::store::shared::{SharedError, SharedStore, Written};

/// Attempts at publishing before settling for the movement decided on the latest read.
const PUBLISH_ATTEMPTS: usize = 3;

#[derive(Debug, Serialize, Deserialize)]
struct TagRecord {
    /// `upstream/repository:tag`, so a record under the wrong name is never taken.
    tag: String,
    /// `sha256:...`, oldest first; entries that do not parse are dropped.
    digests: Vec<String>,
}

/// The fleet's signed tag histories.
pub struct FleetTagHistory {
    shared: Arc<SharedStore>,
}

/// The fleet's history first; digests only this replica saw (while the store was down) go before
/// it, as older, so the fleet's latest digest stays the tag's current one.
fn merge(local: &[Digest], fleet: &[Digest]) -> Vec<Digest> {
    let mut h: Vec<Digest> = local
        .iter()
        .filter(|d| !fleet.contains(d))
        .copied()
        .collect();
    h.extend_from_slice(fleet);
    h
}

impl FleetTagHistory {
    pub fn new(shared: Arc<SharedStore>) -> Self {
        Self { shared }
    }

    /// How `key` moved to `digest` by the fleet's history and this replica's `local` one, and
    /// the history after it. `Err` only when the store cannot be used.
    pub async fn observe(
        &self,
        key: &str,
        local: &[Digest],
        digest: Digest,
    ) -> Result<(Movement, Vec<Digest>), SharedError> {
        let path = shared_record_key(&self.shared, "signed-tags", key);
        let mut decided = None;
        for _ in 0..PUBLISH_ATTEMPTS {
            let record = self.shared.read_record(&path).await?;
            let fleet = record
                .as_ref()
                .and_then(|r| serde_json::from_slice::<TagRecord>(&r.bytes).ok())
                .filter(|r| r.tag == key)
                .map(|r| {
                    r.digests
                        .iter()
                        .filter_map(|d| Digest::parse(d).ok())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let mut history = merge(local, &fleet);
            let movement = advance(&mut history, digest);
            if movement == Movement::Same && history == fleet {
                return Ok((movement, history));
            }
            let bytes = serde_json::to_vec(&TagRecord {
                tag: key.to_string(),
                digests: history.iter().map(ToString::to_string).collect(),
            })
            .unwrap_or_default();
            let written = match record {
                None => self.shared.create_record(&path, bytes).await?,
                Some(r) => self.shared.update_record(&path, bytes, r.version).await?,
            };
            if written == Written::Done {
                return Ok((movement, history));
            }
            decided = Some((movement, history));
        }
        tracing::info!(
            tag = key,
            "fleet tag history kept changing under this replica; deciding on the latest read"
        );
        Ok(decided.unwrap_or((Movement::Same, local.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use object_store::memory::InMemory;

    use super::super::tag_history::TagHistory;
    use super::*;

    fn shared_over(mem: &Arc<InMemory>) -> Arc<SharedStore> {
        SharedStore::in_memory_for_tests(mem, Duration::from_secs(30), Duration::from_secs(60))
    }

    fn replica(mem: &Arc<InMemory>) -> (tempfile::TempDir, TagHistory, Arc<SharedStore>) {
        let dir = tempfile::tempdir().unwrap();
        let shared = shared_over(mem);
        let h = TagHistory::new(dir.path()).with_fleet(shared.clone());
        (dir, h, shared)
    }

    /// `a` serves the tag as `d1`, then as `d2`.
    async fn serve_d1_then_d2(a: &TagHistory, d1: Digest, d2: Digest) {
        assert_eq!(
            a.observe_shared("r.io", "app", "v1", d1).await,
            Movement::First
        );
        assert_eq!(
            a.observe_shared("r.io", "app", "v1", d2).await,
            Movement::Forward { from: d1 }
        );
    }

    #[tokio::test]
    async fn a_move_back_after_another_replicas_newer_digest_is_seen() {
        let mem = Arc::new(InMemory::new());
        let (_da, a, _) = replica(&mem);
        let (_db, b, _) = replica(&mem);
        let (d1, d2) = (Digest::of(b"d1"), Digest::of(b"d2"));
        serve_d1_then_d2(&a, d1, d2).await;
        // B never served the tag itself: the fleet record tells it D1 is older than D2.
        assert_eq!(
            b.observe_shared("r.io", "app", "v1", d1).await,
            Movement::Back { from: d2 }
        );
        assert_eq!(b.last("r.io", "app", "v1"), Some(d1));
        // And A sees B's move: serving D1 again is no news to the fleet.
        assert_eq!(
            a.observe_shared("r.io", "app", "v1", d1).await,
            Movement::Same
        );
    }

    #[tokio::test]
    async fn a_record_under_another_name_is_not_taken() {
        let mem = Arc::new(InMemory::new());
        let (_da, a, shared) = replica(&mem);
        let key = shared_record_key(&shared, "signed-tags", "r.io/app:v1");
        let forged = serde_json::to_vec(&TagRecord {
            tag: "r.io/other:v1".into(),
            digests: vec![Digest::of(b"x").to_string()],
        })
        .unwrap();
        shared.create_record(&key, forged).await.unwrap();
        assert_eq!(
            a.observe_shared("r.io", "app", "v1", Digest::of(b"d1"))
                .await,
            Movement::First
        );
    }

    #[tokio::test]
    async fn with_the_store_down_a_replica_decides_alone() {
        let mem = Arc::new(InMemory::new());
        let (_da, a, shared) = replica(&mem);
        let (d1, d2) = (Digest::of(b"d1"), Digest::of(b"d2"));
        shared.mark_down_for_tests("test: store unreachable");
        serve_d1_then_d2(&a, d1, d2).await;
        assert_eq!(
            a.observe_shared("r.io", "app", "v1", d1).await,
            Movement::Back { from: d2 }
        );
        // Nothing reached the bucket (read through a replica whose store is up).
        let up = shared_over(&mem);
        let key = shared_record_key(&up, "signed-tags", "r.io/app:v1");
        assert!(up.read_record(&key).await.unwrap().is_none());
    }

    /// A bucket where another replica writes the tag's record between this replica's read and
    /// its conditional write, once: the write is lost, whatever its mode.
    #[derive(Debug)]
    struct Meddling {
        inner: Arc<InMemory>,
        /// The other replica's record, written just before the next conditional put.
        pending: parking_lot::Mutex<Option<Vec<u8>>>,
    }

    impl std::fmt::Display for Meddling {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Meddling({})", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for Meddling {
        async fn put_opts(
            &self,
            location: &object_store::path::Path,
            payload: object_store::PutPayload,
            opts: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            let other = self.pending.lock().take();
            if let (Some(other), false) = (other, opts.mode == object_store::PutMode::Overwrite) {
                object_store::ObjectStoreExt::put(&*self.inner, location, other.into()).await?;
            }
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &object_store::path::Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures_util::stream::BoxStream<
                'static,
                object_store::Result<object_store::path::Path>,
            >,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
        {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    fn record(digests: &[Digest]) -> Vec<u8> {
        serde_json::to_vec(&TagRecord {
            tag: "r.io/app:v1".into(),
            digests: digests.iter().map(ToString::to_string).collect(),
        })
        .unwrap()
    }

    /// This replica's fleet history over a bucket where another replica will write `other` as
    /// the tag's record just before this replica's next write.
    fn meddled(mem: &Arc<InMemory>, other: Vec<u8>) -> FleetTagHistory {
        let store = Arc::new(Meddling {
            inner: mem.clone(),
            pending: parking_lot::Mutex::new(Some(other)),
        });
        FleetTagHistory::new(Arc::new(SharedStore::with_store(
            store,
            "fleet",
            "memory://meddling",
            Duration::from_secs(5),
            Duration::from_secs(30),
            Duration::from_secs(60),
        )))
    }

    async fn fleet_record(mem: &Arc<InMemory>) -> Vec<String> {
        let shared = shared_over(mem);
        let key = shared_record_key(&shared, "signed-tags", "r.io/app:v1");
        let r = shared.read_record(&key).await.unwrap().expect("a record");
        serde_json::from_slice::<TagRecord>(&r.bytes)
            .unwrap()
            .digests
    }

    #[tokio::test]
    async fn a_lost_swap_reads_the_other_replicas_move_and_decides_again() {
        let mem = Arc::new(InMemory::new());
        let (d1, d2, d3) = (Digest::of(b"d1"), Digest::of(b"d2"), Digest::of(b"d3"));
        let (_da, a, _) = replica(&mem);
        a.observe_shared("r.io", "app", "v1", d1).await;
        // Between this replica's read ([d1]) and its swap, another replica moves the tag to d3.
        let b = meddled(&mem, record(&[d1, d3]));
        let (movement, history) = b.observe("r.io/app:v1", &[], d2).await.unwrap();
        // Decided again on the second read: d2 comes after d3, and d3 is not lost.
        assert_eq!(movement, Movement::Forward { from: d3 });
        assert_eq!(history, vec![d1, d3, d2]);
        let want: Vec<String> = history.iter().map(ToString::to_string).collect();
        assert_eq!(fleet_record(&mem).await, want);
    }

    #[tokio::test]
    async fn a_lost_create_reads_the_record_another_replica_made() {
        let mem = Arc::new(InMemory::new());
        let (d0, d1) = (Digest::of(b"d0"), Digest::of(b"d1"));
        // Nobody recorded the tag when this replica read; another one creates it before the
        // create-only write.
        let b = meddled(&mem, record(&[d0]));
        let (movement, history) = b.observe("r.io/app:v1", &[], d1).await.unwrap();
        assert_eq!(movement, Movement::Forward { from: d0 });
        assert_eq!(history, vec![d0, d1]);
        assert_eq!(
            fleet_record(&mem).await,
            vec![d0.to_string(), d1.to_string()]
        );
    }

    #[test]
    fn digests_only_this_replica_saw_count_as_older_than_the_fleets() {
        let (x, y, z) = (Digest::of(b"x"), Digest::of(b"y"), Digest::of(b"z"));
        assert_eq!(merge(&[z, x], &[x, y]), vec![z, x, y]);
        assert_eq!(merge(&[], &[x]), vec![x]);
    }
}
