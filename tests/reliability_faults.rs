//! Reliability, faults (issue 15): the real binary in front of the real registry and
//! notary-server, with one fault injected by a proxy of tests/support/faults.rs. For each: what
//! the client gets (a correct pull or a clear OCI error, never a wrong byte, never a hang past
//! the configured timeouts), what `/readyz` says, and that service resumes by itself once the
//! fault is gone.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::faults::{HttpFault, HttpFaultProxy, TrickleProxy};
use support::http::{self, runtime, MANIFEST_ACCEPT};
use support::load;
use support::proc;
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

/// What one request of the Notary kill case's load got.
struct Answer {
    warm: bool,
    sent: Instant,
    answered: Instant,
    status: u16,
    /// The OCI error message of a refusal, or "" for a 200.
    message: String,
}

/// Manifest GETs by tag from `tasks` clients until `stop`: the warm signed tag (its bytes
/// checked against `signed_digest`), then a repository trustgate never saw (a fresh trust-data
/// fetch from the Notary server), in turn. A transport error, a 200 with other bytes or a refusal
/// without an OCI error message fails the case.
fn notary_load(
    tg: &Trustgate,
    signed_digest: &str,
    tasks: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Result<Vec<Answer>, String>>> {
    (0..tasks)
        .map(|task| {
            let (base, digest, stop) = (tg.url(), signed_digest.to_string(), stop.clone());
            runtime().spawn(async move {
                let c = load::client(2);
                let mut answers = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let warm = i % 2 == 0;
                    let repo = if warm {
                        "demo/app".to_string()
                    } else {
                        format!("demo/never-{task}-{i}")
                    };
                    let url = format!("{base}/v2/{repo}/manifests/v1");
                    let sent = Instant::now();
                    let (status, body) = load::get(&c, &url, Some(MANIFEST_ACCEPT)).await?;
                    let answered = Instant::now();
                    let message = if status == 200 {
                        if http::sha256_digest(&body) != digest {
                            return Err(format!("{repo}: 200 with other bytes than signed"));
                        }
                        String::new()
                    } else {
                        serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["errors"][0]["message"].as_str().map(String::from))
                            .ok_or_else(|| format!("{repo}: {status} without an OCI error"))?
                    };
                    answers.push(Answer {
                        warm,
                        sent,
                        answered,
                        status,
                        message,
                    });
                }
                Ok(answers)
            })
        })
        .collect()
}

/// The real Notary server killed (SIGKILL) while trustgate fetches trust data from it, then
/// restarted on its port. The server is deployed as in production: its TUF files in
/// PostgreSQL, its keys in notary-signer, so the restarted server still has every repository.
/// Meanwhile four clients ask for the warm signed tag (re-verified every second,
/// `[trust] refresh = 1`) and for repositories never seen (each a fresh fetch). Shown:
/// - requests in flight at the kill, and every request of the outage, are answered: the warm
///   tag from its pinned, still-valid trust data with the signed bytes, the others refused
///   with an OCI error naming the Notary server;
/// - once the server is back, without touching trustgate: a repository signed before the kill
///   and never asked for is verified and pulled, and a tag signed after the restart (the
///   signer signs its snapshot and timestamp) is served.
#[test]
fn notary_server_killed_mid_fetch_and_restarted() {
    let mut env = SignedEnv::durable("rel-notary-kill");
    let image = env.image("rel-notary-kill", 3);
    for repo in ["demo/app", "demo/late"] {
        env.push(&image, repo, "v1");
        env.init_trust(repo);
        env.sign(repo, "v1", &image, &[]);
    }
    let tg = start_tg(&env, env.upstream(), Some(1), "");
    let (s, m, _) = manifest(&tg, "demo/app", "v1");
    assert_eq!(s, 200, "warm-up: {m}\n{}", env.logs(Some(&tg)));
    pull_ok(&tg, "demo/app", "warm-up");

    let signed_digest = http::sha256_digest(&image.manifest);
    let first_pid = env.notary.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = notary_load(&tg, &signed_digest, 8, &stop);
    // Three kill-restart cycles: (killed at, restarted at).
    let mut outages = Vec::new();
    let mut readyz_down = String::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1000));
        let killed_at = Instant::now();
        env.notary.kill();
        std::thread::sleep(Duration::from_millis(1500));
        readyz_down = readyz(&tg);
        let restarted_at = Instant::now();
        env.notary.restart();
        outages.push((killed_at, restarted_at));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    assert_ne!(
        env.notary.pid(),
        first_pid,
        "the Notary server was not restarted"
    );
    let mut answers = Vec::new();
    for c in clients {
        match runtime().block_on(c).expect("load task") {
            Ok(a) => answers.extend(a),
            Err(e) => panic!("{e}\n{}", env.logs(Some(&tg))),
        }
    }

    let in_flight: Vec<&Answer> = answers
        .iter()
        .filter(|a| {
            outages
                .iter()
                .any(|(k, _)| a.sent <= *k && a.answered >= *k)
        })
        .collect();
    let outage: Vec<&Answer> = answers
        .iter()
        .filter(|a| outages.iter().any(|(k, r)| a.sent > *k && a.answered < *r))
        .collect();
    let slowest = answers
        .iter()
        .map(|a| a.answered - a.sent)
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(35),
        "an answer took {slowest:?} (the Notary timeouts are 30 s)"
    );
    // The warm tag is verified and pinned: the Notary server going away must not stop it.
    for a in answers.iter().filter(|a| a.warm) {
        assert_eq!(
            a.status,
            200,
            "the warm signed tag refused: {}\n{}",
            a.message,
            tg.logs()
        );
    }
    let outage_cold: Vec<&&Answer> = outage.iter().filter(|a| !a.warm).collect();
    assert!(!outage_cold.is_empty(), "no cold request during the outage");
    for a in &outage_cold {
        assert_ne!(a.status, 200, "an unverifiable repository was served");
        assert!(
            a.message.to_lowercase().contains("notary"),
            "a refusal during the outage does not name the Notary server: {}",
            a.message
        );
    }

    // Back: a repository signed before the kill and never asked for is verified from the
    // restarted server's database.
    let mut late = (0, String::new(), Duration::ZERO);
    let mut late_asks = 0;
    let recovered = proc::wait_until(Duration::from_secs(30), || {
        late_asks += 1;
        late = manifest(&tg, "demo/late", "v1");
        late.0 == 200
    });
    assert!(
        recovered,
        "demo/late:v1 after the restart: {} {}\n{}",
        late.0,
        late.1,
        env.logs(Some(&tg))
    );
    pull_ok(
        &tg,
        "demo/late",
        "a repository signed before the kill, after the restart",
    );

    // A tag signed after the restart: the restarted server has its keys (notary-signer).
    let image2 = env.image("rel-notary-kill-v2", 2);
    env.push(&image2, "demo/app", "v2");
    env.sign("demo/app", "v2", &image2, &[]);
    let mut v2 = (0, String::new(), Duration::ZERO);
    let served = proc::wait_until(Duration::from_secs(15), || {
        v2 = manifest(&tg, "demo/app", "v2");
        v2.0 == 200
    });
    assert!(
        served,
        "demo/app:v2 signed after the restart: {} {}",
        v2.0, v2.1
    );
    runtime()
        .block_on(load::pull(&load::client(1), &tg.url(), "demo/app", "v2"))
        .unwrap_or_else(|e| panic!("demo/app:v2 after the restart: {e}"));
    // /readyz: ready all along (what trustgate holds is served), naming the Notary server
    // while it does not answer, and plain ready again once it does.
    assert!(
        readyz_down.starts_with("200 ready")
            && readyz_down.contains(&format!(
                "degraded: Notary server of {} ({}/): not answering for ",
                env.reg.host(),
                env.notary.url()
            )),
        "/readyz during the outage: {readyz_down}"
    );
    let readyz_back = readyz(&tg);
    assert_eq!(readyz_back, "200 ready", "/readyz after the restarts");

    let count = |v: &[&Answer], warm: bool, ok: bool| {
        v.iter()
            .filter(|a| a.warm == warm && (a.status == 200) == ok)
            .count()
    };
    let first_refusal = outage_cold[0].message.chars().take(90).collect::<String>();
    report(
        "faults",
        "Notary server killed mid-fetch and restarted",
        &format!(
            "notary-server on PostgreSQL with notary-signer, SIGKILLed (first pid {first_pid}) \
             3 times under 8 clients asking in turn for the warm tag (refresh = 1 s) and for \
             never-seen repositories (a fresh trust-data fetch each), restarted on its port \
             1.5 s after each kill: {} requests in flight at the kills ({} of them fresh \
             fetches), all answered ({} with the signed bytes, {} refused); during the outages \
             warm tag {} × 200 (signed bytes), unknown repos {} × refused \"{first_refusal}\", \
             /readyz {readyz_down}; {} requests in all, 0 transport errors, 0 wrong bytes, \
             slowest {}; after the restarts, without touching trustgate: a repository signed \
             before the kills and never asked for served at ask {late_asks} (pulled, \
             hash-checked), a tag signed after the restart served, /readyz {readyz_back}",
            in_flight.len(),
            in_flight.iter().filter(|a| !a.warm).count(),
            in_flight.iter().filter(|a| a.status == 200).count(),
            in_flight.iter().filter(|a| a.status != 200).count(),
            count(&outage, true, true),
            outage_cold.len(),
            answers.len(),
            load::ms(slowest),
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
