//! Locating the real tools. A missing tool is a test FAILURE naming the Debian package to install
//! (scripts/install-test-deps.sh installs them all), never a silently skipped test.

use std::env;
use std::path::{Path, PathBuf};

/// Find `bin` on PATH (plus /usr/sbin and /sbin, where dockerd lives) or panic naming `package`.
pub fn require(bin: &str, package: &str) -> PathBuf {
    if bin.starts_with('/') {
        let p = PathBuf::from(bin);
        if is_executable(&p) {
            return p;
        }
        missing(bin, package);
    }
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/sbin", "/usr/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for d in dirs {
        let p = d.join(bin);
        if is_executable(&p) {
            return p;
        }
    }
    missing(bin, package)
}

fn missing(bin: &str, package: &str) -> ! {
    panic!(
        "required tool `{bin}` not found: install the Debian package `{package}` \
         (run scripts/install-test-deps.sh as root)"
    )
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn docker_registry() -> PathBuf {
    require("docker-registry", "docker-registry")
}
pub fn skopeo() -> PathBuf {
    require("skopeo", "skopeo")
}
pub fn podman() -> PathBuf {
    require("podman", "podman")
}
pub fn dockerd() -> PathBuf {
    require("dockerd", "docker.io")
}
/// Debian's docker CLI. `/usr/local/bin/docker` (a newer CLI) comes first on PATH on these
/// machines; the client that matches Debian's dockerd 20.10 is `/usr/bin/docker`.
pub fn docker_cli() -> PathBuf {
    require("/usr/bin/docker", "docker.io")
}
pub fn containerd() -> PathBuf {
    require("containerd", "containerd")
}
pub fn ctr() -> PathBuf {
    require("ctr", "containerd")
}
pub fn htpasswd() -> PathBuf {
    require("htpasswd", "apache2-utils")
}
pub fn openssl() -> PathBuf {
    require("openssl", "openssl")
}
pub fn notary_server() -> PathBuf {
    require("notary-server", "notary")
}
pub fn notary_signer() -> PathBuf {
    require("notary-signer", "notary")
}
pub fn notary() -> PathBuf {
    require("notary", "notary")
}
