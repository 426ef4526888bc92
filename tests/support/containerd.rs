//! containerd 1.6 with its own root, state and socket (CRI plugin disabled), driven by `ctr`.
//! Images are unpacked with the `native` snapshotter so nothing gets mounted under the temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{self, ChildGuard, CmdOutput, StopMode};
use super::registry::Creds;
use super::tools;

pub const NAMESPACE: &str = "trustgate-test";

pub struct Containerd {
    child: ChildGuard,
    dir: PathBuf,
    sock: PathBuf,
    ctr: PathBuf,
    pub timeout: Duration,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        let bin = tools::containerd();
        let ctr = tools::ctr();
        for sub in ["root", "state", "out"] {
            fs::create_dir_all(dir.join(sub)).expect("containerd dirs");
        }
        let sock = dir.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display()
        );
        fs::write(dir.join("config.toml"), config).expect("containerd config");
        let mut cmd = Command::new(bin);
        cmd.arg("--config").arg(dir.join("config.toml"));
        for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            cmd.env_remove(v);
        }
        let mut child = ChildGuard::spawn("containerd", cmd, dir)
            .with_stop_mode(StopMode::Term(Duration::from_secs(10)));
        let ok = proc::wait_until(Duration::from_secs(30), || {
            !child.is_alive() || sock.exists()
        });
        assert!(
            ok && child.is_alive(),
            "containerd did not come up\n{}",
            child.logs()
        );
        Containerd {
            child,
            dir: dir.to_path_buf(),
            sock,
            ctr,
            timeout: Duration::from_secs(180),
        }
    }

    /// `ctr -a SOCK -n trustgate-test ARGS`.
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        let mut c = Command::new(&self.ctr);
        c.arg("-a")
            .arg(&self.sock)
            .arg("-n")
            .arg(NAMESPACE)
            .args(args);
        for v in ["http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"] {
            c.env_remove(v);
        }
        proc::run(c, self.timeout, &self.dir.join("out"))
    }

    /// `ctr images pull --plain-http --snapshotter native [--user u:p] REF`.
    pub fn pull(&self, image_ref: &str, creds: Option<&Creds>) -> CmdOutput {
        let mut args: Vec<String> = vec![
            "images".into(),
            "pull".into(),
            "--plain-http".into(),
            "--snapshotter".into(),
            "native".into(),
        ];
        if let Some(c) = creds {
            args.push("--user".into());
            args.push(c.colon());
        }
        args.push(image_ref.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr(&refs)
    }

    /// Pull `image_ref` (whose registry is `registry_name`, e.g. `registry.local`) through the
    /// mirror at `mirror_url` (`http://127.0.0.1:PORT`), configured the containerd way: a
    /// `hosts.toml` in a hosts dir passed with `--hosts-dir`. The mirror is also the `server`, so
    /// there is no fallback around it. containerd then asks the mirror for
    /// `/v2/<repo>/manifests/<tag>?ns=<registry_name>` (observed with 1.6.20).
    pub fn pull_via_mirror(
        &self,
        image_ref: &str,
        registry_name: &str,
        mirror_url: &str,
    ) -> CmdOutput {
        let hosts = self.dir.join("hosts.d");
        let host_dir = hosts.join(registry_name);
        fs::create_dir_all(&host_dir).expect("hosts dir");
        fs::write(
            host_dir.join("hosts.toml"),
            format!(
                "server = \"{mirror_url}\"\n\n[host.\"{mirror_url}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .expect("hosts.toml");
        let hosts_arg = hosts.to_string_lossy().into_owned();
        self.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            &hosts_arg,
            "--snapshotter",
            "native",
            image_ref,
        ])
    }

    /// The digest containerd resolved `image_ref` to (from `ctr images ls`).
    pub fn image_digest(&self, image_ref: &str) -> Option<String> {
        let out = self.ctr(&["images", "ls"]);
        out.assert_success();
        out.stdout.lines().skip(1).find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&image_ref)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }
}
