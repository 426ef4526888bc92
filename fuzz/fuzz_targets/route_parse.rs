//! Fuzz the request router and the reference parsers (network input: every request path and
//! query reaches them before anything else): `/v2/` routing over a fixed set of upstreams
//! (one of them Docker Hub, whose `library/` rule rewrites names), repository names, tags,
//! digests and manifest references, and the `Range` header against a few object sizes. None
//! may panic.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use trustgate::api::route::Router;
use trustgate::range::parse_range;
use trustgate::reference::{Digest, ManifestRef, RepoName, Tag};

const METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::POST, Method::DELETE];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let router = Router::new(
        &[
            ("docker.io".to_string(), true),
            ("registry.local:5000".to_string(), false),
            ("ghcr.io".to_string(), false),
        ],
        (first & 0x80 != 0).then_some(0),
    );
    // The query, when the input has one, goes as the router receives it.
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text.as_ref(), None),
    };
    let method = &METHODS[usize::from(first) % METHODS.len()];
    let _ = router.route(method, path, query);
    let _ = router.route(method, &format!("/v2/{path}"), query);
    let _ = RepoName::parse(&text).map(|r| (r.components(), r.with_library_prefix()));
    let _ = Tag::parse(&text);
    let _ = Digest::parse(&text);
    let _ = ManifestRef::parse(&text);
    for total in [0, 1, u64::from(first), u64::MAX] {
        let _ = parse_range(Some(&text), total);
    }
});
