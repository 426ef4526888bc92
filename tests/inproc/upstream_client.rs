//! Integration tests of `trustgate::upstream` against the in-process fake upstream.

use crate::inproc::fake_upstream;

use fake_upstream::{Auth, Behavior, FakeUpstream};
use futures_util::StreamExt;
use reqwest::Method;
use std::time::Duration;
use trustgate::upstream::{
    RegistryClient, TimeoutPhase, Timeouts, UpstreamError, UpstreamResponse, UpstreamSettings,
};

const MT: &str = "application/vnd.oci.image.manifest.v1+json";
const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const MANIFEST_PATH: &str = "/v2/library/alpine/manifests/latest";

fn settings(fake: &FakeUpstream) -> UpstreamSettings {
    let mut s = UpstreamSettings::new(format!("fake-{}", fake.addr.port()), fake.url());
    s.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(2),
        idle: Duration::from_secs(2),
        ..Timeouts::default()
    };
    s
}

fn client(s: &UpstreamSettings) -> RegistryClient {
    RegistryClient::new(s).expect("client")
}

async fn body(resp: UpstreamResponse) -> Vec<u8> {
    resp.bytes_limited(1 << 20).await.expect("body").to_vec()
}

async fn get_manifest(c: &RegistryClient, repo: &str) -> Result<UpstreamResponse, UpstreamError> {
    c.manifest(repo, "latest", &[MT.to_string()], Method::GET)
        .await
}

fn bearer_fake_with(fake: &FakeUpstream, expires_in: Option<u64>, issued_ago: Option<Duration>) {
    fake.set_auth(Auth::Bearer {
        service: "fake-registry".into(),
        expires_in,
        issued_ago,
        credentials: None,
    });
}

#[tokio::test]
async fn token_flow_then_token_reuse() {
    let fake = FakeUpstream::start().await;
    fake.set_auth(Auth::bearer("fake-registry"));
    fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    fake.add_manifest("library/busybox", "latest", MT, MANIFEST);
    let c = client(&settings(&fake));

    let r = get_manifest(&c, "library/alpine").await.expect("first");
    assert_eq!(r.status(), 200);
    assert_eq!(r.header_str("content-type"), Some(MT));
    assert_eq!(body(r).await, MANIFEST);
    let r = get_manifest(&c, "library/alpine").await.expect("second");
    assert_eq!(body(r).await, MANIFEST);
    assert_eq!(fake.token_requests(), 1, "the token is reused");

    let reqs = fake.requests_to(MANIFEST_PATH);
    assert_eq!(reqs.len(), 3, "401, retry with token, pre-emptive token");
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(reqs[0].header("accept").as_deref(), Some(MT));
    let tok = reqs[1].header("authorization").expect("token sent");
    assert!(tok.starts_with("Bearer fake-token-"));
    assert_eq!(reqs[2].header("authorization"), Some(tok));

    let token_req = &fake.requests_to("/token")[0];
    let q = token_req.query.clone().unwrap_or_default();
    assert!(q.contains("service=fake-registry"), "{q}");
    assert!(
        q.contains("scope=repository%3Alibrary%2Falpine%3Apull"),
        "{q}"
    );
    assert_eq!(token_req.header("authorization"), None, "anonymous token");

    // Another repository needs another scope: one more token, fetched before the request
    // (the upstream is known to use Bearer auth), so no extra 401.
    let r = get_manifest(&c, "library/busybox").await.expect("busybox");
    assert_eq!(body(r).await, MANIFEST);
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.count("/v2/library/busybox/manifests/latest"), 1);
}

#[tokio::test]
async fn token_with_credentials_and_bad_credentials() {
    let fake = FakeUpstream::start().await;
    fake.set_auth(Auth::Bearer {
        service: "svc".into(),
        expires_in: Some(300),
        issued_ago: None,
        credentials: Some(("alice".into(), "s3cret".into())),
    });
    fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    let mut s = settings(&fake);
    s.username = Some("alice".into());
    s.password = Some("s3cret".into());
    let r = get_manifest(&client(&s), "library/alpine")
        .await
        .expect("ok");
    assert_eq!(body(r).await, MANIFEST);
    let tr = &fake.requests_to("/token")[0];
    // base64("alice:s3cret")
    assert_eq!(
        tr.header("authorization").as_deref(),
        Some("Basic YWxpY2U6czNjcmV0")
    );
    // Credentials go to the token service only, never to the registry itself.
    for r in fake.requests_to(MANIFEST_PATH) {
        assert!(!r
            .header("authorization")
            .unwrap_or_default()
            .starts_with("Basic"));
    }

    s.password = Some("wrong".into());
    let err = get_manifest(&client(&s), "library/alpine")
        .await
        .expect_err("refused");
    match &err {
        UpstreamError::Auth { status, reason, .. } => {
            assert_eq!(*status, Some(401));
            assert!(reason.contains("refused the credentials"), "{reason}");
        }
        other => panic!("expected Auth, got {other:?}"),
    }
    assert!(err.to_string().contains(&s.name), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn token_expiry_and_issued_at() {
    let fake = FakeUpstream::start().await;
    // expires_in=2 issued 1.2 s ago: usable for 0.72 s (0.8 s minus the 10 % margin).
    bearer_fake_with(&fake, Some(2), Some(Duration::from_millis(1200)));
    fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    let c = client(&settings(&fake));
    get_manifest(&c, "library/alpine").await.expect("1");
    get_manifest(&c, "library/alpine").await.expect("2");
    assert_eq!(fake.token_requests(), 1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    get_manifest(&c, "library/alpine").await.expect("3");
    assert_eq!(fake.token_requests(), 2, "expired token is replaced");
}

#[tokio::test]
async fn refused_token_is_replaced_once() {
    let fake = FakeUpstream::start().await;
    bearer_fake_with(&fake, Some(300), None);
    fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    let c = client(&settings(&fake));
    get_manifest(&c, "library/alpine").await.expect("1");
    fake.revoke_tokens();
    get_manifest(&c, "library/alpine")
        .await
        .expect("2 after revocation");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch() {
    let fake = FakeUpstream::start().await;
    bearer_fake_with(&fake, Some(300), None);
    fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    let c = client(&settings(&fake));
    let results = futures_util::future::join_all(
        (0..8).map(|_| async { get_manifest(&c, "library/alpine").await.map(|_| ()) }),
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.token_requests(), 1, "single flight");
}

#[tokio::test]
async fn ping_with_bearer_and_open_registry() {
    let fake = FakeUpstream::start().await;
    client(&settings(&fake)).ping().await.expect("open");
    fake.set_auth(Auth::bearer("svc"));
    client(&settings(&fake)).ping().await.expect("bearer");
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn basic_auth_registry() {
    let fake = FakeUpstream::start().await;
    fake.set_auth(Auth::Basic {
        username: "bob".into(),
        password: "pw".into(),
    });
    fake.add_manifest("team/app", "latest", MT, MANIFEST);
    let mut s = settings(&fake);
    s.username = Some("bob".into());
    s.password = Some("pw".into());
    let c = client(&s);
    get_manifest(&c, "team/app").await.expect("1");
    get_manifest(&c, "team/app").await.expect("2");
    let reqs = fake.requests_to("/v2/team/app/manifests/latest");
    assert_eq!(reqs.len(), 3, "401, retry, then pre-emptive Basic");
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(
        reqs[1].header("authorization").as_deref(),
        Some("Basic Ym9iOnB3")
    );
    assert_eq!(
        reqs[2].header("authorization").as_deref(),
        Some("Basic Ym9iOnB3")
    );
    assert_eq!(fake.token_requests(), 0);

    // Anonymous against a Basic registry: the upstream's 401 and codes come through.
    let err = get_manifest(&client(&settings(&fake)), "team/app")
        .await
        .expect_err("401");
    assert_eq!(err.upstream_status(), Some(401));
    assert_eq!(err.upstream_errors()[0].code, "UNAUTHORIZED");
    assert_eq!(err.http_status_for_client(), 403);

    // Wrong password: one retry, then the 401.
    s.password = Some("nope".into());
    let before = fake.count("/v2/team/app/manifests/latest");
    let err = get_manifest(&client(&s), "team/app")
        .await
        .expect_err("401");
    assert_eq!(err.upstream_status(), Some(401));
    assert_eq!(fake.count("/v2/team/app/manifests/latest") - before, 2);
}

#[tokio::test]
async fn blob_redirect_to_another_host_drops_authorization() {
    let registry = FakeUpstream::start().await;
    let cdn = FakeUpstream::start().await;
    registry.set_auth(Auth::bearer("svc"));
    let blob: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let d = cdn.add_blob(&blob);
    registry.redirect_blobs_to(Some(cdn.base()));
    let c = client(&settings(&registry));

    let r = c
        .blob("library/alpine", &d, None, Method::GET)
        .await
        .expect("blob");
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().port(), Some(cdn.addr.port()));
    assert_eq!(body(r).await, blob);

    let reg = registry.requests_to(&format!("/v2/library/alpine/blobs/{d}"));
    assert!(reg.last().and_then(|r| r.header("authorization")).is_some());
    let cdn_reqs = cdn.requests();
    assert_eq!(cdn_reqs.len(), 1);
    assert_eq!(cdn_reqs[0].path, format!("/cdn/{d}"));
    assert_eq!(cdn_reqs[0].query.as_deref(), Some("sig=fake"));
    assert_eq!(
        cdn_reqs[0].header("authorization"),
        None,
        "no token to the CDN"
    );

    // Range through the redirect: passed on, 206 + Content-Range preserved.
    let r = c
        .blob("library/alpine", &d, Some("bytes=100-199"), Method::GET)
        .await
        .expect("range");
    assert_eq!(r.status(), 206);
    assert_eq!(r.header_str("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(body(r).await, &blob[100..200]);
    assert_eq!(
        cdn.requests()[1].header("range").as_deref(),
        Some("bytes=100-199")
    );
}

#[tokio::test]
async fn same_origin_redirect_keeps_authorization() {
    let registry = FakeUpstream::start().await;
    registry.set_auth(Auth::bearer("svc"));
    let d = registry.add_blob(b"hello");
    registry.redirect_blobs_to(Some(registry.base()));
    let c = client(&settings(&registry));
    let r = c
        .blob("library/alpine", &d, None, Method::GET)
        .await
        .expect("blob");
    assert_eq!(body(r).await, b"hello");
    let cdn = registry.requests_to(&format!("/cdn/{d}"));
    assert!(cdn[0]
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));
}

#[tokio::test]
async fn range_request_direct_and_unsatisfiable() {
    let fake = FakeUpstream::start().await;
    let d = fake.add_blob(b"0123456789");
    let c = client(&settings(&fake));
    let r = c
        .blob("a/b", &d, Some("bytes=4-"), Method::GET)
        .await
        .expect("206");
    assert_eq!(r.status(), 206);
    assert_eq!(r.header_str("content-range"), Some("bytes 4-9/10"));
    assert_eq!(r.content_length(), Some(6));
    assert_eq!(body(r).await, b"456789");

    let err = c
        .blob("a/b", &d, Some("bytes=50-"), Method::GET)
        .await
        .expect_err("416");
    assert_eq!(err.upstream_status(), Some(416));
    assert_eq!(err.http_status_for_client(), 416);

    let r = c.blob("a/b", &d, None, Method::HEAD).await.expect("head");
    assert_eq!(r.content_length(), Some(10));
    let chunks: Vec<_> = r.into_stream().collect().await;
    assert!(
        chunks.iter().all(Result::is_ok)
            && chunks
                .iter()
                .all(|c| c.as_ref().is_ok_and(|b| b.is_empty()))
    );
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let fake = FakeUpstream::start().await;
    fake.script(
        MANIFEST_PATH,
        Behavior::Status {
            status: 429,
            headers: vec![
                ("Retry-After".into(), "7".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#.to_vec(),
        },
    );
    let c = client(&settings(&fake));
    let err = get_manifest(&c, "library/alpine").await.expect_err("429");
    assert_eq!(err.upstream_status(), Some(429));
    assert_eq!(err.retry_after(), Some("7"));
    assert_eq!(err.http_status_for_client(), 429);
    assert_eq!(err.upstream_errors()[0].code, "TOOMANYREQUESTS");
    assert!(err.is_retryable() && !err.is_unreachable());
    assert!(err.to_string().contains("pull rate limit"), "{err}");
}

#[tokio::test]
async fn upstream_errors_pass_through() {
    let fake = FakeUpstream::start().await;
    let c = client(&settings(&fake));
    let err = get_manifest(&c, "library/alpine").await.expect_err("404");
    assert_eq!(err.upstream_status(), Some(404));
    assert_eq!(err.upstream_errors()[0].code, "MANIFEST_UNKNOWN");
    assert_eq!(err.upstream_errors()[0].message, "manifest unknown: latest");
    assert_eq!(err.http_status_for_client(), 404);
    assert!(!err.is_unreachable());

    fake.script(
        MANIFEST_PATH,
        Behavior::Status {
            status: 500,
            headers: vec![],
            body: b"<html>oops</html>".to_vec(),
        },
    );
    let err = get_manifest(&c, "library/alpine").await.expect_err("500");
    assert!(err.is_unreachable() && err.is_retryable());
    assert_eq!(err.http_status_for_client(), 502);
    assert!(err.to_string().contains("<html>oops</html>"), "{err}");
}

#[tokio::test]
async fn disconnect_in_the_middle_of_a_blob_is_an_error() {
    let fake = FakeUpstream::start().await;
    let blob = vec![7u8; 64 * 1024];
    let d = fake.add_blob(&blob);
    let path = format!("/v2/library/alpine/blobs/{d}");
    fake.script(
        &path,
        Behavior::Truncate {
            after: blob.len() / 2,
        },
    );
    let c = client(&settings(&fake));
    let r = c
        .blob("library/alpine", &d, None, Method::GET)
        .await
        .expect("headers arrive");
    assert_eq!(r.content_length(), Some(blob.len() as u64));
    let mut got = 0usize;
    let mut last_err = None;
    let mut s = r.into_stream();
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => got += b.len(),
            Err(e) => {
                last_err = Some(e);
                break;
            }
        }
    }
    assert!(got < blob.len());
    let e = last_err.expect("the stream must end with an error, not a clean EOF");
    assert!(matches!(e, UpstreamError::BodyInterrupted { .. }), "{e:?}");
    assert!(e.is_retryable());

    let r = c
        .blob("library/alpine", &d, None, Method::GET)
        .await
        .expect("headers");
    assert!(r.bytes_limited(1 << 20).await.is_err());
}

#[tokio::test]
async fn body_limit_refuses_before_reading() {
    let fake = FakeUpstream::start().await;
    let d = fake.add_blob(&[1u8; 1000]);
    let c = client(&settings(&fake));
    let r = c.blob("a/b", &d, None, Method::GET).await.expect("ok");
    let e = r.bytes_limited(999).await.expect_err("too large");
    assert!(
        matches!(e, UpstreamError::TooLarge { limit: 999, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn unreachable_upstream_is_named() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    let mut s = UpstreamSettings::new("docker.io", format!("http://{addr}").parse().expect("url"));
    s.timeouts.connect = Duration::from_secs(1);
    let err = client(&s).ping().await.expect_err("refused");
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    assert!(err.is_unreachable() && err.is_retryable());
    assert_eq!(err.http_status_for_client(), 502);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "upstream docker.io (http://{addr}) is unreachable: "
        )),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
}

#[tokio::test]
async fn slow_upstream_times_out() {
    let fake = FakeUpstream::start().await;
    fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    let mut s = settings(&fake);
    s.timeouts.first_byte = Duration::from_millis(100);
    s.timeouts.idle = Duration::from_millis(100);
    let c = client(&s);
    fake.script(MANIFEST_PATH, Behavior::Delay(Duration::from_millis(600)));
    let err = get_manifest(&c, "library/alpine")
        .await
        .expect_err("timeout");
    assert!(
        matches!(
            err,
            UpstreamError::Timeout {
                phase: TimeoutPhase::FirstByte,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.http_status_for_client(), 504);
    assert!(err.is_unreachable());

    // Headers in time, then the body stalls longer than the idle timeout.
    let d = fake.add_blob(&[3u8; 4096]);
    fake.script(
        &format!("/v2/library/alpine/blobs/{d}"),
        Behavior::Stall {
            after: 1024,
            stall: Duration::from_millis(600),
        },
    );
    let r = c
        .blob("library/alpine", &d, None, Method::GET)
        .await
        .expect("headers");
    let items: Vec<_> = r.into_stream().collect().await;
    let last = items.last().expect("items");
    assert!(
        matches!(
            last,
            Err(UpstreamError::Timeout {
                phase: TimeoutPhase::Idle,
                ..
            })
        ),
        "{last:?}"
    );
}

#[tokio::test]
async fn redirect_loops_are_cut() {
    let fake = FakeUpstream::start().await;
    fake.script(
        MANIFEST_PATH,
        Behavior::Redirect {
            status: 302,
            location: MANIFEST_PATH.into(),
        },
    );
    let err = get_manifest(&client(&settings(&fake)), "library/alpine")
        .await
        .expect_err("loop");
    assert!(matches!(err, UpstreamError::Protocol { .. }), "{err:?}");
    assert_eq!(fake.count(MANIFEST_PATH), 11);
}

#[tokio::test]
async fn manifest_head_and_default_accept() {
    let fake = FakeUpstream::start().await;
    let d = fake.add_manifest("library/alpine", "latest", MT, MANIFEST);
    let c = client(&settings(&fake));
    let r = c
        .manifest("library/alpine", "latest", &[], Method::HEAD)
        .await
        .expect("head");
    assert_eq!(r.header_str("docker-content-digest"), Some(d.as_str()));
    assert_eq!(r.content_length(), Some(MANIFEST.len() as u64));
    assert_eq!(body(r).await, b"");
    let req = &fake.requests_to(MANIFEST_PATH)[0];
    assert_eq!(req.method, Method::HEAD);
    let accepts: Vec<_> = req
        .headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(accepts.len(), 4);
    assert!(accepts.contains(&"application/vnd.docker.distribution.manifest.list.v2+json"));
    let r = c
        .manifest("library/alpine", &d, &[], Method::GET)
        .await
        .expect("by digest");
    assert_eq!(body(r).await, MANIFEST);
}

#[tokio::test]
async fn tags_pagination_passes_query_and_link() {
    let fake = FakeUpstream::start().await;
    fake.set_tags("library/alpine", &["3.18", "3.19", "3.20", "latest"]);
    let c = client(&settings(&fake));
    let r = c
        .tags("library/alpine", Some(2), Some("3.18"))
        .await
        .expect("tags");
    assert_eq!(
        r.header_str("link"),
        Some("</v2/library/alpine/tags/list?last=3.20&n=2>; rel=\"next\"")
    );
    let v: serde_json::Value = serde_json::from_slice(&body(r).await).expect("json");
    assert_eq!(v["tags"], serde_json::json!(["3.19", "3.20"]));
    let q = fake.requests_to("/v2/library/alpine/tags/list")[0]
        .query
        .clone();
    assert_eq!(q.as_deref(), Some("n=2&last=3.18"));
}

#[test]
fn bad_ca_pem_is_a_config_error() {
    let fake_url: url::Url = "https://registry.example".parse().expect("url");
    let mut s = UpstreamSettings::new("example", fake_url);
    s.ca_pem = Some(b"not a pem".to_vec());
    let err = RegistryClient::new(&s).expect_err("bad pem");
    assert!(matches!(err, UpstreamError::Config { .. }), "{err:?}");
    assert!(err.to_string().contains("ca_pem"));
}

/// A self-signed test CA (openssl req -x509 -newkey ec … -subj /CN=trustgate-test-ca); no key
/// is kept: it only checks that a valid bundle is accepted.
const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjzCCATWgAwIBAgIUT74vXeMveGicEx2ZJoqKwnqb40QwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRdHJ1c3RnYXRlLXRlc3QtY2EwIBcNMjYxMTI4MjIwNDEwWhgP
MjEyNjExMDQyMjA0MTBaMBwxGjAYBgNVBAMMEXRydXN0Z2F0ZS10ZXN0LWNhMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEYyZN4RGFEsHZGeGGP6uDuNYw0BTAmvq
pwUBXIEWt4fujGVFyE07Sr70uel9rvJTEn4U2YCoWILnVNFbgaB+R6NTMFEwHQYD
VR0OBBYEFDef2DvVDjWA1suoZmXhpRxjeMtPMB8GA1UdIwQYMBaAFDef2DvVDjWA
1suoZmXhpRxjeMtPMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIg
eqPgg/8xm1/HKdFArn8dtstLftlL5kwP2ROnchJPMO0CIQCcuujt2yYHzsqn03QU
A0ZDG+zo6SqEfbSFRSq3cnVZ/Q==
-----END CERTIFICATE-----
";

#[test]
fn valid_ca_pem_is_accepted() {
    let mut s = UpstreamSettings::new("example", "https://registry.example".parse().expect("url"));
    s.ca_pem = Some(TEST_CA.as_bytes().to_vec());
    RegistryClient::new(&s).expect("extra root accepted");
    s.ca_pem = Some(format!("{TEST_CA}{TEST_CA}").into_bytes());
    RegistryClient::new(&s).expect("bundle of two accepted");
    // The password never shows in Debug output.
    s.password = Some("hunter2".into());
    s.username = Some("u".into());
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[tokio::test]
async fn no_credentials_for_urls_outside_the_upstream() {
    let registry = FakeUpstream::start().await;
    let other = FakeUpstream::start().await;
    registry.set_auth(Auth::Basic {
        username: "bob".into(),
        password: "pw".into(),
    });
    let d = other.add_blob(b"foreign layer");
    let mut s = settings(&registry);
    s.username = Some("bob".into());
    s.password = Some("pw".into());
    let c = client(&s);
    c.ping().await.expect("ping learns Basic");
    let url = other.url().join(&format!("cdn/{d}")).expect("url");
    let r = c
        .auth_client()
        .send(
            Method::GET,
            url,
            Default::default(),
            Some("repository:x:pull"),
        )
        .await
        .expect("foreign");
    assert_eq!(body(r).await, b"foreign layer");
    assert_eq!(other.requests()[0].header("authorization"), None);
}
