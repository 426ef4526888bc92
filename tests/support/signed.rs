//! A registry and a notary-server with one signing client (the real `notary` CLI), for tests of
//! signed pulls: push images, sign tags exactly as `DOCKER_CONTENT_TRUST=1 docker push` does
//! (GUN = `<registry host:port>/<repository>`), and start trustgate in front of both.

use std::path::PathBuf;

use super::image::{ImageSpec, Layout};
use super::notary::{NotaryCli, NotaryServer};
use super::registry::Registry;
use super::skopeo::Skopeo;
use super::trustgate::{PolicySpec, Trustgate, TrustgateOptions, UpstreamConfig};
use super::{timed, TestDir};

/// A registry and a notary-server with one signing client; trustgate is started by each test.
pub struct SignedEnv {
    // Field order is drop order: servers before the folder.
    pub reg: Registry,
    pub notary: NotaryServer,
    pub cli: NotaryCli,
    pub skopeo: Skopeo,
    pub t: TestDir,
}

impl SignedEnv {
    pub fn new(name: &str) -> SignedEnv {
        Self::with_notary(name, NotaryServer::start)
    }

    /// As [`SignedEnv::new`] with a Notary server that survives a restart (PostgreSQL and
    /// notary-signer; see [`NotaryServer::start_durable`]).
    pub fn durable(name: &str) -> SignedEnv {
        Self::with_notary(name, NotaryServer::start_durable)
    }

    fn with_notary(name: &str, start: fn(&std::path::Path) -> NotaryServer) -> SignedEnv {
        let t = TestDir::new(name);
        let reg = Registry::start(&t.sub("registry"));
        let notary = timed("notary-server start", || start(&t.sub("notary")));
        let cli = NotaryCli::new(&notary, &t.sub("notary-cli"));
        let skopeo = Skopeo::new(&t.sub("skopeo"));
        SignedEnv {
            reg,
            notary,
            cli,
            skopeo,
            t,
        }
    }

    pub fn dir(&self, name: &str) -> PathBuf {
        self.t.sub(name)
    }

    /// `<registry host:port>/<repo>`: the name `docker push` would have signed under.
    pub fn gun(&self, repo: &str) -> String {
        format!("{}/{repo}", self.reg.host())
    }

    /// Build a small single-platform image into its own layout folder.
    pub fn image(&self, label: &str, layers: usize) -> Layout {
        Layout::image(
            &self.dir(&format!("img-{label}")),
            &ImageSpec::small(label, layers),
        )
    }

    pub fn push(&self, layout: &Layout, repo: &str, tag: &str) {
        layout.push(&self.skopeo, &self.reg.host(), repo, tag, None);
    }

    /// `notary init` + server-managed snapshot key, as docker's first signed push.
    pub fn init_trust(&self, repo: &str) {
        timed("notary init", || {
            self.cli.init_with_server_snapshot(&self.gun(repo))
        });
    }

    /// Sign `tag` of `repo` as exactly `layout`'s top-level manifest bytes.
    pub fn sign(&self, repo: &str, tag: &str, layout: &Layout, roles: &[&str]) {
        self.cli
            .sign_manifest(&self.gun(repo), tag, &layout.manifest, roles);
    }

    /// The registry as trustgate's default upstream, with the notary-server.
    pub fn upstream(&self) -> UpstreamConfig {
        UpstreamConfig::default_for(&self.reg).with_notary(&self.notary)
    }

    pub fn options(&self, refresh: Option<u64>, policies: Vec<PolicySpec>) -> TrustgateOptions {
        TrustgateOptions {
            upstreams: vec![self.upstream()],
            refresh,
            policies,
            ..Default::default()
        }
    }

    pub fn trustgate(
        &self,
        name: &str,
        refresh: Option<u64>,
        policies: Vec<PolicySpec>,
    ) -> Trustgate {
        timed("trustgate start", || {
            Trustgate::start(&self.dir(name), self.options(refresh, policies))
        })
    }

    /// The registry's own data file of a blob (filesystem driver layout).
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.reg
            .dir()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn logs(&self, tg: Option<&Trustgate>) -> String {
        format!(
            "{}\n{}\n{}",
            tg.map(|t| t.logs()).unwrap_or_default(),
            self.reg.logs(),
            self.notary.logs()
        )
    }
}
