//! notary-server 0.7 without notary-signer (`trust_service: local`, memory storage) behind a
//! throwaway CA, and a `notary` CLI wrapper that signs tags the way `DOCKER_CONTENT_TRUST=1 docker
//! push` does.
//!
//! Memory storage forgets everything on restart: a restarted server needs a fresh [`NotaryCli`]
//! (fresh trust dir) too.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::{self, Req};
use super::proc::{self, ChildGuard, CmdOutput};
use super::tools;

/// Passphrase for every notary key the tests create.
pub const PASSPHRASE: &str = "trustgate-test-passphrase";

/// A throwaway CA and a server certificate for 127.0.0.1 (SAN `IP:127.0.0.1`, `DNS:localhost`).
#[derive(Clone, Debug)]
pub struct TestCa {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> CmdOutput {
    let mut c = Command::new(tools::openssl());
    c.current_dir(dir).args(args);
    let out = proc::run(c, Duration::from_secs(60), &dir.join("out"));
    out.assert_success();
    out
}

impl TestCa {
    /// Create the CA and server certificate (P-256 keys) under `dir`.
    pub fn create(dir: &Path) -> TestCa {
        fs::create_dir_all(dir).expect("ca dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3650",
                "-subj",
                "/CN=trustgate test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\n\
             subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("server.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "365",
                "-extfile",
                "server.ext",
            ],
        );
        TestCa {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}

pub struct NotaryServer {
    child: ChildGuard,
    port: u16,
    pub ca: TestCa,
    dir: PathBuf,
}

impl NotaryServer {
    /// Start notary-server on a free port with a fresh CA under `dir`.
    pub fn start(dir: &Path) -> NotaryServer {
        let bin = tools::notary_server();
        fs::create_dir_all(dir).expect("notary dir");
        let ca = TestCa::create(&dir.join("tls"));
        let port = proc::free_port();
        let config = serde_json::json!({
            "server": {
                "http_addr": format!("127.0.0.1:{port}"),
                "tls_key_file": ca.server_key,
                "tls_cert_file": ca.server_cert,
            },
            "trust_service": {"type": "local"},
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        });
        let config_path = dir.join("server-config.json");
        fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).expect("config");
        let mut cmd = Command::new(bin);
        cmd.arg("-config").arg(&config_path);
        let mut child = ChildGuard::spawn("notary-server", cmd, dir);
        http::wait_ready(
            &format!("https://127.0.0.1:{port}/_notary_server/health"),
            200,
            &Req {
                ca_pem: Some(&ca.ca_cert),
                ..Default::default()
            },
            &mut child,
            Duration::from_secs(20),
        );
        NotaryServer {
            child,
            port,
            ca,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ca_cert(&self) -> &Path {
        &self.ca.ca_cert
    }

    /// `GET /v2/<gun>/_trust/tuf/<file>` (e.g. `root.json`, `timestamp.json`).
    pub fn get_metadata(&self, gun: &str, file: &str) -> http::Response {
        http::request(
            &format!("{}/v2/{gun}/_trust/tuf/{file}", self.url()),
            &Req {
                ca_pem: Some(&self.ca.ca_cert),
                ..Default::default()
            },
        )
        .expect("notary metadata request")
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }
}

/// The `notary` CLI with its own trust dir, talking to one server.
pub struct NotaryCli {
    bin: PathBuf,
    server_url: String,
    ca_cert: PathBuf,
    trust_dir: PathBuf,
    dir: PathBuf,
}

impl NotaryCli {
    pub fn new(server: &NotaryServer, dir: &Path) -> NotaryCli {
        let bin = tools::notary();
        let trust_dir = dir.join("trust");
        fs::create_dir_all(&trust_dir).expect("trust dir");
        NotaryCli {
            bin,
            server_url: server.url(),
            ca_cert: server.ca_cert().to_path_buf(),
            trust_dir,
            dir: dir.to_path_buf(),
        }
    }

    pub fn trust_dir(&self) -> &Path {
        &self.trust_dir
    }

    /// `notary -s URL -d TRUSTDIR --tlscacert CA ARGS` with every passphrase in the environment.
    pub fn run(&self, args: &[&str]) -> CmdOutput {
        self.run_as(Command::new(&self.bin), args)
    }

    /// As [`NotaryCli::run`], answering `yes` to the CLI's confirmation prompt (e.g. `key rotate
    /// GUN root`, which aborts without it).
    pub fn run_confirmed(&self, args: &[&str]) -> CmdOutput {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("echo yes | exec \"$0\" \"$@\"")
            .arg(&self.bin);
        self.run_as(c, args)
    }

    /// `c` (the CLI, or a shell that execs it) with the passphrases, server, trust dir and CA.
    fn run_as(&self, mut c: Command, args: &[&str]) -> CmdOutput {
        for v in [
            "NOTARY_ROOT_PASSPHRASE",
            "NOTARY_TARGETS_PASSPHRASE",
            "NOTARY_SNAPSHOT_PASSPHRASE",
            "NOTARY_DELEGATION_PASSPHRASE",
        ] {
            c.env(v, PASSPHRASE);
        }
        c.arg("-s")
            .arg(&self.server_url)
            .arg("-d")
            .arg(&self.trust_dir)
            .arg("--tlscacert")
            .arg(&self.ca_cert)
            .args(args);
        proc::run(c, Duration::from_secs(60), &self.dir.join("out"))
    }

    fn must(&self, args: &[&str]) -> CmdOutput {
        let out = self.run(args);
        out.assert_success();
        out
    }

    /// `notary init GUN -p`, then hand the snapshot key to the server (`key rotate GUN snapshot
    /// -r`) as docker does. (This makes root.json version 2; docker's own first push makes version
    /// 1 with a server snapshot key from the start.)
    pub fn init_with_server_snapshot(&self, gun: &str) {
        self.must(&["init", gun, "-p"]);
        self.must(&["key", "rotate", gun, "snapshot", "-r"]);
    }

    /// `notary addhash GUN TAG LEN --sha256 HEX [--roles R]... -p`: sign `tag` as the manifest
    /// with these exact length and sha256 (hex, without `sha256:`).
    pub fn addhash(&self, gun: &str, tag: &str, len: u64, sha256_hex: &str, roles: &[&str]) {
        let len = len.to_string();
        let mut args = vec!["addhash", gun, tag, len.as_str(), "--sha256", sha256_hex];
        for r in roles {
            args.push("--roles");
            args.push(r);
        }
        args.push("-p");
        self.must(&args);
    }

    /// Sign `tag` as exactly `manifest` (the bytes the registry serves for it).
    pub fn sign_manifest(&self, gun: &str, tag: &str, manifest: &[u8], roles: &[&str]) {
        let digest = http::sha256_digest(manifest);
        self.addhash(
            gun,
            tag,
            manifest.len() as u64,
            digest.trim_start_matches("sha256:"),
            roles,
        );
    }

    /// Make a P-256 signer key with a self-signed certificate, import the key, and add the
    /// `targets/releases` delegation with it for all paths (as `docker trust signer add` does).
    /// Publish to it afterwards with `addhash(..., &["targets/releases"])`.
    pub fn add_releases_delegation(&self, gun: &str) {
        let kd = self.dir.join("delegation");
        fs::create_dir_all(&kd).expect("delegation dir");
        openssl(
            &kd,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "releases.key",
                "-out",
                "releases.crt",
                "-days",
                "365",
                "-subj",
                "/CN=releases",
            ],
        );
        let key = kd.join("releases.key");
        let crt = kd.join("releases.crt");
        self.must(&[
            "key",
            "import",
            &key.to_string_lossy(),
            "--role",
            "releases",
        ]);
        self.must(&[
            "delegation",
            "add",
            gun,
            "targets/releases",
            &crt.to_string_lossy(),
            "--all-paths",
            "-p",
        ]);
    }

    /// `notary lookup GUN TAG`.
    pub fn lookup(&self, gun: &str, tag: &str) -> CmdOutput {
        self.run(&["lookup", gun, tag])
    }

    /// `notary list GUN`.
    pub fn list(&self, gun: &str) -> CmdOutput {
        self.run(&["list", gun])
    }
}
