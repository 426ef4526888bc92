//! podman 4.3 as root with an isolated store: its own `--root`, `--runroot`, `--tmpdir`,
//! containers.conf, storage.conf, registries.conf, policy and auth file under the test's temp dir.
//!
//! The `vfs` storage driver is used so that nothing is mounted under the temp dir (with podman's
//! default overlay driver an overlay mount stays under the storage root and must be unmounted
//! before the folder can be deleted).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{self, CmdOutput};
use super::registry::Creds;
use super::skopeo::POLICY_JSON;
use super::tools;

pub struct Podman {
    bin: PathBuf,
    dir: PathBuf,
    pub timeout: Duration,
}

impl Podman {
    pub fn new(dir: &Path) -> Podman {
        let bin = tools::podman();
        for sub in ["root", "runroot", "tmp", "out", "vartmp"] {
            fs::create_dir_all(dir.join(sub)).expect("podman dirs");
        }
        fs::write(dir.join("policy.json"), POLICY_JSON).expect("policy.json");
        // podman refuses a REGISTRY_AUTH_FILE that does not exist.
        fs::write(dir.join("auth.json"), "{\"auths\":{}}\n").expect("auth.json");
        fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n",
                dir.join("runroot").display(),
                dir.join("root").display()
            ),
        )
        .expect("storage.conf");
        fs::write(
            dir.join("containers.conf"),
            "[engine]\nevents_logger = \"none\"\n",
        )
        .expect("containers.conf");
        Podman {
            bin,
            dir: dir.to_path_buf(),
            timeout: Duration::from_secs(180),
        }
    }

    fn cmd(&self) -> Command {
        let d = &self.dir;
        let mut c = Command::new(&self.bin);
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("REGISTRY_AUTH_FILE", d.join("auth.json"))
            // Blob downloads are staged in TMPDIR (default /var/tmp).
            .env("TMPDIR", d.join("vartmp"))
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--events-backend")
            .arg("none")
            .arg("--cgroup-manager")
            .arg("cgroupfs");
        c
    }

    pub fn run(&self, args: &[&str]) -> CmdOutput {
        let mut c = self.cmd();
        c.args(args);
        proc::run(c, self.timeout, &self.dir.join("out"))
    }

    /// `podman pull --tls-verify=false REF` (plain http on loopback).
    pub fn pull(&self, image_ref: &str, creds: Option<&Creds>) -> CmdOutput {
        let policy = format!(
            "--signature-policy={}",
            self.dir.join("policy.json").display()
        );
        let mut args: Vec<String> = vec!["pull".into(), "--tls-verify=false".into(), policy];
        if let Some(c) = creds {
            args.push(format!("--creds={}", c.colon()));
        }
        args.push(image_ref.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    /// The manifest digest podman recorded for the pulled image (`.Digest`).
    pub fn image_digest(&self, image_ref: &str) -> String {
        let out = self.run(&["image", "inspect", "--format", "{{.Digest}}", image_ref]);
        out.assert_success();
        out.stdout.trim().to_string()
    }

    /// `.RepoDigests` of the pulled image.
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
}
