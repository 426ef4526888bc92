//! Configurations over fake upstreams ([`UpstreamSpec`], [`config_toml`]), the app started on
//! them ([`start`], through [`super::app::TestApp`]), and the small clients and parsers the
//! in-process suites share.

use std::path::Path;
use std::time::Duration;

use super::app::TestApp;

/// One `[[upstream]]` entry.
#[derive(Clone, Debug)]
pub struct UpstreamSpec {
    pub name: String,
    pub url: String,
    pub default: bool,
    /// `username` and the password written to a temporary `password_file`.
    pub basic: Option<(String, String)>,
    pub first_byte_timeout_secs: u64,
    pub idle_timeout_secs: u64,
}

impl UpstreamSpec {
    pub fn new(name: &str, url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            url: url.into(),
            default: false,
            basic: None,
            first_byte_timeout_secs: 5,
            idle_timeout_secs: 5,
        }
    }

    /// Shorter (or longer) upstream timeouts, in seconds: (first byte, idle).
    pub fn timeouts(mut self, first_byte_secs: u64, idle_secs: u64) -> Self {
        self.first_byte_timeout_secs = first_byte_secs;
        self.idle_timeout_secs = idle_secs;
        self
    }

    pub fn default_upstream(mut self) -> Self {
        self.default = true;
        self
    }

    pub fn basic(mut self, username: &str, password: &str) -> Self {
        self.basic = Some((username.into(), password.into()));
        self
    }
}

/// A running app over fake upstreams, with the folder of its storage and password files.
pub struct RunningProxy {
    pub app: TestApp,
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub base: String,
    _dir: tempfile::TempDir,
}

impl RunningProxy {
    /// `base` + `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        self.app.url(path_and_query)
    }

    /// Graceful shutdown: stop accepting, let open connections finish, wait for the app.
    pub async fn shutdown(self) {
        self.app.shutdown().await;
    }
}

/// The TOML text for these upstreams (passwords go to files in `dir`). Short timeouts keep
/// failure tests fast.
pub fn config_toml(upstreams: &[UpstreamSpec], dir: &Path) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nmin_free = \"0\"\npath = {:?}\n",
        dir.join("data").display().to_string()
    );
    for (i, up) in upstreams.iter().enumerate() {
        text.push_str(&format!(
            "[[upstream]]\nname = {:?}\nurl = {:?}\ndefault = {}\nconnect_timeout_secs = 2\nfirst_byte_timeout_secs = {}\nidle_timeout_secs = {}\n",
            up.name, up.url, up.default, up.first_byte_timeout_secs, up.idle_timeout_secs
        ));
        if let Some((user, password)) = &up.basic {
            let pw = dir.join(format!("password-{i}"));
            // Trailing newline as `echo secret > file` leaves it: the config layer strips it.
            std::fs::write(&pw, format!("{password}\n")).expect("write password file");
            text.push_str(&format!(
                "username = {user:?}\npassword_file = {:?}\n",
                pw.display().to_string()
            ));
        }
    }
    text
}

/// Builds the config and starts the app on 127.0.0.1:0.
pub async fn start(upstreams: &[UpstreamSpec]) -> RunningProxy {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config_toml(upstreams, dir.path());
    let app = TestApp::from_toml(&text, &dir.path().join("trustgate.toml")).await;
    RunningProxy {
        base: app.base.clone(),
        app,
        _dir: dir,
    }
}

/// A reqwest client for talking to the proxy: no environment proxies, no redirects, short
/// timeout.
pub fn client() -> reqwest::Client {
    client_with_timeout(Duration::from_secs(10))
}

/// [`client`] with another overall timeout (large blobs).
pub fn client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .expect("test client")
}

/// An address on 127.0.0.1 where nothing listens (bound once, then released).
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// The first OCI error entry of an error body: (code, message).
pub fn oci_error(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    let first = &v["errors"][0];
    (
        first["code"].as_str().unwrap_or_default().to_string(),
        first["message"].as_str().unwrap_or_default().to_string(),
    )
}
