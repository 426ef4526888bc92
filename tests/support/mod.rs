//! The one support tree of the integration tests (issue 11).
//!
//! In-process: `support/inproc/` (declared by the binaries that use it, see its module comment)
//! starts exactly what `trustgate serve` starts (`trustgate::app`) on port 0 with a movable trust
//! clock, and holds the one fake registry; [`fake_notary`] here is the one fake Notary server.
//!
//! Interop: installs nothing, but starts the real upstream pieces (CNCF registry, notary-server)
//! and real clients (skopeo, podman, dockerd, containerd/ctr) around the trustgate binary, each
//! on 127.0.0.1 with ports the harness picks, each stopped by its own PID. Missing tools fail
//! the test with the Debian package to install (scripts/install-test-deps.sh).
//!
//! Use from a test binary at the top of `tests/` with `mod support;` (from `tests/inproc/main.rs`
//! with `#[path = "../support/mod.rs"]`).
//!
//! | module | what |
//! |---|---|
//! | [`proc`] | `free_port`, `ChildGuard` (logs to files, stop by PID on drop, `Z` = gone), `run` (one-shot command with a deadline) |
//! | [`http`] | blocking reqwest helpers, `wait_ready`, `sha256_digest` |
//! | [`registry`] | `Registry` (distribution 2.8: plain, htpasswd auth, or `proxy:` mode), access-log counting |
//! | [`image`] | `Layout::image` / `Layout::index`: deterministic images in a skopeo `dir:` layout, `push` |
//! | [`skopeo`] | `Skopeo` (copy, inspect, push) with isolated config; `assert_same_tree` |
//! | [`podman`] | `Podman` with an isolated vfs store |
//! | [`docker`] | `Dockerd` (real daemon, vfs, own socket) + `/usr/bin/docker`; content-trust pulls |
//! | [`notation`] | `NotationSigner`: a test CA and code-signing leaf, JWS envelopes, Notation signature manifests, trustpolicy.json + trust-store dir |
//! | [`cosign`] | `CosignKey` (P-256), simple-signing payloads, `.sig` / referrer / bundle artifacts and fallback indexes made in code; `push` to a real registry |
//! | [`containerd`] | `Containerd` + `ctr` (plain http, or a `hosts.toml` mirror that adds `?ns=`) |
//! | [`notary`] | `NotaryServer` (throwaway CA, local trust service, memory) and `NotaryCli` signing |
//! | [`signed`] | `SignedEnv`: registry + notary-server + signing CLI + skopeo, for signed-pull tests |
//! | [`faults`] | `HttpFaultProxy` (counts requests, injects 500 / garbage / refusal), `TrickleProxy` (1 byte/s), `rss_kib`, `quantile` |
//! | [`load`] | skopeo-style pulls from a tokio client (each blob hash-checked), warm-pull latency loop, `RssSampler`, `rss_flat` |
//! | [`reliability`] | the reliability suite's mode (`TRUSTGATE_RELIABILITY=long`) and result lines for RELIABILITY.md |
//! | [`s3`] | `S3Server`: moto_server (PyPI) with a bucket; lists and reads objects to check what a fleet left |
//! | [`trustgate`] | `Trustgate`: writes the TOML config, runs the binary under test |
//! | [`fake_notary`] | `FakeNotary`: plain-HTTP replay of captured or recorded metadata, optionally behind token auth |
//! | `inproc::app` | `TestApp` / `InProcess`: `trustgate::app` on port 0 with a movable clock |
//! | `inproc::fake_upstream` | `FakeUpstream`: scriptable in-process registry (auth, faults, CDN redirects) |
//! | `inproc::upstreams` | `UpstreamSpec`, `config_toml`, `start`: the app over fake upstreams; test clients |
//!
//! Tests are plain `#[test]` functions (the harness blocks; HTTP runs on a shared tokio runtime).
//! Set `TRUSTGATE_KEEP_TEST_DIRS=1` to keep each test's folder (logs of every server) for a
//! post-mortem.
#![allow(dead_code)]
// The interop harness drives real processes (registry, notary-server, dockerd, the trustgate
// binary) and waits on them in wall-clock time with blocking calls, so std's Instant and
// thread::sleep are right here; clippy.toml bans them where time is injected.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod containerd;
pub mod cosign;
pub mod docker;
pub mod fake_notary;
pub mod faults;
pub mod http;
pub mod image;
pub mod load;
pub mod notary;
pub mod notation;
pub mod podman;
pub mod postgres;
pub mod proc;
pub mod registry;
pub mod reliability;
pub mod s3;
pub mod signed;
pub mod skopeo;
pub mod tools;
pub mod trustgate;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A test's temporary folder. On drop, anything still mounted below it is unmounted first (podman
/// with overlay storage leaves a mount under its root), then the folder is deleted — unless
/// `TRUSTGATE_KEEP_TEST_DIRS` is set, for post-mortems.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(prefix: &str) -> TestDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tg-{prefix}-"))
            .tempdir()
            .expect("create temp dir");
        TestDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// A sub-folder (created).
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).expect("create sub dir");
        p
    }
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let Some(dir) = self.dir.take() else { return };
        for m in mounts_under(dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        if std::env::var_os("TRUSTGATE_KEEP_TEST_DIRS").is_some() {
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}

/// Run `f`, print how long it took (visible with `--nocapture`), return its value.
pub fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let v = f();
    eprintln!("[timing] {what}: {:.2?}", start.elapsed());
    v
}
