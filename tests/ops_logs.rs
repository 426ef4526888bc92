//! Structured logs (issue 6): `[log] format = "json"`, a request id on every line of a request and
//! in `X-Request-Id`, and one audit line per trust decision naming the client, user, image,
//! verdict, reason, signer role and digest. Real registry, real notary-server and `notary` CLI,
//! skopeo pulling through the real trustgate binary.

mod support;

use serde_json::Value;
use support::http::{self, Req, MANIFEST_ACCEPT};
use support::image::{ImageSpec, Layout};
use support::notary::{NotaryCli, NotaryServer};
use support::registry::Registry;
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

/// The JSON objects trustgate logged; panics on a line that is not one.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {l}"))
        })
        .collect()
}

fn field<'a>(line: &'a Value, name: &str) -> &'a str {
    line[name].as_str().unwrap_or_default()
}

fn span_id(line: &Value) -> Option<&str> {
    line["span"]["id"].as_str()
}

#[test]
fn json_logs_carry_request_ids_and_an_audit_line_per_trust_decision() {
    let t = TestDir::new("ops-logs");
    let reg = Registry::start(&t.sub("registry"));
    let notary = NotaryServer::start(&t.sub("notary"));
    let cli = NotaryCli::new(&notary, &t.sub("notary-cli"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = Layout::image(&t.sub("img"), &ImageSpec::small("logs", 2));
    layout
        .push(&skopeo, &reg.host(), "team/app", "v1", None)
        .assert_success();
    layout
        .push(&skopeo, &reg.host(), "team/app", "unsigned", None)
        .assert_success();
    let gun = format!("{}/team/app", reg.host());
    cli.init_with_server_snapshot(&gun);
    cli.sign_manifest(&gun, "v1", &layout.manifest, &[]);

    let tg = Trustgate::start(
        &t.sub("tg"),
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(&reg).with_notary(&notary)],
            extra_toml: "[log]\nformat = \"json\"\n".into(),
            env: vec![("RUST_LOG".into(), "info".into())],
            ..Default::default()
        },
    );

    // A client-chosen id is kept and returned; without one, trustgate makes one.
    let r = http::request(
        &format!("{}/v2/team/app/manifests/v1", tg.url()),
        &Req {
            accept: Some(MANIFEST_ACCEPT),
            headers: vec![("X-Request-Id", "test-req-42")],
            ..Default::default()
        },
    )
    .expect("manifest request");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-request-id"), Some("test-req-42"));
    let r = http::request(
        &format!("{}/v2/team/app/manifests/unsigned", tg.url()),
        &Req {
            accept: Some(MANIFEST_ACCEPT),
            ..Default::default()
        },
    )
    .expect("manifest request");
    assert_eq!(r.status, 404, "{}", r.text());
    let refused_id = r
        .header("x-request-id")
        .expect("refusals carry a request id too")
        .to_string();
    assert_ne!(refused_id, "test-req-42");

    let out = t.sub("pulled");
    skopeo
        .copy(
            &format!("docker://{}/team/app:v1", tg.host()),
            &format!("dir:{}", out.display()),
            false,
            None,
            None,
        )
        .assert_success();

    let lines = json_lines(&tg.stderr());

    // Every request line names its request, and the id given by the client is the one logged.
    let requests: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "message") == "request")
        .collect();
    assert!(requests.len() >= 5, "{requests:?}");
    for r in &requests {
        assert!(span_id(r).is_some_and(|id| !id.is_empty()), "{r}");
        assert!(field(r, "client").starts_with("127.0.0.1:"), "{r}");
        assert_eq!(field(r, "user"), "-", "{r}");
    }
    assert!(requests
        .iter()
        .any(|r| span_id(r) == Some("test-req-42") && r["status"] == 200));

    let audit: Vec<&Value> = lines
        .iter()
        .filter(|l| field(l, "target") == "trustgate::audit")
        .collect();
    // Each audit line is written inside its request and repeats the id as a field.
    for a in &audit {
        assert_eq!(span_id(a), Some(field(a, "request_id")), "{a}");
        assert!(field(a, "client").starts_with("127.0.0.1:"), "{a}");
        assert_eq!(field(a, "user"), "-", "{a}");
    }
    let signed_image = format!("{gun}:v1");
    let allowed: Vec<&&Value> = audit
        .iter()
        .filter(|a| field(a, "image") == signed_image)
        .collect();
    // The curl-like GET and skopeo's pull: one allow each, nothing else for that tag.
    assert_eq!(allowed.len(), 2, "{allowed:?}");
    for a in &allowed {
        assert_eq!(field(a, "verdict"), "allow", "{a}");
        assert_eq!(field(a, "reason"), "signed", "{a}");
        assert_eq!(field(a, "role"), "targets", "{a}");
        assert_eq!(field(a, "digest"), layout.digest, "{a}");
    }
    assert_eq!(field(allowed[0], "request_id"), "test-req-42");

    let denied: Vec<&&Value> = audit
        .iter()
        .filter(|a| field(a, "image") == format!("{gun}:unsigned"))
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(field(denied[0], "verdict"), "deny");
    assert_eq!(field(denied[0], "reason"), "unsigned_tag");
    assert_eq!(field(denied[0], "request_id"), refused_id);
    assert!(
        field(denied[0], "detail").contains("No valid trust data for unsigned"),
        "{}",
        denied[0]
    );

    // The blobs skopeo fetched by digest were allowed as part of the signed closure.
    let closure: Vec<&&Value> = audit
        .iter()
        .filter(|a| field(a, "reason") == "in_signed_closure")
        .collect();
    assert!(!closure.is_empty(), "{audit:?}");
    for a in &closure {
        assert_eq!(field(a, "verdict"), "allow");
        assert_eq!(field(a, "image"), format!("{gun}@{}", field(a, "digest")));
    }
}

/// Requests sent in the lossless-logging test (two lines each: far more than the writer's queue,
/// so a lossy queue would drop some), and how many are in flight at once.
const LOGGED_REQUESTS: usize = 10_000;
const LOGGING_CONCURRENCY: usize = 64;
/// `[log] queue_lines` in that test: small, so that the queue is full most of the time and still
/// holds lines when SIGTERM comes.
const LOG_QUEUE_LINES: usize = 500;

/// Log lines are written by a thread of their own (issue 16), and none is lost: N refused
/// requests while the log reader is slower than the server (so the queue fills and the server
/// must wait for it), then SIGTERM with lines still queued, leave exactly N request lines and N
/// audit lines, every request id once in each, all written out before the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The slow reader below waits in wall-clock time on purpose: it is what makes the queue fill.
#[allow(clippy::disallowed_methods)]
async fn under_load_every_request_and_audit_line_is_written_before_exit() {
    use std::collections::HashMap;
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use support::fake_notary::{FakeNotary, Files};

    let t = TestDir::new("ops-logs-lossless");
    // No trust data anywhere: every tag is refused, with one audit line each.
    let notary = FakeNotary::start(Files::new());
    let opts = TrustgateOptions {
        upstreams: vec![UpstreamConfig {
            name: "registry.test".into(),
            // Never contacted: under enforce a tag is resolved by the Notary server first.
            url: "http://127.0.0.1:9".into(),
            default: true,
            creds: None,
            ca_file: None,
            notary: None,
            notary_ca_file: None,
        }
        .with_notary_url(&notary.url(), None)],
        extra_toml: format!("[log]\nformat = \"json\"\nqueue_lines = {LOG_QUEUE_LINES}\n"),
        ..Default::default()
    };
    let dir = t.sub("tg");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let (port, admin) = (support::proc::free_port(), support::proc::free_port());
    let mut toml =
        support::trustgate::config_toml(&dir, &format!("127.0.0.1:{port}"), &data, &opts);
    toml.push_str(&format!("\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"));
    let config = dir.join("trustgate.toml");
    std::fs::write(&config, toml).expect("config");

    // stderr is a pipe read slowly: the log writer cannot keep up with the requests.
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn trustgate");
    let mut pipe = child.stderr.take().expect("stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
            // About 0.8 MB/s: slower than the server logs (two lines of ~400 bytes per request).
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert!(
        support::proc::wait_until(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "trustgate did not start listening"
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(LOGGING_CONCURRENCY)
        .build()
        .expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..LOGGING_CONCURRENCY)
        .map(|_| {
            let (client, base, next) = (client.clone(), base.clone(), next.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= LOGGED_REQUESTS {
                        return ids;
                    }
                    let r = client
                        .get(format!("{base}/v2/team/app{}/manifests/v1", i % 50))
                        .send()
                        .await
                        .expect("request");
                    assert_eq!(r.status().as_u16(), 404, "no trust data: refused");
                    let id = r.headers()["x-request-id"]
                        .to_str()
                        .expect("request id")
                        .to_string();
                    ids.push(id);
                }
            })
        })
        .collect();
    let mut sent = Vec::new();
    for w in workers {
        sent.extend(w.await.expect("worker"));
    }
    assert_eq!(sent.len(), LOGGED_REQUESTS);

    // SIGTERM right after the burst, lines still queued: they must all come out.
    support::proc::signal(child.id(), "TERM");
    let (status, log) = tokio::task::spawn_blocking(move || {
        let status = child.wait().expect("wait for trustgate");
        (status, reader.join().expect("reader"))
    })
    .await
    .expect("wait");
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}");

    let lines = json_lines(&String::from_utf8_lossy(&log));
    let mut requests: HashMap<String, usize> = HashMap::new();
    let mut audits: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        let id = span_id(line).unwrap_or_default().to_string();
        match (field(line, "target"), field(line, "message")) {
            ("trustgate::audit", "trust decision") => {
                assert_eq!(field(line, "verdict"), "deny", "{line}");
                assert_eq!(field(line, "reason"), "no_trust_data", "{line}");
                *audits.entry(id).or_default() += 1;
            }
            ("trustgate::api::server", "request") => *requests.entry(id).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(
        requests.values().sum::<usize>(),
        LOGGED_REQUESTS,
        "one request line per request"
    );
    assert_eq!(
        audits.values().sum::<usize>(),
        LOGGED_REQUESTS,
        "one audit line per request"
    );
    for id in &sent {
        assert_eq!(requests.get(id), Some(&1), "request line of {id}");
        assert_eq!(audits.get(id), Some(&1), "audit line of {id}");
    }
    drop(notary);
}
