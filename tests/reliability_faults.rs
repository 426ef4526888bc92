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
