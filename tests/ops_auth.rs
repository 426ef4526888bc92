//! Client authentication (`[auth]`, issue #6) against the real binary, with the real CNCF
//! registry as upstream and the real clients: skopeo `--creds`, `docker login` + `docker pull`
//! (Debian's dockerd and /usr/bin/docker), `podman login` + `podman pull`, and plain HTTP for the
//! exact 401/403 answers, the failure throttle and SIGHUP reloads.
//!
//! htpasswd entries are made with the bcrypt crate at cost 4 (the lowest) for speed; one test
//! uses an entry written by Apache's `htpasswd -B` itself.
// The interop harness drives real processes (registry, notary-server, dockerd, the trustgate
// binary) and waits on them in wall-clock time with blocking calls, so std's Instant and
// thread::sleep are right here; clippy.toml bans them where time is injected.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::Dockerd;
use support::http::{self, Req, Response, MANIFEST_ACCEPT};
use support::image::{ImageSpec, Layout};
use support::podman::Podman;
use support::proc;
use support::registry::{Creds, Registry};
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{PolicySpec, Trustgate, TrustgateOptions, UpstreamConfig};
use support::{timed, TestDir};

const REALM: &str = "trustgate-test";

fn alice() -> Creds {
    Creds::new("alice", "alice-pw")
}
fn bob() -> Creds {
    Creds::new("bob", "bob-pw")
}

/// An htpasswd line for `c` (bcrypt, cost 4).
fn entry(c: &Creds) -> String {
    format!(
        "{}:{}\n",
        c.username,
        bcrypt::hash(&c.password, 4).expect("bcrypt")
    )
}

/// A registry with demo/app:v1 and demo/other:v1, and trustgate in front of it requiring the
/// users of `users` (plus `access` TOML appended to `[auth]`, with `{UP}` standing for the
/// upstream's name, known only once the registry runs).
struct Fixture {
    // Field order is drop order: trustgate first, then the registry, then the folder.
    tg: Trustgate,
    reg: Registry,
    skopeo: Skopeo,
    app: Layout,
    htpasswd: PathBuf,
    t: TestDir,
}

impl Fixture {
    fn new(name: &str, users: &[Creds], access: &str) -> Fixture {
        Fixture::with_policies(name, users, access, &[])
    }

    /// Also `[[policy]]` tables (globs with `{UP}`, trust mode).
    fn with_policies(
        name: &str,
        users: &[Creds],
        access: &str,
        policies: &[(&str, &str)],
    ) -> Fixture {
        let t = TestDir::new(name);
        let reg = Registry::start(&t.sub("registry"));
        let skopeo = Skopeo::new(&t.sub("skopeo"));
        let app = Layout::image(&t.sub("img-app"), &ImageSpec::small("app", 2));
        let other = Layout::image(&t.sub("img-other"), &ImageSpec::small("other", 1));
        app.push(&skopeo, &reg.host(), "demo/app", "v1", None);
        other.push(&skopeo, &reg.host(), "demo/other", "v1", None);
        let htpasswd = t.path().join("htpasswd");
        fs::write(&htpasswd, users.iter().map(entry).collect::<String>()).expect("htpasswd");
        let tg = Trustgate::start(
            &t.sub("trustgate"),
            TrustgateOptions {
                upstreams: vec![UpstreamConfig::default_for(&reg)],
                extra_toml: format!(
                    "[auth]\nhtpasswd = {:?}\nrealm = {REALM:?}\n{}",
                    htpasswd.display().to_string(),
                    access.replace("{UP}", &reg.host())
                ),
                policies: policies
                    .iter()
                    .map(|(glob, mode)| {
                        PolicySpec::new(&[glob.replace("{UP}", &reg.host()).as_str()], mode)
                    })
                    .collect(),
                ..Default::default()
            },
        );
        Fixture {
            tg,
            reg,
            skopeo,
            app,
            htpasswd,
            t,
        }
    }

    fn get(&self, path: &str, creds: Option<&Creds>) -> Response {
        self.request(path, creds, "GET")
    }

    fn request(&self, path: &str, creds: Option<&Creds>, method: &str) -> Response {
        http::request(
            &format!("{}{path}", self.tg.url()),
            &Req {
                method: Some(method),
                accept: Some(MANIFEST_ACCEPT),
                basic_auth: creds.map(|c| (c.username.as_str(), c.password.as_str())),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.tg.logs()))
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.tg.logs(), self.reg.logs())
    }

    /// Whether a request line (the one written per request) for a path starting with `path`
    /// names `user`.
    fn request_logged_for(&self, path: &str, user: &str) -> bool {
        self.tg.log().lines().any(|l| {
            l.contains("trustgate::api::server: request method=")
                && l.contains(&format!(" path={path}"))
                && l.contains(&format!(" user=\"{user}\""))
        })
    }

    /// How many times trustgate logged `needle` so far.
    fn log_count(&self, needle: &str) -> usize {
        self.tg.log().matches(needle).count()
    }
}

/// The 401 every refused login gets: status, challenge, OCI body with `message_part`.
fn assert_challenge(r: &Response, message_part: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("Basic realm=\"{REALM}\"").as_str())
    );
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON error body");
    assert_eq!(v["errors"][0]["code"], "UNAUTHORIZED", "{v}");
    let msg = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.contains(message_part), "{v}");
}

#[test]
fn plain_http_challenge_and_identical_refusals() {
    // Audit mode on demo/*: each tag resolution writes an audit line (the registry has no
    // Notary server, so "enforce would refuse"), which must name the user.
    let fx = Fixture::with_policies("auth-http", &[alice()], "", &[("{UP}/demo/*", "audit")]);
    // The ping too needs a login: that is how docker login finds out it must send credentials.
    let ping = fx.get("/v2/", None);
    assert_challenge(&ping, "authentication required");
    let manifest = fx.get("/v2/demo/app/manifests/v1", None);
    assert_challenge(&manifest, "authentication required");
    let head = fx.request("/v2/demo/app/manifests/v1", None, "HEAD");
    assert_eq!(head.status, 401);
    assert!(head.header("www-authenticate").is_some());
    assert!(head.body.is_empty());
    let bearer = http::request(
        &format!("{}/v2/", fx.tg.url()),
        &Req {
            headers: vec![("Authorization", "Bearer some-token")],
            ..Default::default()
        },
    )
    .unwrap();
    assert_challenge(&bearer, "authentication required");

    // Unknown user and wrong password: the same answer, byte for byte.
    let wrong = fx.get("/v2/", Some(&Creds::new("alice", "not-it")));
    let unknown = fx.get("/v2/", Some(&Creds::new("mallory", "not-it")));
    assert_challenge(&wrong, "wrong user name or password");
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    for h in ["www-authenticate", "content-type", "content-length"] {
        assert_eq!(wrong.header(h), unknown.header(h), "{h}");
    }
    // The operator's log tells them apart.
    let log = fx.tg.log();
    assert!(log.contains("reason=\"wrong password\""), "{log}");
    assert!(log.contains("reason=\"unknown user\""), "{log}");

    // With the right password: the ping, a manifest, a blob; the user is on the request lines.
    let ok = fx.get("/v2/", Some(&alice()));
    assert_eq!(ok.status, 200, "{}", ok.text());
    let m = fx.get("/v2/demo/app/manifests/v1", Some(&alice()));
    assert_eq!(m.status, 200, "{}\n{}", m.text(), fx.logs());
    assert_eq!(
        m.header("docker-content-digest"),
        Some(fx.app.digest.as_str())
    );
    let blob = &fx.app.blob_digests()[0];
    let b = fx.get(&format!("/v2/demo/app/blobs/{blob}"), Some(&alice()));
    assert_eq!(b.status, 200);
    assert_eq!(&http::sha256_digest(&b.body), blob);
    assert!(
        fx.request_logged_for("/v2/demo/app/manifests/v1", "alice"),
        "request lines name the user:\n{}",
        fx.tg.log()
    );
    assert!(
        fx.tg.log().lines().any(|l| l.contains("trust decision")
            && l.contains("user=alice")
            && l.contains("demo/app:v1")),
        "the audit line names the user:\n{}",
        fx.tg.log()
    );
}

#[test]
fn skopeo_with_without_and_with_wrong_credentials() {
    let fx = Fixture::new("auth-skopeo", &[alice()], "");
    let image = format!("{}/demo/app:v1", fx.tg.host());

    let out = fx.skopeo.inspect_raw(&image, None);
    out.assert_failure();
    assert!(
        out.stderr.contains("authentication required"),
        "skopeo shows trustgate's message: {out}"
    );
    let out = fx
        .skopeo
        .inspect_raw(&image, Some(&Creds::new("alice", "wrong")));
    out.assert_failure();
    assert!(
        out.stderr.contains("wrong user name or password"),
        "skopeo shows trustgate's message: {out}"
    );

    let through = fx.t.sub("through");
    let out = timed("skopeo copy with --creds", || {
        fx.skopeo
            .copy_to_dir(&image, &through, false, Some(&alice()))
    });
    assert!(out.success(), "{out}\n{}", fx.logs());
    assert_same_tree(&fx.app.dir, &through);
}

#[test]
fn access_rules_limit_a_user_to_their_repositories() {
    let access = "[[auth.access]]\nusers = [\"alice\"]\nrepositories = [\"{UP}/demo/app\"]\n\
                  [[auth.access]]\nusers = [\"*\"]\nrepositories = [\"{UP}/public/*\"]\n\
                  [[auth.access]]\nusers = [\"bob\"]\nrepositories = [\"{UP}/demo/*\"]\n";
    let fx = Fixture::new("auth-access", &[alice(), bob()], access);

    // alice: demo/app only.
    let ok = fx.get("/v2/demo/app/manifests/v1", Some(&alice()));
    assert_eq!(ok.status, 200, "{}\n{}", ok.text(), fx.logs());
    let gun_other = format!("{}/demo/other", fx.reg.host());
    for path in [
        "/v2/demo/other/manifests/v1",
        "/v2/demo/other/tags/list",
        &format!("/v2/demo/other/blobs/{}", fx.app.blob_digests()[0]),
    ] {
        let r = fx.get(path, Some(&alice()));
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["errors"][0]["code"], "DENIED");
        assert_eq!(
            v["errors"][0]["message"],
            format!("user alice may not pull {gun_other}")
        );
        assert!(r.header("www-authenticate").is_none());
    }
    // The ping needs only valid credentials.
    assert_eq!(fx.get("/v2/", Some(&alice())).status, 200);
    // bob: all of demo/.
    assert_eq!(
        fx.get("/v2/demo/other/manifests/v1", Some(&bob())).status,
        200
    );
    assert_eq!(fx.get("/v2/demo/app/tags/list", Some(&bob())).status, 200);
    // skopeo shows the refusal in trustgate's words.
    let out = fx
        .skopeo
        .inspect_raw(&format!("{}/demo/other:v1", fx.tg.host()), Some(&alice()));
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("user alice may not pull {gun_other}")),
        "{out}"
    );
    // The refusal is on trustgate's log line too.
    assert!(
        fx.tg
            .log()
            .contains(&format!("user alice may not pull {gun_other}")),
        "{}",
        fx.tg.log()
    );
}

#[test]
fn docker_login_then_pull() {
    let fx = Fixture::new("auth-docker", &[alice()], "");
    let dockerd = timed("dockerd start", || Dockerd::start(&fx.t.sub("dockerd")));
    let host = fx.tg.host();
    let image = format!("{host}/demo/app:v1");

    // Not logged in: refused (dockerd answers the Basic challenge itself: it has nothing to send).
    let out = dockerd.pull(&image);
    out.assert_failure();
    assert!(out.stderr.contains("no basic auth credentials"), "{out}");

    // 127.0.0.0/8 is an insecure registry for dockerd: it falls back to plain http.
    let out = dockerd.run(&["login", "-u", "alice", "-p", "wrong-pw", &host]);
    out.assert_failure();
    assert!(
        out.stderr.contains("401") || out.stderr.contains("unauthorized"),
        "{out}"
    );

    let out = dockerd.run(&["login", "-u", "alice", "-p", "alice-pw", &host]);
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), dockerd.log());
    assert!(out.stdout.contains("Login Succeeded"), "{out}");

    let out = timed("docker pull after login", || dockerd.pull(&image));
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), dockerd.log());
    assert_eq!(
        dockerd.repo_digests(&image),
        vec![format!("{host}/demo/app@{}", fx.app.digest)]
    );
    assert!(
        fx.request_logged_for("/v2/demo/app/blobs/", "alice"),
        "{}",
        fx.tg.log()
    );
    // The login's bcrypt check was the only one: the pull's requests hit the login cache.
    let log = fx.tg.log();
    let requests = log
        .lines()
        .filter(|l| l.contains("request method=") && l.contains("user=\"alice\""))
        .count();
    let checks = log
        .lines()
        .filter(|l| l.contains("password checked with bcrypt") && l.contains("matched=true"))
        .count();
    assert!(requests >= 5, "{log}");
    assert_eq!(checks, 1, "{log}");
}

#[test]
fn podman_login_then_pull() {
    let fx = Fixture::new("auth-podman", &[alice()], "");
    let podman = Podman::new(&fx.t.sub("podman"));
    let host = fx.tg.host();
    let image = format!("{host}/demo/app:v1");

    let out = podman.pull(&image, None);
    out.assert_failure();
    let out = podman.run(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "wrong-pw",
        &host,
    ]);
    out.assert_failure();
    let out = podman.run(&[
        "login",
        "--tls-verify=false",
        "-u",
        "alice",
        "-p",
        "alice-pw",
        &host,
    ]);
    assert!(out.success(), "{out}\n{}", fx.logs());
    // The login is in podman's auth file now: no --creds.
    let out = timed("podman pull after login", || podman.pull(&image, None));
    assert!(out.success(), "{out}\n{}", fx.logs());
    assert_eq!(podman.image_digest(&image), fx.app.digest);
}

#[test]
fn repeated_failures_from_one_address_are_held_back() {
    let fx = Fixture::new("auth-throttle", &[alice()], "");
    let backoff = trustgate::auth::throttle::DEFAULT_BACKOFF;
    let wrong = Creds::new("alice", "guess");
    const HELD: &str = "answer held back";
    for i in 0..backoff.free_failures {
        let r = fx.get("/v2/", Some(&wrong));
        assert_eq!(r.status, 401, "attempt {i}");
    }
    assert_eq!(fx.log_count(HELD), 0, "the first failures are free");
    // Missing credentials (every client's first ping) are not failures.
    for _ in 0..3 {
        assert_eq!(fx.get("/v2/", None).status, 401);
    }
    let started = Instant::now();
    let r = fx.get("/v2/", Some(&wrong));
    let took = started.elapsed();
    assert_challenge(&r, "wrong user name or password");
    assert!(
        took >= backoff.first_delay,
        "the answer came after {took:?}, before the throttle's {:?}",
        backoff.first_delay
    );
    assert_eq!(fx.log_count(HELD), 1, "{}", fx.tg.log());
    let expected = format!(
        "failures={} delay_ms={}",
        backoff.free_failures + 1,
        backoff.first_delay.as_millis()
    );
    assert!(fx.tg.log().contains(&expected), "{}", fx.tg.log());

    // The right password from the same address is not held back.
    let ok = fx.get("/v2/", Some(&alice()));
    assert_eq!(ok.status, 200);
    assert_eq!(fx.log_count(HELD), 1);
}

/// Writes `users` to the htpasswd file, sends SIGHUP and waits for trustgate to log the outcome.
fn reload(fx: &Fixture, text: &str, outcome: &str) {
    fs::write(&fx.htpasswd, text).expect("rewrite htpasswd");
    hangup(fx, outcome);
}

/// Sends SIGHUP and waits for trustgate to log `outcome` once more.
fn hangup(fx: &Fixture, outcome: &str) {
    let before = fx.log_count(outcome);
    proc::signal(fx.tg.pid(), "HUP");
    assert!(
        proc::wait_until(Duration::from_secs(10), || fx.log_count(outcome) > before),
        "no {outcome:?} after SIGHUP:\n{}",
        fx.tg.log()
    );
}

/// Rewrites trustgate's configuration file with `from` replaced by `to`.
fn edit_config(fx: &Fixture, from: &str, to: &str) {
    let path = fx.tg.config_path();
    let text = fs::read_to_string(path).expect("read config");
    assert!(text.contains(from), "{from:?} not in\n{text}");
    fs::write(path, text.replace(from, to)).expect("rewrite config");
}

const RELOADED: &str = "SIGHUP: reloaded what=\"client logins";

#[test]
fn sighup_reloads_the_access_rules_and_names_what_needs_a_restart() {
    let access = "[[auth.access]]\nusers = [\"alice\"]\nrepositories = [\"{UP}/demo/app\"]\n";
    let fx = Fixture::new("auth-hup-access", &[alice()], access);
    let up = fx.reg.host();
    assert_eq!(
        fx.get("/v2/demo/app/manifests/v1", Some(&alice())).status,
        200
    );
    assert_eq!(
        fx.get("/v2/demo/other/manifests/v1", Some(&alice())).status,
        403
    );

    // alice may pull all of demo/ after the reload; the log says the rules changed.
    edit_config(
        &fx,
        &format!("\"{up}/demo/app\""),
        &format!("\"{up}/demo/*\""),
    );
    hangup(&fx, RELOADED);
    assert!(
        fx.tg.log().contains("1 access rule (changed)"),
        "{}",
        fx.tg.log()
    );
    let r = fx.get("/v2/demo/other/manifests/v1", Some(&alice()));
    assert_eq!(r.status, 200, "{}\n{}", r.text(), fx.logs());

    // A file that does not validate changes nothing, and the log names the file, key and
    // problem.
    edit_config(&fx, "users = [\"alice\"]", "users = \"alice\"");
    hangup(&fx, "reload failed, keeping the configuration in force");
    let config = fx.tg.config_path().display().to_string();
    assert!(
        fx.tg
            .log()
            .lines()
            .any(|l| l.contains(&config) && l.contains("auth.access")),
        "{}",
        fx.tg.log()
    );
    assert_eq!(
        fx.get("/v2/demo/other/manifests/v1", Some(&alice())).status,
        200
    );

    // Back to one repository; a changed storage path is applied only by a restart, and said so.
    edit_config(&fx, "users = \"alice\"", "users = [\"alice\"]");
    edit_config(
        &fx,
        &format!("\"{up}/demo/*\""),
        &format!("\"{up}/demo/app\""),
    );
    let text = fs::read_to_string(fx.tg.config_path()).expect("read config");
    let storage = text
        .lines()
        .find(|l| l.starts_with("path = "))
        .expect("storage path line")
        .to_string();
    edit_config(&fx, &storage, "path = \"/tmp/tg-elsewhere\"");
    hangup(&fx, RELOADED);
    assert!(
        fx.tg.log().lines().any(|l| l.contains("WARN")
            && l.contains("takes effect only after a restart")
            && l.contains("section=\"storage\"")),
        "{}",
        fx.tg.log()
    );
    assert_eq!(
        fx.get("/v2/demo/other/manifests/v1", Some(&alice())).status,
        403
    );
    assert_eq!(
        fx.get("/v2/demo/app/manifests/v1", Some(&alice())).status,
        200
    );
}

#[test]
fn sighup_reloads_the_htpasswd_file() {
    let fx = Fixture::new("auth-hup", &[alice()], "");
    let carol = Creds::new("carol", "carol-pw");
    let dave = Creds::new("dave", "dave-pw");
    assert_eq!(fx.get("/v2/", Some(&alice())).status, 200);
    assert_eq!(fx.get("/v2/", Some(&carol)).status, 401);

    reload(&fx, &(entry(&alice()) + &entry(&carol)), RELOADED);
    assert_eq!(fx.get("/v2/", Some(&carol)).status, 200);

    // alice's login was remembered; removing her from the file ends it at the reload.
    reload(&fx, &(entry(&carol) + &entry(&dave)), RELOADED);
    assert_eq!(fx.get("/v2/", Some(&alice())).status, 401);

    // A bad file keeps the users in force (dave never logged in: no remembered check) and the
    // log names the line.
    reload(
        &fx,
        "carol:$apr1$6/pqEV72$z/gHYk8zeqeBiK3/mOJb10\n",
        "reload failed",
    );
    assert!(
        fx.tg.log().contains("line 1: user \"carol\": MD5"),
        "{}",
        fx.tg.log()
    );
    assert_eq!(fx.get("/v2/", Some(&dave)).status, 200);
}

#[test]
fn an_entry_from_apache_htpasswd_logs_in() {
    let fx = Fixture::new("auth-apache", &[bob()], "");
    let out = proc::run(
        {
            let mut c = Command::new(support::tools::htpasswd());
            c.args(["-nbB", "-C", "5", "erin", "erin-pw"]);
            c
        },
        Duration::from_secs(30),
        fx.t.path(),
    );
    out.assert_success();
    reload(
        &fx,
        &(entry(&bob()) + out.stdout.trim_end() + "\n"),
        RELOADED,
    );
    assert_eq!(
        fx.get("/v2/", Some(&Creds::new("erin", "erin-pw"))).status,
        200
    );
}

#[test]
fn check_config_names_the_bad_htpasswd_line() {
    let t = TestDir::new("auth-check");
    let htpasswd = t.path().join("htpasswd");
    fs::write(
        &htpasswd,
        entry(&alice()) + "# md5 below\nbob:$apr1$6/pqEV72$z/gHYk8zeqeBiK3/mOJb10\n",
    )
    .unwrap();
    let config = write_config(t.path(), &htpasswd);
    let out = check_config(t.path(), &config);
    out.assert_failure();
    let want = format!(
        "{}: auth.htpasswd: {} line 3: user \"bob\": MD5 ($apr1$, htpasswd -m) entry; only bcrypt entries are accepted",
        config.display(),
        htpasswd.display()
    );
    assert!(out.stderr.contains(&want), "{out}");

    fs::write(&htpasswd, entry(&alice())).unwrap();
    check_config(t.path(), &config).assert_success();
}

fn write_config(dir: &Path, htpasswd: &Path) -> PathBuf {
    let config = dir.join("trustgate.toml");
    fs::write(
        &config,
        format!(
            "[[upstream]]\nname = \"registry.local\"\nurl = \"http://127.0.0.1:9\"\ndefault = true\n\n\
             [auth]\nhtpasswd = {:?}\n",
            htpasswd.display().to_string()
        ),
    )
    .unwrap();
    config
}

fn check_config(dir: &Path, config: &Path) -> proc::CmdOutput {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
    cmd.arg("check-config").arg(config).env("NO_COLOR", "1");
    proc::run(cmd, Duration::from_secs(30), &dir.join("cli"))
}
