use super::*;
use base64::Engine as _;
use std::time::Duration;

const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn entry(user: &str, pw: &str) -> String {
    format!("{user}:{}\n", bcrypt::hash(pw, 4).expect("hash"))
}

fn basic(user: &str, pw: &str) -> Vec<u8> {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
    .into_bytes()
}

/// No delays unless a test asks for them.
const NO_BACKOFF: Backoff = Backoff {
    free_failures: u32::MAX,
    first_delay: Duration::ZERO,
    max_delay: Duration::ZERO,
    window: Duration::from_secs(60),
};

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Fixture {
    fn new(text: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, text).unwrap();
        Fixture { _dir: dir, path }
    }

    fn gate(&self, access: Vec<AccessRule>, backoff: Backoff) -> Gate {
        Gate::new(&self.path, "trustgate-test", access, backoff).unwrap()
    }

    /// `[auth]` naming this file, with these rules.
    fn config(&self, access: Vec<AccessRule>) -> AuthConfig {
        AuthConfig {
            htpasswd: Some(self.path.clone()),
            realm: "trustgate-test".into(),
            access,
        }
    }
}

fn rule(users: &[&str], repos: &[&str]) -> AccessRule {
    AccessRule {
        users: users.iter().map(|s| s.to_string()).collect(),
        repositories: repos.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn the_right_password_logs_in_and_is_remembered() {
    let fx = Fixture::new(&(entry("alice", "alice-pw") + &entry("bob", "bob-pw")));
    let gate = fx.gate(vec![], NO_BACKOFF);
    let user = gate
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .unwrap();
    assert_eq!(user, "alice");
    assert_eq!(gate.verifications(), 1);
    for _ in 0..20 {
        gate.authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
            .await
            .unwrap();
    }
    assert_eq!(gate.verifications(), 1, "later requests hit the cache");
    // Another password for the same user is checked again, and fails.
    assert!(gate
        .authenticate(Some(&basic("alice", "alice-pw2")), CLIENT)
        .await
        .is_err());
    assert_eq!(gate.verifications(), 2);
}

#[tokio::test]
async fn an_entry_written_by_the_htpasswd_tool_logs_in() {
    let fx = Fixture::new(&format!("{}\n", htpasswd::tests::ALICE));
    let gate = fx.gate(vec![], NO_BACKOFF);
    assert_eq!(
        gate.authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
            .await
            .unwrap(),
        "alice"
    );
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = fx.gate(vec![], NO_BACKOFF);
    let wrong = gate
        .authenticate(Some(&basic("alice", "nope")), CLIENT)
        .await
        .unwrap_err();
    assert_eq!(gate.verifications(), 1);
    let unknown = gate
        .authenticate(Some(&basic("mallory", "nope")), CLIENT)
        .await
        .unwrap_err();
    // The unknown user's password was checked too (against the made-up hash), so the answer
    // takes as long.
    assert_eq!(gate.verifications(), 2);
    assert!(matches!(wrong, AuthError::BadCredentials { .. }));
    assert!(matches!(unknown, AuthError::BadCredentials { .. }));
    let (a, b) = (gate.refusal(&wrong), gate.refusal(&unknown));
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        (a.status, a.body(), &a.headers),
        (b.status, b.body(), &b.headers)
    );
    let body: serde_json::Value = serde_json::from_slice(&a.body()).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("wrong user name or password"),
        "{body}"
    );
    // The made-up hash has the file's cost.
    let live = gate.current();
    assert!(
        live.users.dummy.starts_with("$2b$04$"),
        "{}",
        live.users.dummy
    );
}

#[tokio::test]
async fn missing_or_foreign_credentials_get_the_basic_challenge() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = fx.gate(vec![], NO_BACKOFF);
    for header in [None, Some(&b"Bearer token"[..]), Some(&b"Basic %%%"[..])] {
        let e = gate.authenticate(header, CLIENT).await.unwrap_err();
        assert!(
            matches!(e, AuthError::Missing | AuthError::Malformed),
            "{e}"
        );
        let api = gate.refusal(&e);
        assert_eq!(api.status, StatusCode::UNAUTHORIZED);
        assert_eq!(api.code, "UNAUTHORIZED");
        assert!(
            api.message.contains("authentication required"),
            "{}",
            api.message
        );
        assert_eq!(
            api.headers,
            vec![(
                header::WWW_AUTHENTICATE,
                "Basic realm=\"trustgate-test\"".to_string()
            )]
        );
    }
    assert_eq!(
        gate.verifications(),
        0,
        "no bcrypt work without credentials"
    );
}

#[tokio::test(start_paused = true)]
async fn repeated_failures_are_answered_later_and_successes_are_not() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let backoff = Backoff {
        free_failures: 2,
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
        window: Duration::from_secs(600),
    };
    let gate = fx.gate(vec![], backoff);
    let mut held = Vec::new();
    for _ in 0..6 {
        let t = tokio::time::Instant::now();
        let r = gate
            .authenticate(Some(&basic("alice", "guess")), CLIENT)
            .await;
        assert!(r.is_err());
        held.push(t.elapsed().as_secs());
    }
    assert_eq!(held, [0, 0, 1, 2, 4, 4]);
    // Another address is not affected.
    let t = tokio::time::Instant::now();
    let other: IpAddr = "10.1.2.3".parse().unwrap();
    assert!(gate
        .authenticate(Some(&basic("alice", "guess")), other)
        .await
        .is_err());
    assert_eq!(t.elapsed().as_secs(), 0);
    // The right password from the throttled address is answered at once.
    let t = tokio::time::Instant::now();
    gate.authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .unwrap();
    assert_eq!(t.elapsed().as_secs(), 0);
    // A missing header is not a failure (docker's first ping has none).
    for _ in 0..10 {
        let t = tokio::time::Instant::now();
        assert!(gate.authenticate(None, CLIENT).await.is_err());
        assert_eq!(t.elapsed().as_secs(), 0);
    }
}

#[test]
fn access_rules_limit_users_to_their_globs() {
    let none = Access::new(vec![]);
    assert!(none.allows("anyone", "docker.io/library/alpine"));
    let a = Access::new(vec![
        rule(&["ci-bot"], &["docker.io/library/*"]),
        rule(
            &["alice", "bob"],
            &["127.0.0.1:5000/team/*", "ghcr.io/o/app"],
        ),
        rule(&["*"], &["docker.io/library/busybox"]),
    ]);
    assert!(a.allows("ci-bot", "docker.io/library/alpine"));
    assert!(!a.allows("ci-bot", "docker.io/user/app"));
    assert!(!a.allows("ci-bot", "127.0.0.1:5000/team/app"));
    assert!(a.allows("bob", "127.0.0.1:5000/team/sub/app"));
    assert!(a.allows("alice", "ghcr.io/o/app"));
    assert!(!a.allows("alice", "ghcr.io/o/app2"));
    assert!(!a.allows("alice", "docker.io/library/alpine"));
    assert!(a.allows("alice", "docker.io/library/busybox"), "\"*\" rule");
    assert!(!a.allows("carol", "docker.io/library/alpine"));
    assert!(a.allows("carol", "docker.io/library/busybox"));
}

#[test]
fn a_denial_names_user_and_repository() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = fx.gate(vec![rule(&["alice"], &["docker.io/library/*"])], NO_BACKOFF);
    assert!(gate.authorize("alice", "docker.io/library/alpine").is_ok());
    let e = gate.authorize("alice", "docker.io/evil/app").unwrap_err();
    let api = gate.refusal(&e);
    assert_eq!(api.status, StatusCode::FORBIDDEN);
    assert_eq!(api.code, "DENIED");
    assert_eq!(api.message, "user alice may not pull docker.io/evil/app");
    assert!(api.headers.is_empty());
}

#[tokio::test]
async fn reload_swaps_the_users_and_forgets_remembered_logins() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = fx.gate(vec![], NO_BACKOFF);
    gate.authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .unwrap();
    assert!(gate
        .authenticate(Some(&basic("bob", "bob-pw")), CLIENT)
        .await
        .is_err());

    std::fs::write(&fx.path, entry("bob", "bob-pw")).unwrap();
    let summary = gate.reload(&fx.config(vec![])).unwrap();
    assert_eq!(
        summary,
        format!(
            "{}: 1 user (1 added, 1 removed, 0 changed); 0 access rules (unchanged)",
            fx.path.display()
        )
    );
    assert_eq!(
        gate.authenticate(Some(&basic("bob", "bob-pw")), CLIENT)
            .await
            .unwrap(),
        "bob"
    );
    // alice was remembered, but is gone from the new file.
    assert!(gate
        .authenticate(Some(&basic("alice", "alice-pw")), CLIENT)
        .await
        .is_err());

    // A bad new file keeps the users in force and says what is wrong.
    std::fs::write(&fx.path, "carol:$apr1$6/pqEV72$z/gHYk8zeqeBiK3/mOJb10\n").unwrap();
    let e = gate.reload(&fx.config(vec![])).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("htpasswd line 1: user \"carol\": MD5"),
        "{msg}"
    );
    assert!(msg.starts_with(&fx.path.display().to_string()), "{msg}");
    assert_eq!(
        gate.authenticate(Some(&basic("bob", "bob-pw")), CLIENT)
            .await
            .unwrap(),
        "bob"
    );
    std::fs::write(&fx.path, "# nobody\n").unwrap();
    assert!(matches!(
        gate.reload(&fx.config(vec![])),
        Err(AuthError::NoUsers { .. })
    ));
    std::fs::remove_file(&fx.path).unwrap();
    assert!(matches!(
        gate.reload(&fx.config(vec![])),
        Err(AuthError::Read { .. })
    ));
    assert!(gate
        .authenticate(Some(&basic("bob", "bob-pw")), CLIENT)
        .await
        .is_ok());
}

#[test]
fn load_errors_name_the_file_and_line() {
    let fx = Fixture::new(&(entry("alice", "a") + "bob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n"));
    let e = Gate::new(&fx.path, "r", vec![], NO_BACKOFF).err().unwrap();
    assert_eq!(
        e.to_string(),
        format!(
            "{} line 2: user \"bob\": SHA-1 ({{SHA}}, htpasswd -s) entry; only bcrypt entries are accepted; recreate it with htpasswd -B",
            fx.path.display()
        )
    );
}

#[tokio::test]
async fn reload_swaps_the_access_rules_with_the_users() {
    let alice = entry("alice", "alice-pw");
    let fx = Fixture::new(&(alice.clone() + &entry("bob", "bob-pw")));
    let gate = fx.gate(vec![rule(&["alice"], &["docker.io/library/*"])], NO_BACKOFF);
    assert!(gate.authorize("alice", "docker.io/library/alpine").is_ok());
    assert!(gate.authorize("bob", "docker.io/library/alpine").is_err());

    // The file is unchanged apart from bob's new password; the rules now let bob pull too.
    std::fs::write(&fx.path, alice + &entry("bob", "bob-pw2")).unwrap();
    let rules = vec![
        rule(&["alice"], &["docker.io/library/*"]),
        rule(&["bob"], &["docker.io/library/alpine"]),
    ];
    let summary = gate.reload(&fx.config(rules.clone())).unwrap();
    assert!(
        summary.ends_with("2 users (0 added, 0 removed, 1 changed); 2 access rules (changed)"),
        "{summary}"
    );
    assert!(gate.authorize("bob", "docker.io/library/alpine").is_ok());
    assert!(gate.authorize("bob", "docker.io/library/busybox").is_err());
    assert_eq!(
        gate.authenticate(Some(&basic("bob", "bob-pw2")), CLIENT)
            .await
            .unwrap(),
        "bob"
    );

    // The same again: nothing changed, and the line says so.
    let summary = gate.reload(&fx.config(rules.clone())).unwrap();
    assert!(
        summary.ends_with("2 users (0 added, 0 removed, 0 changed); 2 access rules (unchanged)"),
        "{summary}"
    );

    // No rules at all: every user may pull everything again.
    gate.reload(&fx.config(vec![])).unwrap();
    assert!(gate.authorize("bob", "ghcr.io/o/app").is_ok());
}

#[test]
fn a_failed_reload_keeps_the_old_rules_and_users() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = fx.gate(vec![rule(&["alice"], &["docker.io/library/*"])], NO_BACKOFF);
    std::fs::write(&fx.path, "alice:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n").unwrap();
    // New rules that would let alice pull anything, with a file that does not load.
    let e = gate
        .reload(&fx.config(vec![rule(&["alice"], &["*"])]))
        .unwrap_err();
    assert!(matches!(e, AuthError::Htpasswd { .. }), "{e}");
    assert_eq!(e.config_key(), "auth.htpasswd");
    assert!(
        gate.authorize("alice", "ghcr.io/o/app").is_err(),
        "old rules"
    );
    assert_eq!(gate.user_count(), 1);
}

#[test]
fn a_reload_never_turns_authentication_off() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = fx.gate(vec![rule(&["alice"], &["docker.io/library/*"])], NO_BACKOFF);
    let e = gate.reload(&AuthConfig::default()).unwrap_err();
    assert!(matches!(e, AuthError::NeedsRestart(_)), "{e}");
    assert!(e.to_string().contains("needs a restart"), "{e}");
    assert!(gate.authorize("alice", "ghcr.io/o/app").is_err());
}

#[test]
fn a_reload_can_move_the_file_and_change_the_realm() {
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let other = Fixture::new(&entry("carol", "carol-pw"));
    let gate = fx.gate(vec![], NO_BACKOFF);
    let mut config = other.config(vec![]);
    config.realm = "elsewhere".into();
    let summary = gate.reload(&config).unwrap();
    assert!(
        summary.starts_with(&format!(
            "{}: 1 user (1 added, 1 removed, 0 changed)",
            other.path.display()
        )),
        "{summary}"
    );
    assert!(
        summary.ends_with(&format!(
            "; htpasswd was {}; realm changed",
            fx.path.display()
        )),
        "{summary}"
    );
    assert_eq!(gate.htpasswd_path(), other.path);
    let api = gate.refusal(&AuthError::Missing);
    assert_eq!(
        api.headers,
        vec![(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"elsewhere\"".to_string()
        )]
    );
}

#[test]
fn from_config_without_htpasswd_is_no_gate() {
    assert!(Gate::from_config(&AuthConfig::default()).unwrap().is_none());
    let fx = Fixture::new(&entry("alice", "alice-pw"));
    let gate = Gate::from_config(&fx.config(vec![])).unwrap().unwrap();
    assert_eq!(gate.user_count(), 1);
    let missing = AuthConfig {
        htpasswd: Some(fx.path.with_extension("missing")),
        ..AuthConfig::default()
    };
    let e = Gate::from_config(&missing).err().unwrap();
    assert!(matches!(e, AuthError::Read { .. }), "{e}");
}
