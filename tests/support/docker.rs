//! A real dockerd (Debian docker.io 20.10) with its own data-root, exec-root, socket and pidfile,
//! the vfs storage driver and no networking set-up, driven by Debian's `/usr/bin/docker` CLI.
//!
//! Observed on this machine: two such dockerds run concurrently without trouble (each starts its
//! own managed containerd under its exec-root). dockerd stops that containerd only on SIGTERM, so
//! the guard sends SIGTERM and waits before resorting to SIGKILL.
//! 127.0.0.0/8 counts as an insecure registry by default: plain http on loopback just works.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{self, ChildGuard, CmdOutput, StopMode};
use super::tools;

#[derive(Clone, Debug, Default)]
pub struct DockerdOptions {
    /// `--registry-mirror` URLs (used by dockerd for Docker Hub images only).
    pub registry_mirrors: Vec<String>,
    /// `--insecure-registry` entries (host:port or CIDR), beyond the default 127.0.0.0/8.
    pub insecure_registries: Vec<String>,
}

pub struct Dockerd {
    child: ChildGuard,
    dir: PathBuf,
    sock: PathBuf,
    cli: PathBuf,
    pub timeout: Duration,
}

impl Dockerd {
    pub fn start(dir: &Path) -> Dockerd {
        Dockerd::start_with(dir, DockerdOptions::default())
    }

    pub fn start_with(dir: &Path, opts: DockerdOptions) -> Dockerd {
        let bin = tools::dockerd();
        let cli = tools::docker_cli();
        for sub in ["data", "exec", "out", "cli-config"] {
            fs::create_dir_all(dir.join(sub)).expect("dockerd dirs");
        }
        // An empty daemon.json of our own, so /etc/docker/daemon.json does not leak in.
        fs::write(dir.join("daemon.json"), "{}\n").expect("daemon.json");
        let sock = dir.join("docker.sock");
        let mut cmd = Command::new(bin);
        cmd.arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--storage-driver=vfs")
            .arg("--iptables=false")
            .arg("--ip6tables=false")
            .arg("--bridge=none")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()));
        for m in &opts.registry_mirrors {
            cmd.arg("--registry-mirror").arg(m);
        }
        for r in &opts.insecure_registries {
            cmd.arg("--insecure-registry").arg(r);
        }
        for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            cmd.env_remove(v);
        }
        let mut child = ChildGuard::spawn("dockerd", cmd, dir)
            .with_stop_mode(StopMode::Term(Duration::from_secs(20)));
        let ok = proc::wait_until(Duration::from_secs(60), || {
            !child.is_alive()
                || (sock.exists()
                    && docker_cli(&cli, dir, &sock, &["version"], Duration::from_secs(10))
                        .success())
        });
        assert!(
            ok && child.is_alive(),
            "dockerd did not come up (status {:?})\n{}",
            child.try_status(),
            child.logs()
        );
        Dockerd {
            child,
            dir: dir.to_path_buf(),
            sock,
            cli,
            timeout: Duration::from_secs(180),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.sock
    }

    /// Run `/usr/bin/docker -H unix://SOCK ARGS`.
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        docker_cli(&self.cli, &self.dir, &self.sock, args, self.timeout)
    }

    /// Run the CLI with extra environment variables.
    pub fn run_env(&self, args: &[&str], envs: &[(&str, &str)]) -> CmdOutput {
        let mut c = Command::new(&self.cli);
        c.env("DOCKER_CONFIG", self.dir.join("cli-config"))
            .envs(envs.iter().copied())
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args);
        proc::run(c, self.timeout, &self.dir.join("out"))
    }

    pub fn pull(&self, image_ref: &str) -> CmdOutput {
        self.run(&["pull", image_ref])
    }

    /// `DOCKER_CONTENT_TRUST=1 docker pull REF` against `notary` (its CA goes to
    /// `$DOCKER_CONFIG/tls/<notary host:port>/ca.crt`): the client-side check trustgate is meant
    /// to replace, for comparing messages. Docker 20.10 still has it (29 removed it).
    pub fn pull_with_content_trust(
        &self,
        image_ref: &str,
        notary: &super::notary::NotaryServer,
    ) -> CmdOutput {
        let tls = self.dir.join("cli-config").join("tls").join(notary.host());
        fs::create_dir_all(&tls).expect("docker tls dir");
        fs::copy(notary.ca_cert(), tls.join("ca.crt")).expect("copy notary CA");
        let server = notary.url();
        self.run_env(
            &["pull", image_ref],
            &[
                ("DOCKER_CONTENT_TRUST", "1"),
                ("DOCKER_CONTENT_TRUST_SERVER", server.as_str()),
            ],
        )
    }

    /// `.RepoDigests` of a pulled image (`REPO@sha256:...`).
    pub fn repo_digests(&self, image_ref: &str) -> Vec<String> {
        let out = self.run(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            image_ref,
        ]);
        out.assert_success();
        serde_json::from_str(out.stdout.trim()).expect("RepoDigests json")
    }

    /// The daemon's log (dockerd logs to stderr).
    pub fn log(&self) -> String {
        self.child.stderr()
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }
}

fn docker_cli(cli: &Path, dir: &Path, sock: &Path, args: &[&str], timeout: Duration) -> CmdOutput {
    let mut c = Command::new(cli);
    // Our own client config dir: no credentials or settings from ~/.docker leak in.
    c.env("DOCKER_CONFIG", dir.join("cli-config"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(args);
    proc::run(c, timeout, &dir.join("out"))
}
