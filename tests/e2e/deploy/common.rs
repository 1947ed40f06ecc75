//! Finding, parsing and classifying the files under `deploy/`, and small
//! helpers for reading the parsed values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub(crate) fn deploy_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    dir.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

pub(crate) fn repo_root() -> PathBuf {
    deploy_dir().parent().expect("repository root").to_path_buf()
}

/// Every file under `dir`, sorted.
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn rel(path: &Path) -> String {
    path.strip_prefix(repo_root()).unwrap_or(path).display().to_string()
}

/// Every document of a (possibly multi-document) YAML text.
pub(crate) fn parse_yaml(text: &str) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Kubernetes,
    GrafanaProvisioning,
    Compose,
    PrometheusConfig,
    PromtoolTests,
    PrometheusRules,
    PortcullisConfig,
    PortcullisPolicy,
}

pub(crate) fn classify(doc: &Value) -> Option<Kind> {
    let map = doc.as_object()?;
    let has = |key: &str| map.contains_key(key);
    match map.get("apiVersion") {
        Some(Value::String(_)) if has("kind") => return Some(Kind::Kubernetes),
        Some(Value::Number(_)) => return Some(Kind::GrafanaProvisioning),
        _ => {}
    }
    if has("services") {
        Some(Kind::Compose)
    } else if has("scrape_configs") {
        Some(Kind::PrometheusConfig)
    } else if has("tests") {
        Some(Kind::PromtoolTests)
    } else if has("groups") {
        Some(Kind::PrometheusRules)
    } else if has("upstreams") {
        Some(Kind::PortcullisConfig)
    } else if map.len() == 1 && has("routes") {
        Some(Kind::PortcullisPolicy)
    } else {
        None
    }
}

pub(crate) struct YamlDoc {
    pub(crate) path: PathBuf,
    pub(crate) kind: Kind,
    pub(crate) value: Value,
}

/// Every YAML document under deploy/, classified. Panics on a file that does
/// not parse or a document no rule recognises.
pub(crate) fn yaml_docs() -> Vec<YamlDoc> {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for path in walk(&deploy_dir()).into_iter().filter(|p| has_extension(p, &["yaml", "yml"])) {
        match parse_yaml(&read(&path)) {
            Err(e) => problems.push(format!("{}: not valid YAML: {e}", rel(&path))),
            Ok(values) if values.is_empty() => problems.push(format!("{}: no YAML document", rel(&path))),
            Ok(values) => {
                for (index, value) in values.into_iter().enumerate() {
                    match classify(&value) {
                        Some(kind) => docs.push(YamlDoc { path: path.clone(), kind, value }),
                        None => problems.push(format!(
                            "{}: document {} is not a recognised kind of file (see the rules at the top of \
                             tests/e2e/deploy/main.rs)",
                            rel(&path),
                            index + 1
                        )),
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    docs
}

pub(crate) fn docs_of(docs: &[YamlDoc], kind: Kind) -> impl Iterator<Item = &YamlDoc> {
    docs.iter().filter(move |d| d.kind == kind)
}

pub(crate) fn json_files() -> Vec<(PathBuf, Value)> {
    walk(&deploy_dir())
        .into_iter()
        .filter(|p| has_extension(p, &["json"]))
        .map(|path| {
            let value = serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: not JSON: {e}", rel(&path)));
            (path, value)
        })
        .collect()
}

// ------------------------------------------------------------------ reading values

pub(crate) fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

pub(crate) fn array_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    at(value, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The port of `host:port`.
pub(crate) fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// Seconds of a duration as the configuration, systemd and Compose write it.
pub(crate) fn seconds(text: &str) -> u64 {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().unwrap_or_else(|_| panic!("not a duration: {text:?}"));
    match unit {
        "" | "s" => number,
        "m" | "min" => number * 60,
        "h" => number * 3600,
        "ms" => number / 1000,
        _ => panic!("unknown duration unit in {text:?}"),
    }
}

/// `shutdown.grace_period` of a portcullis configuration (default 30s).
pub(crate) fn grace_period(config: &Value) -> u64 {
    str_at(config, &["shutdown", "grace_period"]).map_or(30, seconds)
}

/// Environment variables a portcullis configuration reads secrets from.
pub(crate) fn secret_envs(config: &Value) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for issuer in array_at(config, &["issuers"]) {
        for path in [&["secret_env"][..], &["introspection", "client_secret_env"], &["introspection", "client_id_env"]]
        {
            if let Some(name) = str_at(issuer, path) {
                names.insert(name.to_owned());
            }
        }
    }
    for path in
        [&["redis", "hash_key_env"][..], &["redis", "username_env"], &["redis", "password_env"], &["admin_token_env"]]
    {
        if let Some(name) = str_at(config, path) {
            names.insert(name.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{classify, grace_period, port_of, seconds, secret_envs, Kind};

    #[test]
    fn classify_follows_the_rules_in_order() {
        let cases = [
            (json!({"apiVersion": "apps/v1", "kind": "Deployment"}), Some(Kind::Kubernetes)),
            (json!({"apiVersion": 1, "providers": []}), Some(Kind::GrafanaProvisioning)),
            (json!({"services": {}, "upstreams": {}}), Some(Kind::Compose)),
            (json!({"scrape_configs": [], "rule_files": []}), Some(Kind::PrometheusConfig)),
            (json!({"tests": [], "rule_files": []}), Some(Kind::PromtoolTests)),
            (json!({"groups": []}), Some(Kind::PrometheusRules)),
            (json!({"upstreams": {}, "routes": []}), Some(Kind::PortcullisConfig)),
            (json!({"routes": []}), Some(Kind::PortcullisPolicy)),
            (json!({"routes": [], "realm": "x"}), None),
            (json!({"apiVersion": "v1"}), None),
            (json!(["a list"]), None),
        ];
        for (doc, kind) in cases {
            assert_eq!(classify(&doc), kind, "{doc}");
        }
    }

    #[test]
    fn seconds_reads_each_unit() {
        let cases = [("45", 45), ("30s", 30), ("2m", 120), ("2min", 120), ("1h", 3600), ("1500ms", 1), (" 5s ", 5)];
        for (text, expected) in cases {
            assert_eq!(seconds(text), expected, "{text}");
        }
    }

    #[test]
    #[should_panic(expected = "unknown duration unit")]
    fn seconds_refuses_an_unknown_unit() {
        seconds("3d");
    }

    #[test]
    fn ports_grace_periods_and_secret_variables_of_a_configuration() {
        assert_eq!(port_of("0.0.0.0:9901"), 9901);
        assert_eq!(port_of("[::]:8080"), 8080);
        assert_eq!(grace_period(&json!({})), 30);
        assert_eq!(grace_period(&json!({"shutdown": {"grace_period": "1m"}})), 60);
        let config = json!({"issuers": [
            {"secret_env": "A"},
            {"introspection": {"client_secret_env": "B", "client_id_env": "C"}},
            {"name": "none"}
        ], "redis": {"hash_key_env": "D", "username_env": "E", "password_env": "F"}, "admin_token_env": "G"});
        assert_eq!(secret_envs(&config).into_iter().collect::<Vec<_>>(), ["A", "B", "C", "D", "E", "F", "G"]);
    }
}
