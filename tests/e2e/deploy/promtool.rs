//! promtool checks the alert rules, runs their unit tests, and checks both
//! Prometheus configurations, the Kubernetes one included.
//!
//! Debian's promtool is built without Kubernetes service discovery: it
//! refuses a file with `kubernetes_sd_configs` as an unknown field, and
//! then never gets to the checks that follow decoding (other misspelt
//! fields, `scrape_timeout` over `scrape_interval`, the rule files).
//! [`static_discovery`] therefore writes a copy in which each such block is
//! a `static_configs` target, with everything else (relabelling, paths,
//! intervals, rule files) kept, so promtool checks all of it; the discovery
//! blocks themselves are checked here (role and keys).

use std::path::Path;
use std::process::Command;

use serde_json::{json, Map, Value};

use crate::common::{array_at, at, docs_of, rel, str_at, yaml_docs, Kind, YamlDoc};

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running promtool (install Debian's `prometheus` package): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Roles of `kubernetes_sd_configs` (Prometheus 2.x).
const KUBERNETES_ROLES: &[&str] = &["node", "service", "pod", "endpoints", "endpointslice", "ingress"];

/// Keys of one `kubernetes_sd_configs` entry (Prometheus 2.x).
const KUBERNETES_SD_KEYS: &[&str] = &[
    "role",
    "api_server",
    "kubeconfig_file",
    "namespaces",
    "selectors",
    "attach_metadata",
    "basic_auth",
    "authorization",
    "oauth2",
    "bearer_token",
    "bearer_token_file",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "tls_config",
    "follow_redirects",
    "enable_http2",
];

/// Where a rewritten discovery block sends its scrapes: only its syntax matters.
const STAND_IN_TARGET: &str = "kubernetes-sd.invalid:9901";

/// `config` (a Prometheus configuration) with every `kubernetes_sd_configs`
/// block replaced by a static target, and how many blocks were replaced.
/// Problems with the discovery blocks themselves (unknown role or key) are
/// the error.
pub(crate) fn static_discovery(config: &Value) -> Result<(Value, usize), Vec<String>> {
    let mut config = config.clone();
    let mut problems = Vec::new();
    let mut replaced = 0;
    let jobs =
        config.get_mut("scrape_configs").and_then(Value::as_array_mut).map(Vec::as_mut_slice).unwrap_or_default();
    for job in jobs.iter_mut().filter_map(Value::as_object_mut) {
        let name = job.get("job_name").and_then(Value::as_str).unwrap_or("?").to_owned();
        let Some(discovery) = job.remove("kubernetes_sd_configs") else { continue };
        for entry in discovery.as_array().map_or(&[][..], Vec::as_slice) {
            problems.extend(kubernetes_sd_problems(&name, entry));
            let statics = job.entry("static_configs").or_insert_with(|| json!([]));
            match statics.as_array_mut() {
                Some(statics) => statics.push(json!({"targets": [STAND_IN_TARGET]})),
                None => problems.push(format!("job {name}: static_configs is not a list")),
            }
            replaced += 1;
        }
        if discovery.as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("job {name}: kubernetes_sd_configs is not a non-empty list"));
        }
    }
    if problems.is_empty() {
        Ok((config, replaced))
    } else {
        Err(problems)
    }
}

fn kubernetes_sd_problems(job: &str, entry: &Value) -> Vec<String> {
    let Some(entry) = entry.as_object() else {
        return vec![format!("job {job}: a kubernetes_sd_configs entry is not a mapping")];
    };
    let mut problems: Vec<String> = entry
        .keys()
        .filter(|key| !KUBERNETES_SD_KEYS.contains(&key.as_str()))
        .map(|key| format!("job {job}: kubernetes_sd_configs has no field {key}"))
        .collect();
    match entry.get("role").and_then(Value::as_str) {
        Some(role) if KUBERNETES_ROLES.contains(&role) => {}
        role => {
            problems.push(format!("job {job}: kubernetes_sd_configs role {role:?} is not one of {KUBERNETES_ROLES:?}"))
        }
    }
    problems
}

/// Whether promtool refused a configuration only for lack of Kubernetes
/// discovery support (it may list other unknown fields after that one).
fn unsupported_sd(output: &str) -> bool {
    output.contains("field kubernetes_sd_configs not found")
}

/// `promtool check config` on `config`, a configuration read from `dir`,
/// written to a file of its own (`rule_files` made absolute).
fn check_config_value(config: &Value, dir: &Path) -> (bool, String) {
    let mut config = config.clone();
    if let Some(files) = config.get_mut("rule_files").and_then(Value::as_array_mut) {
        for file in files {
            if let Some(path) = file.as_str() {
                *file = Value::String(dir.join(path).to_string_lossy().into_owned());
            }
        }
    }
    let temp = tempfile::tempdir().expect("temp dir");
    let path = temp.path().join("prometheus.yml");
    // JSON is YAML: promtool reads it as it reads the original.
    std::fs::write(&path, serde_json::to_string_pretty(&config).expect("JSON")).expect("write the configuration");
    promtool(&["check", "config", &path.to_string_lossy()], temp.path())
}

/// promtool's verdict on a Prometheus configuration document: as it is,
/// and, when it uses Kubernetes discovery, its [`static_discovery`] copy,
/// which must pass whatever this promtool thinks of the original. Returns
/// how many discovery blocks the copy replaced.
fn check_prometheus_config(doc: &YamlDoc) -> Result<usize, String> {
    let dir = doc.path.parent().expect("directory");
    let origin = rel(&doc.path);
    let (config, replaced) =
        static_discovery(&doc.value).map_err(|problems| format!("{origin}:\n{}", problems.join("\n")))?;
    let (ok, output) = check_config_value(&doc.value, dir);
    let refused_only_for_discovery = replaced > 0 && unsupported_sd(&output);
    if !(ok || refused_only_for_discovery) {
        return Err(format!("promtool check config {origin}:\n{output}"));
    }
    if replaced > 0 {
        let (ok, output) = check_config_value(&config, dir);
        if !ok {
            return Err(format!(
                "promtool check config {origin}, with kubernetes_sd_configs replaced by static_configs:\n{output}"
            ));
        }
    }
    Ok(replaced)
}

/// Run `promtool COMMAND rules FILE` on every document of `kind`, in its
/// directory; panic on a failure or when there is none.
fn promtool_rules(command: &str, kind: Kind) {
    let docs = yaml_docs();
    let files: Vec<&YamlDoc> = docs_of(&docs, kind).collect();
    assert!(!files.is_empty(), "no {kind:?} file under deploy/");
    for doc in files {
        let dir = doc.path.parent().expect("directory");
        let (ok, output) = promtool(&[command, "rules", &doc.path.to_string_lossy()], dir);
        assert!(ok, "promtool {command} rules {}:\n{output}", rel(&doc.path));
    }
}

#[test]
fn promtool_accepts_the_alert_rules() {
    promtool_rules("check", Kind::PrometheusRules);
}

#[test]
fn promtool_runs_the_alert_rule_tests() {
    promtool_rules("test", Kind::PromtoolTests);
}

#[test]
fn promtool_accepts_the_prometheus_configurations_kubernetes_discovery_included() {
    let docs = yaml_docs();
    let (mut configs, mut discovery_blocks) = (0, 0);
    for doc in docs_of(&docs, Kind::PrometheusConfig) {
        // rule_files resolve relative to the configuration's directory.
        let dir = doc.path.parent().expect("directory");
        for rule_file in array_at(&doc.value, &["rule_files"]).iter().filter_map(Value::as_str) {
            assert!(dir.join(rule_file).is_file(), "{}: rule file {rule_file} does not exist", rel(&doc.path));
        }
        // The file itself, as Prometheus reads it (not through serde-saphyr).
        let (ok, output) = promtool(&["check", "config", &doc.path.to_string_lossy()], dir);
        assert!(ok || unsupported_sd(&output), "promtool check config {}:\n{output}", rel(&doc.path));
        discovery_blocks += check_prometheus_config(doc).unwrap_or_else(|problem| panic!("{problem}"));
        configs += 1;
    }
    assert!(configs >= 2, "expected the Compose and the Kubernetes Prometheus configurations, found {configs}");
    assert!(
        discovery_blocks > 0,
        "no kubernetes_sd_configs checked: is deploy/prometheus/prometheus-kubernetes.yml gone?"
    );
}

/// The Kubernetes configuration with `edit` applied to its first job.
fn broken_kubernetes_config(edit: impl FnOnce(&mut Map<String, Value>)) -> YamlDoc {
    let docs = yaml_docs();
    let doc = docs_of(&docs, Kind::PrometheusConfig)
        .find(|d| array_at(&d.value, &["scrape_configs"]).iter().any(|j| at(j, &["kubernetes_sd_configs"]).is_some()))
        .expect("a Prometheus configuration with kubernetes_sd_configs");
    let mut value = doc.value.clone();
    let job = value["scrape_configs"][0].as_object_mut().expect("a scrape job");
    edit(job);
    YamlDoc { path: doc.path.clone(), kind: doc.kind, value }
}

#[test]
fn the_kubernetes_configuration_check_catches_errors_behind_the_discovery_block() {
    type Edit = fn(&mut Map<String, Value>);
    let cases: [(&str, Edit, &str); 5] = [
        ("an unknown relabel action", |job| job["relabel_configs"][0]["action"] = json!("keepp"), "keepp"),
        ("a regex that does not compile", |job| job["relabel_configs"][0]["regex"] = json!("(true"), "(true"),
        (
            "a misspelt job field",
            |job| {
                job.insert("scrape_intervall".into(), json!("15s"));
            },
            "scrape_intervall",
        ),
        (
            "a scrape timeout longer than the interval",
            |job| {
                job.insert("scrape_interval".into(), json!("5s"));
                job.insert("scrape_timeout".into(), json!("10s"));
            },
            "scrape timeout greater than scrape interval",
        ),
        ("a discovery role that does not exist", |job| job["kubernetes_sd_configs"][0]["role"] = json!("pods"), "pods"),
    ];
    for (what, edit, named) in cases {
        let doc = broken_kubernetes_config(edit);
        match check_prometheus_config(&doc) {
            Ok(_) => panic!("{what}: the check passed"),
            Err(problem) => assert!(problem.contains(named), "{what}: the failure does not name {named:?}:\n{problem}"),
        }
    }
    // Unbroken, the same path passes: the failures above are the edits'.
    assert_eq!(check_prometheus_config(&broken_kubernetes_config(|_| {})), Ok(1));
}

#[test]
fn prometheus_rule_resource_carries_the_same_rules_as_the_alert_file() {
    let docs = yaml_docs();
    let files: Vec<&YamlDoc> = docs_of(&docs, Kind::PrometheusRules).collect();
    let mut resources = 0;
    for doc in docs_of(&docs, Kind::Kubernetes).filter(|d| str_at(&d.value, &["kind"]) == Some("PrometheusRule")) {
        let groups = at(&doc.value, &["spec", "groups"]);
        assert!(
            files.iter().any(|f| at(&f.value, &["groups"]) == groups),
            "{}: spec.groups differs from every Prometheus rules file; keep it equal to \
             deploy/prometheus/portcullis-alerts.yaml",
            rel(&doc.path)
        );
        resources += 1;
    }
    assert!(resources > 0, "no PrometheusRule under deploy/kubernetes");
}
