//! The trustgate binary under test (`env!("CARGO_BIN_EXE_trustgate") serve --config FILE`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::notary::NotaryServer;
use super::proc::{self, ChildGuard, CmdOutput};
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
    /// `notary`: URL of the Notary server holding this registry's trust data (enforces every
    /// repository of the upstream unless a policy says otherwise).
    pub notary: Option<String>,
    /// `notary_ca_file`: PEM of the Notary server's CA.
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

    /// A plain-HTTP registry at `base` (`http://host:port`, e.g. a fake upstream) as the
    /// default upstream, named by its host, without credentials.
    pub fn plain_http(base: &str) -> UpstreamConfig {
        UpstreamConfig {
            name: base.trim_start_matches("http://").to_string(),
            url: base.to_string(),
            default: true,
            creds: None,
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

    /// The same upstream with any Notary URL (`notary`, optional `notary_ca_file`), e.g. a
    /// plain-http stand-in.
    pub fn with_notary_url(mut self, url: &str, ca_file: Option<&Path>) -> UpstreamConfig {
        self.notary = Some(url.into());
        self.notary_ca_file = ca_file.map(Path::to_path_buf);
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

/// One `[[policy]]` table.
#[derive(Clone, Debug)]
pub struct PolicySpec {
    /// GUN globs (`<upstream name>/<repository>`).
    pub repositories: Vec<String>,
    /// `enforce`, `audit` or `off`.
    pub trust: String,
    /// Roles that must all have signed a tag.
    pub signers: Vec<String>,
    pub require_signed_closure: Option<bool>,
}

impl PolicySpec {
    pub fn new(repositories: &[&str], trust: &str) -> PolicySpec {
        PolicySpec {
            repositories: repositories.iter().map(|s| s.to_string()).collect(),
            trust: trust.into(),
            signers: Vec::new(),
            require_signed_closure: None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct TrustgateOptions {
    pub upstreams: Vec<UpstreamConfig>,
    /// Extra TOML appended verbatim (for sections later issues add, e.g. `[trust]`).
    pub extra_toml: String,
    /// `[trust] refresh` (seconds); absent = trustgate's default.
    pub refresh: Option<u64>,
    /// `[[policy]]` tables, in order.
    pub policies: Vec<PolicySpec>,
    /// Extra environment (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// Extra keys of the `[server]` table (TLS files, limits), verbatim.
    pub server_toml: String,
    /// Keys of the `[storage]` table besides `path`, verbatim; `None` is `min_free = "0"`.
    /// trustgate's default free-space floor (the larger of 512 MiB and 5 % of the filesystem)
    /// depends on the machine the tests run on: where less is free (CI machines), every pull
    /// would be served unstored and tests expecting content cached would fail. The floor's
    /// own tests set it (`Some(String::new())` keeps trustgate's default).
    pub storage_toml: Option<String>,
}

pub struct Trustgate {
    child: ChildGuard,
    port: u16,
    admin_port: u16,
    dir: PathBuf,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    /// How many times the process was (re)started; names the log files.
    generation: u32,
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
        fs::create_dir_all(dir).expect("trustgate dir");
        let port = proc::free_port();
        let admin_port = proc::free_port();
        let data = dir.join("data");
        fs::create_dir_all(&data).expect("trustgate data dir");
        let mut toml = config_toml(dir, &format!("127.0.0.1:{port}"), &data, &opts);
        toml.push_str(&format!("\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"));
        let config_path = dir.join("trustgate.toml");
        fs::write(&config_path, &toml).expect("write trustgate.toml");

        let child = spawn_serve(dir, &config_path, port, &opts.env, "trustgate");
        Trustgate {
            child,
            port,
            admin_port,
            dir: dir.to_path_buf(),
            config_path,
            env: opts.env,
            generation: 1,
        }
    }

    /// Stop the process and start it again on the same port with the same configuration and
    /// storage (persisted trust state survives; memory caches do not). The new process logs to
    /// `trustgate-N.*`; [`Trustgate::log`] reads the current process's log.
    pub fn restart(&mut self) {
        self.child.stop();
        self.generation += 1;
        let name = format!("trustgate-{}", self.generation);
        self.child = spawn_serve(&self.dir, &self.config_path, self.port, &self.env, &name);
    }

    /// Run another subcommand of the binary with this instance's configuration and environment:
    /// `trustgate ARGS --config FILE` (e.g. `verify IMAGE`, `trust reset GUN`).
    pub fn cli(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
        cmd.args(args).arg("--config").arg(&self.config_path);
        // The server's environment (e.g. the shared store's AWS_* credentials), then quiet logs.
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.env("RUST_LOG", "warn").env("NO_COLOR", "1");
        for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            cmd.env_remove(v);
        }
        proc::run(cmd, Duration::from_secs(60), &self.dir.join("cli"))
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

    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Everything trustgate logged (stdout + stderr).
    pub fn log(&self) -> String {
        self.settle();
        format!("{}{}", self.child.stdout(), self.child.stderr())
    }

    /// What the current process wrote to stderr (its log lines, nothing else).
    pub fn stderr(&self) -> String {
        self.settle();
        self.child.stderr()
    }

    pub fn logs(&self) -> String {
        self.settle();
        self.child.logs()
    }

    /// trustgate writes its log lines from a thread of its own, a moment after the event that
    /// logged them: wait until the log has stopped growing (at most 2 s) before reading it, so a
    /// test sees the lines of the requests it has already had answered.
    fn settle(&self) {
        let size = || {
            fs::metadata(self.child.stderr_path())
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let mut last = size();
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            std::thread::sleep(Duration::from_millis(30));
            let now = size();
            if now == last || std::time::Instant::now() > deadline {
                return;
            }
            last = now;
        }
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

    /// Waits up to `timeout` for the process to exit on its own (after SIGTERM, say); its exit
    /// status, or `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        proc::wait_until(timeout, || {
            status = self.child.try_status();
            status.is_some()
        });
        status
    }
}

/// `trustgate serve --config FILE`, waiting until the listener accepts connections (it is bound
/// only once the proxy is ready; TLS and client auth make `GET /v2/` unusable as a probe).
fn spawn_serve(
    dir: &Path,
    config_path: &Path,
    port: u16,
    env: &[(String, String)],
    name: &str,
) -> ChildGuard {
    let bin = env!("CARGO_BIN_EXE_trustgate");
    let mut cmd = Command::new(bin);
    cmd.arg("serve").arg("--config").arg(config_path);
    // Plain-text logs in the captured files (tracing-subscriber honours NO_COLOR).
    cmd.env("NO_COLOR", "1");
    if !env.iter().any(|(k, _)| k == "RUST_LOG") {
        cmd.env("RUST_LOG", "info,trustgate=debug");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
        cmd.env_remove(v);
    }
    let mut child = ChildGuard::spawn(name, cmd, dir);
    let ready = proc::wait_until(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() || !child.is_alive()
    });
    assert!(
        ready && child.is_alive(),
        "trustgate did not start listening on {port}:\n{}",
        child.logs()
    );
    child
}

/// The TOML configuration for `opts`, listening on `listen`, with storage in `data`; password
/// files are written under `dir`. Also used by tests that run the proxy in-process
/// (`trustgate::config::Config::from_toml`).
pub fn config_toml(dir: &Path, listen: &str, data: &Path, opts: &TrustgateOptions) -> String {
    let mut toml = format!(
        "[server]\nlisten = {}\n{}\n[storage]\npath = {}\n{}",
        toml_str(listen),
        opts.server_toml,
        toml_str(&data.to_string_lossy()),
        opts.storage_toml.as_deref().unwrap_or("min_free = \"0\"\n")
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
    if let Some(r) = opts.refresh {
        toml.push_str(&format!("\n[trust]\nrefresh = {r}\n"));
    }
    for p in &opts.policies {
        let globs: Vec<String> = p.repositories.iter().map(|g| toml_str(g)).collect();
        toml.push_str(&format!(
            "\n[[policy]]\nrepositories = [{}]\ntrust = {}\n",
            globs.join(", "),
            toml_str(&p.trust)
        ));
        if !p.signers.is_empty() {
            let s: Vec<String> = p.signers.iter().map(|g| toml_str(g)).collect();
            toml.push_str(&format!("signers = [{}]\n", s.join(", ")));
        }
        if let Some(c) = p.require_signed_closure {
            toml.push_str(&format!("require_signed_closure = {c}\n"));
        }
    }
    toml
}
