//! Issue 15, the local store under faults, with the real binary, the CNCF registry and skopeo.
//! The store lives on a 24 MiB tmpfs (these tests run as root; `TestDir` unmounts it).
//!
//! - disk full: a 40 MB layer that cannot be stored is still pulled, with the right digest,
//!   unstored, counted, `/readyz` degraded; cached content keeps being served; the next pull
//!   that fits is stored and `/readyz` is back to `ready`. Under the default `min_free` a 24 MiB
//!   disk is below the floor from the start, and `/readyz` says so;
//! - `storage.path` remounted read-only: pulls go on unstored, `/readyz` degraded, recovery
//!   after the remount read-write;
//! - store files deleted or truncated under the running trustgate: fetched again, never served.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::http::{get, sha256_digest};
use support::image::{random_bytes, ImageSpec, LayerSpec, Layout};
use support::registry::Registry;
use support::reliability::report;
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

fn mount_tmpfs(dir: &Path, size: &str) {
    fs::create_dir_all(dir).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount a tmpfs on {} (needs root)", dir.display());
}

fn remount(dir: &Path, mode: &str) {
    let ok = Command::new("mount")
        .args(["-o", &format!("remount,{mode}")])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "remount {mode} {}", dir.display());
}

/// A skopeo `dir:` layout of one raw (uncompressed) layer of `size` random bytes plus a config;
/// returns the layer's digest.
fn raw_image(dir: &Path, size: usize, seed: u64) -> String {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let write = |bytes: &[u8]| {
        let d = sha256_digest(bytes);
        fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let layer = random_bytes(size, seed);
    let layer_d = write(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_d]},
    }))
    .unwrap();
    let config_d = write(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_d},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": layer.len(), "digest": layer_d}],
    }))
    .unwrap();
    fs::write(dir.join("manifest.json"), &manifest).unwrap();
    layer_d
}

fn object(storage: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    storage.join("blobs/sha256").join(&hex[..2]).join(hex)
}

fn tmp_entries(storage: &Path) -> usize {
    fs::read_dir(storage.join("tmp")).map_or(0, |d| d.count())
}

fn readyz(tg: &Trustgate) -> String {
    let r = get(&format!("{}/readyz", tg.admin_url())).unwrap();
    assert_eq!(r.status, 200, "/readyz must stay 200: {}", r.text());
    r.text()
}

fn metric(tg: &Trustgate, series: &str) -> f64 {
    let text = get(&format!("{}/metrics", tg.admin_url())).unwrap().text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `[storage] min_free` set in the written configuration, then a restart onto it.
fn set_min_free(tg: &mut Trustgate, value: &str) {
    let cfg = fs::read_to_string(tg.config_path()).unwrap();
    let cfg = cfg.replacen(
        "[storage]\n",
        &format!("[storage]\nmin_free = {value:?}\n"),
        1,
    );
    fs::write(tg.config_path(), cfg).unwrap();
    tg.restart();
}

struct Setup {
    t: TestDir,
    reg: Registry,
    skopeo: Skopeo,
    tg: Trustgate,
    storage: std::path::PathBuf,
    small: Layout,
    other: Layout,
}

/// Registry with a small image (`demo/small:v1`), another (`demo/other:v1`) and, when `big`, a
/// 40 MB one-layer image (`demo/big:v1`, its layer digest returned); trustgate with its
/// storage on a 24 MiB tmpfs and `min_free = "1MiB"`.
fn setup(name: &str, big: bool) -> (Setup, Option<String>) {
    let t = TestDir::new(name);
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let small = Layout::image(
        &t.sub("img-small"),
        &ImageSpec::new("small", vec![LayerSpec::random("opt/a.bin", 1 << 20, 1)]),
    );
    small.push(&skopeo, &reg.host(), "demo/small", "v1", None);
    let other = Layout::image(
        &t.sub("img-other"),
        &ImageSpec::new("other", vec![LayerSpec::random("opt/b.bin", 1 << 20, 2)]),
    );
    other.push(&skopeo, &reg.host(), "demo/other", "v1", None);
    let big_layer = big.then(|| {
        let layout = t.sub("img-big");
        let d = raw_image(&layout, 40_000_000, 40);
        let out = skopeo.push_dir(
            &layout,
            &format!("docker://{}/demo/big:v1", reg.host()),
            false,
            None,
        );
        assert!(out.success(), "{out}");
        d
    });
    let tg_dir = t.sub("trustgate");
    let storage = tg_dir.join("data");
    mount_tmpfs(&storage, "24m");
    // trustgate's own default floor, which these cases are about (the test default has none).
    let tg = Trustgate::start(
        &tg_dir,
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&reg)],
            storage_toml: Some(String::new()),
            ..Default::default()
        },
    );
    (
        Setup {
            t,
            reg,
            skopeo,
            tg,
            storage,
            small,
            other,
        },
        big_layer,
    )
}

impl Setup {
    fn pull(&self, repo: &str, dest: &str) -> std::path::PathBuf {
        let out_dir = self.t.sub(dest);
        let out = self.skopeo.copy_to_dir(
            &format!("{}/{repo}:v1", self.tg.host()),
            &out_dir,
            false,
            None,
        );
        assert!(out.success(), "{out}\n{}", self.tg.logs());
        out_dir
    }
}

#[test]
fn disk_full_is_served_unstored_and_recovers() {
    let (mut s, big) = setup("rel-store-full", true);
    let big = big.unwrap();
    // The default floor (the larger of 512 MiB and 5 %) is more than this whole disk.
    let line = readyz(&s.tg);
    assert!(
        line.contains("degraded: store") && line.contains("below storage.min_free"),
        "{line}"
    );
    set_min_free(&mut s.tg, "1MiB");
    assert_eq!(readyz(&s.tg), "ready\n");

    let first = s.pull("demo/small", "pull-small-1");
    assert_same_tree(&s.small.dir, &first);
    let small_blobs = s.small.blob_digests();
    for d in &small_blobs {
        assert!(object(&s.storage, d).exists(), "{d} stored");
    }

    // 40 MB on a 24 MiB disk: pulled all the same, and skopeo checks every digest.
    let series = "trustgate_store_unstored_total{reason=\"min_free\"}";
    let before = metric(&s.tg, series);
    let out_dir = s.pull("demo/big", "pull-big");
    let got = fs::read(out_dir.join(big.trim_start_matches("sha256:"))).unwrap();
    assert_eq!(got.len(), 40_000_000);
    assert_eq!(sha256_digest(&got), big);
    assert!(!object(&s.storage, &big).exists(), "not stored");
    assert_eq!(tmp_entries(&s.storage), 0, "no temp file left");
    let counted = metric(&s.tg, series) - before;
    assert!(counted >= 1.0, "unstored pulls counted: {counted}");
    let degraded = readyz(&s.tg);
    assert!(
        degraded.contains("degraded: store") && degraded.contains("served without being stored"),
        "{degraded}"
    );
    assert!(
        s.tg.logs()
            .contains("content is served to clients without being stored"),
        "the log says why"
    );

    // Cached content keeps being served from the store.
    let gets: Vec<usize> = small_blobs.iter().map(|d| s.reg.blob_gets(d)).collect();
    let again = s.pull("demo/small", "pull-small-2");
    assert_same_tree(&s.small.dir, &again);
    let after: Vec<usize> = small_blobs.iter().map(|d| s.reg.blob_gets(d)).collect();
    assert_eq!(gets, after, "served from the store");

    // A pull that fits is stored meanwhile.
    let other = s.pull("demo/other", "pull-other");
    assert_same_tree(&s.other.dir, &other);
    for d in s.other.blob_digests() {
        assert!(object(&s.storage, &d).exists(), "{d} stored");
    }
    // Space freed (the filesystem grown): /readyz is back to ready by itself, and the 40 MB
    // layer is stored by its next pull.
    remount(&s.storage, "size=64m");
    assert_eq!(readyz(&s.tg), "ready\n");
    s.pull("demo/big", "pull-big-2");
    assert!(
        object(&s.storage, &big).exists(),
        "stored once there is room"
    );
    report(
        "faults",
        "disk full (40 MB layer, 24 MiB tmpfs)",
        &format!(
            "skopeo pull succeeded, digest checked; not stored, tmp/ empty; \
             store_unstored_total{{reason=min_free}} +{counted}; /readyz 200 '{}'; cached image \
             served with no registry GET; a pull that fits stored meanwhile; after growing the \
             tmpfs /readyz back to ready and the 40 MB layer stored by its next pull; default \
             min_free on this disk: /readyz degraded 'below storage.min_free'",
            degraded.lines().nth(1).unwrap_or("").trim()
        ),
    );
}

#[test]
fn read_only_store_is_served_unstored_and_recovers() {
    let (mut s, _) = setup("rel-store-ro", false);
    set_min_free(&mut s.tg, "1MiB");
    s.pull("demo/small", "pull-small-1");
    remount(&s.storage, "ro");
    let before = metric(
        &s.tg,
        "trustgate_store_unstored_total{reason=\"read_only\"}",
    );
    let other = s.pull("demo/other", "pull-other-ro");
    assert_same_tree(&s.other.dir, &other);
    for d in s.other.blob_digests() {
        assert!(!object(&s.storage, &d).exists(), "{d} not stored");
    }
    let counted = metric(
        &s.tg,
        "trustgate_store_unstored_total{reason=\"read_only\"}",
    ) - before;
    assert!(counted >= 1.0, "counted: {counted}");
    let degraded = readyz(&s.tg);
    assert!(degraded.contains("degraded: store"), "{degraded}");
    // Cached content still served.
    let again = s.pull("demo/small", "pull-small-ro");
    assert_same_tree(&s.small.dir, &again);

    remount(&s.storage, "rw");
    assert_eq!(readyz(&s.tg), "ready\n", "recovered by itself");
    s.pull("demo/other", "pull-other-rw");
    for d in s.other.blob_digests() {
        assert!(object(&s.storage, &d).exists(), "{d} stored after recovery");
    }
    report(
        "faults",
        "storage.path read-only (remount ro)",
        &format!(
            "skopeo pulls succeeded unstored (store_unstored_total{{reason=read_only}} +{counted}); \
             /readyz 200 '{}'; cached image still served; after remount rw /readyz ready and the \
             next pull stored",
            degraded.lines().nth(1).unwrap_or("").trim()
        ),
    );
}

#[test]
fn store_files_deleted_or_truncated_are_fetched_again() {
    let (mut s, _) = setup("rel-store-corrupt", false);
    set_min_free(&mut s.tg, "1MiB");
    s.pull("demo/small", "pull-1");
    let blobs = s.small.blob_digests();
    let gets: Vec<usize> = blobs.iter().map(|d| s.reg.blob_gets(d)).collect();
    // One file deleted, every other one truncated to half.
    fs::remove_file(object(&s.storage, &blobs[0])).unwrap();
    for d in &blobs[1..] {
        let p = object(&s.storage, d);
        let len = fs::metadata(&p).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    }
    let again = s.pull("demo/small", "pull-2");
    assert_same_tree(&s.small.dir, &again);
    for (i, d) in blobs.iter().enumerate() {
        assert_eq!(s.reg.blob_gets(d), gets[i] + 1, "{d} fetched again");
        let bytes = fs::read(object(&s.storage, d)).unwrap();
        assert_eq!(&sha256_digest(&bytes), d, "{d} restored");
    }
    assert!(s.tg.logs().contains("changed under the store"));
    report(
        "faults",
        "store files deleted or truncated under a running trustgate",
        &format!(
            "{} blobs deleted/truncated: the next skopeo pull was byte-identical, each fetched \
             once more and restored; log: 'a stored file changed under the store'",
            blobs.len()
        ),
    );
}
