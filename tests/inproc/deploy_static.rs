//! deploy/ (issue 14), checked statically (no cluster or container runs in CI): the Kubernetes
//! manifests, the three-replica compose file on MinIO, and the Grafana dashboard.
//!
//! - Kubernetes: every kind the fleet needs is there; the ConfigMap's trustgate.toml is a valid
//!   configuration with a shared store and no credentials; ports, probes, names and selectors
//!   agree with it and with each other.
//! - Compose: three trustgate replicas on one config with `[storage.shared]` pointing at the
//!   MinIO service with its credentials, and nginx balancing over all three as a trusted proxy.
//! - Grafana: every query names only metrics trustgate exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use trustgate::config::Config;
use yaml_rust2::{Yaml, YamlLoader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

fn s<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {y:?}"))
}

fn config(text: &str, what: &str) -> Config {
    Config::from_toml(text, Path::new(what)).unwrap_or_else(|e| panic!("{what}: {e}"))
}

#[test]
fn kubernetes_manifests_agree_with_each_other_and_the_config() {
    let dir = "deploy/kubernetes";
    let cm = yaml(&format!("{dir}/configmap.yaml"));
    let secret = yaml(&format!("{dir}/secret.yaml"));
    let deploy = yaml(&format!("{dir}/deployment.yaml"));
    let svc = yaml(&format!("{dir}/service.yaml"));
    let pdb = yaml(&format!("{dir}/pdb.yaml"));
    for (y, kind) in [
        (&cm, "ConfigMap"),
        (&secret, "Secret"),
        (&deploy, "Deployment"),
        (&svc, "Service"),
        (&pdb, "PodDisruptionBudget"),
    ] {
        assert_eq!(s(&y["kind"], "kind"), kind);
    }

    let toml = s(&cm["data"]["trustgate.toml"], "configmap data");
    let c = config(toml, "configmap trustgate.toml");
    let shared = c
        .storage
        .shared
        .as_ref()
        .expect("the fleet config has [storage.shared]");
    assert!(shared.url.starts_with("s3://"));
    for secret_word in ["secret", "AWS_", "access_key"] {
        assert!(
            !toml.contains(secret_word),
            "no credentials in the config: {secret_word}"
        );
    }
    assert!(
        !c.server.trusted_proxies.is_empty(),
        "behind a Service/Ingress"
    );

    // Secret: the standard AWS variables, used by the Deployment.
    let keys: BTreeSet<&str> = secret["stringData"]
        .as_hash()
        .expect("stringData")
        .keys()
        .map(|k| s(k, "secret key"))
        .collect();
    assert!(keys.contains("AWS_ACCESS_KEY_ID") && keys.contains("AWS_SECRET_ACCESS_KEY"));

    let spec = &deploy["spec"];
    assert!(
        spec["replicas"].as_i64().unwrap() >= 2,
        "a fleet has replicas"
    );
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(spec["selector"]["matchLabels"], *labels);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);
    assert_eq!(svc["spec"]["selector"], *labels);
    assert!(pdb["spec"]["minAvailable"].as_i64().unwrap() < spec["replicas"].as_i64().unwrap());
    let ctr = &pod["containers"][0];
    assert_eq!(
        s(&ctr["envFrom"][0]["secretRef"]["name"], "secretRef"),
        s(&secret["metadata"]["name"], "secret name")
    );
    let port = |name: &str| -> i64 {
        ctr["ports"]
            .as_vec()
            .unwrap()
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("container port {name}"))["containerPort"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(port("registry"), i64::from(c.server.listen.port()));
    assert_eq!(port("admin"), i64::from(c.admin.listen.port()));
    assert!(
        c.admin.listen.ip().is_unspecified(),
        "probes reach the admin port"
    );
    assert_eq!(
        s(&ctr["readinessProbe"]["httpGet"]["path"], "readiness"),
        "/readyz"
    );
    assert_eq!(
        s(&ctr["readinessProbe"]["httpGet"]["port"], "readiness"),
        "admin"
    );
    assert_eq!(
        s(&ctr["livenessProbe"]["httpGet"]["path"], "liveness"),
        "/healthz"
    );
    assert_eq!(
        s(&ctr["livenessProbe"]["httpGet"]["port"], "liveness"),
        "admin"
    );
    assert_eq!(
        s(&svc["spec"]["ports"][0]["targetPort"], "targetPort"),
        "registry"
    );
    // The config is mounted where the args read it, from the ConfigMap above.
    let args: Vec<&str> = ctr["args"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| s(a, "arg"))
        .collect();
    let config_path = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let mount = ctr["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| {
            config_path.starts_with(s(&m["mountPath"], "mountPath"))
                && m["name"].as_str() == Some("config")
        })
        .expect("the config volume is mounted at the --config path");
    let vol = pod["volumes"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(vol["configMap"]["name"], cm["metadata"]["name"]);
    let data_mount = ctr["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| Path::new(s(&m["mountPath"], "mountPath")) == c.storage.path)
        .expect("storage.path is a mounted volume");
    assert!(s(&data_mount["name"], "name") != "config");
}

/// The compose file with YAML merge keys (`<<: *anchor`) resolved, which yaml-rust2 leaves as
/// they are.
fn merged(y: Yaml) -> Yaml {
    match y {
        Yaml::Hash(h) => {
            let mut out = yaml_rust2::yaml::Hash::new();
            if let Some(Yaml::Hash(base)) = h.get(&Yaml::String("<<".into())) {
                for (k, v) in base {
                    out.insert(k.clone(), merged(v.clone()));
                }
            }
            for (k, v) in h {
                if k.as_str() != Some("<<") {
                    out.insert(k, merged(v));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(a) => Yaml::Array(a.into_iter().map(merged).collect()),
        other => other,
    }
}

#[test]
fn compose_fleet_runs_three_replicas_on_minio_behind_a_balancer() {
    let dir = "deploy/compose";
    let y = merged(yaml(&format!("{dir}/docker-compose.fleet.yml")));
    let services = y["services"].as_hash().expect("services");
    let names: Vec<&str> = services.keys().map(|k| s(k, "service")).collect();
    let replicas: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("trustgate-"))
        .collect();
    assert_eq!(replicas.len(), 3, "{names:?}");
    let c = config(
        &read(&format!("{dir}/trustgate.toml")),
        "compose trustgate.toml",
    );
    let shared = c.storage.shared.as_ref().expect("[storage.shared]");
    let endpoint = url::Url::parse(shared.endpoint.as_deref().expect("endpoint")).unwrap();
    let minio = &y["services"][endpoint.host_str().unwrap()];
    assert!(
        s(&minio["image"], "image").starts_with("minio/minio"),
        "the endpoint names the MinIO service"
    );
    assert_eq!(endpoint.port(), Some(9000));
    let bucket = shared
        .url
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap();
    let mk = format!("{:?}", y["services"]["bucket"]["command"]);
    assert!(
        mk.contains(&format!("local/{bucket}")),
        "the bucket is created: {mk}"
    );
    let nginx = read(&format!("{dir}/nginx.conf"));
    for r in &replicas {
        let svc = &y["services"][*r];
        assert_eq!(
            s(&svc["environment"]["AWS_ACCESS_KEY_ID"], "key"),
            s(&minio["environment"]["MINIO_ROOT_USER"], "user")
        );
        assert_eq!(
            s(&svc["environment"]["AWS_SECRET_ACCESS_KEY"], "secret"),
            s(&minio["environment"]["MINIO_ROOT_PASSWORD"], "password")
        );
        let mounts = format!("{:?}", svc["volumes"]);
        assert!(mounts.contains("./trustgate.toml:"), "{r}: {mounts}");
        assert!(
            nginx.contains(&format!("server {r}:{};", c.server.listen.port())),
            "nginx balances over {r}"
        );
        assert_eq!(
            s(&svc["healthcheck"]["test"][5], "probe"),
            format!("http://127.0.0.1:{}/readyz", c.admin.listen.port())
        );
    }
    assert!(nginx.contains("X-Forwarded-For $proxy_add_x_forwarded_for"));
    assert!(
        !c.server.trusted_proxies.is_empty(),
        "nginx's header is believed"
    );
    assert!(
        std::fs::metadata(repo().join("Dockerfile")).is_ok(),
        "build: ../.. has the Dockerfile"
    );
}

/// Metric family names trustgate exports, from both exposition formats. A labelled family shows
/// in the exposition once it has a series, so one of each kind is recorded first.
fn exported() -> BTreeSet<String> {
    use trustgate::decision::{Reason, Verdict};
    use trustgate::metrics::{RouteKind, UpstreamErrorKind, UpstreamKind};
    let m = trustgate::metrics::metrics();
    m.request_done(
        RouteKind::Ping,
        &http::Method::GET,
        200,
        1,
        std::time::Duration::ZERO,
    );
    m.trust_decision(Verdict::Allow, Reason::Signed);
    m.upstream_latency(
        "dashboard-test",
        UpstreamKind::Registry,
        std::time::Duration::ZERO,
    );
    m.upstream_error(
        "dashboard-test",
        UpstreamKind::Registry,
        UpstreamErrorKind::Timeout,
    );
    m.verify_done(None, std::time::Duration::ZERO);
    m.shared_error("get");
    let mut names = BTreeSet::new();
    for text in [m.encode(false).unwrap(), m.encode(true).unwrap()] {
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                names.insert(rest.split(' ').next().unwrap().to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap();
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/trustgate.json")).unwrap();
    let exported = exported();
    let mut queries = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            queries += 1;
            let mut named = 0;
            for token in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !token.starts_with("trustgate_") {
                    continue;
                }
                named += 1;
                let family = ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .find_map(|suf| token.strip_suffix(suf))
                    .unwrap_or(token);
                assert!(
                    exported.contains(token) || exported.contains(family),
                    "panel {:?}: {token} is not a metric trustgate exports",
                    panel["title"]
                );
            }
            assert!(
                named > 0,
                "panel {:?}: the query names no trustgate metric",
                panel["title"]
            );
        }
    }
    assert!(queries >= 8);
}
