//! The trustgate binary under test (`env!("CARGO_BIN_EXE_trustgate") serve --config FILE`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::{self, Req};
use super::notary::NotaryServer;
use super::proc::{self, ChildGuard};
use super::registry::{Creds, Registry};

/// One `[[upstream]]` table.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// Registry host as image references spell it (`127.0.0.1:5101`, `registry.local`).
    pub name: String,
    pub url: String,
    /// Bare names (`/v2/<repo>/...`) go to the default upstream.
    pub default: bool,
    pub creds: Option<Creds>,
    pub ca_file: Option<PathBuf>,
    /// The Notary server holding this registry's trust data (`notary = URL`), and a CA for it.
    /// With a notary and no `[[policy]]`, trustgate enforces trust for this upstream.
    pub notary: Option<String>,
    pub notary_ca_file: Option<PathBuf>,
}

impl UpstreamConfig {
    /// The registry as the default upstream, named by its host, with its credentials if any.
    pub fn default_for(reg: &Registry) -> UpstreamConfig {
        UpstreamConfig {
            name: reg.host(),
            url: reg.url(),
            default: true,
            creds: reg.creds().cloned(),
            ca_file: None,
            notary: None,
            notary_ca_file: None,
        }
    }

    /// Attach a Notary server (URL and its CA) to this upstream.
    pub fn with_notary(mut self, notary: &NotaryServer) -> UpstreamConfig {
        self.notary = Some(notary.url());
        self.notary_ca_file = Some(notary.ca_cert().to_path_buf());
        self
    }

    /// The registry as a non-default upstream called `name` (use a name without a port, e.g.
    /// `registry.local`: `docker://TG/127.0.0.1:5101/demo/app` does not parse as a reference).
    pub fn named(name: &str, reg: &Registry) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url: reg.url(),
            default: false,
            creds: reg.creds().cloned(),
            ca_file: None,
            notary: None,
            notary_ca_file: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TrustgateOptions {
    pub upstreams: Vec<UpstreamConfig>,
    /// Extra TOML appended verbatim (for sections later issues add, e.g. `[trust]`).
    pub extra_toml: String,
    /// Extra environment (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

pub struct Trustgate {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
    config_path: PathBuf,
}

/// TOML basic string with escapes.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Trustgate {
    /// Write the config under `dir` and start trustgate; returns once `GET /v2/` answers 200.
    pub fn start(dir: &Path, opts: TrustgateOptions) -> Trustgate {
        let bin = env!("CARGO_BIN_EXE_trustgate");
        fs::create_dir_all(dir).expect("trustgate dir");
        let port = proc::free_port();
        let data = dir.join("data");
        fs::create_dir_all(&data).expect("trustgate data dir");
        let mut toml = format!(
            "[server]\nlisten = {}\n\n[storage]\npath = {}\n",
            toml_str(&format!("127.0.0.1:{port}")),
            toml_str(&data.to_string_lossy())
        );
        for (i, u) in opts.upstreams.iter().enumerate() {
            toml.push_str(&format!(
                "\n[[upstream]]\nname = {}\nurl = {}\n",
                toml_str(&u.name),
                toml_str(&u.url)
            ));
            if u.default {
                toml.push_str("default = true\n");
            }
            if let Some(c) = &u.creds {
                // Secrets come from files, never from the config itself.
                let pw = dir.join(format!("upstream-{i}.password"));
                fs::write(&pw, &c.password).expect("password file");
                toml.push_str(&format!(
                    "username = {}\npassword_file = {}\n",
                    toml_str(&c.username),
                    toml_str(&pw.to_string_lossy())
                ));
            }
            if let Some(ca) = &u.ca_file {
                toml.push_str(&format!("ca_file = {}\n", toml_str(&ca.to_string_lossy())));
            }
            if let Some(n) = &u.notary {
                toml.push_str(&format!("notary = {}\n", toml_str(n)));
            }
            if let Some(ca) = &u.notary_ca_file {
                toml.push_str(&format!(
                    "notary_ca_file = {}\n",
                    toml_str(&ca.to_string_lossy())
                ));
            }
        }
        if !opts.extra_toml.is_empty() {
            toml.push('\n');
            toml.push_str(&opts.extra_toml);
            toml.push('\n');
        }
        let config_path = dir.join("trustgate.toml");
        fs::write(&config_path, &toml).expect("write trustgate.toml");

        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--config").arg(&config_path);
        // Plain-text logs in the captured files (tracing-subscriber honours NO_COLOR).
        cmd.env("NO_COLOR", "1");
        if !opts.env.iter().any(|(k, _)| k == "RUST_LOG") {
            cmd.env("RUST_LOG", "info,trustgate=debug");
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            cmd.env_remove(v);
        }
        let mut child = ChildGuard::spawn("trustgate", cmd, dir);
        http::wait_ready(
            &format!("http://127.0.0.1:{port}/v2/"),
            200,
            &Req::default(),
            &mut child,
            Duration::from_secs(20),
        );
        Trustgate {
            child,
            port,
            dir: dir.to_path_buf(),
            config_path,
        }
    }

    /// trustgate in front of one registry as its default upstream.
    pub fn start_for(dir: &Path, reg: &Registry) -> Trustgate {
        Trustgate::start(
            dir,
            TrustgateOptions {
                upstreams: vec![UpstreamConfig::default_for(reg)],
                ..Default::default()
            },
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything trustgate logged (stdout + stderr).
    pub fn log(&self) -> String {
        format!("{}{}", self.child.stdout(), self.child.stderr())
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_alive()
    }

    /// The trustgate process id (for signals, e.g. `kill -9` mid-download).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }
}
