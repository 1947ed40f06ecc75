//! Every YAML and JSON file parses and is recognised; every portcullis
//! configuration, standalone or a key of a Kubernetes ConfigMap, passes
//! `portcullis check`, and every policy file is included by one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use harness::certs::Ca;
use harness::proxy::run_cli;
use serde_json::Value;

use crate::common::{
    array_at, at, classify, deploy_dir, docs_of, json_files, parse_yaml, read, rel, str_at, yaml_docs, Kind,
};

/// Run `portcullis check -c path`; panic with its output (each line passed
/// through `rewrite`) unless it exits 0.
fn check_config(path: &Path, origin: &str, rewrite: &dyn Fn(&str) -> String) {
    let path_text = path.to_string_lossy();
    let (code, stdout, stderr) = run_cli(&["check", "-c", &path_text], &[]);
    let output: String = format!("{stdout}{stderr}").lines().map(|l| rewrite(l) + "\n").collect();
    assert_eq!(code, 0, "`portcullis check` refused {origin}:\n{output}");
    assert!(stdout.contains(": OK ("), "{origin}: unexpected check output:\n{output}");
}

/// Where the Kubernetes gateway mounts the Secret cert-manager renews.
const TLS_MOUNT: &str = "/etc/portcullis-tls/";

/// `text` with the files of [`TLS_MOUNT`] replaced by certificates made
/// for the check in `dir` (a CA, and a server certificate it signed), so
/// `check` reads real files as it would in the Pod.
fn with_test_certificates(text: &str, dir: &Path) -> String {
    if !text.contains(TLS_MOUNT) {
        return text.to_owned();
    }
    let secret = dir.join("tls-secret");
    std::fs::create_dir_all(&secret).expect("secret dir");
    let ca = Ca::new(dir);
    ca.issue(&secret, "tls", &["api.example.com"], -60, 90 * 86_400);
    std::fs::copy(&ca.cert, secret.join("ca.crt")).expect("copy CA");
    text.replace(TLS_MOUNT, &format!("{}/", secret.display()))
}

/// Point `DIR/KEY:LINE:COL:` diagnostics about a file written out from a
/// ConfigMap key back at the line and column in the manifest.
fn configmap_positions(manifest: &Path, dir: &Path) -> impl Fn(&str) -> String {
    let text = read(manifest);
    let lines: Vec<&str> = text.lines().collect();
    // key -> (line of the key in the manifest, indentation of its block).
    let mut blocks = BTreeMap::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if let Some(key) = trimmed.strip_suffix(": |").or_else(|| trimmed.strip_suffix(": |-")) {
            let indent = lines.get(index + 1).map_or(0, |l| l.len() - l.trim_start().len());
            blocks.insert(key.trim_matches('"').to_owned(), (index + 1, indent));
        }
    }
    let (manifest, prefix) = (rel(manifest), format!("{}/", dir.display()));
    move |line: &str| {
        let Some(rest) = line.strip_prefix(&prefix) else { return line.to_owned() };
        let (key, after) = rest.split_once(':').unwrap_or((rest, ""));
        let mut parts = after.splitn(3, ':');
        let (row, col, message) = (parts.next(), parts.next(), parts.next());
        match (blocks.get(key), row.and_then(|r| r.parse::<usize>().ok()), col.and_then(|c| c.parse::<usize>().ok())) {
            (Some((start, indent)), Some(row), Some(col)) => format!(
                "{manifest}:{}:{}:{} (ConfigMap key {key})",
                start + row,
                col + indent,
                message.unwrap_or_default()
            ),
            _ => format!("{manifest} (ConfigMap key {key}):{after}"),
        }
    }
}

/// Files a configuration at `config_path` includes through `policy_files`.
fn included_policy_files(config_path: &Path, config: &Value) -> BTreeSet<PathBuf> {
    let base = config_path.parent().expect("config directory");
    let mut files = BTreeSet::new();
    for pattern in array_at(config, &["policy_files"]).iter().filter_map(Value::as_str) {
        let pattern = base.join(pattern).to_string_lossy().into_owned();
        for path in glob::glob(&pattern).unwrap_or_else(|e| panic!("bad pattern {pattern}: {e}")).flatten() {
            files.insert(path.canonicalize().expect("policy file path"));
        }
    }
    files
}

#[test]
fn every_yaml_and_json_file_parses_and_is_recognised() {
    let docs = yaml_docs();
    let kinds: BTreeSet<String> = docs.iter().map(|d| format!("{:?}", d.kind)).collect();
    for kind in [
        Kind::Kubernetes,
        Kind::Compose,
        Kind::PrometheusConfig,
        Kind::PrometheusRules,
        Kind::PortcullisConfig,
        Kind::PortcullisPolicy,
    ] {
        assert!(kinds.contains(&format!("{kind:?}")), "no {kind:?} file under deploy/ (found {kinds:?})");
    }
    let json = json_files();
    assert!(json.iter().any(|(p, _)| p.starts_with(deploy_dir().join("grafana"))), "no Grafana dashboard");
}

#[test]
fn every_portcullis_config_passes_check() {
    let docs = yaml_docs();
    let mut checked = 0;
    let mut included = BTreeSet::new();

    // Standalone files.
    for doc in docs_of(&docs, Kind::PortcullisConfig) {
        check_config(&doc.path, &rel(&doc.path), &str::to_owned);
        included.extend(included_policy_files(&doc.path, &doc.value));
        checked += 1;
    }
    // Every standalone policy file is part of some configuration.
    for doc in docs_of(&docs, Kind::PortcullisPolicy) {
        let path = doc.path.canonicalize().expect("policy path");
        assert!(included.contains(&path), "{} is not included by the policy_files of any configuration", rel(&path));
    }

    // Configurations inside Kubernetes ConfigMaps, written out with their
    // sibling keys so that `policy_files` globs resolve as in the Pod.
    for doc in docs_of(&docs, Kind::Kubernetes).filter(|d| str_at(&d.value, &["kind"]) == Some("ConfigMap")) {
        let name = str_at(&doc.value, &["metadata", "name"]).unwrap_or("?");
        let Some(data) = at(&doc.value, &["data"]).and_then(Value::as_object) else { continue };
        let parsed: Vec<(&String, Option<Kind>, Value)> = data
            .iter()
            .filter(|(key, _)| key.ends_with(".yaml") || key.ends_with(".yml"))
            .map(|(key, text)| {
                let text = text.as_str().unwrap_or_else(|| panic!("ConfigMap {name}: {key} is not a string"));
                let values = parse_yaml(text)
                    .unwrap_or_else(|e| panic!("{} ConfigMap {name} key {key}: not valid YAML: {e}", rel(&doc.path)));
                let value = values.into_iter().next().unwrap_or(Value::Null);
                (key, classify(&value), value)
            })
            .collect();
        if !parsed.iter().any(|(_, kind, _)| *kind == Some(Kind::PortcullisConfig)) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for (key, text) in data {
            let text = with_test_certificates(text.as_str().unwrap_or_default(), dir.path());
            std::fs::write(dir.path().join(key), text).expect("write ConfigMap key");
        }
        let mut included = BTreeSet::new();
        let positions = configmap_positions(&doc.path, dir.path());
        for (key, kind, value) in &parsed {
            if *kind == Some(Kind::PortcullisConfig) {
                let path = dir.path().join(key);
                check_config(&path, &format!("{} (ConfigMap {name}, key {key})", rel(&doc.path)), &positions);
                included.extend(included_policy_files(&path, value));
                checked += 1;
            }
        }
        for (key, kind, _) in &parsed {
            let path = dir.path().join(key).canonicalize().expect("key path");
            match kind {
                Some(Kind::PortcullisConfig) => {}
                Some(Kind::PortcullisPolicy) => assert!(
                    included.contains(&path),
                    "{} ConfigMap {name}: key {key} is not included by the configuration's policy_files",
                    rel(&doc.path)
                ),
                other => panic!("{} ConfigMap {name}: key {key} is not portcullis YAML ({other:?})", rel(&doc.path)),
            }
        }
    }
    assert!(checked >= 4, "expected the compose, systemd, sidecar and gateway configurations, checked {checked}");
}
