//! docker-compose.yml, checked statically (containers do not run on the CI machines): it parses,
//! every file it mounts or builds from exists, the trustgate config it mounts is valid, and the
//! services agree with each other and with the README on names, ports and URLs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(text: &str, what: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(docs.len(), 1, "{what}: one YAML document");
    docs.remove(0)
}

fn str_list(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| panic!("{v:?} is not a string"))
            })
            .collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Yaml::BadValue => Vec::new(),
        other => panic!("expected a list of strings, got {other:?}"),
    }
}

/// The port of `host:port`, `:port` or a URL.
fn port_of(addr: &str) -> u16 {
    let a = addr.trim_end_matches('/');
    let a = a.split("://").last().unwrap_or(a);
    let a = a.split('/').next().unwrap_or(a);
    a.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} names no port"))
}

fn host_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    u.host_str().unwrap_or_default().to_string()
}

/// One `volumes:` entry of a service.
#[derive(Debug, Clone)]
struct Mount {
    /// Repository-relative path of a bind mount, or the name of a named volume.
    source: String,
    bind: bool,
    target: String,
}

/// One `ports:` entry: (host address, host port, container port).
type Published = (Option<String>, u16, u16);

struct Service {
    name: String,
    yaml: Yaml,
    mounts: Vec<Mount>,
    ports: Vec<Published>,
}

impl Service {
    /// The repository file mounted at `container_path` (a file mount or a folder mount above it).
    fn host_file(&self, container_path: &str) -> Option<PathBuf> {
        self.mounts.iter().filter(|m| m.bind).find_map(|m| {
            let rest = container_path.strip_prefix(&m.target)?;
            if !rest.is_empty() && !rest.starts_with('/') {
                return None;
            }
            let base = repo().join(&m.source);
            Some(match rest.trim_start_matches('/') {
                "" => base,
                rest => base.join(rest),
            })
        })
    }

    fn published(&self, container_port: u16) -> Option<&Published> {
        self.ports.iter().find(|p| p.2 == container_port)
    }

    /// The command as one string (list or shell form).
    fn command(&self) -> String {
        str_list(&self.yaml["command"]).join(" ")
    }
}

struct Compose {
    services: BTreeMap<String, Service>,
    volumes: BTreeSet<String>,
}

fn compose() -> Compose {
    let doc = yaml(&read("docker-compose.yml"), "docker-compose.yml");
    let volumes: BTreeSet<String> = doc["volumes"]
        .as_hash()
        .map(|h| {
            h.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut services = BTreeMap::new();
    for (k, v) in doc["services"].as_hash().expect("services") {
        let name = k.as_str().expect("service name").to_string();
        let mounts = str_list(&v["volumes"])
            .iter()
            .map(|entry| {
                let parts: Vec<&str> = entry.split(':').collect();
                assert!(parts.len() >= 2, "{name}: volume {entry:?} has no target");
                let source = parts[0].to_string();
                let bind = source.starts_with("./") || source.starts_with('/');
                Mount {
                    source: source.trim_start_matches("./").to_string(),
                    bind,
                    target: parts[1].to_string(),
                }
            })
            .collect();
        let ports = str_list(&v["ports"])
            .iter()
            .map(|entry| {
                let parts: Vec<&str> = entry.split(':').collect();
                let num = |s: &str| -> u16 {
                    s.parse()
                        .unwrap_or_else(|_| panic!("{name}: port {entry:?}"))
                };
                match parts.as_slice() {
                    [h, c] => (None, num(h), num(c)),
                    [a, h, c] => (Some(a.to_string()), num(h), num(c)),
                    _ => panic!("{name}: port {entry:?} is not [ADDR:]HOST:CONTAINER"),
                }
            })
            .collect();
        services.insert(
            name.clone(),
            Service {
                name,
                yaml: v.clone(),
                mounts,
                ports,
            },
        );
    }
    Compose { services, volumes }
}

impl Compose {
    fn service(&self, name: &str) -> &Service {
        self.services
            .get(name)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
    }

    /// The trustgate config file the trustgate service runs with, on the host.
    fn trustgate_config(&self) -> (PathBuf, String) {
        let tg = self.service("trustgate");
        let cmd = str_list(&tg.yaml["command"]);
        let i = cmd
            .iter()
            .position(|a| a == "--config")
            .expect("trustgate command names --config");
        let path = tg
            .host_file(&cmd[i + 1])
            .unwrap_or_else(|| panic!("{} is not mounted into trustgate", cmd[i + 1]));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        (path, text)
    }

    /// The JSON config a Notary service runs with (`-config=PATH` in its command).
    fn notary_config(&self, service: &str) -> serde_json::Value {
        let s = self.service(service);
        let cmd = s.command();
        let path = cmd
            .split_whitespace()
            .find_map(|w| w.strip_prefix("-config="))
            .unwrap_or_else(|| panic!("{service}: command names no -config="))
            .trim_end_matches('"');
        let file = s
            .host_file(path)
            .unwrap_or_else(|| panic!("{service}: {path} is not mounted"));
        serde_json::from_str(&std::fs::read_to_string(&file).expect("notary config"))
            .unwrap_or_else(|e| panic!("{file:?}: {e}"))
    }
}

#[test]
fn every_mounted_or_built_file_exists_and_every_reference_resolves() {
    let c = compose();
    for want in [
        "trustgate",
        "registry",
        "notary-server",
        "notary-signer",
        "notary-db",
    ] {
        c.service(want);
    }
    for s in c.services.values() {
        for m in &s.mounts {
            if m.bind {
                assert!(
                    repo().join(&m.source).exists(),
                    "{}: mounts ./{}, which does not exist",
                    s.name,
                    m.source
                );
            } else {
                assert!(
                    c.volumes.contains(&m.source),
                    "{}: named volume {:?} is not declared under volumes:",
                    s.name,
                    m.source
                );
            }
        }
        match &s.yaml["build"] {
            Yaml::String(ctx) => {
                assert!(
                    repo().join(ctx).join("Dockerfile").is_file(),
                    "{}: no Dockerfile in {ctx}",
                    s.name
                )
            }
            Yaml::Hash(_) => {
                let ctx = s.yaml["build"]["context"].as_str().expect("build.context");
                if !ctx.contains("://") {
                    assert!(repo().join(ctx).is_dir(), "{}: build context {ctx}", s.name);
                }
            }
            _ => assert!(
                s.yaml["image"].as_str().is_some(),
                "{}: neither image nor build",
                s.name
            ),
        }
        if let Some(deps) = s.yaml["depends_on"].as_hash() {
            for d in deps.keys() {
                c.service(d.as_str().expect("depends_on name"));
            }
        }
    }
}

#[test]
fn the_mounted_trustgate_config_is_valid_and_its_files_are_provided() {
    let c = compose();
    let (path, text) = c.trustgate_config();
    let tg = c.service("trustgate");
    // Named volumes become temporary folders holding what their producer makes; bind mounts
    // become the repository's files. Then the config must pass the same validation as
    // `trustgate check-config` (which also reads every file it names).
    let tmp = tempfile::tempdir().expect("tempdir");
    let script = read("config/compose/make-certs.sh");
    let mut rewritten = text.clone();
    let mut mounts = tg.mounts.clone();
    // Longest target first, so /a/b is rewritten before /a.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.target.len()));
    for m in &mounts {
        let host = if m.bind {
            repo().join(&m.source)
        } else {
            tmp.path().join(&m.source)
        };
        rewritten = rewritten.replace(&format!("\"{}", m.target), &format!("\"{}", host.display()));
    }
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for line in text.lines() {
        if let Some(start) = line.find("\"/certs/") {
            let file = line[start + 8..].trim_end_matches('"');
            assert!(
                script.contains(file) || script.contains(file.trim_end_matches(".crt")),
                "{}: names /certs/{file}, which make-certs.sh does not make",
                path.display()
            );
            std::fs::write(
                certs.join(file),
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            )
            .unwrap();
        }
    }
    let config =
        trustgate::config::Config::from_toml(&rewritten, &path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.upstreams.iter().any(|u| u.notary.is_some()));
}

#[test]
fn ports_and_urls_agree_between_services_and_with_the_readme() {
    let c = compose();
    let (path, text) = c.trustgate_config();
    let tg_conf: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let tg = c.service("trustgate");

    // trustgate's listeners are published, the admin one on the host's loopback only.
    let listen = port_of(tg_conf["server"]["listen"].as_str().expect("server.listen"));
    assert!(
        tg.published(listen).is_some(),
        "trustgate: port {listen} is not published"
    );
    let admin = port_of(tg_conf["admin"]["listen"].as_str().expect("admin.listen"));
    let admin_pub = tg.published(admin).expect("admin port published");
    assert_eq!(
        admin_pub.0.as_deref(),
        Some("127.0.0.1"),
        "admin must stay on loopback"
    );
    let health = str_list(&tg.yaml["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains(&format!("127.0.0.1:{admin}/readyz")),
        "{health}"
    );

    // Each upstream inside the stack: the URL reaches the service on the port its registry
    // config listens on, and the upstream's name is how the host reaches it (the signed GUNs).
    let upstreams = tg_conf["upstream"].as_array().expect("[[upstream]]");
    let mut in_stack = 0;
    for u in upstreams {
        let url = u["url"].as_str().expect("url");
        let host = host_of(url);
        let Some(svc) = c.services.get(&host) else {
            continue;
        };
        in_stack += 1;
        let reg_conf = svc
            .host_file("/etc/docker/registry/config.yml")
            .expect("registry config mounted");
        let reg = yaml(&std::fs::read_to_string(&reg_conf).unwrap(), "registry.yml");
        let addr = reg["http"]["addr"].as_str().expect("http.addr");
        assert_eq!(
            port_of(url),
            port_of(addr),
            "{url} vs registry http.addr {addr}"
        );
        let name = u["name"].as_str().expect("name");
        let published = svc
            .published(port_of(addr))
            .expect("registry port published");
        assert_eq!(
            name,
            format!("localhost:{}", published.1),
            "upstream name vs published port"
        );

        // Its Notary server: the service named in the URL, on the port of its http_addr, and
        // published on the same port for `docker trust` on the host.
        let notary = u["notary"].as_str().expect("notary");
        let ns = c.service(&host_of(notary));
        let server_conf = c.notary_config(&ns.name);
        let http_addr = server_conf["server"]["http_addr"]
            .as_str()
            .expect("http_addr");
        assert_eq!(port_of(notary), port_of(http_addr));
        assert_eq!(
            ns.published(port_of(http_addr)).map(|p| p.1),
            Some(port_of(http_addr))
        );
        assert!(u["notary_ca_file"]
            .as_str()
            .is_some_and(|f| f.starts_with("/certs/")));

        // notary-server → notary-signer (gRPC) → its port.
        let ts = &server_conf["trust_service"];
        let signer = c.service(ts["hostname"].as_str().expect("trust_service.hostname"));
        let signer_conf = c.notary_config(&signer.name);
        assert_eq!(
            ts["port"].as_str().map(port_of),
            signer_conf["server"]["grpc_addr"].as_str().map(port_of),
            "trust_service.port vs the signer's grpc_addr"
        );

        // Both use the database service, whose init script makes their database and user.
        let init = read("config/compose/initdb/notary.sql");
        for conf in [&server_conf, &signer_conf] {
            let db = conf["storage"]["db_url"].as_str().expect("db_url");
            let (user, rest) = db.split_once("@tcp(").expect("user@tcp(host:port)/db");
            let (hostport, dbname) = rest.split_once(")/").expect("tcp(host:port)/db");
            let dbname = dbname.split('?').next().unwrap_or(dbname);
            let db_service = c.service(hostport.split(':').next().unwrap_or(hostport));
            assert!(db_service.yaml["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("mariadb")));
            assert!(
                init.contains(&format!("CREATE DATABASE IF NOT EXISTS `{dbname}`")),
                "{dbname}"
            );
            assert!(init.contains(&format!("'{user}'@'%'")), "{user}");
        }
    }
    assert_eq!(
        in_stack, 1,
        "the stack's registry is one of trustgate's upstreams"
    );

    // The README's compose section names every published host port.
    let readme = read("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Compose"))
        .expect("README.md has a \"## Compose\" section");
    assert!(
        section.contains("docker compose up"),
        "README: how to start it"
    );
    for s in c.services.values() {
        for p in &s.ports {
            assert!(
                section.contains(&format!("localhost:{}", p.1)),
                "README's Compose section does not mention localhost:{} ({})",
                p.1,
                s.name
            );
        }
    }
}

/// make-certs.sh (run here with the host's openssl, as the `certs` service runs it in alpine)
/// makes certificates that chain to its CA and cover the names the services are reached by.
#[test]
fn make_certs_issues_certificates_for_the_names_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("certs");
    let run = std::process::Command::new("sh")
        .arg(repo().join("config/compose/make-certs.sh"))
        .arg(&out)
        .output()
        .expect("run make-certs.sh (needs openssl)");
    assert!(
        run.status.success(),
        "make-certs.sh failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let c = compose();
    let server_conf = c.notary_config("notary-server");
    let signer_host = server_conf["trust_service"]["hostname"].as_str().unwrap();
    let (_, text) = c.trustgate_config();
    let tg_conf: toml::Value = toml::from_str(&text).unwrap();
    let notary_host = tg_conf["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["notary"].as_str())
        .map(host_of)
        .find(|h| c.services.contains_key(h))
        .expect("a notary in the stack");
    for (cert, names) in [
        ("notary-server.crt", vec![notary_host.as_str(), "localhost"]),
        ("notary-signer.crt", vec![signer_host]),
    ] {
        let path = out.join(cert);
        let verify = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(out.join("root-ca.crt"))
            .arg(&path)
            .output()
            .expect("openssl verify");
        assert!(
            verify.status.success(),
            "{cert} does not chain to root-ca.crt"
        );
        for name in names {
            let check = std::process::Command::new("openssl")
                .args(["x509", "-noout", "-checkhost", name, "-in"])
                .arg(&path)
                .output()
                .expect("openssl x509");
            let said = String::from_utf8_lossy(&check.stdout);
            assert!(
                said.contains("does match"),
                "{cert} is not valid for {name}: {said}"
            );
        }
    }
    // The CA's private key is not left next to the certificates.
    assert!(!out.join("root-ca.key").exists());
}
