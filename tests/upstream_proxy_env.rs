//! `HTTP_PROXY` / `HTTPS_PROXY` / `NO_PROXY` are honoured (read when the client is built).
//! A separate test binary with a single test, because it changes the process environment.

#[path = "support/inproc/fake_upstream.rs"]
mod fake_upstream;

use fake_upstream::FakeUpstream;
use reqwest::Method;
use trustgate::upstream::{RegistryClient, UpstreamError, UpstreamSettings};

#[tokio::test]
async fn proxy_environment_variables_are_honoured() {
    let proxy = FakeUpstream::start().await;
    let direct = FakeUpstream::start().await;
    for v in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        std::env::remove_var(v);
    }
    std::env::set_var("HTTP_PROXY", proxy.base());
    std::env::set_var("HTTPS_PROXY", proxy.base());
    std::env::set_var("NO_PROXY", "localhost,127.0.0.1");

    // http:// upstream through HTTP_PROXY: the proxy sees an absolute-form request.
    let s = UpstreamSettings::new(
        "registry.invalid",
        "http://registry.invalid/".parse().unwrap(),
    );
    RegistryClient::new(&s)
        .unwrap()
        .ping()
        .await
        .expect("ping through the proxy");
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "http://registry.invalid/v2/");

    // https:// upstream through HTTPS_PROXY: a CONNECT tunnel is asked for (the fake refuses it,
    // which surfaces as an unreachable upstream).
    let s = UpstreamSettings::new("secure.invalid", "https://secure.invalid/".parse().unwrap());
    let err = RegistryClient::new(&s)
        .unwrap()
        .ping()
        .await
        .expect_err("tunnel refused");
    assert!(matches!(err, UpstreamError::Unreachable { .. }), "{err:?}");
    let seen = proxy.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].method, Method::CONNECT);
    assert_eq!(seen[1].uri, "secure.invalid:443");

    // NO_PROXY: straight to the upstream.
    let s = UpstreamSettings::new("direct", direct.url());
    RegistryClient::new(&s)
        .unwrap()
        .ping()
        .await
        .expect("direct");
    assert_eq!(direct.count("/v2/"), 1);
    assert_eq!(proxy.requests().len(), 2);
}
