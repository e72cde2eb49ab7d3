//! The Kubernetes manifests under `deploy/k8s`, checked without a cluster: every YAML document
//! is parsed and what the manifests refer to (port, probe paths, data directory, config,
//! Service and ServiceMonitor wiring) is checked against the Dockerfile, the router and the
//! service's own config loader.

use std::path::{Path, PathBuf};

use irgan::online::settings::ServiceConfig;
use serde_yaml_ng::Value;

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every YAML document under `deploy/k8s`, with the file it came from.
fn documents() -> Vec<(PathBuf, Value)> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !value.is_null() {
                out.push((file.clone(), value));
            }
        }
    }
    out
}

/// The value at a `.`-separated path of mapping keys (a segment that parses as a number
/// indexes a sequence).
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for seg in path.split('.') {
        cur = match seg.parse::<usize>() {
            Ok(i) if cur.is_sequence() => cur.get(i),
            _ => cur.get(seg),
        }
        .unwrap_or_else(|| panic!("missing {path:?} (at {seg:?}) in {v:?}"));
    }
    cur
}

/// The string at `path`.
fn string<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string"))
}

/// The one document of this `kind` (and `name`, if given).
fn one<'a>(docs: &'a [(PathBuf, Value)], kind: &str, name: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .filter(|d| name.is_none_or(|n| d["metadata"]["name"].as_str() == Some(n)))
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind} {name:?}");
    found[0]
}

/// The arguments of the Dockerfile's single `keyword` instruction (final stage only matters
/// for EXPOSE and VOLUME, which appear once).
fn dockerfile_single(keyword: &str) -> String {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let found: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let (k, rest) = l.split_once(char::is_whitespace)?;
            k.eq_ignore_ascii_case(keyword)
                .then(|| rest.trim().to_owned())
        })
        .collect();
    assert_eq!(found.len(), 1, "expected one {keyword} in the Dockerfile");
    found.into_iter().next().unwrap()
}

/// The StatefulSet's single container.
fn container(sts: &Value) -> &Value {
    let containers = at(sts, "spec.template.spec.containers")
        .as_sequence()
        .unwrap();
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The value of the container's environment variable `name`.
fn env_var<'a>(c: &'a Value, name: &str) -> &'a str {
    at(c, "env")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("env {name} not set"))
}

/// The embedded `default.toml` of the ConfigMap.
fn config_toml(docs: &[(PathBuf, Value)]) -> &str {
    at(one(docs, "ConfigMap", None), "data")
        .get("default.toml")
        .and_then(Value::as_str)
        .expect("ConfigMap data default.toml")
}

#[test]
fn every_document_is_named_and_namespaced() {
    let docs = documents();
    for (file, d) in &docs {
        let kind = string(d, "kind");
        assert!(!string(d, "apiVersion").is_empty(), "{}", file.display());
        assert!(!kind.is_empty(), "{}", file.display());
        assert!(!string(d, "metadata.name").is_empty(), "{}", file.display());
        if kind != "Namespace" {
            assert_eq!(
                string(d, "metadata.namespace"),
                "irgan",
                "{} {kind}",
                file.display()
            );
        }
    }
    for kind in [
        "Namespace",
        "ConfigMap",
        "Secret",
        "StatefulSet",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ] {
        one(&docs, kind, None);
    }
    assert_eq!(
        string(one(&docs, "Namespace", None), "metadata.name"),
        "irgan"
    );
    assert_eq!(
        string(one(&docs, "ServiceMonitor", None), "apiVersion"),
        "monitoring.coreos.com/v1"
    );
}

#[test]
fn ports_match_dockerfile_bind_and_code_defaults() {
    let docs = documents();
    let c = container(one(&docs, "StatefulSet", None));
    let ports = at(c, "ports").as_sequence().unwrap();
    let names: Vec<&str> = ports.iter().map(|p| string(p, "name")).collect();
    assert_eq!(names, ["http", "grpc"]);
    let container_ports: Vec<u64> = ports
        .iter()
        .map(|p| at(p, "containerPort").as_u64().unwrap())
        .collect();
    let expose: Vec<u64> = dockerfile_single("EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(
        container_ports, expose,
        "containerPorts vs Dockerfile EXPOSE"
    );
    let defaults = ServiceConfig::default().server;
    let cfg: toml::Value = toml::from_str(config_toml(&docs)).unwrap();
    // Otherwise a fresh pod on an empty volume never turns ready and never gets feedback.
    assert_eq!(
        cfg["server"]["ready_without_model"].as_bool(),
        Some(true),
        "ConfigMap server.ready_without_model"
    );
    for (n, (var, key, default)) in [
        ("IRGAN_SERVER__BIND", "bind", &defaults.bind),
        ("IRGAN_SERVER__GRPC_BIND", "grpc_bind", &defaults.grpc_bind),
    ]
    .into_iter()
    .enumerate()
    {
        let bind = env_var(c, var);
        let (host, bind_port) = bind.rsplit_once(':').unwrap();
        assert_eq!(host, "0.0.0.0", "{var}: bind on all interfaces");
        assert_eq!(
            bind_port.parse::<u64>().unwrap(),
            container_ports[n],
            "{var}={bind}"
        );
        let default_port = default.rsplit_once(':').unwrap().1;
        assert_eq!(
            bind_port, default_port,
            "{var} vs the code's default {default}"
        );
        // The ConfigMap binds the same address (the env var wins anyway).
        assert_eq!(
            cfg["server"][key].as_str(),
            Some(bind),
            "ConfigMap server.{key}"
        );
    }
}

#[test]
fn probes_hit_served_routes() {
    let docs = documents();
    let sts = one(&docs, "StatefulSet", None);
    let c = container(sts);
    let router = std::fs::read_to_string(root().join("src/http/router.rs")).unwrap();
    for (probe, want) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        let path = string(c, &format!("{probe}.httpGet.path"));
        assert_eq!(path, want, "{probe}");
        assert!(["/healthz", "/readyz"].contains(&path));
        assert!(
            router.contains(&format!("\"{path}\"")),
            "{path} is not a route in src/http/router.rs"
        );
        assert_eq!(string(c, &format!("{probe}.httpGet.port")), "http");
    }
    // The startup probe waits long enough for the initial pretraining (>= 5 minutes).
    let period = at(c, "startupProbe.periodSeconds").as_u64().unwrap_or(10);
    let failures = at(c, "startupProbe.failureThreshold").as_u64().unwrap();
    assert!(
        period * failures >= 300,
        "startup budget {period}s x {failures}"
    );
    // Time to drain and write the final snapshot.
    let grace = at(sts, "spec.template.spec.terminationGracePeriodSeconds")
        .as_u64()
        .unwrap();
    assert!(grace >= 60, "terminationGracePeriodSeconds {grace}");
}

#[test]
fn statefulset_shape() {
    let docs = documents();
    let sts = one(&docs, "StatefulSet", None);
    assert_eq!(at(sts, "spec.replicas").as_u64(), Some(1), "single writer");
    let pod = at(sts, "spec.template.spec");
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    assert_eq!(at(pod, "securityContext.runAsUser").as_u64(), Some(10001));
    assert_eq!(at(pod, "securityContext.fsGroup").as_u64(), Some(10001));
    let c = container(sts);
    assert_eq!(string(c, "image"), "irgan:latest");
    assert_eq!(
        at(c, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    let args: Vec<&str> = at(c, "args")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["serve", "--config", "/etc/irgan/default.toml"]);
    // The config file is the ConfigMap's key, mounted where the args point.
    let mounts = at(c, "volumeMounts").as_sequence().unwrap();
    let config_mount = mounts
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/etc/irgan/default.toml"))
        .expect("config mount");
    assert_eq!(string(config_mount, "subPath"), "default.toml");
    let config_volume = at(pod, "volumes")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == config_mount["name"])
        .expect("config volume");
    assert_eq!(
        string(config_volume, "configMap.name"),
        string(one(&docs, "ConfigMap", None), "metadata.name")
    );
    // The service selector and the pod labels agree with the StatefulSet selector.
    let labels = at(sts, "spec.template.metadata.labels")
        .as_mapping()
        .unwrap();
    for (k, v) in at(sts, "spec.selector.matchLabels").as_mapping().unwrap() {
        assert_eq!(labels.get(k), Some(v), "pod labels vs StatefulSet selector");
    }
    let governing = string(sts, "spec.serviceName");
    one(&docs, "Service", Some(governing));
    let pdb = one(&docs, "PodDisruptionBudget", None);
    assert_eq!(at(pdb, "spec.maxUnavailable").as_u64(), Some(1));
    assert!(pdb["spec"].get("minAvailable").is_none());
}

#[test]
fn data_volume_matches_dockerfile_and_config() {
    let docs = documents();
    let sts = one(&docs, "StatefulSet", None);
    let volume: Vec<String> =
        serde_json::from_str(&dockerfile_single("VOLUME")).unwrap_or_else(|_| {
            dockerfile_single("VOLUME")
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        });
    assert_eq!(volume.len(), 1);
    let claims = at(sts, "spec.volumeClaimTemplates").as_sequence().unwrap();
    assert_eq!(claims.len(), 1);
    let claim = string(&claims[0], "metadata.name");
    assert_eq!(claim, "data");
    assert_eq!(
        string(&claims[0], "spec.resources.requests.storage"),
        "10Gi"
    );
    let c = container(sts);
    let mount = at(c, "volumeMounts")
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some(claim))
        .expect("data mount");
    let path = string(mount, "mountPath");
    assert_eq!(path, volume[0], "mountPath vs Dockerfile VOLUME");
    let cfg: toml::Value = toml::from_str(config_toml(&docs)).unwrap();
    assert_eq!(cfg["storage"]["data_dir"].as_str(), Some(path));
}

#[test]
fn configmap_loads_with_the_service_loader() {
    let docs = documents();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.toml");
    std::fs::write(&file, config_toml(&docs)).unwrap();
    let cfg = ServiceConfig::load(Some(&file), Vec::<(String, String)>::new(), &[])
        .unwrap_or_else(|e| panic!("ConfigMap default.toml: {e}"));
    assert_eq!(cfg.server.bind, "0.0.0.0:8080");
    assert_eq!(cfg.server.grpc_bind, "0.0.0.0:50051");
    assert_eq!(cfg.storage.data_dir, Path::new("/var/lib/irgan"));
    assert!(cfg.server.ready_without_model);
    // Apart from those keys it is config/default.toml.
    let mut reference = ServiceConfig::load(
        Some(&root().join("config/default.toml")),
        Vec::<(String, String)>::new(),
        &[],
    )
    .unwrap();
    reference.server.bind = cfg.server.bind.clone();
    reference.server.grpc_bind = cfg.server.grpc_bind.clone();
    reference.storage.data_dir = cfg.storage.data_dir.clone();
    reference.server.ready_without_model = true;
    assert_eq!(cfg, reference, "ConfigMap drifted from config/default.toml");
}

/// The pod listens on 0.0.0.0, so `irgan serve` refuses to start without an API key: the key
/// comes from a Secret (the example's value an empty placeholder, never a real key), not from
/// the ConfigMap or a literal in the StatefulSet.
#[test]
fn the_api_key_comes_from_a_secret() {
    let docs = documents();
    let c = container(one(&docs, "StatefulSet", None));
    let env = at(c, "env").as_sequence().unwrap();
    let var = env
        .iter()
        .find(|e| e["name"].as_str() == Some("IRGAN_SERVER__API_KEY"))
        .expect("IRGAN_SERVER__API_KEY in the container's env");
    assert!(var.get("value").is_none(), "a literal key in the manifest");
    let name = string(var, "valueFrom.secretKeyRef.name");
    let key = string(var, "valueFrom.secretKeyRef.key");
    // A missing Secret stops the pod instead of starting it without a key.
    assert_ne!(
        var["valueFrom"]["secretKeyRef"]["optional"].as_bool(),
        Some(true)
    );
    let secret = one(&docs, "Secret", Some(name));
    assert_eq!(string(secret, "type"), "Opaque");
    assert!(secret.get("data").is_none(), "keys go in stringData");
    let placeholder = string(secret, &format!("stringData.{key}"));
    assert_eq!(
        placeholder, "",
        "the example Secret holds a real-looking key"
    );
    assert!(
        env.iter()
            .all(|e| { e["name"].as_str() != Some("IRGAN_SERVER__ALLOW_OPEN") }),
        "the StatefulSet opens the service"
    );
    let cfg: toml::Value = toml::from_str(config_toml(&docs)).unwrap();
    assert_eq!(
        cfg["server"]["api_key"].as_str(),
        Some(""),
        "a key in the ConfigMap"
    );
    assert_eq!(cfg["server"]["allow_open"].as_bool(), Some(false));

    // What `irgan serve` in the pod sees: the ConfigMap, then the container's env with the
    // Secret's value. The placeholder as is refuses to start, naming the fix; a key starts.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.toml");
    std::fs::write(&file, config_toml(&docs)).unwrap();
    let pod_env = |secret_value: &str| -> Vec<(String, String)> {
        env.iter()
            .map(|e| {
                let name = string(e, "name").to_owned();
                match e["value"].as_str() {
                    Some(v) => (name, v.to_owned()),
                    None => (name, secret_value.to_owned()),
                }
            })
            .collect()
    };
    let load = |v: &str| ServiceConfig::load(Some(&file), pod_env(v), &[]).unwrap();
    let e = load(placeholder)
        .server
        .check_exposure()
        .expect_err("an empty key on 0.0.0.0 must not start")
        .to_string();
    assert!(e.contains("IRGAN_SERVER__API_KEY"), "{e}");
    let keyed = load("0123456789abcdef");
    assert_eq!(keyed.server.api_key, "0123456789abcdef");
    keyed.server.check_exposure().unwrap();
}

#[test]
fn service_and_servicemonitor_wiring() {
    let docs = documents();
    let sts = one(&docs, "StatefulSet", None);
    let pod_labels = at(sts, "spec.template.metadata.labels")
        .as_mapping()
        .unwrap();
    let svc = one(&docs, "Service", Some("irgan"));
    assert_eq!(string(svc, "spec.type"), "ClusterIP");
    for (k, v) in at(svc, "spec.selector").as_mapping().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector vs pod labels");
    }
    // Each container port is published under its own name, on the same number.
    let c = container(sts);
    let container_ports = at(c, "ports").as_sequence().unwrap();
    for service in docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"].as_str() == Some("Service"))
    {
        let ports = at(service, "spec.ports").as_sequence().unwrap();
        assert_eq!(ports.len(), container_ports.len(), "{service:?}");
        for (p, cp) in ports.iter().zip(container_ports) {
            assert_eq!(string(p, "name"), string(cp, "name"));
            assert_eq!(string(p, "targetPort"), string(cp, "name"));
            assert_eq!(at(p, "port").as_u64(), at(cp, "containerPort").as_u64());
        }
    }
    let ports = at(svc, "spec.ports").as_sequence().unwrap();
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("an http port");

    let sm = one(&docs, "ServiceMonitor", None);
    let endpoints = at(sm, "spec.endpoints").as_sequence().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert_eq!(string(&endpoints[0], "path"), "/metrics");
    assert_eq!(string(&endpoints[0], "interval"), "15s");
    assert_eq!(string(&endpoints[0], "port"), string(http, "name"));
    let router = std::fs::read_to_string(root().join("src/http/router.rs")).unwrap();
    assert!(router.contains("\"/metrics\""));
    // The selector matches exactly one Service: the ClusterIP one (no double scrape).
    let selector = at(sm, "spec.selector.matchLabels").as_mapping().unwrap();
    let matched: Vec<&str> = docs
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["kind"].as_str() == Some("Service"))
        .filter(|d| {
            let labels = d["metadata"]["labels"].as_mapping();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .map(|d| string(d, "metadata.name"))
        .collect();
    assert_eq!(matched, ["irgan"], "ServiceMonitor selector");
}

/// Every YAML document under `deploy/k8s-nats` (the NATS chart's values file aside).
fn nats_documents() -> Vec<Value> {
    let dir = root().join("deploy/k8s-nats");
    let mut out = Vec::new();
    for name in ["serve.yaml", "train.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let v = <Value as serde::Deserialize>::deserialize(doc).unwrap();
            if !v.is_null() {
                out.push(v);
            }
        }
    }
    out
}

/// Past one machine: a serving Deployment with an HPA on CPU, a trainer Deployment of 2, NATS
/// from its official chart through a values file (JetStream, 3 nodes); the single-node
/// StatefulSet of deploy/k8s stays. Each container's settings (the ConfigMap plus its env)
/// load with the service's own loader.
#[test]
fn nats_manifests_scale_replicas_and_run_two_trainers() {
    let docs = nats_documents();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| string(d, "kind") == kind && string(d, "metadata.name") == name)
            .unwrap_or_else(|| panic!("{kind} {name}"))
    };
    for d in &docs {
        assert_eq!(string(d, "metadata.namespace"), "irgan");
    }
    let serve = find("Deployment", "irgan-serve");
    let train = find("Deployment", "irgan-train");
    assert_eq!(at(train, "spec.replicas").as_u64(), Some(2));
    let hpa = find("HorizontalPodAutoscaler", "irgan-serve");
    assert_eq!(string(hpa, "spec.scaleTargetRef.name"), "irgan-serve");
    assert_eq!(string(hpa, "spec.metrics.0.resource.name"), "cpu");
    find("Service", "irgan-serve");
    let local = documents();
    one(&local, "StatefulSet", None);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("default.toml");
    std::fs::write(&file, config_toml(&local)).unwrap();
    for (d, role) in [(serve, "serve"), (train, "train")] {
        let c = container(d);
        let args: Vec<&str> = at(c, "args")
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(args.windows(2).any(|w| w == ["--role", role]), "{args:?}");
        let env: Vec<(String, String)> = at(c, "env")
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
            .collect();
        let cfg = ServiceConfig::load(
            Some(&file),
            env,
            &[
                format!("server.role={role}"),
                "server.api_key=test".to_string(),
            ],
        )
        .unwrap_or_else(|e| panic!("{role}: {e}"));
        assert_eq!(
            cfg.storage.backend,
            irgan::online::settings::StorageBackend::Nats
        );
        assert_eq!(cfg.nats.replicas, 3);
    }

    let values: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("deploy/k8s-nats/nats-values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        at(&values, "config.jetstream.enabled").as_bool(),
        Some(true)
    );
    assert_eq!(at(&values, "config.cluster.replicas").as_u64(), Some(3));
}
