//! `trustgate check-config FILE` (the real binary): exit 0 and a summary for a valid file; exit 1
//! naming the file, the key and the problem otherwise, including every file the configuration
//! names (certificates, keys, htpasswd, CA bundles, password files) that is missing or unreadable.

use std::path::Path;
use std::process::Command;

fn check(file: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .arg("check-config")
        .arg(file)
        .env("NO_COLOR", "1")
        .output()
        .expect("run trustgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_shipped_config_is_valid() {
    let (ok, text) = check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trustgate.toml"));
    assert!(ok, "{text}");
    assert!(
        text.contains("valid (1 upstream, listening on 127.0.0.1:5000)"),
        "{text}"
    );
}

#[test]
fn every_file_the_config_names_must_exist_and_be_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
    std::fs::write(d.join("ca.pem"), pem).unwrap();
    // `htpasswd -nbB -C 4 alice alice-pw` (an empty file is refused: it lists no users).
    std::fs::write(
        d.join("htpasswd"),
        "alice:$2y$04$xhFpuB1l54acMlpkV.xFqORVpj/6YHoYQMa/5FhqHN2tqp4TxXVh2\n",
    )
    .unwrap();
    std::fs::write(d.join("pw"), "secret\n").unwrap();
    // A folder where a file is expected: unreadable even for root.
    std::fs::create_dir(d.join("a-folder")).unwrap();
    let missing = d.join("missing.pem");
    let cases: Vec<(String, &str)> = vec![
        (
            format!(
                "[server]\ntls_cert = {missing:?}\ntls_key = {:?}\n",
                d.join("ca.pem")
            ),
            "server.tls_cert: cannot read",
        ),
        (
            format!("[auth]\nhtpasswd = {:?}\n", d.join("a-folder")),
            "auth.htpasswd: cannot read",
        ),
        (
            format!("[[upstream]]\nname = \"r.io\"\nurl = \"https://r.io\"\nca_file = {missing:?}\n"),
            "upstream[0].ca_file: cannot read",
        ),
        (
            format!("[[upstream]]\nname = \"r.io\"\nurl = \"https://r.io\"\nnotary = \"https://n.io\"\nnotary_ca_file = {missing:?}\n"),
            "upstream[0].notary_ca_file: cannot read",
        ),
        (
            format!("[[upstream]]\nname = \"r.io\"\nurl = \"https://r.io\"\nusername = \"u\"\npassword_file = {missing:?}\n"),
            "upstream[0].password_file: cannot read",
        ),
        (
            format!("[[policy]]\nrepositories = [\"*\"]\ntrust = \"enforce\"\nroot_certs = [{missing:?}]\n"),
            "policy[0].root_certs[0]: cannot read",
        ),
        (
            format!("[server]\nclient_ca = {:?}\n", d.join("ca.pem")),
            "server.client_ca: client certificates need TLS",
        ),
    ];
    for (i, (toml, want)) in cases.iter().enumerate() {
        let file = d.join(format!("case-{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (ok, text) = check(&file);
        assert!(!ok, "case {i} passed: {toml}\n{text}");
        assert!(
            text.contains(&format!("{}: {want}", file.display())),
            "case {i}: {text:?} lacks {want:?}"
        );
    }
    // And with every named file present, the same kinds of keys pass.
    let file = d.join("good.toml");
    std::fs::write(
        &file,
        format!(
            "[auth]\nhtpasswd = {:?}\n[[upstream]]\nname = \"r.io\"\nurl = \"https://r.io\"\nca_file = {:?}\nusername = \"u\"\npassword_file = {:?}\n",
            d.join("htpasswd"),
            d.join("ca.pem"),
            d.join("pw")
        ),
    )
    .unwrap();
    let (ok, text) = check(&file);
    assert!(ok, "{text}");
}

/// `[[verifier]]` and the policies that name them (issue 12): every mistake names the file, the
/// key and the problem, the files a verifier names included.
#[test]
fn verifier_mistakes_name_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = d.join("missing.pub");
    std::fs::write(d.join("not-a-key.pub"), "hello\n").unwrap();
    let verifier = |name: &str, key: &Path| {
        format!("[[verifier]]\nname = \"{name}\"\nkind = \"cosign\"\nkeys = [{key:?}]\n")
    };
    let policy = |verifiers: &str, require: &str| {
        format!("[[policy]]\nrepositories = [\"r.io/*\"]\ntrust = \"enforce\"\nverifiers = {verifiers}\n{require}")
    };
    let cases: Vec<(String, &str)> = vec![
        (verifier("acme", &missing), "verifier[0].keys[0]: cannot read"),
        (verifier("acme", &d.join("not-a-key.pub")), "verifier[0].keys[0]: "),
        (
            format!("{}{}", verifier("acme", &missing), policy("[\"acme-release\"]", "")),
            "policy[0].verifiers[0]: unknown verifier \"acme-release\"",
        ),
        (
            format!("{}{}", verifier("acme", &missing), policy("[\"acme\"]", "require = 2\n")),
            "policy[0].require: 2 verifiers must accept, but only 1 is listed",
        ),
        (
            format!("{}{}", verifier("acme", &missing), verifier("acme", &missing)),
            "verifier[1].name: \"acme\" is already the name of verifier[0]",
        ),
        (
            "[[verifier]]\nname = \"ci\"\nkind = \"cosign\"\nidentities = [{ issuer = \"https://i\", subject_regex = \"a(\" }]\n".to_string(),
            "verifier[0].identities[0].subject_regex: \"a(\" is not a regular expression",
        ),
    ];
    for (i, (toml, want)) in cases.iter().enumerate() {
        let file = d.join(format!("case-{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (ok, text) = check(&file);
        assert!(!ok, "case {i} passed: {toml}\n{text}");
        assert!(
            text.contains(&format!("{}: {want}", file.display())),
            "case {i}: {text:?} lacks {want:?}"
        );
    }
}

/// `kind = "notation"` verifiers (issue 13): inline trust stores and the operator's own
/// trustpolicy.json with its trust-store directory; every mistake names the file, key and problem.
#[test]
fn notation_verifier_mistakes_name_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/notation");
    let alpine = data.join("truststore/x509/ca/alpine/alpine.pem");
    std::fs::write(d.join("not-a-cert.pem"), "hello\n").unwrap();
    let notation =
        |body: &str| format!("[[verifier]]\nname = \"ops\"\nkind = \"notation\"\n{body}");
    let ok = [
        notation(&format!(
            "trust_store = [{alpine:?}]\ntrusted_identities = [\"*\"]\nlevel = \"permissive\"\n"
        )),
        notation(&format!(
            "trust_policy = {:?}\ntrust_store_dir = {:?}\n",
            data.join("trustpolicy.json"),
            data.join("truststore")
        )),
    ];
    for (i, toml) in ok.iter().enumerate() {
        let file = d.join(format!("ok-{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (ok, text) = check(&file);
        assert!(ok, "case {i}: {toml}\n{text}");
    }
    let cases: Vec<(String, &str)> = vec![
        (notation("trusted_identities = [\"*\"]\n"), "verifier[0].trust_store: a notation verifier needs trust_store"),
        (
            notation(&format!("trust_store = [{:?}]\ntrusted_identities = [\"*\"]\n", d.join("missing.pem"))),
            "verifier[0].trust_store[0]: cannot read",
        ),
        (
            notation(&format!("trust_store = [{:?}]\ntrusted_identities = [\"*\"]\n", d.join("not-a-cert.pem"))),
            "verifier[0].trust_store[0]: ",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = [\"x509.subject: CN=alpine\"]\n")),
            "verifier[0].trusted_identities[0]: \"x509.subject: CN=alpine\": must name at least C, ST and O (no C)",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = ['x509.subject: C=US, ST=WA, O=Acme\\, Inc., CN=a, CN=b']\n")),
            "verifier[0].trusted_identities[0]: \"x509.subject: C=US, ST=WA, O=Acme\\\\, Inc., CN=a, CN=b\": attribute CN appears twice",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = ['x509.subject: C=US, ST=WA, O=Acme, Inc.']\n")),
            "verifier[0].trusted_identities[0]: \"x509.subject: C=US, ST=WA, O=Acme, Inc.\": \"Inc.\" is not ATTRIBUTE=value",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = ['x509.subject: C=US, ST=WA, O=Acme\\zz']\n")),
            "verifier[0].trusted_identities[0]: \"x509.subject: C=US, ST=WA, O=Acme\\\\zz\": \"Acme\\\\zz\": \\zz is neither an escaped special character nor two hex digits",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = ['x509.subject: C=US, ST=WA, O=Acme+OU=Eng']\n")),
            "multi-valued RDN (O+OU) is not supported",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = [\"x509.subject: C=US, ST=WA, O=Acme\", \"x509.subject: C=US, ST=WA, O=Acme, CN=release\"]\n")),
            "verifier[0].trusted_identities: \"x509.subject: C=US, ST=WA, O=Acme\" overlaps with \"x509.subject: C=US, ST=WA, O=Acme, CN=release\"",
        ),
        (
            notation(&format!("trust_store = [{alpine:?}]\ntrusted_identities = [\"*\"]\nlevel = \"lenient\"\n")),
            "unknown variant `lenient`",
        ),
        (
            notation(&format!("trust_policy = {:?}\n", data.join("trustpolicy.json"))),
            "verifier[0].trust_store_dir: trust_policy needs the Notation trust store directory",
        ),
        (
            notation(&format!("trust_policy = {:?}\ntrust_store_dir = {:?}\n", data.join("trustpolicy.json"), d)),
            "verifier[0].trust_policy ",
        ),
        (
            notation(&format!("keys = [{alpine:?}]\n")),
            "verifier[0].keys: only a kind = \"cosign\" verifier takes this key",
        ),
    ];
    for (i, (toml, want)) in cases.iter().enumerate() {
        let file = d.join(format!("case-{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (ok, text) = check(&file);
        assert!(!ok, "case {i} passed: {toml}\n{text}");
        assert!(text.contains(want), "case {i}: {text:?} lacks {want:?}");
        assert!(
            text.contains(&file.display().to_string()),
            "case {i}: {text:?} lacks the file"
        );
    }
}

/// Durations take a number of seconds or a unit everywhere, and the upstream timeouts still load
/// under their old `*_secs` names (issue 11); a timeout under both names is refused.
#[test]
fn durations_take_units_and_old_secs_keys_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = "[[upstream]]\nname = \"r.io\"\nurl = \"https://r.io\"\n";
    let cases = [
        format!("{up}connect_timeout_secs = 5\nfirst_byte_timeout_secs = 30\nidle_timeout_secs = 60\n"),
        format!("{up}connect_timeout = \"5s\"\nfirst_byte_timeout = \"30s\"\nidle_timeout = \"1m\"\n"),
        format!("[server]\nheader_read_timeout = 10\nidle_timeout = \"2m\"\nshutdown_grace = \"30s\"\n[trust]\nrefresh = \"1m\"\noffline_grace = \"7d\"\n{up}"),
    ];
    for (i, toml) in cases.iter().enumerate() {
        let file = d.join(format!("ok-{i}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (ok, text) = check(&file);
        assert!(ok, "case {i}: {toml}\n{text}");
        assert!(text.contains("valid (1 upstream, listening on"), "{text}");
    }
    let file = d.join("both.toml");
    std::fs::write(
        &file,
        format!("{up}idle_timeout = 60\nidle_timeout_secs = 60\n"),
    )
    .unwrap();
    let (ok, text) = check(&file);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "{}: upstream[0]: duplicate field `idle_timeout`: `idle_timeout_secs` is its older name",
            file.display()
        )),
        "{text}"
    );
    let file = d.join("bad-unit.toml");
    std::fs::write(&file, "[trust]\nrefresh = \"5 fortnights\"\n").unwrap();
    let (ok, text) = check(&file);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "{}: trust.refresh: unknown duration unit",
            file.display()
        )),
        "{text}"
    );
}

/// A bad htpasswd line is reported with the file, the key, and the line to fix.
#[test]
fn a_bad_htpasswd_line_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let htpasswd = d.join("htpasswd");
    std::fs::write(
        &htpasswd,
        "# users\nbob:{SHA}EfatjsUqKYSrqv18O1FlA3hcIHI=\n",
    )
    .unwrap();
    let file = d.join("auth.toml");
    std::fs::write(&file, format!("[auth]\nhtpasswd = {htpasswd:?}\n")).unwrap();
    let (ok, text) = check(&file);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "{}: auth.htpasswd: {} line 2: user \"bob\": SHA-1",
            file.display(),
            htpasswd.display()
        )),
        "{text}"
    );
}
