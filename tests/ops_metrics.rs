//! Operations (issue 6): the admin listener of the real binary. `/metrics` follows real pulls
//! (skopeo through trustgate, a real CNCF registry and a real notary-server holding trust data
//! signed with the real `notary` CLI); `/healthz` and `/readyz` follow the process and its
//! storage; the admin listener stops with the process and a taken admin address stops start-up
//! with a clear error.
//!
//! Metrics are compared before and after each step (never absolute values, never durations).
//! Counters written when a response body ends are polled for: the client may see its last byte
//! a moment before trustgate records the request.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;
use std::time::Duration;

use support::http::{self, Req};
use support::image::{Blob, ImageSpec, Layout};
use support::proc;
use support::signed::SignedEnv;
use support::trustgate::{self as tgc, PolicySpec, Trustgate, TrustgateOptions, UpstreamConfig};
use support::{timed, TestDir};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label pairs, sorted.
type Labels = Vec<(String, String)>;

/// One scrape of `/metrics`, parsed: series (name and sorted labels) → value.
struct Scrape {
    samples: BTreeMap<(String, Labels), f64>,
    text: String,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, labels, rest) = parse_series(line)
                .unwrap_or_else(|| panic!("unparseable exposition line {line:?}"));
            let value: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no value on {line:?}"));
            samples.insert((series, labels), value);
        }
        Scrape {
            samples,
            text: text.to_string(),
        }
    }

    /// The value of `name{labels}` (every label given, any order); 0 when the series is absent
    /// (a counter not yet incremented).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut key: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        self.samples
            .get(&(name.to_string(), key))
            .copied()
            .unwrap_or(0.0)
    }

    /// Is there a sample of `name` with exactly these labels?
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut key: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        key.sort();
        self.samples.contains_key(&(name.to_string(), key))
    }
}

/// `name{k="v",...} rest` → (name, sorted labels, rest). Label values may hold escaped quotes.
fn parse_series(line: &str) -> Option<(String, Labels, &str)> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            let (i, c) = chars.next()?;
            if c == '}' {
                rest = &inner[i + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            // key
            let mut key = String::from(c);
            loop {
                let (_, c) = chars.next()?;
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
    }
    labels.sort();
    Some((name, labels, rest.trim_start()))
}

#[test]
fn exposition_parser_reads_labels_and_values() {
    let s = Scrape::parse(
        "# TYPE x counter\nx_total{b=\"2\",a=\"q\\\"uote, comma\"} 7\ny 1.5\n# EOF\n",
    );
    assert_eq!(
        s.value("x_total", &[("a", "q\"uote, comma"), ("b", "2")]),
        7.0
    );
    assert_eq!(s.value("y", &[]), 1.5);
    assert_eq!(s.value("z", &[]), 0.0);
}

fn scrape(tg: &Trustgate) -> Scrape {
    let r = http::request(
        &format!("{}/metrics", tg.admin_url()),
        &Req {
            accept: Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            ..Default::default()
        },
    )
    .expect("scrape /metrics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(OPENMETRICS));
    assert!(r.text().ends_with("# EOF\n"), "{}", r.text());
    Scrape::parse(&r.text())
}

/// Scrape until `ok` holds (at most 10 s), returning the last scrape either way.
fn scrape_until(tg: &Trustgate, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = scrape(tg);
    proc::wait_until(Duration::from_secs(10), || {
        last = scrape(tg);
        ok(&last)
    });
    last
}

const REQUESTS: &str = "trustgate_http_requests_total";
const BYTES: &str = "trustgate_http_response_bytes_total";
const HITS: &str = "trustgate_cache_hits_total";
const MISSES: &str = "trustgate_cache_misses_total";
const DECISIONS: &str = "trustgate_trust_decisions_total";
const UPSTREAM_COUNT: &str = "trustgate_upstream_request_duration_seconds_count";
const UPSTREAM_ERRORS: &str = "trustgate_upstream_errors_total";
const VERIFY_COUNT: &str = "trustgate_trust_verify_duration_seconds_count";
const WAITERS: &str = "trustgate_singleflight_waiters";

fn requests(m: &Scrape, route: &str, status: &str) -> f64 {
    m.value(
        REQUESTS,
        &[("route", route), ("method", "GET"), ("status", status)],
    )
}

fn decisions(m: &Scrape, outcome: &str, reason: &str) -> f64 {
    m.value(DECISIONS, &[("outcome", outcome), ("reason", reason)])
}

/// The config and layer blobs of a single-image layout.
/// `GET /v2/<repo>/manifests/<tag>` through trustgate, accepting the usual manifest types.
fn manifest_get(tg: &Trustgate, repo: &str, tag: &str) -> http::Response {
    http::request(
        &format!("{}/v2/{repo}/manifests/{tag}", tg.url()),
        &Req {
            accept: Some(http::MANIFEST_ACCEPT),
            ..Default::default()
        },
    )
    .expect("trustgate answers a manifest GET")
}

fn blobs(layout: &Layout) -> Vec<Blob> {
    let img = &layout.images[0];
    std::iter::once(img.config.clone())
        .chain(img.layers.iter().cloned())
        .collect()
}

/// A signed pull, the same pull again, an unsigned tag, a repository without trust data, a
/// digest outside the signed closure, a missing required signer and an audit-mode repository,
/// each reflected in `/metrics`.
#[test]
fn metrics_follow_pulls_and_refusals() {
    let env = SignedEnv::new("ops-metrics");
    let signed = Layout::image(
        &env.dir("img-signed"),
        &ImageSpec::text_and_random(
            "metrics-signed",
            ("etc/motd", "signed\n"),
            ("opt/blob.bin", 256 << 10, 6),
        ),
    );
    let unsigned = Layout::image(
        &env.dir("img-unsigned"),
        &ImageSpec::small("metrics-unsigned", 1),
    );
    signed.push(&env.skopeo, &env.reg.host(), "demo/app", "v1", None);
    unsigned.push(&env.skopeo, &env.reg.host(), "demo/app", "unsigned", None);
    unsigned.push(&env.skopeo, &env.reg.host(), "demo/nosig", "v1", None);
    unsigned.push(&env.skopeo, &env.reg.host(), "demo/audited", "v1", None);
    signed.push(&env.skopeo, &env.reg.host(), "demo/strict", "v1", None);
    for repo in ["demo/app", "demo/strict"] {
        timed("notary init", || {
            env.cli.init_with_server_snapshot(&env.gun(repo))
        });
        env.cli
            .sign_manifest(&env.gun(repo), "v1", &signed.manifest, &[]);
    }
    // demo/strict requires a `targets/releases` signature its tag lacks; demo/audited (no
    // trust data at all) is served in audit mode.
    let mut strict = PolicySpec::new(&[&env.gun("demo/strict")], "enforce");
    strict.signers = vec!["targets/releases".into()];
    let audited = PolicySpec::new(&[&env.gun("demo/audited")], "audit");

    let tg = timed("trustgate start", || {
        Trustgate::start(
            &env.dir("trustgate"),
            TrustgateOptions {
                upstreams: vec![UpstreamConfig::default_for(&env.reg).with_notary(&env.notary)],
                policies: vec![strict, audited],
                ..Default::default()
            },
        )
    });
    let upstream = env.reg.host();
    let blobs = blobs(&signed);
    let n = blobs.len() as f64;
    let blob_bytes: u64 = blobs.iter().map(|b| b.size).sum();
    let blob = [("content", "blob")];
    let manifest = [("content", "manifest")];

    // A cold pull of a signed tag.
    let m0 = scrape(&tg);
    assert_eq!(
        m0.value(HITS, &blob),
        0.0,
        "series exist at zero from the start"
    );
    assert!(
        m0.has(HITS, &blob) && m0.has(MISSES, &manifest),
        "{}",
        m0.text
    );
    let out = timed("skopeo copy (cold)", || {
        env.skopeo.copy_to_dir(
            &format!("{}/demo/app:v1", tg.host()),
            &env.dir("pull-1"),
            false,
            None,
        )
    });
    assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
    let m1 = scrape_until(&tg, |m| {
        requests(m, "blob", "200") - requests(&m0, "blob", "200") >= n
            && m.value(BYTES, &[("route", "blob")]) - m0.value(BYTES, &[("route", "blob")])
                >= blob_bytes as f64
    });
    let delta =
        |name: &str, labels: &[(&str, &str)]| m1.value(name, labels) - m0.value(name, labels);
    assert!(
        requests(&m1, "manifest", "200") - requests(&m0, "manifest", "200") >= 1.0,
        "{}",
        m1.text
    );
    assert!(
        requests(&m1, "blob", "200") - requests(&m0, "blob", "200") >= n,
        "{n} blobs: {}",
        m1.text
    );
    assert!(
        delta(BYTES, &[("route", "blob")]) >= blob_bytes as f64,
        "{blob_bytes} blob bytes: {}",
        m1.text
    );
    assert!(
        delta(BYTES, &[("route", "manifest")]) >= signed.manifest.len() as f64,
        "{}",
        m1.text
    );
    assert!(delta(MISSES, &blob) >= n, "{}", m1.text);
    assert!(delta(MISSES, &manifest) >= 1.0, "{}", m1.text);
    assert!(decisions(&m1, "allow", "signed") - decisions(&m0, "allow", "signed") >= 1.0);
    assert!(
        decisions(&m1, "allow", "in_signed_closure") - decisions(&m0, "allow", "in_signed_closure")
            >= n,
        "every blob is inside the signed closure: {}",
        m1.text
    );
    assert!(
        delta(VERIFY_COUNT, &[("result", "ok")]) >= 1.0,
        "{}",
        m1.text
    );
    for kind in ["registry", "notary"] {
        assert!(
            delta(UPSTREAM_COUNT, &[("upstream", &upstream), ("kind", kind)]) > 0.0,
            "upstream latency of the {kind}: {}",
            m1.text
        );
    }
    assert!(
        m1.value(
            "trustgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ) == 1.0,
        "{}",
        m1.text
    );

    // The same pull again: everything from the cache.
    let out = env.skopeo.copy_to_dir(
        &format!("{}/demo/app:v1", tg.host()),
        &env.dir("pull-2"),
        false,
        None,
    );
    assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
    let m2 = scrape_until(&tg, |m| {
        requests(m, "blob", "200") - requests(&m1, "blob", "200") >= n
    });
    assert!(
        m2.value(HITS, &blob) - m1.value(HITS, &blob) >= n,
        "{}",
        m2.text
    );
    assert_eq!(
        m2.value(MISSES, &blob),
        m1.value(MISSES, &blob),
        "no blob missed on the second pull: {}",
        m2.text
    );
    assert!(
        m2.value(HITS, &manifest) - m1.value(HITS, &manifest) >= 1.0,
        "{}",
        m2.text
    );
    assert!(
        m2.value(BYTES, &[("route", "blob")]) - m1.value(BYTES, &[("route", "blob")])
            >= blob_bytes as f64
    );
    assert_eq!(m2.value(WAITERS, &[]), 0.0, "no reader still waiting");

    // Refusals: an unsigned tag, a repository without trust data, a digest outside the closure.
    let out = env.skopeo.copy_to_dir(
        &format!("{}/demo/app:unsigned", tg.host()),
        &env.dir("refused-unsigned"),
        false,
        None,
    );
    out.assert_failure();
    assert!(
        out.stderr.contains("No valid trust data for unsigned"),
        "{out}"
    );
    let out = env.skopeo.copy_to_dir(
        &format!("{}/demo/nosig:v1", tg.host()),
        &env.dir("refused-nosig"),
        false,
        None,
    );
    out.assert_failure();
    let outside = &unsigned.images[0].layers[0].digest;
    let r = http::get(&format!("{}/v2/demo/app/blobs/{outside}", tg.url())).expect("blob GET");
    assert_eq!(r.status, 403, "{}", r.text());
    let manifest_of = |repo: &str| manifest_get(&tg, repo, "v1");
    let r = manifest_of("demo/strict");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.text().contains("required signer targets/releases"),
        "{}",
        r.text()
    );
    let r = manifest_of("demo/audited");
    assert_eq!(r.status, 200, "audit mode serves: {}", r.text());

    let m3 = scrape_until(&tg, |m| {
        requests(m, "manifest", "404") - requests(&m2, "manifest", "404") >= 3.0
            && requests(m, "blob", "403") - requests(&m2, "blob", "403") >= 1.0
    });
    let grew = |outcome: &str, reason: &str| {
        decisions(&m3, outcome, reason) - decisions(&m2, outcome, reason)
    };
    assert!(grew("deny", "unsigned_tag") >= 1.0, "{}", m3.text);
    assert!(grew("deny", "no_trust_data") >= 1.0, "{}", m3.text);
    assert!(grew("deny", "outside_signed_closure") >= 1.0, "{}", m3.text);
    assert!(grew("deny", "signer_missing") >= 1.0, "{}", m3.text);
    assert!(
        grew("audit_would_deny", "no_trust_data") >= 1.0,
        "{}",
        m3.text
    );
    assert_eq!(grew("allow", "signed"), 0.0, "{}", m3.text);
    assert!(
        requests(&m3, "manifest", "404") - requests(&m2, "manifest", "404") >= 3.0,
        "{}",
        m3.text
    );
    assert!(
        requests(&m3, "blob", "403") - requests(&m2, "blob", "403") >= 1.0,
        "{}",
        m3.text
    );
    // The Notary server's 404 for a repository without trust data is its answer, counted.
    let notary_404 = [
        ("upstream", upstream.as_str()),
        ("kind", "notary"),
        ("error", "status_4xx"),
    ];
    assert!(
        m3.value(UPSTREAM_ERRORS, &notary_404) - m2.value(UPSTREAM_ERRORS, &notary_404) >= 1.0,
        "{}",
        m3.text
    );
    let verify_failed = [("result", "no_trust_data")];
    assert!(
        m3.value(VERIFY_COUNT, &verify_failed) - m2.value(VERIFY_COUNT, &verify_failed) >= 1.0,
        "{}",
        m3.text
    );
}

/// An upstream nobody listens on: health does not depend on upstreams.
fn idle_upstream() -> UpstreamConfig {
    UpstreamConfig {
        name: "127.0.0.1:9".into(),
        url: "http://127.0.0.1:9".into(),
        default: true,
        creds: None,
        ca_file: None,
        notary: None,
        notary_ca_file: None,
    }
}

fn admin_get(tg: &Trustgate, path: &str) -> http::Response {
    http::get(&format!("{}{path}", tg.admin_url())).expect("admin request")
}

/// `/healthz` while alive; `/readyz` 503 with the reason while the storage is not a writable
/// folder (replaced by a file: root ignores permission bits) and 200 again once it is back;
/// the plain text format for scrapers that do not ask for OpenMetrics; 404 elsewhere; SIGTERM
/// stops the admin listener with the main one.
#[test]
fn health_and_readiness_follow_the_storage() {
    let t = TestDir::new("ops-health");
    let mut tg = Trustgate::start(
        &t.sub("trustgate"),
        TrustgateOptions {
            upstreams: vec![idle_upstream()],
            ..Default::default()
        },
    );
    let r = admin_get(&tg, "/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = admin_get(&tg, "/readyz");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ready\n"),
        "{}",
        tg.logs()
    );

    let data = tg.dir().join("data");
    let away = tg.dir().join("data.away");
    fs::rename(&data, &away).expect("move the storage away");
    fs::write(&data, b"not a folder\n").expect("a file where the storage was");
    let r = admin_get(&tg, "/readyz");
    assert_eq!(r.status, 503, "{}", r.text());
    let body = r.text();
    assert!(
        body.contains(&format!("storage {} not writable: ", data.display())),
        "{body}"
    );
    assert!(body.contains("Not a directory"), "{body}");
    assert_eq!(admin_get(&tg, "/healthz").status, 200, "alive all the same");

    fs::remove_file(&data).expect("remove the file");
    fs::rename(&away, &data).expect("put the storage back");
    let r = admin_get(&tg, "/readyz");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    let probes_left = fs::read_dir(data.join("tmp")).expect("tmp").count();
    assert_eq!(probes_left, 0, "readiness probes clean up after themselves");

    let r = admin_get(&tg, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    // No request reached the registry API: the cache series are there at zero all the same.
    let text = r.text();
    assert!(
        text.contains("# TYPE trustgate_cache_hits_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("trustgate_cache_hits_total{content=\"blob\"} 0\n"),
        "{text}"
    );
    assert_eq!(admin_get(&tg, "/nope").status, 404);
    assert_eq!(
        admin_get(&tg, "/v2/").status,
        404,
        "the registry API is not on the admin port"
    );

    // One signal stops both listeners.
    let admin_port: u16 = tg
        .admin_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("admin port");
    proc::signal(tg.pid(), "TERM");
    assert!(
        proc::wait_until(Duration::from_secs(10), || !tg.is_running()),
        "trustgate did not stop on SIGTERM:\n{}",
        tg.logs()
    );
    for port in [tg.port(), admin_port] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts after shutdown"
        );
    }
    assert!(tg.log().contains("stopped"), "{}", tg.logs());
}

/// A taken `[admin] listen` address stops start-up with the key, the address and the cause.
#[test]
fn admin_address_in_use_is_a_clear_startup_error() {
    let t = TestDir::new("ops-admin-bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let dir = t.sub("trustgate");
    let data = t.sub("data");
    let opts = TrustgateOptions {
        upstreams: vec![idle_upstream()],
        ..Default::default()
    };
    let mut toml = tgc::config_toml(
        &dir,
        &format!("127.0.0.1:{}", proc::free_port()),
        &data,
        &opts,
    );
    toml.push_str(&format!("\n[admin]\nlisten = \"{addr}\"\n"));
    let config = dir.join("trustgate.toml");
    fs::write(&config, toml).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1");
    let out = proc::run(cmd, Duration::from_secs(30), &dir.join("out"));
    assert!(!out.timed_out, "{out}");
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("admin.listen {addr}: cannot listen: ")),
        "{out}"
    );
    drop(taken);
}

const UPSTREAM_UP: &str = "trustgate_upstream_up";

/// A registry and a Notary server that stop answering (a proxy in front of each closes
/// connections or answers 500): `/readyz` stays 200 and names each one with what that means
/// for pulls, `trustgate_upstream_up` drops to 0 for it alone, and both come back by
/// themselves with the next answer.
#[test]
fn readiness_and_upstream_up_follow_an_upstream_that_stops_answering() {
    use support::faults::{HttpFault, HttpFaultProxy};
    let env = SignedEnv::new("ops-upstream-down");
    let image = env.image("ops-upstream-down", 1);
    env.push(&image, "demo/app", "v1");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &image, &[]);
    let image2 = env.image("ops-upstream-down-2", 1);
    env.push(&image2, "demo/app", "v2");
    env.sign("demo/app", "v2", &image2, &[]);
    let notary = HttpFaultProxy::start(&env.notary.url(), Some(env.notary.ca_cert()));
    let registry = HttpFaultProxy::start(&env.reg.url(), None);
    let upstream = UpstreamConfig {
        url: registry.url(),
        ..env.upstream().with_notary_url(&notary.url(), None)
    };
    let tg = Trustgate::start(
        &env.dir("tg"),
        TrustgateOptions {
            upstreams: vec![upstream],
            ..Default::default()
        },
    );
    let host = env.reg.host();
    let registry_up = [("upstream", host.as_str()), ("kind", "registry")];
    let notary_up = [("upstream", host.as_str()), ("kind", "notary")];
    let manifest = |repo: &str, tag: &str| manifest_get(&tg, repo, tag);
    let readyz = || {
        let r = admin_get(&tg, "/readyz");
        assert_eq!(r.status, 200, "an upstream outage is not unreadiness");
        r.text()
    };

    assert_eq!(manifest("demo/app", "v1").status, 200, "{}", tg.logs());
    assert_eq!(readyz(), "ready\n");
    let m = scrape(&tg);
    assert_eq!(m.value(UPSTREAM_UP, &registry_up), 1.0, "{}", m.text);
    assert_eq!(m.value(UPSTREAM_UP, &notary_up), 1.0, "{}", m.text);

    // The Notary server gone: a repository never verified cannot be.
    notary.set(HttpFault::Refuse);
    assert_eq!(manifest("demo/never", "v1").status, 403);
    let body = readyz();
    let notary_line = format!(
        "degraded: Notary server of {host} ({}/): not answering for ",
        notary.url()
    );
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(body.contains(&notary_line), "{body}");
    assert!(
        body.contains("tags verified before are served from their pinned trust data"),
        "{body}"
    );
    assert!(!body.contains("degraded: upstream "), "{body}");
    let m = scrape(&tg);
    assert_eq!(m.value(UPSTREAM_UP, &notary_up), 0.0, "{}", m.text);
    assert_eq!(m.value(UPSTREAM_UP, &registry_up), 1.0, "{}", m.text);
    assert!(
        tg.log().contains("upstream down: not answering"),
        "{}",
        tg.logs()
    );

    // Back: its next answer (a 404 for a repository without trust data counts) clears it.
    notary.set(HttpFault::Pass);
    assert_eq!(manifest("demo/never2", "v1").status, 404);
    assert_eq!(readyz(), "ready\n");
    assert_eq!(scrape(&tg).value(UPSTREAM_UP, &notary_up), 1.0);
    assert!(
        tg.log().contains("upstream answering again"),
        "{}",
        tg.logs()
    );

    // The registry answering 500: a signed tag trustgate does not hold cannot be pulled.
    registry.set(HttpFault::Status500);
    let r = manifest("demo/app", "v2");
    assert!(r.status >= 500, "{} {}", r.status, r.text());
    let body = readyz();
    assert!(
        body.contains(&format!(
            "degraded: upstream {host} ({}/): not answering for ",
            registry.url()
        )),
        "{body}"
    );
    assert!(body.contains("500"), "the last error is shown: {body}");
    assert!(!body.contains("degraded: Notary server"), "{body}");
    assert_eq!(scrape(&tg).value(UPSTREAM_UP, &registry_up), 0.0);

    registry.set(HttpFault::Pass);
    let r = manifest("demo/app", "v2");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(readyz(), "ready\n");
    assert_eq!(scrape(&tg).value(UPSTREAM_UP, &registry_up), 1.0);
}
