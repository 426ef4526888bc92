//! notary-server 0.7 behind a throwaway CA, and a `notary` CLI wrapper that signs tags the way
//! `DOCKER_CONTENT_TRUST=1 docker push` does.
//!
//! Two set-ups:
//! - [`NotaryServer::start`]: no notary-signer (`trust_service: local`) and memory storage. It
//!   starts fast, and forgets everything when it stops.
//! - [`NotaryServer::start_durable`]: as deployed in production, its TUF files in PostgreSQL and
//!   its timestamp and snapshot keys in a notary-signer (gRPC over TLS). This one can be killed
//!   and [restarted](NotaryServer::restart) and still serve, and sign for, every repository.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::{self, Req};
use super::postgres::Postgres;
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

/// notary-server's tables for PostgreSQL, as its SQL storage reads and writes them: every
/// version of every role's file per GUN (`tuf_files`; the `deleted_at` column is gorm's soft
/// delete), and the feed of published changes (`changefeed`). Debian ships neither migrations nor
/// an automatic set-up; the columns follow notary's `server/storage/sql_models.go`.
const SERVER_SCHEMA: &str = "
CREATE TABLE tuf_files (
    id serial PRIMARY KEY,
    created_at timestamp NULL,
    updated_at timestamp NULL,
    deleted_at timestamp NULL,
    gun varchar(255) NOT NULL,
    role varchar(255) NOT NULL,
    version integer NOT NULL,
    data bytea NOT NULL,
    sha256 char(64) NULL,
    UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_sha256 ON tuf_files (sha256);
CREATE TABLE changefeed (
    id serial PRIMARY KEY,
    created_at timestamp DEFAULT CURRENT_TIMESTAMP,
    gun varchar(255) NOT NULL,
    version integer NOT NULL,
    sha256 char(64) NULL,
    category varchar(20) NOT NULL DEFAULT 'update'
);
CREATE INDEX changefeed_gun ON changefeed (gun);
";

pub struct NotaryServer {
    // Field order is drop order: the server, then the signer and the database it uses.
    child: ChildGuard,
    port: u16,
    pub ca: TestCa,
    dir: PathBuf,
    config_path: PathBuf,
    starts: u32,
    signer: Option<NotarySigner>,
    db: Option<Postgres>,
}

impl NotaryServer {
    /// Start notary-server on a free port with a fresh CA under `dir`: memory storage, keys in
    /// the server itself.
    pub fn start(dir: &Path) -> NotaryServer {
        fs::create_dir_all(dir).expect("notary dir");
        let ca = TestCa::create(&dir.join("tls"));
        let (trust_service, storage) = (
            serde_json::json!({"type": "local"}),
            serde_json::json!({"backend": "memory"}),
        );
        Self::start_with(dir, ca, trust_service, storage, None, None)
    }

    /// Start notary-server with its data in a fresh PostgreSQL database and its keys in a
    /// notary-signer (memory key storage; the signer is never the process a test kills).
    pub fn start_durable(dir: &Path) -> NotaryServer {
        fs::create_dir_all(dir).expect("notary dir");
        let ca = TestCa::create(&dir.join("tls"));
        let db = Postgres::start();
        db.create_database("notaryserver", SERVER_SCHEMA);
        let signer = NotarySigner::start(&dir.join("signer"), &ca);
        let trust_service = serde_json::json!({
            "type": "remote",
            "hostname": "127.0.0.1",
            "port": signer.port.to_string(),
            "tls_ca_file": ca.ca_cert,
            "key_algorithm": "ecdsa",
        });
        let storage = serde_json::json!({
            "backend": "postgres",
            "db_url": db.url("notaryserver"),
        });
        Self::start_with(dir, ca, trust_service, storage, Some(signer), Some(db))
    }

    fn start_with(
        dir: &Path,
        ca: TestCa,
        trust_service: serde_json::Value,
        storage: serde_json::Value,
        signer: Option<NotarySigner>,
        db: Option<Postgres>,
    ) -> NotaryServer {
        let port = proc::free_port();
        let config = serde_json::json!({
            "server": {
                "http_addr": format!("127.0.0.1:{port}"),
                "tls_key_file": ca.server_key,
                "tls_cert_file": ca.server_cert,
            },
            "trust_service": trust_service,
            "storage": storage,
            "logging": {"level": "info"},
        });
        let config_path = write_config(dir, "server-config.json", &config);
        let child = spawn_server(&config_path, port, &ca, dir, "notary-server");
        NotaryServer {
            child,
            port,
            ca,
            dir: dir.to_path_buf(),
            config_path,
            starts: 1,
            signer,
            db,
        }
    }

    /// The server's PID (of its current run).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// SIGKILL the server (by PID) and wait for it; its signer and database keep running.
    pub fn kill(&mut self) {
        self.child.stop();
    }

    /// Start the server again on the same port with the same configuration, and wait until it
    /// answers its health check. Only a [durable](NotaryServer::start_durable) server still
    /// has its repositories afterwards.
    pub fn restart(&mut self) {
        self.child.stop();
        self.starts += 1;
        let name = format!("notary-server-run{}", self.starts);
        self.child = spawn_server(&self.config_path, self.port, &self.ca, &self.dir, &name);
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

    /// The server's logs (its current run), then the signer's and the database's if any.
    pub fn logs(&self) -> String {
        let mut logs = self.child.logs();
        if let Some(signer) = &self.signer {
            logs.push('\n');
            logs.push_str(&signer.child.logs());
        }
        if let Some(db) = &self.db {
            logs.push('\n');
            logs.push_str(&db.logs());
        }
        logs
    }

    pub fn stop(&mut self) {
        self.child.stop();
    }
}

/// Write a server's JSON configuration as `dir/name`.
fn write_config(dir: &Path, name: &str, config: &serde_json::Value) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, serde_json::to_vec_pretty(config).expect("json")).expect("write config");
    path
}

/// Spawn notary-server with `config_path` and wait for its health check on `port`.
fn spawn_server(config_path: &Path, port: u16, ca: &TestCa, dir: &Path, name: &str) -> ChildGuard {
    let mut cmd = Command::new(tools::notary_server());
    cmd.arg("-config").arg(config_path);
    let mut child = ChildGuard::spawn(name, cmd, dir);
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
    child
}

/// notary-signer: holds the timestamp and snapshot keys of the repositories a notary-server
/// manages, and signs for it over gRPC with TLS (the CA's server certificate; no client
/// certificates). Keys in memory: it lives as long as the test.
pub struct NotarySigner {
    child: ChildGuard,
    port: u16,
}

impl NotarySigner {
    fn start(dir: &Path, ca: &TestCa) -> NotarySigner {
        fs::create_dir_all(dir).expect("signer dir");
        let port = proc::free_port();
        let config = serde_json::json!({
            "server": {
                "grpc_addr": format!("127.0.0.1:{port}"),
                "tls_cert_file": ca.server_cert,
                "tls_key_file": ca.server_key,
            },
            "storage": {"backend": "memory"},
            "logging": {"level": "info"},
        });
        let config_path = write_config(dir, "signer-config.json", &config);
        let mut cmd = Command::new(tools::notary_signer());
        cmd.arg("-config").arg(&config_path);
        let mut child = ChildGuard::spawn("notary-signer", cmd, dir);
        let listening = proc::wait_until(Duration::from_secs(20), || {
            child.is_alive() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(listening, "notary-signer did not start:\n{}", child.logs());
        NotarySigner { child, port }
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
