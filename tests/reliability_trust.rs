//! Reliability, trust attacks (issue 15): the TUF threat model end to end, through the real
//! binary, with a lying Notary (the fake Notary serving metadata signed in code by
//! `trust::testkit`, broken in exactly one way) in front of the real CNCF registry.
//!
//! Every case follows one script: an honest signed state is pulled; the Notary then lies; the
//! pull of the same tag is refused with the attack's own message and reason (client JSON
//! `detail.reason`, the audit line, `trustgate_trust_decisions_total`); the image the lie points
//! at is never fetched, stored or admitted by digest; and once the Notary is honest again (a
//! newer signed state) the tag is served. The attacks: rollback, freeze, mix-and-match, endless
//! data (chunked with no length, and a declared gigabyte length), a root rotation signed by the
//! old keys only, and a delegation signing outside its paths.

// These cases drive the real binary over real sockets and wait on it in wall-clock time with
// blocking calls (as tests/support does), so std's Instant and thread::sleep are right here;
// clippy.toml bans them where time is injected.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use time::macros::datetime;
use trustgate::trust::testkit::{DelegationSpec, RoleSpec, TestKey, TestRepo};

use support::fake_notary::{self, FakeNotary};
use support::http;
use support::image::{ImageSpec, Layout};
use support::registry::Registry;
use support::reliability;
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

const REPO: &str = "attacks/app";
const TAG: &str = "v1";
/// `[trust] refresh`, seconds: a changed Notary answer is read after this.
const REFRESH: u64 = 1;

/// A registry holding an honest and an evil image of [`REPO`], trustgate in front of it
/// (trust enforced), and the lying Notary.
struct Rig {
    _dir: TestDir,
    registry: Registry,
    notary: FakeNotary,
    tg: Trustgate,
    gun: String,
    honest: Layout,
    evil: Layout,
    /// Requests naming the evil manifest that the registry saw from the push itself.
    evil_requests_at_push: usize,
}

impl Rig {
    fn start(name: &str) -> Rig {
        let dir = TestDir::new(&format!("rel-trust-{name}"));
        let registry = Registry::start(&dir.sub("registry"));
        let skopeo = Skopeo::new(&dir.sub("skopeo"));
        let honest = Layout::image(&dir.sub("honest"), &ImageSpec::small("honest", 1));
        let evil = Layout::image(&dir.sub("evil"), &ImageSpec::small("evil", 1));
        honest.push(&skopeo, &registry.host(), REPO, TAG, None);
        evil.push(&skopeo, &registry.host(), REPO, "evil", None);
        let gun = format!("{}/{REPO}", registry.host());
        let notary = FakeNotary::start(fake_notary::Files::new());
        let upstream = UpstreamConfig::default_for(&registry).with_notary_url(&notary.url(), None);
        let tg = Trustgate::start(
            &dir.sub("trustgate"),
            TrustgateOptions {
                upstreams: vec![upstream],
                refresh: Some(REFRESH),
                ..Default::default()
            },
        );
        let evil_requests_at_push = requests_naming(&registry, &evil.digest);
        Rig {
            _dir: dir,
            registry,
            notary,
            tg,
            gun,
            honest,
            evil,
            evil_requests_at_push,
        }
    }

    /// The repository signed at `version` (targets, snapshot, timestamp), [`TAG`] naming `image`.
    fn signed(&self, version: u64, image: &Layout) -> TestRepo {
        let mut r = TestRepo::new(&self.gun);
        r.target_files = [(TAG.to_string(), image.manifest.clone())]
            .into_iter()
            .collect();
        for role in [&mut r.targets, &mut r.snapshot, &mut r.timestamp] {
            role.version = version;
        }
        r
    }

    /// Serve `files` from now on, and let the refresh interval pass so the next pull reads them.
    fn serve(&self, files: fake_notary::Files) {
        self.notary.replace(files);
        std::thread::sleep(Duration::from_millis(REFRESH * 1000 + 100));
    }

    /// Serve the repository `r` (signed in code, broken as a case wants) from now on.
    fn serve_repo(&self, r: &TestRepo) {
        self.serve(fake_notary::from_source(&r.build()));
    }

    fn pull(&self, reference: &str) -> http::Response {
        http::request(
            &format!("{}/v2/{REPO}/manifests/{reference}", self.tg.url()),
            &http::Req {
                accept: Some(self.honest.media_type.as_str()),
                timeout: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .expect("trustgate answers")
    }

    /// The honest state at `version` is served and pulled.
    fn honest_pull(&self, version: u64) {
        self.serve_repo(&self.signed(version, &self.honest));
        let r = self.pull(TAG);
        assert_eq!(
            r.status,
            200,
            "honest pull at version {version}: {}",
            r.text()
        );
        assert_eq!(
            r.header("docker-content-digest"),
            Some(self.honest.digest.as_str())
        );
        assert_eq!(r.body, self.honest.manifest);
    }

    /// The attack in force: the pull is refused with `message` in the client's error and
    /// `reason` in its detail, the audit line and the decision counter; nothing of the evil
    /// image was fetched, stored or admitted; the honest state `recover_at` is served again.
    fn refused(&self, case: &str, message: &str, reason: &str, recover_at: u64) -> String {
        let denials_before = self.denials(reason);
        let r = self.pull(TAG);
        assert!(
            (400..500).contains(&r.status),
            "{case}: a refusal, not {}: {}",
            r.status,
            r.text()
        );
        let body: Value = serde_json::from_slice(&r.body).expect("OCI error JSON");
        let error = &body["errors"][0];
        let text = error["message"].as_str().unwrap_or_default().to_string();
        assert!(
            text.contains(message),
            "{case}: message {text:?} lacks {message:?}"
        );
        assert_eq!(error["detail"]["reason"], reason, "{case}: {body}");
        assert!(
            self.denials(reason) > denials_before,
            "{case}: trustgate_trust_decisions_total{{outcome=\"deny\",reason=\"{reason}\"}} did not move"
        );
        let log = self.tg.log();
        assert!(
            log.lines().any(|l| l.contains("trust decision")
                && l.contains("deny")
                && l.contains(reason)
                && l.contains(&format!("{}:{TAG}", self.gun))),
            "{case}: no audit line with reason {reason}:\n{log}"
        );
        assert!(
            !log.contains("panicked"),
            "{case}: a panic in the log:\n{log}"
        );
        self.nothing_of_the_evil_image(case);
        // Back to honest: a newer signed state is served, and the refusal left nothing behind.
        self.honest_pull(recover_at);
        let by_digest = self.pull(&self.evil.digest);
        assert_eq!(
            by_digest.status,
            403,
            "{case}: the evil image by digest: {}",
            by_digest.text()
        );
        self.nothing_of_the_evil_image(case);
        format!(
            "{case}: {} {} ({reason}); honest v{recover_at} served after",
            r.status,
            error["code"].as_str().unwrap_or("")
        )
    }

    /// The evil manifest was never asked of the registry, and nothing under trustgate's storage
    /// names it (neither a stored object nor a tag map entry).
    fn nothing_of_the_evil_image(&self, case: &str) {
        let hex = self.evil.digest.trim_start_matches("sha256:");
        assert_eq!(
            requests_naming(&self.registry, &self.evil.digest),
            self.evil_requests_at_push,
            "{case}: trustgate asked the registry for the evil manifest"
        );
        let hits = files_naming(&self.tg.dir().join("data"), hex);
        assert!(
            hits.is_empty(),
            "{case}: the evil digest is stored: {hits:?}"
        );
    }

    /// `trustgate_trust_decisions_total{outcome="deny",reason=…}`.
    fn denials(&self, reason: &str) -> u64 {
        let m = http::get(&format!("{}/metrics", self.tg.admin_url())).expect("metrics");
        let reason = format!("reason=\"{reason}\"");
        m.text()
            .lines()
            .filter(|l| {
                l.starts_with("trustgate_trust_decisions_total{")
                    && l.contains("outcome=\"deny\"")
                    && l.contains(&reason)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }
}

/// GET and HEAD requests the registry logged for `digest`.
fn requests_naming(registry: &Registry, digest: &str) -> usize {
    let hex = digest.trim_start_matches("sha256:");
    registry.count_requests("GET", hex) + registry.count_requests("HEAD", hex)
}

/// Files below `dir` whose path or (small) content names `hex`.
fn files_naming(dir: &Path, hex: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let named = p.to_string_lossy().contains(hex);
            let small = e.metadata().map(|m| m.len() < (4 << 20)).unwrap_or(false);
            let holds = small
                && std::fs::read(&p)
                    .map(|b| b.windows(hex.len()).any(|w| w == hex.as_bytes()))
                    .unwrap_or(false);
            if named || holds {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn rollback_to_an_older_signed_state_is_refused() {
    let rig = Rig::start("rollback");
    rig.honest_pull(2);
    // Version 1, once really signed, tagged the evil image: replayed after version 2.
    rig.serve_repo(&rig.signed(1, &rig.evil));
    let figures = rig.refused(
        "rollback",
        "version 1 is lower than current version 2",
        "rollback",
        3,
    );
    reliability::report("trust", "rollback", &figures);
}

#[test]
fn freeze_on_an_expired_timestamp_is_refused() {
    let rig = Rig::start("freeze");
    rig.honest_pull(1);
    // A newer state whose timestamp has expired: the server froze it and keeps serving it.
    let mut r = rig.signed(2, &rig.evil);
    r.timestamp.expires = datetime!(2026-01-01 0:00 UTC);
    rig.serve_repo(&r);
    let figures = rig.refused(
        "freeze",
        "out-of-date: timestamp expired at Thu Jan 1 00:00:00 UTC 2026",
        "expired",
        3,
    );
    reliability::report("trust", "freeze", &figures);
}

#[test]
fn mix_and_match_of_role_versions_is_refused() {
    let rig = Rig::start("mixmatch");
    rig.honest_pull(1);
    // Timestamp and snapshot of version 2 (honest), with the targets of another signed
    // version (tagging the evil image) than the one the snapshot names.
    let mut files = fake_notary::from_source(&rig.signed(2, &rig.honest).build());
    let other = fake_notary::from_source(&rig.signed(2, &rig.evil).build());
    // The lying server answers the snapshot's checksum name with the other bytes, too.
    let named = support::http::sha256_digest(&files["targets.json"]);
    let by_hash = format!("targets.{}.json", named.trim_start_matches("sha256:"));
    files.insert("targets.json".into(), other["targets.json"].clone());
    files.insert(by_hash, other["targets.json"].clone());
    rig.serve(files);
    let figures = rig.refused("mix-and-match", "targets did not match", "bad_signature", 3);
    reliability::report("trust", "mix-and-match", &figures);
}

#[test]
fn endless_metadata_is_cut_at_the_size_bound() {
    let mut rig = Rig::start("endless");
    rig.honest_pull(1);
    let mut figures = Vec::new();
    // A timestamp that never ends, chunked with no length: cut at the 1 MiB bound.
    rig.serve_repo(&rig.signed(2, &rig.evil));
    rig.notary.serve_endless("timestamp.json", None);
    figures.push(rig.refused(
        "endless timestamp (chunked)",
        "timestamp is larger than the limit of 1048576 bytes",
        "malformed",
        3,
    ));
    // Targets announced at 8 GiB: refused from the length, before the body.
    rig.serve_repo(&rig.signed(4, &rig.evil));
    rig.notary.serve_endless("targets.json", Some(8 << 30));
    figures.push(rig.refused(
        "endless targets (8 GiB Content-Length)",
        "targets is larger than the limit",
        "malformed",
        5,
    ));
    assert!(
        rig.tg.is_running(),
        "trustgate survived the endless answers"
    );
    reliability::report("trust", "endless-data", &figures.join("; "));
}

#[test]
fn root_rotation_signed_by_the_old_keys_only_is_refused() {
    let rig = Rig::start("rotation");
    rig.honest_pull(1);
    let old_root = rig.signed(1, &rig.honest).root.keys[0].clone();
    let mut r = rig.signed(2, &rig.evil);
    r.root = RoleSpec {
        version: 2,
        // Signed by the previous root key alone: the new root key did not sign its own root.
        signers: Some(vec![old_root]),
        ..RoleSpec::new(TestKey::root_cert(
            11,
            &rig.gun,
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2120-01-01 0:00 UTC),
        ))
    };
    rig.serve_repo(&r);
    let figures = rig.refused(
        "root rotation signed by old keys only",
        "valid signatures did not meet threshold for root (0 of 1)",
        "bad_signature",
        3,
    );
    reliability::report("trust", "root-rotation-old-keys-only", &figures);
}

#[test]
fn delegation_signing_outside_its_paths_is_refused() {
    let rig = Rig::start("delegation");
    rig.honest_pull(1);
    // targets/releases may sign `release-*` only, and signs the tag anyway.
    let mut r = rig.signed(2, &rig.honest);
    r.target_files.clear();
    r.delegations.push(DelegationSpec {
        name: "targets/releases".into(),
        role: RoleSpec::new(TestKey::ecdsa(5)),
        paths: vec!["release-".into()],
        targets: [(TAG.to_string(), rig.evil.manifest.clone())]
            .into_iter()
            .collect(),
    });
    rig.serve_repo(&r);
    let figures = rig.refused(
        "delegation outside its paths",
        "role targets/releases signed it outside its delegated paths",
        "unsigned_tag",
        3,
    );
    reliability::report("trust", "delegation-outside-paths", &figures);
}
