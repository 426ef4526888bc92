//! A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's `postgresql` package), for servers that
//! keep their data in SQL: notary-server 0.7 as Debian builds it has drivers for PostgreSQL and
//! MySQL but not SQLite, so a Notary server that survives its own restart needs one of them.
//!
//! The cluster lives in its own temporary folder, trusts every local connection (no password),
//! and is stopped by PID when dropped. PostgreSQL refuses to run as root: when the tests run as
//! root, `initdb` and `postgres` run as the `postgres` user (created by the package) or, failing
//! that, `nobody`, through util-linux's `setpriv`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::proc::{self, ChildGuard, CmdOutput};
use super::TestDir;

/// The role every database of the cluster belongs to.
const ROLE: &str = "trustgate";

/// Debian installs each major version under /usr/lib/postgresql/<major>/bin; the newest wins.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    match dirs.pop() {
        Some((_, bin)) if bin.join("initdb").is_file() && bin.join("psql").is_file() => bin,
        _ => panic!(
            "PostgreSQL not found under /usr/lib/postgresql/<version>/bin: install the Debian \
             package `postgresql` (run scripts/install-test-deps.sh as root)"
        ),
    }
}

/// `(uid, gid)` to run the server as, when the tests run as root.
fn unprivileged_ids() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id(&["-u"])? != 0 {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|user| Some((id(&["-u", user])?, id(&["-g", user])?)))
}

pub struct Postgres {
    // Field order is drop order: the server before its folder.
    child: ChildGuard,
    port: u16,
    bin: PathBuf,
    t: TestDir,
}

impl Postgres {
    /// `initdb` a fresh cluster and start it on a free port of 127.0.0.1.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let t = TestDir::new("postgres");
        let ids = unprivileged_ids();
        let data = t.sub("data");
        if let Some((uid, gid)) = ids {
            // The server's user must reach its data folder through the (root-owned) test folder.
            fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).expect("chown data dir");
        }
        let as_server_user = |program: PathBuf| -> Command {
            match ids {
                Some((uid, gid)) => {
                    let mut c = Command::new("setpriv");
                    c.arg(format!("--reuid={uid}"))
                        .arg(format!("--regid={gid}"))
                        .arg("--clear-groups")
                        .arg(program);
                    c
                }
                None => Command::new(program),
            }
        };
        let mut initdb = as_server_user(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-sync"])
            .current_dir(&data);
        proc::run(initdb, Duration::from_secs(120), &t.sub("initdb")).assert_success();

        let port = proc::free_port();
        let mut server = as_server_user(bin.join("postgres"));
        // The socket goes into the data folder (the server's user may not write the default
        // /var/run/postgresql); fsync off because what the tests kill is never PostgreSQL.
        server
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-p"])
            .arg(port.to_string())
            .current_dir(&data);
        let mut child = ChildGuard::spawn("postgres", server, &t.sub("logs"));
        let scratch = t.sub("psql");
        let ready = proc::wait_until(Duration::from_secs(30), || {
            child.is_alive() && psql(&bin, port, "postgres", "SELECT 1", &scratch).success()
        });
        assert!(ready, "PostgreSQL did not start:\n{}", child.logs());
        Postgres {
            child,
            port,
            bin,
            t,
        }
    }

    /// `CREATE DATABASE name`, then run `schema` (SQL) in it.
    pub fn create_database(&self, name: &str, schema: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))
            .assert_success();
        self.psql(name, schema).assert_success();
    }

    /// A `postgres://` URL of database `name` for lib/pq-style clients (notary-server).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{ROLE}@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// `psql -c SQL` against database `db`, stopping at the first error.
    pub fn psql(&self, db: &str, sql: &str) -> CmdOutput {
        psql(&self.bin, self.port, db, sql, &self.t.sub("psql"))
    }

    pub fn logs(&self) -> String {
        self.child.logs()
    }
}

fn psql(bin: &Path, port: u16, db: &str, sql: &str, scratch: &Path) -> CmdOutput {
    let mut c = Command::new(bin.join("psql"));
    c.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-U",
        ROLE,
    ])
    .arg("-p")
    .arg(port.to_string())
    .arg("-d")
    .arg(db)
    .arg("-c")
    .arg(sql);
    proc::run(c, Duration::from_secs(30), scratch)
}
