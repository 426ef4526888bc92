//! From a request line to a validated [`Route`]: which upstream, which repository, which endpoint.
//!
//! Pure: no I/O. Everything below this point receives typed values and never re-parses a path.
//! Repository names contain slashes, so the endpoint is found by the *last* `/manifests/`,
//! `/blobs/` or `/tags/list` segment, as distribution's router does.

use http::Method;

use super::error::{ApiError, ErrorCode};
use crate::reference::{Digest, ManifestRef, ReferenceError, RepoName};

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Manifest(ManifestRef),
    Blob(Digest),
    Tags {
        n: Option<usize>,
        last: Option<String>,
    },
    /// `GET /v2/<name>/referrers/<digest>[?artifactType=]` (OCI distribution-spec 1.1).
    Referrers {
        digest: Digest,
        artifact_type: Option<String>,
    },
}

/// A configured upstream, by its position in the `[[upstream]]` list: issued by the [`Router`],
/// resolved to the proxy's `Upstream` (client, Notary client, offline flag) in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamId(usize);

impl UpstreamId {
    /// The id of the `index`-th configured upstream.
    pub fn new(index: usize) -> Self {
        Self(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// A validated request for repository content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which configured upstream serves it.
    pub upstream: UpstreamId,
    /// The repository as the upstream names it (`library/alpine` on Docker Hub).
    pub repository: RepoName,
    /// The name as it appeared in the client's path, used to build `Link` headers.
    pub client_name: String,
    /// The `ns=` query parameter the client used, kept for `Link` headers.
    pub ns: Option<String>,
    pub endpoint: Endpoint,
}

/// The outcome of routing one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// `GET /v2/`.
    Ping,
    Content(Route),
}

/// What the router knows of one upstream.
#[derive(Debug, Clone)]
struct Known {
    name: String,
    /// Whether Docker Hub's `library/` rule applies.
    docker_hub: bool,
}

/// The upstream names the router knows, and which one takes bare names.
#[derive(Debug, Clone)]
pub struct Router {
    /// In configuration order: the position is the [`UpstreamId`].
    upstreams: Vec<Known>,
    default: Option<UpstreamId>,
}

impl Router {
    /// `upstreams`: (name, Docker Hub's `library/` rule applies) in configuration order.
    pub fn new(upstreams: &[(String, bool)], default: Option<usize>) -> Self {
        Self {
            upstreams: upstreams
                .iter()
                .map(|(name, docker_hub)| Known {
                    name: name.clone(),
                    docker_hub: *docker_hub,
                })
                .collect(),
            default: default.map(UpstreamId),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.upstreams.iter().map(|u| u.name.as_str()).collect()
    }

    pub fn from_config(config: &crate::config::Config) -> Self {
        let ups: Vec<(String, bool)> = config
            .upstreams
            .iter()
            .map(|u| (u.name.clone(), u.is_docker_hub()))
            .collect();
        Self::new(&ups, config.upstreams.iter().position(|u| u.default))
    }

    fn find(&self, name: &str) -> Option<UpstreamId> {
        // `index.docker.io` is Docker Hub's old name; clients still send it.
        let name = if name == "index.docker.io" {
            "docker.io"
        } else {
            name
        };
        self.upstreams
            .iter()
            .position(|u| u.name == name)
            .map(UpstreamId)
    }

    fn unknown_upstream(&self, name: &str) -> ApiError {
        let configured = if self.upstreams.is_empty() {
            "none".to_string()
        } else {
            self.names().join(", ")
        };
        ApiError::new(
            ErrorCode::NameUnknown,
            format!("unknown upstream registry {name:?}; configured upstreams: {configured}"),
        )
        .with_detail(serde_json::json!({ "upstream": name, "configured": self.names() }))
    }

    /// Routes one request. `query` is the raw query string, if any.
    pub fn route(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<Routed, ApiError> {
        let Some(rest) = path.strip_prefix("/v2") else {
            return Err(not_found(path));
        };
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                format!(
                    "{method} is not supported: trustgate is a read-only pull-through registry"
                ),
            )
            .with_header(http::header::ALLOW, "GET, HEAD"));
        }
        if rest.is_empty() || rest == "/" {
            return Ok(Routed::Ping);
        }
        let Some(rest) = rest.strip_prefix('/') else {
            return Err(not_found(path));
        };
        let params = QueryParams::parse(query);

        let (name, endpoint) = split_endpoint(rest).ok_or_else(|| not_found(path))?;
        let endpoint = match endpoint {
            RawEndpoint::Manifest(r) => {
                Endpoint::Manifest(ManifestRef::parse(r).map_err(reference_error)?)
            }
            RawEndpoint::Blob(d) => Endpoint::Blob(Digest::parse(d).map_err(reference_error)?),
            RawEndpoint::Tags => Endpoint::Tags {
                n: params.n()?,
                last: params.last.clone(),
            },
            RawEndpoint::Referrers(d) => Endpoint::Referrers {
                digest: Digest::parse(d).map_err(reference_error)?,
                artifact_type: params.artifact_type.clone(),
            },
        };

        let (upstream, repo_part) = self.pick_upstream(name, params.ns.as_deref())?;
        let repo = RepoName::parse(repo_part).map_err(reference_error)?;
        let repository = if self.upstreams[upstream.0].docker_hub {
            repo.with_library_prefix()
        } else {
            repo
        };
        Ok(Routed::Content(Route {
            upstream,
            repository,
            client_name: name.to_string(),
            ns: params.ns.clone(),
            endpoint,
        }))
    }

    /// `?ns=` (containerd) wins; then a leading path component naming an upstream (podman,
    /// explicit pulls); then the default upstream. A leading component that looks like a host
    /// (has a `.` or `:`, or is `localhost`: Docker's own rule for telling hosts from
    /// namespaces) but is not configured is an unknown upstream, not a repository.
    fn pick_upstream<'a>(
        &self,
        name: &'a str,
        ns: Option<&str>,
    ) -> Result<(UpstreamId, &'a str), ApiError> {
        if let Some(ns) = ns {
            let i = self.find(ns).ok_or_else(|| self.unknown_upstream(ns))?;
            return Ok((i, name));
        }
        if let Some((first, rest)) = name.split_once('/') {
            if let Some(i) = self.find(first) {
                return Ok((i, rest));
            }
            if looks_like_host(first) {
                return Err(self.unknown_upstream(first));
            }
        }
        match self.default {
            Some(i) => Ok((i, name)),
            None => Err(ApiError::new(
                ErrorCode::NameUnknown,
                format!(
                    "no default upstream is configured; name one in the path (<upstream>/{name}); configured upstreams: {}",
                    if self.upstreams.is_empty() { "none".to_string() } else { self.names().join(", ") }
                ),
            )),
        }
    }
}

/// Docker's rule for telling a registry host from a namespace: a `.` or `:` in the first
/// component, or `localhost`. Components that could not be a host (`..`) are left to the name
/// grammar, which refuses them.
fn looks_like_host(first: &str) -> bool {
    let (host, port) = first.split_once(':').unwrap_or((first, ""));
    let labels_ok = host
        .split('.')
        .all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    let port_ok = port.bytes().all(|c| c.is_ascii_digit());
    (first.contains(['.', ':']) || first == "localhost") && labels_ok && port_ok
}

enum RawEndpoint<'a> {
    Manifest(&'a str),
    Blob(&'a str),
    Tags,
    Referrers(&'a str),
}

fn split_endpoint(rest: &str) -> Option<(&str, RawEndpoint<'_>)> {
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some((name, RawEndpoint::Tags));
    }
    // A digest holds no `/`, so the last `/referrers/` is the endpoint's.
    if let Some(i) = rest.rfind("/referrers/") {
        let d = &rest[i + "/referrers/".len()..];
        if !d.contains('/') && rest.rfind("/manifests/").is_none_or(|m| m < i) {
            return Some((&rest[..i], RawEndpoint::Referrers(d)));
        }
    }
    let m = rest.rfind("/manifests/");
    let b = rest.rfind("/blobs/");
    match (m, b) {
        (Some(m), b) if b.is_none_or(|b| m > b) => {
            let r = &rest[m + "/manifests/".len()..];
            Some((&rest[..m], RawEndpoint::Manifest(r)))
        }
        (_, Some(b)) => {
            let d = &rest[b + "/blobs/".len()..];
            Some((&rest[..b], RawEndpoint::Blob(d)))
        }
        _ => None,
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        format!("no such endpoint: {path} (trustgate serves the pull side of the Registry v2 API)"),
    )
    .with_status(http::StatusCode::NOT_FOUND)
}

fn reference_error(e: ReferenceError) -> ApiError {
    let code = match e {
        ReferenceError::NameInvalid(_) | ReferenceError::NameTooLong { .. } => {
            ErrorCode::NameInvalid
        }
        ReferenceError::TagInvalid(_) => ErrorCode::ManifestInvalid,
        ReferenceError::DigestAlgorithm(_) | ReferenceError::DigestInvalid(_) => {
            ErrorCode::DigestInvalid
        }
    };
    ApiError::new(code, e.to_string())
}

#[derive(Debug, Default)]
struct QueryParams {
    ns: Option<String>,
    n: Option<String>,
    last: Option<String>,
    artifact_type: Option<String>,
}

impl QueryParams {
    fn parse(query: Option<&str>) -> Self {
        let mut out = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "ns" => out.ns = Some(v.into_owned()),
                "n" => out.n = Some(v.into_owned()),
                "last" => out.last = Some(v.into_owned()),
                "artifactType" => out.artifact_type = Some(v.into_owned()),
                _ => {}
            }
        }
        out
    }

    fn n(&self) -> Result<Option<usize>, ApiError> {
        self.n
            .as_deref()
            .map(|s| {
                s.parse::<usize>().map_err(|_| {
                    ApiError::new(
                        ErrorCode::Unsupported,
                        format!("query parameter n={s:?} is not a non-negative integer"),
                    )
                    .with_status(http::StatusCode::BAD_REQUEST)
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn router() -> Router {
        Router::new(
            &[
                ("docker.io".into(), true),
                ("ghcr.io".into(), false),
                ("127.0.0.1:5101".into(), false),
            ],
            Some(0),
        )
    }

    fn get(path: &str, query: Option<&str>) -> Result<Routed, ApiError> {
        router().route(&Method::GET, path, query)
    }

    fn content(path: &str, query: Option<&str>) -> Route {
        match get(path, query) {
            Ok(Routed::Content(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn code(path: &str) -> (u16, String) {
        let e = get(path, None).unwrap_err();
        (e.status.as_u16(), e.code)
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn ping() {
        assert_eq!(get("/v2/", None).unwrap(), Routed::Ping);
        assert_eq!(get("/v2", None).unwrap(), Routed::Ping);
    }

    #[test]
    fn bare_names_go_to_the_default_upstream_with_docker_hubs_library_rule() {
        let r = content("/v2/alpine/manifests/latest", None);
        assert_eq!(r.upstream.index(), 0);
        assert_eq!(r.repository.as_str(), "library/alpine");
        assert_eq!(r.client_name, "alpine");
        let r = content("/v2/user/app/manifests/latest", None);
        assert_eq!(r.repository.as_str(), "user/app");
    }

    #[test]
    fn a_leading_upstream_name_selects_it() {
        let r = content(&format!("/v2/ghcr.io/owner/repo/blobs/{D}"), None);
        assert_eq!(r.upstream.index(), 1);
        assert_eq!(r.repository.as_str(), "owner/repo");
        assert_eq!(r.endpoint, Endpoint::Blob(Digest::parse(D).unwrap()));
        let r = content("/v2/127.0.0.1:5101/team/app/tags/list", Some("n=2&last=b"));
        assert_eq!(r.upstream.index(), 2);
        assert_eq!(
            r.endpoint,
            Endpoint::Tags {
                n: Some(2),
                last: Some("b".into())
            }
        );
        // Single-component names under a non-Hub upstream get no library/ prefix.
        let r = content("/v2/ghcr.io/app/manifests/v1", None);
        assert_eq!(r.repository.as_str(), "app");
    }

    #[test]
    fn ns_parameter_selects_the_upstream() {
        let r = content("/v2/library/alpine/manifests/latest", Some("ns=docker.io"));
        assert_eq!(
            (r.upstream.index(), r.repository.as_str()),
            (0, "library/alpine")
        );
        let r = content("/v2/owner/repo/manifests/latest", Some("ns=ghcr.io"));
        assert_eq!(
            (r.upstream.index(), r.repository.as_str()),
            (1, "owner/repo")
        );
    }

    #[test]
    fn unknown_upstreams_list_the_configured_names() {
        for (path, q) in [
            ("/v2/quay.io/a/b/manifests/x", None),
            ("/v2/a/b/manifests/x", Some("ns=quay.io")),
        ] {
            let e = get(path, q).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code.as_str()), (404, "NAME_UNKNOWN"));
            assert!(
                e.message.contains("docker.io, ghcr.io, 127.0.0.1:5101"),
                "{}",
                e.message
            );
            assert!(e.message.contains("quay.io"));
        }
        let no_default = Router::new(&[("ghcr.io".into(), false)], None);
        let e = no_default
            .route(&Method::GET, "/v2/a/manifests/x", None)
            .unwrap_err();
        assert_eq!(e.code, "NAME_UNKNOWN");
    }

    #[test]
    fn the_last_endpoint_segment_wins() {
        let r = content("/v2/a/blobs/b/manifests/v1", None);
        assert_eq!(r.repository.as_str(), "a/blobs/b");
        let r = content(&format!("/v2/a/manifests/b/blobs/{D}"), None);
        assert_eq!(r.repository.as_str(), "a/manifests/b");
    }

    #[test]
    fn bad_names_and_references_are_refused_before_anything_else() {
        assert_eq!(
            code("/v2/../etc/manifests/latest"),
            (400, "NAME_INVALID".into())
        );
        assert_eq!(
            code("/v2/Alpine/manifests/latest"),
            (400, "NAME_INVALID".into())
        );
        let long = "a".repeat(300);
        assert_eq!(
            code(&format!("/v2/{long}/manifests/x")),
            (400, "NAME_INVALID".into())
        );
        assert_eq!(
            code("/v2/a/manifests/.bad"),
            (400, "MANIFEST_INVALID".into())
        );
        assert_eq!(
            code("/v2/a/manifests/md5:abc"),
            (400, "DIGEST_INVALID".into())
        );
        assert_eq!(
            code("/v2/a/blobs/sha256:XYZ"),
            (400, "DIGEST_INVALID".into())
        );
        assert_eq!(code("/v2/a/blobs/latest"), (400, "DIGEST_INVALID".into()));
        assert_eq!(
            code("/v2/a/blobs/sha512:ab"),
            (400, "DIGEST_INVALID".into())
        );
        assert_eq!(code("/v2/a/tags/list?n=x").0, 404); // query is not part of the path here
        let e = router()
            .route(&Method::GET, "/v2/a/tags/list", Some("n=-1"))
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
    }

    #[test]
    fn unknown_paths_are_404() {
        assert_eq!(code("/v2/_catalog").0, 404);
        assert_eq!(code("/v3/").0, 404);
        assert_eq!(
            code("/v2/a/referrers/x").0,
            400,
            "a referrers request needs a digest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = router()
            .route(
                &Method::GET,
                &format!("/v2/team/app/referrers/{d}"),
                Some("artifactType=application%2Fx"),
            )
            .unwrap();
        let Routed::Content(r) = r else { panic!() };
        assert_eq!(r.repository.as_str(), "team/app");
        assert_eq!(
            r.endpoint,
            Endpoint::Referrers {
                digest: Digest::parse(&d).unwrap(),
                artifact_type: Some("application/x".into())
            }
        );
        assert_eq!(code("/").0, 404);
    }

    #[test]
    fn writes_are_unsupported() {
        for m in [Method::PUT, Method::POST, Method::PATCH, Method::DELETE] {
            let e = router()
                .route(&m, "/v2/a/manifests/latest", None)
                .unwrap_err();
            assert_eq!((e.status.as_u16(), e.code.as_str()), (405, "UNSUPPORTED"));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_paths_never_panic(path in "/v2/[ -~]{0,200}", q in proptest::option::of("[ -~]{0,50}")) {
            let _ = get(&path, q.as_deref());
        }

        #[test]
        fn routed_repositories_are_always_valid_names(path in "/v2/[a-zA-Z0-9._/:-]{1,60}/manifests/[a-z0-9]{1,10}") {
            if let Ok(Routed::Content(r)) = get(&path, None) {
                prop_assert!(RepoName::parse(r.repository.as_str()).is_ok());
            }
        }
    }
}
