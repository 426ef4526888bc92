//! skopeo 1.9 with its own policy, registries.conf and auth file (nothing from the host's
//! /etc/containers or ~/.config leaks in), always plain http on loopback (`--*-tls-verify=false`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{self, CmdOutput};
use super::registry::Creds;
use super::tools;

/// Allow every image: trust enforcement is trustgate's job, not the client's.
pub const POLICY_JSON: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

pub struct Skopeo {
    bin: PathBuf,
    dir: PathBuf,
    pub timeout: Duration,
}

impl Skopeo {
    /// Config files and command output go under `dir`.
    pub fn new(dir: &Path) -> Skopeo {
        let bin = tools::skopeo();
        fs::create_dir_all(dir).expect("skopeo dir");
        fs::write(dir.join("policy.json"), POLICY_JSON).expect("policy.json");
        // podman refuses a REGISTRY_AUTH_FILE that does not exist.
        fs::write(dir.join("auth.json"), "{\"auths\":{}}\n").expect("auth.json");
        fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        Skopeo {
            bin,
            dir: dir.to_path_buf(),
            timeout: Duration::from_secs(120),
        }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("REGISTRY_AUTH_FILE", self.dir.join("auth.json"))
            .env(
                "CONTAINERS_REGISTRIES_CONF",
                self.dir.join("registries.conf"),
            )
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .arg("--policy")
            .arg(self.dir.join("policy.json"))
            .arg("--registries-conf")
            .arg(self.dir.join("registries.conf"));
        c
    }

    /// Run skopeo with `args` (after the global flags).
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        let mut c = self.cmd();
        c.args(args);
        proc::run(c, self.timeout, &self.dir.join("out"))
    }

    /// `skopeo copy SRC DEST` with plain http on both sides.
    pub fn copy(
        &self,
        src: &str,
        dest: &str,
        all: bool,
        src_creds: Option<&Creds>,
        dest_creds: Option<&Creds>,
    ) -> CmdOutput {
        let mut args: Vec<String> = vec![
            "copy".into(),
            "--src-tls-verify=false".into(),
            "--dest-tls-verify=false".into(),
        ];
        if all {
            args.push("--all".into());
        }
        if let Some(c) = src_creds {
            args.push(format!("--src-creds={}", c.colon()));
        }
        if let Some(c) = dest_creds {
            args.push(format!("--dest-creds={}", c.colon()));
        }
        args.push(src.into());
        args.push(dest.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    /// Push a `dir:` layout keeping its exact bytes.
    pub fn push_dir(
        &self,
        layout: &Path,
        dest: &str,
        all: bool,
        creds: Option<&Creds>,
    ) -> CmdOutput {
        let mut args: Vec<String> = vec![
            "copy".into(),
            "--preserve-digests".into(),
            "--dest-tls-verify=false".into(),
        ];
        if all {
            args.push("--all".into());
        }
        if let Some(c) = creds {
            args.push(format!("--dest-creds={}", c.colon()));
        }
        args.push(format!("dir:{}", layout.display()));
        args.push(dest.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }

    /// `skopeo copy [--all] docker://REF dir:DEST` (DEST is created).
    pub fn copy_to_dir(
        &self,
        image_ref: &str,
        dest: &Path,
        all: bool,
        creds: Option<&Creds>,
    ) -> CmdOutput {
        fs::create_dir_all(dest).expect("create dest dir");
        self.copy(
            &format!("docker://{image_ref}"),
            &format!("dir:{}", dest.display()),
            all,
            creds,
            None,
        )
    }

    /// `skopeo inspect --raw docker://REF`: the manifest bytes as served (stdout, unmodified).
    pub fn inspect_raw(&self, image_ref: &str, creds: Option<&Creds>) -> CmdOutput {
        self.inspect_impl(image_ref, creds, true)
    }

    /// `skopeo inspect docker://REF` (JSON summary with `Digest`).
    pub fn inspect(&self, image_ref: &str, creds: Option<&Creds>) -> CmdOutput {
        self.inspect_impl(image_ref, creds, false)
    }

    fn inspect_impl(&self, image_ref: &str, creds: Option<&Creds>, raw: bool) -> CmdOutput {
        let mut args: Vec<String> = vec!["inspect".into(), "--tls-verify=false".into()];
        if raw {
            args.push("--raw".into());
        }
        if let Some(c) = creds {
            args.push(format!("--creds={}", c.colon()));
        }
        args.push(format!("docker://{image_ref}"));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&refs)
    }
}

/// Every regular file under `dir` (relative path → bytes).
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())) {
            let e = e.expect("dir entry");
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Panic unless the two directories hold the same file names with byte-identical contents.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let ta = read_tree(a);
    let tb = read_tree(b);
    let names_a: Vec<&String> = ta.keys().collect();
    let names_b: Vec<&String> = tb.keys().collect();
    assert_eq!(
        names_a,
        names_b,
        "file sets differ between {} and {}",
        a.display(),
        b.display()
    );
    for (name, bytes) in &ta {
        let other = &tb[name];
        assert!(
            bytes == other,
            "{name} differs: {} bytes in {} vs {} bytes in {}",
            bytes.len(),
            a.display(),
            other.len(),
            b.display()
        );
    }
}
