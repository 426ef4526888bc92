//! The real CNCF distribution registry (`docker-registry serve`, Debian 2.8.2) as upstream, or in
//! `proxy:` mode as the pull-through cache most sites run today (the benchmark baseline).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::{self, Req};
use super::proc::{self, ChildGuard};
use super::tools;

/// Credentials for HTTP basic auth (htpasswd on the registry side).
#[derive(Clone, Debug)]
pub struct Creds {
    pub username: String,
    pub password: String,
}

impl Creds {
    pub fn new(username: &str, password: &str) -> Creds {
        Creds {
            username: username.into(),
            password: password.into(),
        }
    }

    /// `user:pass`, as skopeo's `--creds` flags take them.
    pub fn colon(&self) -> String {
        format!("{}:{}", self.username, self.password)
    }
}

#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Require these credentials (htpasswd, bcrypt via `htpasswd -Bbn`).
    pub auth: Option<Creds>,
    /// Run as a pull-through cache of this remote (`proxy: remoteurl:`), with optional upstream
    /// credentials. distribution's proxy mode panics at start-up when the remote is down: start
    /// it after the remote answers.
    pub proxy_remote: Option<(String, Option<Creds>)>,
}

pub struct Registry {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
    auth: Option<Creds>,
}

impl Registry {
    /// A plain registry without auth.
    pub fn start(dir: &Path) -> Registry {
        Registry::start_with(dir, RegistryOptions::default())
    }

    /// A registry that requires `user`/`pass` (htpasswd basic auth).
    pub fn start_with_auth(dir: &Path, user: &str, pass: &str) -> Registry {
        Registry::start_with(
            dir,
            RegistryOptions {
                auth: Some(Creds::new(user, pass)),
                ..Default::default()
            },
        )
    }

    /// Start `docker-registry serve CONFIG.yml` with its storage, config and logs under `dir`.
    pub fn start_with(dir: &Path, opts: RegistryOptions) -> Registry {
        let bin = tools::docker_registry();
        fs::create_dir_all(dir).expect("registry dir");
        if let Some((remote, _)) = &opts.proxy_remote {
            // distribution's proxy mode panics at start-up when the remote is down.
            if let Err(e) = http::get(&format!("{remote}/v2/")) {
                panic!("proxy remote {remote} does not answer; start it first: {e}");
            }
        }
        let port = proc::free_port();
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).expect("registry storage");

        let mut yml = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: trustgate-test-secret\n",
            storage = storage.display()
        );
        if let Some(creds) = &opts.auth {
            let out = proc::run(
                {
                    let mut c = Command::new(tools::htpasswd());
                    c.args(["-Bbn", &creds.username, &creds.password]);
                    c
                },
                Duration::from_secs(30),
                dir,
            );
            out.assert_success();
            let htpasswd = dir.join("htpasswd");
            fs::write(&htpasswd, out.stdout.trim_end().to_string() + "\n").expect("htpasswd");
            yml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: trustgate-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        if let Some((remote, creds)) = &opts.proxy_remote {
            yml.push_str(&format!("proxy:\n  remoteurl: {remote}\n"));
            if let Some(c) = creds {
                yml.push_str(&format!(
                    "  username: {}\n  password: {}\n",
                    c.username, c.password
                ));
            }
        }
        let config = dir.join("config.yml");
        fs::write(&config, yml).expect("registry config");

        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config);
        let mut child = ChildGuard::spawn(&format!("docker-registry-{port}"), cmd, dir);
        // /v2/ answers 401 when auth is on; either way the registry is up.
        let want = if opts.auth.is_some() { 401 } else { 200 };
        http::wait_ready(
            &format!("http://127.0.0.1:{port}/v2/"),
            want,
            &Req::default(),
            &mut child,
            Duration::from_secs(20),
        );
        Registry {
            child,
            port,
            dir: dir.to_path_buf(),
            auth: opts.auth,
        }
    }

    /// distribution as a pull-through cache of `remote` (with `remote`'s credentials, which
    /// distribution 2.8.2 only manages to use against token-auth upstreams, not htpasswd ones).
    pub fn start_proxy(dir: &Path, remote: &Registry) -> Registry {
        Registry::start_with(
            dir,
            RegistryOptions {
                auth: None,
                proxy_remote: Some((remote.url(), remote.creds().cloned())),
            },
        )
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, as image references spell the registry.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn creds(&self) -> Option<&Creds> {
        self.auth.as_ref()
    }

    /// The combined-format access log (distribution writes it to stdout), e.g.
    /// `127.0.0.1 - - [date] "GET /v2/demo/app/blobs/sha256:... HTTP/1.1" 200 123 "" "agent"`.
    pub fn access_log(&self) -> String {
        self.child.stdout()
    }

    /// How many access-log lines have this method and a path containing `path_part`.
    pub fn count_requests(&self, method: &str, path_part: &str) -> usize {
        let needle = format!("\"{method} ");
        self.access_log()
            .lines()
            .filter(|l| {
                l.find(&needle)
                    .map(|i| {
                        let rest = &l[i + needle.len()..];
                        let path = rest.split(' ').next().unwrap_or("");
                        path.contains(path_part)
                    })
                    .unwrap_or(false)
            })
            .count()
    }

    /// GETs of one blob (by digest) that this registry answered.
    pub fn blob_gets(&self, digest: &str) -> usize {
        self.count_requests("GET", &format!("/blobs/{digest}"))
    }

    /// The application log (stderr).
    pub fn log(&self) -> String {
        self.child.stderr()
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }

    /// The registry process id (for `kill -9` mid-transfer).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Start the registry again after it was stopped or killed: same port, configuration and
    /// storage (its config file names the port). Logs go to `docker-registry-PORT-N.*`.
    pub fn restart(&mut self, generation: u32) {
        self.child.stop();
        let mut cmd = Command::new(tools::docker_registry());
        cmd.arg("serve").arg(self.dir.join("config.yml"));
        let name = format!("docker-registry-{}-{generation}", self.port);
        self.child = ChildGuard::spawn(&name, cmd, &self.dir);
        let want = if self.auth.is_some() { 401 } else { 200 };
        http::wait_ready(
            &format!("http://127.0.0.1:{}/v2/", self.port),
            want,
            &Req::default(),
            &mut self.child,
            Duration::from_secs(20),
        );
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_alive()
    }
}
