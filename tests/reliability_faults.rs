//! Reliability, faults (issue 15): the real binary in front of the real registry and
//! notary-server, with one fault injected by a proxy of tests/support/faults.rs. For each: what
//! the client gets (a correct pull or a clear OCI error, never a wrong byte, never a hang past
//! the configured timeouts), what `/readyz` says, and that service resumes by itself once the
//! fault is gone.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use support::faults::{HttpFault, HttpFaultProxy, TrickleProxy};
use support::http::{self, runtime, MANIFEST_ACCEPT};
use support::load;
use support::reliability::report;
use support::signed::SignedEnv;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};

/// A manifest GET through trustgate: (status, OCI error message or "", elapsed).
fn manifest(tg: &Trustgate, repo: &str, tag: &str) -> (u16, String, Duration) {
    let t0 = Instant::now();
    let (status, body) = runtime()
        .block_on(load::get(
            &load::client(1),
            &format!("{}/v2/{repo}/manifests/{tag}", tg.url()),
            Some(MANIFEST_ACCEPT),
        ))
        .expect("trustgate answers (no transport error)");
    let msg = if status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status} without an OCI error JSON ({e})"));
        v["errors"][0]["message"]
            .as_str()
            .expect("OCI error message")
            .to_string()
    } else {
        String::new()
    };
    (status, msg, t0.elapsed())
}

/// A whole pull of `repo:v1` through trustgate (every blob hash-checked), or a panic naming
/// `when` with trustgate's log.
fn pull_ok(tg: &Trustgate, repo: &str, when: &str) {
    runtime()
        .block_on(load::pull(&load::client(1), &tg.url(), repo, "v1"))
        .unwrap_or_else(|e| panic!("{when}: {e}\n{}", tg.logs()));
}

fn readyz(tg: &Trustgate) -> String {
    match http::get(&format!("{}/readyz", tg.admin_url())) {
        Ok(r) => format!("{} {}", r.status, r.text().trim()),
        Err(e) => format!("unreachable: {e}"),
    }
}

/// trustgate with one upstream; `upstream_keys` are extra keys of its `[[upstream]]` table.
fn start_tg(
    env: &SignedEnv,
    upstream: UpstreamConfig,
    refresh: Option<u64>,
    upstream_keys: &str,
) -> Trustgate {
    Trustgate::start(
        &env.dir("tg"),
        TrustgateOptions {
            upstreams: vec![upstream],
            // Extra TOML follows the last [[upstream]] table directly: its keys land there.
            extra_toml: upstream_keys.into(),
            refresh,
            ..Default::default()
        },
    )
}

/// A signed `demo/app:v1` (3 layers), and an unknown `demo/other`, behind a Notary proxy.
fn signed_env(name: &str) -> (SignedEnv, HttpFaultProxy) {
    let env = SignedEnv::new(name);
    let image = env.image(name, 3);
    env.push(&image, "demo/app", "v1");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &image, &[]);
    let notary = HttpFaultProxy::start(&env.notary.url(), Some(env.notary.ca_cert()));
    (env, notary)
}

/// Notary answering 500, answering garbage, then gone (connections closed unanswered), each
/// while trustgate re-verifies every second (`[trust] refresh = 1`): a warm signed tag, a
/// repository never verified, and recovery once the Notary server answers again.
#[test]
fn notary_500_garbage_and_gone_then_back() {
    let (env, notary) = signed_env("rel-notary");
    let upstream = env.upstream().with_notary_url(&notary.url(), None);
    let tg = start_tg(&env, upstream, Some(1), "");
    let (s, m, _) = manifest(&tg, "demo/app", "v1");
    assert_eq!(s, 200, "warm-up: {m}");
    pull_ok(&tg, "demo/app", "warm-up");

    let mut seen = Vec::new();
    for fault in [HttpFault::Status500, HttpFault::Garbage, HttpFault::Refuse] {
        notary.set(fault);
        std::thread::sleep(Duration::from_millis(1500)); // past refresh: trustgate asks again
        let (warm, warm_msg, warm_t) = manifest(&tg, "demo/app", "v1");
        let (cold, cold_msg, cold_t) = manifest(&tg, "demo/never", "v1");
        // The warm tag: served from the pinned, still-valid trust data while the Notary server
        // fails to answer (500, gone), or refused clearly when it answers with a lie (garbage).
        assert!(
            warm == 200 || (400..600).contains(&warm),
            "{fault:?}: warm {warm}"
        );
        if warm == 200 {
            runtime()
                .block_on(load::pull(&load::client(1), &tg.url(), "demo/app", "v1"))
                .unwrap_or_else(|e| panic!("{fault:?}: a served pull went wrong: {e}"));
        } else {
            assert!(!warm_msg.is_empty());
        }
        // Never verified: nothing to fall back on, so a clear refusal (never a 200).
        assert_ne!(
            cold, 200,
            "{fault:?}: an unverifiable repository was served"
        );
        assert!(!cold_msg.is_empty());
        assert!(
            warm_t < Duration::from_secs(35) && cold_t < Duration::from_secs(35),
            "{fault:?}: an answer took {warm_t:?} / {cold_t:?} (first_byte_timeout is 30 s)"
        );
        seen.push(format!(
            "{fault:?}: warm tag {warm}{}, unknown repo {cold} \"{}\", /readyz {}",
            if warm == 200 {
                " (served from pinned trust data, bytes checked)".to_string()
            } else {
                format!(" \"{warm_msg}\"")
            },
            cold_msg.chars().take(90).collect::<String>(),
            readyz(&tg)
        ));
    }

    notary.set(HttpFault::Pass);
    std::thread::sleep(Duration::from_millis(1500));
    let (s, m, _) = manifest(&tg, "demo/app", "v1");
    assert_eq!(
        s,
        200,
        "after the Notary server is back: {m}\n{}",
        tg.logs()
    );
    pull_ok(&tg, "demo/app", "after the Notary server is back");
    let log = tg.log();
    report(
        "faults",
        "Notary answering 500, garbage, then gone",
        &format!(
            "{}; then back: served again without a restart. Log mentions the Notary failure: {}",
            seen.join("; "),
            log.contains("Notary") || log.contains("notary")
        ),
    );
}

/// The registry answering at 1 byte/s (a trickling TCP proxy in front of it): trustgate's
/// `first_byte_timeout` fires, the client gets a clear error in bounded time, nothing wrong is
/// cached, and once the registry is fast again the same pull succeeds.
#[test]
fn upstream_answering_one_byte_per_second() {
    let (env, notary) = signed_env("rel-slow");
    let trickle = TrickleProxy::start(env.reg.port());
    let upstream = UpstreamConfig {
        // The GUN is the registry's own host: the name stays, the URL goes through the proxy.
        url: trickle.url(),
        ..env.upstream().with_notary_url(&notary.url(), None)
    };
    let keys = "first_byte_timeout = \"3s\"\nidle_timeout = \"3s\"\n";
    let tg = start_tg(&env, upstream, None, keys);
    trickle.slow(Duration::from_secs(1));
    let t0 = Instant::now();
    let (status, msg, _) = manifest(&tg, "demo/app", "v1");
    let took = t0.elapsed();
    assert!(status >= 500, "a trickling upstream gave {status}: {msg}");
    assert!(!msg.is_empty());
    assert!(
        took < Duration::from_secs(20),
        "the answer took {took:?} with first_byte_timeout = 3s"
    );
    let ready = readyz(&tg);

    trickle.fast();
    pull_ok(&tg, "demo/app", "after the upstream is fast again");
    report(
        "faults",
        "upstream answering 1 byte/s",
        &format!(
            "first_byte_timeout = 3s: client got {status} \"{}\" after {:.1} s; /readyz {ready}; fast again: the same pull (manifest + 4 blobs, hash-checked) succeeds without a restart",
            msg.chars().take(100).collect::<String>(),
            took.as_secs_f64()
        ),
    );
}

/// The registry killed (SIGKILL, by PID) while a 16 MiB blob streams through trustgate (a
/// throttling TCP proxy keeps the transfer going for a few seconds), then restarted on the same
/// port: the client gets an error or the exact bytes, never wrong bytes and never a hang; the
/// same pull succeeds once the registry is back, without touching trustgate.
#[test]
fn upstream_killed_mid_blob_then_restarted() {
    use support::image::{ImageSpec, LayerSpec, Layout};
    const BIG: usize = 16 << 20;
    let mut env = SignedEnv::new("rel-kill");
    let spec = ImageSpec::new(
        "rel-kill",
        vec![
            LayerSpec::text("a/hello.txt", "hello\n"),
            LayerSpec::random("b/big.bin", BIG, 15),
        ],
    );
    let image = Layout::image(&env.dir("img-big"), &spec);
    env.push(&image, "demo/big", "v1");
    env.init_trust("demo/big");
    env.sign("demo/big", "v1", &image, &[]);
    let big = image.images[0]
        .layers
        .iter()
        .max_by_key(|l| l.size)
        .expect("layers")
        .digest
        .clone();

    let trickle = TrickleProxy::start(env.reg.port());
    let upstream = UpstreamConfig {
        url: trickle.url(),
        ..env.upstream()
    };
    let tg = start_tg(&env, upstream, None, "idle_timeout = \"5s\"\n");
    let (s, m, _) = manifest(&tg, "demo/big", "v1");
    assert_eq!(s, 200, "{m}");

    // ~6 MiB/s: the 16 MiB blob takes a few seconds.
    trickle.throttle(64 * 1024, Duration::from_millis(10));
    let url = format!("{}/v2/demo/big/blobs/{big}", tg.url());
    let client = std::thread::spawn(move || {
        let t0 = Instant::now();
        let r = runtime().block_on(load::get(&load::client(1), &url, None));
        (r, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(800));
    support::proc::signal(env.reg.pid(), "KILL");
    let (r, took) = client.join().expect("client thread");
    let outcome = match &r {
        Err(e) => format!(
            "transport error ({})",
            e.chars().take(80).collect::<String>()
        ),
        Ok((200, body)) => {
            assert_eq!(
                support::http::sha256_digest(body),
                big,
                "WRONG BYTES served after the upstream died"
            );
            "the whole blob (the fill had finished)".to_string()
        }
        Ok((s, body)) => format!(
            "{s} {}",
            String::from_utf8_lossy(body)
                .chars()
                .take(80)
                .collect::<String>()
        ),
    };
    assert!(took < Duration::from_secs(40), "the client waited {took:?}");
    let ready = readyz(&tg);

    trickle.fast();
    env.reg.restart(2);
    pull_ok(&tg, "demo/big", "after the registry is back");
    report(
        "faults",
        "upstream killed mid-blob, restarted",
        &format!(
            "16 MiB blob at ~6 MiB/s, registry SIGKILLed 0.8 s in: client got {outcome} after {:.1} s; /readyz {ready}; registry restarted on its port: the same pull (manifest + 2 blobs, hash-checked) succeeds without touching trustgate",
            took.as_secs_f64()
        ),
    );
}

/// The registry sending a blob's headers at once and then its body at 1 byte/s (never silent
/// long enough for `idle_timeout`): the rate floor (`min_rate = "100"` bytes/s over
/// `min_rate_window = "2s"` here; 1 KiB/s over 60 s by default) cuts the fill, the client gets
/// an error instead of a transfer that never ends, nothing is stored, no temporary file is
/// left, and the same pull succeeds once the registry is fast again.
#[test]
fn upstream_trickling_inside_a_blob_body() {
    let (env, notary) = signed_env("rel-trickle-body");
    let trickle = TrickleProxy::start(env.reg.port());
    let upstream = UpstreamConfig {
        url: trickle.url(),
        ..env.upstream().with_notary_url(&notary.url(), None)
    };
    let keys = "min_rate = \"100/s\"\nmin_rate_window = \"2s\"\n";
    let tg = start_tg(&env, upstream, None, keys);
    let (s, m, _) = manifest(&tg, "demo/app", "v1");
    assert_eq!(s, 200, "{m}");
    let (s, body) = runtime()
        .block_on(load::get(
            &load::client(1),
            &format!("{}/v2/demo/app/manifests/v1", tg.url()),
            Some(MANIFEST_ACCEPT),
        ))
        .expect("manifest");
    assert_eq!(s, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&body).expect("manifest JSON");
    let (blob, size) = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().expect("digest").to_string(),
                l["size"].as_u64().expect("size"),
            )
        })
        .max_by_key(|(_, size)| *size)
        .expect("a layer");
    // At 1 byte/s the whole blob would take `size` seconds: well past the bound below.
    assert!(
        size >= 120,
        "layer of {size} bytes is too small to show a trickle"
    );

    trickle.trickle_blob_bodies(Duration::from_secs(1));
    let gets_before = env.reg.blob_gets(&blob);
    let t0 = Instant::now();
    let r = runtime().block_on(load::get(
        &load::client(1),
        &format!("{}/v2/demo/app/blobs/{blob}", tg.url()),
        None,
    ));
    let took = t0.elapsed();
    let outcome = match &r {
        Err(e) => format!(
            "transport error after the headers ({})",
            e.chars().take(80).collect::<String>()
        ),
        Ok((200, body)) => panic!(
            "a trickled blob was served whole ({} bytes) in {took:?}",
            body.len()
        ),
        Ok((s, body)) => {
            assert!(*s >= 500, "a trickled blob gave {s}");
            format!(
                "{s} {}",
                String::from_utf8_lossy(body)
                    .chars()
                    .take(100)
                    .collect::<String>()
            )
        }
    };
    assert!(
        took < Duration::from_secs(60),
        "the client waited {took:?} for a {size}-byte blob at 1 byte/s (min_rate window 2 s)"
    );
    // The registry logs a request when it ends: wait for the cut one's line.
    let t1 = Instant::now();
    while env.reg.blob_gets(&blob) == gets_before && t1.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let gets_cut = env.reg.blob_gets(&blob);
    assert!(
        gets_cut > gets_before,
        "the blob was fetched from the registry"
    );
    let log = tg.log();
    assert!(
        log.contains("min_rate"),
        "the log names the rate floor:\n{log}"
    );
    let tmp_left = std::fs::read_dir(tg.dir().join("data").join("tmp")).map_or(0, |d| d.count());
    assert_eq!(tmp_left, 0, "temporary files left behind");
    let ready = readyz(&tg);

    trickle.fast();
    pull_ok(&tg, "demo/app", "after the registry is fast again");
    // The blob came from the registry again: nothing of the cut fill was kept.
    assert!(
        env.reg.blob_gets(&blob) > gets_cut,
        "the cut fill left nothing in the store"
    );
    report(
        "faults",
        "upstream trickling inside a blob body",
        &format!(
            "headers at once, then 1 byte/s inside a {size}-byte blob; min_rate = 100 bytes/s over 2 s windows: client got {outcome} after {:.1} s; nothing stored, 0 temporary files; /readyz {ready}; fast again: the same pull (hash-checked) succeeds and fetches the blob anew",
            took.as_secs_f64()
        ),
    );
}

/// libfaketime, installed by scripts/install-test-deps.sh (Debian package `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The wall clock jumping under a running trustgate (libfaketime preloaded into the real
/// binary, the offset read from a file it re-reads every second). Only the wall clock moves
/// (`DONT_FAKE_MONOTONIC=1`): an NTP step or a VM resume moves CLOCK_REALTIME and leaves
/// CLOCK_MONOTONIC alone, and tokio's timers (refresh, timeouts) and the caches' TTLs run on the
/// monotonic clock. Trust expiry is judged on the wall clock:
/// - +15 days, past the 14-day expiry of notary-server's timestamp: the warm signed tag is
///   refused with the expiry reason (fail closed: `offline_grace` is 0 by default), the
///   process keeps answering and `/readyz` says so;
/// - back to the true time: served again, without a restart;
/// - 6 hours back, then 6 hours ahead: signed tags and cached content keep being served, an
///   unknown repository keeps being refused, the refresh keeps running.
#[test]
fn clock_jumps_under_libfaketime() {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} missing: run scripts/install-test-deps.sh (Debian package faketime)"
    );
    let (env, notary) = signed_env("rel-clock");
    let offset_file = env.dir("faketime").join("offset");
    std::fs::create_dir_all(offset_file.parent().expect("dir")).expect("faketime dir");
    std::fs::write(&offset_file, "+0\n").expect("offset file");
    let upstream = env.upstream().with_notary_url(&notary.url(), None);
    let tg = Trustgate::start(
        &env.dir("tg"),
        TrustgateOptions {
            upstreams: vec![upstream],
            refresh: Some(1),
            env: vec![
                ("LD_PRELOAD".into(), LIBFAKETIME.into()),
                (
                    "FAKETIME_TIMESTAMP_FILE".into(),
                    offset_file.to_string_lossy().into_owned(),
                ),
                ("FAKETIME_CACHE_DURATION".into(), "1".into()),
                ("DONT_FAKE_MONOTONIC".into(), "1".into()),
            ],
            ..Default::default()
        },
    );
    let (s, m, _) = manifest(&tg, "demo/app", "v1");
    assert_eq!(s, 200, "warm-up: {m}");
    pull_ok(&tg, "demo/app", "warm-up");

    let mut seen = Vec::new();
    let mut jump = |offset: &str| {
        std::fs::write(&offset_file, format!("{offset}\n")).expect("offset file");
        // Past libfaketime's re-read (1 s) and trustgate's refresh (1 s).
        std::thread::sleep(Duration::from_millis(3000));
        let warm = manifest(&tg, "demo/app", "v1");
        let cold = manifest(&tg, "demo/never", "v1");
        let ready = readyz(&tg);
        seen.push(format!(
            "{offset}: warm tag {}{}, unknown repo {}, /readyz {ready}",
            warm.0,
            if warm.0 == 200 {
                String::new()
            } else {
                format!(" \"{}\"", warm.1.chars().take(100).collect::<String>())
            },
            cold.0
        ));
        assert_ne!(
            cold.0, 200,
            "{offset}: an unverifiable repository was served"
        );
        assert!(
            !ready.starts_with("unreachable"),
            "{offset}: /readyz {ready}"
        );
        warm
    };

    let (s, m, _) = jump("+15d");
    assert_ne!(
        s, 200,
        "+15 days: the expired trust data still served the tag"
    );
    assert!(
        m.contains("expired"),
        "+15 days: refused without the expiry reason: {m}"
    );

    let (s, m, _) = jump("+0");
    assert_eq!(s, 200, "back to the true time: {m}\n{}", tg.logs());
    pull_ok(&tg, "demo/app", "back to the true time");

    for offset in ["-6h", "+6h"] {
        let (s, m, _) = jump(offset);
        assert_eq!(s, 200, "{offset}: {m}\n{}", tg.logs());
        pull_ok(&tg, "demo/app", offset);
    }
    report(
        "faults",
        "clock jump (libfaketime)",
        &format!(
            "real binary under libfaketime, wall clock only (DONT_FAKE_MONOTONIC=1), refresh = 1 s: {}; cached content pulled (hash-checked) after each jump back, no restart",
            seen.join("; ")
        ),
    );
}
