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
