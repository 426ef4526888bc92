//! The disk cache with the real pieces: distribution registry (access log), notary-server and
//! the notary CLI, skopeo, and the trustgate binary.
//!
//! - a second pull makes no blob GETs at the registry;
//! - `kill -9` during a cold download of a 48 MiB layer leaves nothing corrupt: after a restart
//!   the pull is byte-identical, every stored object hashes to its name, `tmp/` is empty;
//! - `trustgate seed` then an `offline = true` mirror over a copy of the storage, with registry
//!   and notary gone; seeding an unsigned tag fails;
//! - registry and notary down (not offline mode): cached signed tags still pull, uncached ones
//!   fail with a clear message.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::http::sha256_digest;
use support::image::{random_bytes, ImageSpec, LayerSpec, Layout};
use support::notary::{NotaryCli, NotaryServer};
use support::proc::{self, CmdOutput};
use support::registry::Registry;
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::{timed, TestDir};

/// Every stored object (`<storage>/blobs/sha256/<2>/<64 hex>`; media-type sidecars skipped)
/// hashes to its name. Returns how many objects there are.
fn assert_store_consistent(storage: &Path) -> usize {
    let root = storage.join("blobs/sha256");
    let mut n = 0;
    for shard in fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        let shard = shard.unwrap().path();
        for f in fs::read_dir(&shard).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let bytes = fs::read(&p).unwrap();
            assert_eq!(
                sha256_digest(&bytes),
                format!("sha256:{name}"),
                "{} does not hash to its name",
                p.display()
            );
            n += 1;
        }
    }
    n
}

fn dir_entries(dir: &Path) -> Vec<PathBuf> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A one-layer-plus-config image in a skopeo `dir:` layout whose big layer is raw random bytes
/// (an uncompressed OCI layer; skopeo copies it as is). Building it needs no gzip, so a 48 MiB
/// layer costs almost nothing. Returns (layout dir, manifest, big layer digest).
fn raw_image(dir: &Path, big: usize) -> (Vec<u8>, String) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let write = |bytes: &[u8]| {
        let d = sha256_digest(bytes);
        fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        d
    };
    let layer = random_bytes(big, 48);
    let small = random_bytes(4096, 49);
    let layer_d = write(&layer);
    let small_d = write(&small);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_d, small_d]},
    }))
    .unwrap();
    let config_d = write(&config);
    let lmt = "application/vnd.oci.image.layer.v1.tar";
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_d},
        "layers": [
            {"mediaType": lmt, "size": layer.len(), "digest": layer_d},
            {"mediaType": lmt, "size": small.len(), "digest": small_d},
        ],
    }))
    .unwrap();
    fs::write(dir.join("manifest.json"), &manifest).unwrap();
    (manifest, layer_d)
}

#[test]
fn second_pull_makes_no_blob_gets_at_the_registry() {
    let t = TestDir::new("cache-repull");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let img = Layout::image(
        &t.sub("img"),
        &ImageSpec::new(
            "repull",
            vec![
                LayerSpec::text("etc/one", "one\n"),
                LayerSpec::random("opt/two.bin", 1 << 20, 2),
                LayerSpec::random("opt/three.bin", 512 << 10, 3),
            ],
        ),
    );
    img.push(&skopeo, &reg.host(), "demo/app", "v1", None);
    let blobs = img.blob_digests();
    assert_eq!(blobs.len(), 4, "config + 3 layers");
    let before: Vec<usize> = blobs.iter().map(|d| reg.blob_gets(d)).collect();

    let tg = Trustgate::start_for(&t.sub("trustgate"), &reg);
    let first = t.sub("pull-1");
    let out = skopeo.copy_to_dir(&format!("{}/demo/app:v1", tg.host()), &first, false, None);
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_same_tree(&img.dir, &first);
    let after_first: Vec<usize> = blobs.iter().map(|d| reg.blob_gets(d)).collect();
    for (i, d) in blobs.iter().enumerate() {
        assert_eq!(after_first[i], before[i] + 1, "first pull: one GET of {d}");
    }

    let second = t.sub("pull-2");
    let out = skopeo.copy_to_dir(&format!("{}/demo/app:v1", tg.host()), &second, false, None);
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_same_tree(&img.dir, &second);
    let after_second: Vec<usize> = blobs.iter().map(|d| reg.blob_gets(d)).collect();
    assert_eq!(
        after_second,
        after_first,
        "second pull made blob GETs at the registry:\n{}",
        reg.access_log()
    );
    assert_eq!(
        reg.count_requests("GET", "/blobs/"),
        after_first.iter().sum::<usize>()
    );
}

#[test]
fn kill_9_mid_download_leaves_a_consistent_store() {
    let t = TestDir::new("cache-kill9");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = t.sub("img");
    let (_manifest, big) = raw_image(&layout, 48 << 20);
    let push = skopeo.push_dir(
        &layout,
        &format!("docker://{}/demo/big:v1", reg.host()),
        false,
        None,
    );
    assert!(push.success(), "{push}");

    let tg_dir = t.sub("trustgate");
    let storage = tg_dir.join("data");
    let mut tg = Trustgate::start_for(&tg_dir, &reg);
    // A slow client: request the big blob, read until the first body bytes arrive, then kill.
    let mut sock = std::net::TcpStream::connect(tg.host()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        sock,
        "GET /v2/demo/big/blobs/{big} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        tg.host()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") || got.len() < 64 << 10 {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "trustgate closed the download early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got[..200])
    );
    proc::signal(tg.pid(), "KILL");
    assert!(
        proc::wait_until(Duration::from_secs(10), || !tg.is_running()),
        "trustgate survived kill -9"
    );
    drop(sock);
    let big_object = storage
        .join("blobs/sha256")
        .join(&big["sha256:".len().."sha256:".len() + 2])
        .join(big.trim_start_matches("sha256:"));
    let leftovers = dir_entries(&storage.join("tmp"));
    eprintln!(
        "after kill -9: {} file(s) in tmp/, big blob committed: {}",
        leftovers.len(),
        big_object.exists()
    );
    assert!(
        !leftovers.is_empty() || !big_object.exists(),
        "the kill landed after the fill completed; the test proves nothing"
    );
    assert_store_consistent(&storage);

    // Restart over the same storage folder.
    let tg = Trustgate::start_for(&tg_dir, &reg);
    assert!(
        dir_entries(&storage.join("tmp")).is_empty(),
        "tmp/ not emptied at restart: {:?}",
        dir_entries(&storage.join("tmp"))
    );
    let out_dir = t.sub("pull");
    let out = timed("skopeo pull of the 48 MiB image after the crash", || {
        skopeo.copy_to_dir(&format!("{}/demo/big:v1", tg.host()), &out_dir, false, None)
    });
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_same_tree(&layout, &out_dir);
    assert!(
        big_object.exists(),
        "the big layer is cached after the pull"
    );
    assert!(assert_store_consistent(&storage) >= 3);
    assert!(dir_entries(&storage.join("tmp")).is_empty());
}

/// Registry + notary with demo/app:v1 and demo/app:v2 signed (targets/releases), demo/app:unsigned
/// and demo/other:v1 (no trust data).
struct Signed {
    reg: Registry,
    notary: NotaryServer,
    skopeo: Skopeo,
    v1: Layout,
    v2: Layout,
    t: TestDir,
}

fn signed_fixture(name: &str) -> Signed {
    let t = TestDir::new(name);
    let reg = Registry::start(&t.sub("registry"));
    let notary = NotaryServer::start(&t.sub("notary"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let v1 = Layout::image(
        &t.sub("img-v1"),
        &ImageSpec::text_and_random("v1", ("etc/v1", "v1\n"), ("opt/v1.bin", 512 << 10, 11)),
    );
    let v2 = Layout::image(
        &t.sub("img-v2"),
        &ImageSpec::text_and_random("v2", ("etc/v2", "v2\n"), ("opt/v2.bin", 256 << 10, 12)),
    );
    let unsigned = Layout::image(&t.sub("img-unsigned"), &ImageSpec::small("unsigned", 1));
    v1.push(&skopeo, &reg.host(), "demo/app", "v1", None);
    v2.push(&skopeo, &reg.host(), "demo/app", "v2", None);
    unsigned.push(&skopeo, &reg.host(), "demo/app", "unsigned", None);
    unsigned.push(&skopeo, &reg.host(), "demo/other", "v1", None);
    let cli = NotaryCli::new(&notary, &t.sub("notary-cli"));
    let gun = format!("{}/demo/app", reg.host());
    timed("sign demo/app:v1 and v2", || {
        cli.init_with_server_snapshot(&gun);
        cli.add_releases_delegation(&gun);
        cli.sign_manifest(&gun, "v1", &v1.manifest, &["targets/releases"]);
        cli.sign_manifest(&gun, "v2", &v2.manifest, &["targets/releases"]);
    });
    Signed {
        reg,
        notary,
        skopeo,
        v1,
        v2,
        t,
    }
}

fn run_seed(config: &Path, list: &Path, scratch: &Path) -> CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    cmd.arg("seed")
        .arg(list)
        .arg("--config")
        .arg(config)
        .env("NO_COLOR", "1");
    for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        cmd.env_remove(v);
    }
    proc::run(cmd, Duration::from_secs(60), scratch)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}

#[test]
fn seeded_offline_mirror_serves_signed_images_without_registry_or_notary() {
    let mut fx = signed_fixture("cache-seed");
    let upstream = UpstreamConfig::default_for(&fx.reg).with_notary(&fx.notary);
    // A config over storage A (the server only writes it; seeding runs with the server stopped,
    // one process per storage folder).
    let seed_dir = fx.t.sub("seeder");
    let mut writer = Trustgate::start(
        &seed_dir,
        TrustgateOptions {
            upstreams: vec![upstream.clone()],
            ..Default::default()
        },
    );
    writer.stop();
    let config = seed_dir.join("trustgate.toml");
    let list = fx.t.path().join("seed.txt");
    fs::write(&list, "# mirror list\ndemo/app:v1\ndemo/app:v2\n").unwrap();
    let out = timed("trustgate seed", || {
        run_seed(&config, &list, &fx.t.sub("seed-out"))
    });
    assert!(out.success(), "{out}");
    for tag in ["demo/app:v1", "demo/app:v2"] {
        let row = out
            .stdout
            .lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("no row for {tag}: {out}"));
        assert!(row.contains("verified"), "{row}");
    }
    assert!(
        out.stdout.contains(&fx.v1.digest) && out.stdout.contains(&fx.v2.digest),
        "{out}"
    );

    // Copy the seeded storage to the mirror's folder (as one would carry it into the air gap).
    let mirror_dir = fx.t.sub("mirror");
    copy_dir(&seed_dir.join("data"), &mirror_dir.join("data"));
    assert!(assert_store_consistent(&mirror_dir.join("data")) >= 6);

    // An unsigned tag makes seeding fail.
    let bad = fx.t.path().join("seed-bad.txt");
    fs::write(&bad, "demo/app:v1\ndemo/app:unsigned\n").unwrap();
    let out = run_seed(&config, &bad, &fx.t.sub("seed-bad-out"));
    assert!(!out.success(), "seeding an unsigned tag succeeded: {out}");
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("demo/app:unsigned"))
        .unwrap_or_else(|| panic!("no row for the unsigned tag: {out}"));
    assert!(row.contains("refused"), "{row}");

    // Registry and notary gone.
    fx.reg.stop();
    fx.notary.stop();

    let tg = Trustgate::start(
        &mirror_dir,
        TrustgateOptions {
            upstreams: vec![upstream],
            // Lands in the last [[upstream]] table (the only one).
            extra_toml: "offline = true\n".into(),
            ..Default::default()
        },
    );
    for (tag, layout) in [("v1", &fx.v1), ("v2", &fx.v2)] {
        let dest = fx.t.sub(&format!("pull-{tag}"));
        let out = skopeo_copy(&fx.skopeo, &format!("{}/demo/app:{tag}", tg.host()), &dest);
        assert!(out.success(), "{out}\n{}", tg.logs());
        assert_same_tree(&layout.dir, &dest);
    }
    let dest = fx.t.sub("pull-other");
    let out = skopeo_copy(&fx.skopeo, &format!("{}/demo/other:v1", tg.host()), &dest);
    assert!(
        !out.success(),
        "an unseeded image pulled from an offline mirror"
    );
    assert!(out.stderr.contains("offline"), "{out}\n{}", tg.logs());
}

fn skopeo_copy(skopeo: &Skopeo, image: &str, dest: &Path) -> CmdOutput {
    skopeo.copy_to_dir(image, dest, false, None)
}

#[test]
fn cached_signed_tags_pull_while_registry_and_notary_are_down() {
    let mut fx = signed_fixture("cache-outage");
    let tg = Trustgate::start(
        &fx.t.sub("trustgate"),
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&fx.reg).with_notary(&fx.notary)],
            ..Default::default()
        },
    );
    let warm = fx.t.sub("pull-warm");
    let out = skopeo_copy(&fx.skopeo, &format!("{}/demo/app:v1", tg.host()), &warm);
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_same_tree(&fx.v1.dir, &warm);

    fx.reg.stop();
    fx.notary.stop();

    let again = fx.t.sub("pull-down");
    let out = skopeo_copy(&fx.skopeo, &format!("{}/demo/app:v1", tg.host()), &again);
    assert!(
        out.success(),
        "cached signed tag with upstream down: {out}\n{}",
        tg.logs()
    );
    assert_same_tree(&fx.v1.dir, &again);

    let cold = fx.t.sub("pull-cold");
    let out = skopeo_copy(&fx.skopeo, &format!("{}/demo/app:v2", tg.host()), &cold);
    assert!(
        !out.success(),
        "an uncached tag pulled with the upstream down"
    );
    // skopeo drops 5xx bodies: what it shows is the status line. trustgate's answer is a 502 that
    // names the unreachable upstream (README: upstream failures keep 5xx); check both faces.
    assert!(
        out.stderr.contains("502 Bad Gateway"),
        "{out}\n{}",
        tg.logs()
    );
    let r = support::http::get(&format!("{}/v2/demo/app/manifests/v2", tg.url())).unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("is unreachable") && r.text().contains(&fx.reg.host()),
        "{}",
        r.text()
    );
}
