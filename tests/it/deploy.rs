//! The deployment files are checked where no container runtime is available: docker-compose.yml
//! and the Kubernetes manifests parse, reference only what exists, use only environment variables
//! the binary reads, and probe `/health` and `/ready`; the Dockerfile is multi-stage and non-root.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let mut v = Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            v.apply_merge().unwrap();
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

/// Environment variables `vintagelake <command>` reads, from its `--help`.
fn env_vars(command: &str) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_vintagelake")).args([command, "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut vars = BTreeSet::from(["VINTAGELAKE_CONFIG".to_owned(), "RUST_LOG".to_owned(), "LOG_FORMAT".to_owned()]);
    let mut rest = help.as_str();
    while let Some(at) = rest.find("[env: ") {
        rest = &rest[at + 6..];
        let name: String =
            rest.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
        vars.insert(name);
    }
    assert!(vars.len() > 10, "{command} --help lists its variables:\n{help}");
    vars
}

/// The object store reads the standard AWS variables itself.
fn known(var: &str, command: &str) -> bool {
    var.starts_with("AWS_") || env_vars(command).contains(var)
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("{key} missing in {v:?}"))
}

#[test]
fn compose_file_runs_every_daemon_from_one_image_with_real_settings() {
    let docs = yaml_docs(&root().join("docker-compose.yml"));
    let compose = &docs[0];
    let services = compose["services"].as_mapping().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    for s in [
        "kafka",
        "minio",
        "minio-bucket",
        "postgres",
        "ingest",
        "compactor",
        "tierer",
        "query",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(s), "service {s} missing: {names:?}");
    }
    let declared: BTreeSet<&str> = compose["volumes"].as_mapping().unwrap().keys().filter_map(Value::as_str).collect();
    let mut images = BTreeSet::new();
    for (daemon, command) in [("ingest", "ingest"), ("compactor", "compact"), ("tierer", "tier"), ("query", "query")] {
        let s = &compose["services"][daemon];
        images.insert(str_of(s, "image").to_owned());
        assert_eq!(s["command"][0].as_str(), Some(command), "{daemon}");
        assert_eq!(str_of(&s["build"], "dockerfile"), "deploy/Dockerfile");
        for (k, _) in s["environment"].as_mapping().unwrap() {
            let var = k.as_str().unwrap();
            assert!(known(var, command), "{daemon}: `vintagelake {command}` does not read {var}");
        }
        let health = s["healthcheck"]["test"].as_sequence().unwrap();
        assert!(health.iter().any(|t| t.as_str().is_some_and(|t| t.ends_with("/health"))), "{daemon}: {health:?}");
    }
    assert_eq!(images.len(), 1, "one image for every daemon: {images:?}");
    for (name, s) in services {
        let name = name.as_str().unwrap();
        if let Some(deps) = s.get("depends_on") {
            let deps: Vec<&str> = match deps {
                Value::Sequence(list) => list.iter().filter_map(Value::as_str).collect(),
                Value::Mapping(m) => m.keys().filter_map(Value::as_str).collect(),
                other => panic!("{name}: depends_on {other:?}"),
            };
            for d in deps {
                assert!(names.contains(d), "{name} depends on unknown service {d}");
            }
        }
        for v in s.get("volumes").and_then(Value::as_sequence).into_iter().flatten() {
            let source = v.as_str().unwrap().split(':').next().unwrap();
            if let Some(local) = source.strip_prefix("./") {
                assert!(root().join(local).exists(), "{name} mounts missing {source}");
            } else {
                assert!(declared.contains(source), "{name} mounts undeclared volume {source}");
            }
        }
    }
    // Prometheus scrapes the daemons by service name; Grafana gets the dashboard and the data source.
    let prometheus = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml")).unwrap();
    for d in ["ingest:3001", "compactor:3001", "tierer:3001", "query:3001"] {
        assert!(prometheus.contains(d), "prometheus does not scrape {d}");
    }
    let dashboards = yaml_docs(&root().join("deploy/grafana/provisioning/dashboards/vintagelake.yaml"));
    assert_eq!(str_of(&dashboards[0]["providers"][0]["options"], "path"), "/var/lib/grafana/dashboards");
}

#[test]
fn kubernetes_manifests_probe_health_and_ready_and_reference_what_exists() {
    let dir = root().join("deploy/k8s");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        docs.extend(yaml_docs(&entry.unwrap().path()));
    }
    let named = |kind: &str| -> BTreeSet<String> {
        docs.iter().filter(|d| str_of(d, "kind") == kind).map(|d| str_of(&d["metadata"], "name").to_owned()).collect()
    };
    let (maps, secrets, claims) = (named("ConfigMap"), named("Secret"), named("PersistentVolumeClaim"));
    let deployments: Vec<&Value> = docs.iter().filter(|d| str_of(d, "kind") == "Deployment").collect();
    assert_eq!(deployments.len(), 4, "ingest, compactor, tierer, query");
    for d in &docs {
        assert!(d.get("apiVersion").is_some() && d["metadata"].get("name").is_some(), "{d:?}");
    }
    for d in deployments {
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        let c = &spec["containers"][0];
        let command = c["args"][0].as_str().unwrap();
        assert_eq!(str_of(&c["livenessProbe"]["httpGet"], "path"), "/health");
        assert_eq!(str_of(&c["readinessProbe"]["httpGet"], "path"), "/ready");
        for source in c["envFrom"].as_sequence().unwrap() {
            if let Some(m) = source.get("configMapRef") {
                let name = str_of(m, "name");
                assert!(maps.contains(name), "{name}");
                let data = docs.iter().find(|d| str_of(&d["metadata"], "name") == name).unwrap();
                for (k, _) in data["data"].as_mapping().unwrap() {
                    assert!(known(k.as_str().unwrap(), command), "`vintagelake {command}` does not read {k:?}");
                }
            }
            if let Some(s) = source.get("secretRef") {
                assert!(secrets.contains(str_of(s, "name")));
            }
        }
        for v in spec["volumes"].as_sequence().unwrap() {
            if let Some(pvc) = v.get("persistentVolumeClaim") {
                assert!(claims.contains(str_of(pvc, "claimName")));
            }
            if let Some(cm) = v.get("configMap") {
                assert!(maps.contains(str_of(cm, "name")));
            }
        }
    }
}

#[test]
fn dockerfile_is_multi_stage_and_runs_as_a_non_root_user() {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(text.lines().filter(|l| l.starts_with("FROM ")).count() >= 2, "multi-stage");
    let user = text.lines().rfind(|l| l.starts_with("USER ")).expect("a USER line");
    assert!(!user.contains("root") && !user.trim_end().ends_with(" 0"), "{user}");
    assert!(text.contains("ENTRYPOINT [\"vintagelake\"]"));
    // Every directory it copies exists.
    for line in text.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        for source in line.split_whitespace().skip(1).collect::<Vec<_>>().split_last().unwrap().1 {
            assert!(root().join(source).exists(), "{line}");
        }
    }
}
