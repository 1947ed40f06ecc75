//! The Grafana dashboard and the alert rules use only metrics, labels and
//! label values that a running proxy exposes after real traffic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use harness::client::{get, get_with_token};
use harness::fixtures::AUDIENCE;
use harness::keys::{claims, jwks, TestKey};
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::{KeyServer, Upstream};
use harness::{free_port, wait_until};
use serde_json::Value;

use crate::common::{array_at, at, deploy_dir, docs_of, json_files, rel, str_at, yaml_docs, Kind};
use crate::exposition::Scrape;
use crate::promql::promql_references;

/// Metrics the dashboard or alerts may use although the proxy never exposes
/// them yet, with the reason. Listed metrics that do appear fail the test:
/// remove them here once the proxy records them.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Label values the proxy produces, for the labels whose values are a fixed set.
fn known_label_values(metric: &str, label: &str) -> Option<&'static [&'static str]> {
    Some(match (metric, label) {
        (_, "decision") => &[
            "public",
            "allow",
            "unauthenticated",
            "invalid_token",
            "invalid_api_key",
            "issuer_unavailable",
            "issuer_not_accepted",
            "insufficient_scope",
            "claim_not_met",
            "no_route",
            "rate_limited",
            "limit_unavailable",
            "preflight",
            "cors_refused",
            "sign_in",
            "signed_in",
            "sign_in_failed",
            "signed_out",
            "cross_site_refused",
            "session_unavailable",
            "client_cert_required",
            "client_cert_refused",
            "bad_request",
            "upstream_error",
        ],
        (_, "class") => &["1xx", "2xx", "3xx", "4xx", "5xx"],
        (_, "source") => &["cache", "verify", "introspect", "api_key", "rejected"],
        ("portcullis_jwks_fetches_total", "result") => {
            &["ok", "timeout", "http_error", "too_large", "unreachable", "invalid"]
        }
        ("portcullis_introspection_requests_total", "result") => &["active", "inactive", "error", "over_budget"],
        ("portcullis_config_reloads_total", "result") => &["success", "failure"],
        _ => return None,
    })
}

/// Labels Prometheus adds to every scraped series, or the example scrape
/// configurations under deploy/ add.
const TARGET_LABELS: &[&str] = &["job", "instance", "environment", "namespace", "pod"];

/// Problems with the metrics, labels and label values `expr` uses.
fn check_expression(expr: &str, scrape: &Scrape, origin: &str, used: &mut BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let (metrics, grouping) = promql_references(expr);
    let mut all_labels = scrape.all_labels();
    all_labels.extend(TARGET_LABELS.iter().map(|s| (*s).to_owned()));
    for label in grouping {
        if !all_labels.contains(&label) {
            problems.push(format!("{origin}: grouping label {label:?} is on no portcullis series"));
        }
    }
    for metric in metrics {
        used.insert(metric.name.clone());
        if KNOWN_GAPS.iter().any(|(name, _)| *name == metric.name) {
            continue;
        }
        let (family, labels) = match scrape.resolve(&metric.name) {
            Ok(found) => found,
            Err(why) => {
                problems.push(format!("{origin}: {why}"));
                continue;
            }
        };
        for (label, op, value) in &metric.matchers {
            if !labels.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                problems.push(format!("{origin}: {} has no label {label:?} (it has {labels:?})", metric.name));
                continue;
            }
            let Some(allowed) = known_label_values(&family, label) else { continue };
            let alternatives: Vec<&str> =
                if op.contains('~') { value.split('|').collect() } else { vec![value.as_str()] };
            for alternative in alternatives {
                let literal = !alternative.is_empty()
                    && alternative.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if literal && !allowed.contains(&alternative) {
                    problems.push(format!(
                        "{origin}: {}{{{label}{op}\"{value}\"}}: {alternative:?} is not a value portcullis uses \
                         ({allowed:?})",
                        metric.name
                    ));
                }
            }
        }
    }
    problems
}

/// Every PromQL string in a Grafana dashboard: panel targets and variables.
fn dashboard_expressions(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let here = format!("{path}.{key}");
                match (key.as_str(), child) {
                    ("expr" | "definition", Value::String(expr)) => out.push((here, expr.clone())),
                    ("query", Value::String(expr)) if expr.contains('(') => out.push((here, expr.clone())),
                    _ => dashboard_expressions(child, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                dashboard_expressions(item, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

/// Every alerting or recording rule expression in a rules document.
fn rule_expressions(groups: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for group in groups.as_array().map_or(&[][..], Vec::as_slice) {
        for rule in array_at(group, &["rules"]) {
            let name = str_at(rule, &["alert"]).or_else(|| str_at(rule, &["record"])).unwrap_or("?");
            let expr = str_at(rule, &["expr"]).unwrap_or_else(|| panic!("rule {name} has no expr"));
            out.push((name.to_owned(), expr.to_owned()));
        }
    }
    out
}

/// Start a proxy and send traffic that gives every metric family a series:
/// verified and cached tokens, a refused token, an opaque token sent to a
/// failing introspection endpoint, a public request, a rate-limited one.
fn scrape_after_traffic() -> String {
    let upstream = Upstream::start("api");
    let rsa = TestKey::rsa("rsa-1");
    let keys = KeyServer::start(jwks(&[&rsa]));
    let closed = free_port();
    let config = format!(
        r#"threads: 1
upstreams:
  api:
    url: "{upstream}"
issuers:
  - name: sso
    issuer: "{issuer}"
    audiences: ["{AUDIENCE}"]
    algorithms: ["RS256"]
    http_timeout: 2s
    introspection:
      endpoint: "http://127.0.0.1:{closed}/introspect"
      client_id: deploy-test
      client_secret_env: DEPLOY_TEST_INTROSPECTION_SECRET
rate_limits:
  tight:
    key: "header:X-Client"
    limit: 1
    per: 1h
    burst: 1
    max_keys: 1
routes:
  - path: /public/**
    public: true
  - path: /limited/**
    public: true
    rate_limit: tight
  - path: /todos/**
    scopes: [tasks:read]
"#,
        upstream = upstream.url(),
        issuer = keys.issuer(),
    );
    let env = [("DEPLOY_TEST_INTROSPECTION_SECRET", "introspection-secret")];
    let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &env, wait_ready: true });
    let token = rsa.sign(&claims(&keys.issuer(), AUDIENCE, "alice", "tasks:read"));
    assert_eq!(get_with_token(proxy.addr, "/todos/1", &token).status, 200);
    assert_eq!(get_with_token(proxy.addr, "/todos/2", &token).status, 200, "cached token");
    let mut expired = claims(&keys.issuer(), AUDIENCE, "mallory", "tasks:read");
    expired["exp"] = (harness::now() - 3600).into();
    assert_eq!(get_with_token(proxy.addr, "/todos/3", &rsa.sign(&expired)).status, 401);
    assert_eq!(get_with_token(proxy.addr, "/todos/4", "opaque-token-for-introspection").status, 503);
    assert_eq!(get(proxy.addr, "/public/x", &[]).status, 200);
    for (client, expected) in [("a", 200), ("a", 429), ("b", 200), ("b", 429)] {
        assert_eq!(get(proxy.addr, "/limited/x", &[("X-Client", client)]).status, expected, "client {client}");
    }
    let mut text = String::new();
    let complete = wait_until(std::time::Duration::from_secs(5), || {
        text = proxy.metrics();
        text.contains("portcullis_introspection_requests_total{")
            && text.contains("portcullis_upstream_responses_total{")
    });
    assert!(complete, "metrics after traffic:\n{text}");
    text
}

#[test]
fn dashboard_and_alert_rules_use_only_metrics_the_proxy_exposes() {
    let scrape = Scrape::parse(&scrape_after_traffic());
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();

    let dashboards: Vec<(PathBuf, Value)> =
        json_files().into_iter().filter(|(p, _)| p.starts_with(deploy_dir().join("grafana"))).collect();
    assert!(!dashboards.is_empty(), "no dashboard under deploy/grafana");
    for (path, dashboard) in &dashboards {
        let mut expressions = Vec::new();
        dashboard_expressions(dashboard, "", &mut expressions);
        assert!(expressions.len() > 10, "{}: only {} expressions", rel(path), expressions.len());
        for (where_, expr) in expressions {
            problems.extend(check_expression(&expr, &scrape, &format!("{}{where_}", rel(path)), &mut used));
        }
        check_dashboard_shape(path, dashboard, &mut problems);
    }

    let docs = yaml_docs();
    let mut rule_sets = Vec::new();
    for doc in docs_of(&docs, Kind::PrometheusRules) {
        rule_sets.push((rel(&doc.path), at(&doc.value, &["groups"]).cloned().unwrap_or_default()));
    }
    for doc in docs_of(&docs, Kind::Kubernetes).filter(|d| str_at(&d.value, &["kind"]) == Some("PrometheusRule")) {
        rule_sets.push((rel(&doc.path), at(&doc.value, &["spec", "groups"]).cloned().unwrap_or_default()));
    }
    for (origin, groups) in &rule_sets {
        for (alert, expr) in rule_expressions(groups) {
            problems.extend(check_expression(&expr, &scrape, &format!("{origin}: {alert}"), &mut used));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The dashboard covers what the issue asks for.
    for wanted in [
        "portcullis_requests_total",
        "portcullis_request_duration_seconds_bucket",
        "portcullis_auth_duration_seconds_bucket",
        "portcullis_upstream_responses_total",
        "portcullis_jwks_fetches_total",
        "portcullis_jwks_keys",
        "portcullis_issuer_ready",
        "portcullis_config_reloads_total",
        "portcullis_config_last_reload_success_timestamp_seconds",
        "portcullis_rate_limit_rejections_total",
        "portcullis_rate_limit_keys",
        "portcullis_token_cache_hits_total",
        "portcullis_token_cache_misses_total",
    ] {
        assert!(used.contains(wanted), "neither the dashboard nor the alerts use {wanted}");
    }
    for (gap, why) in KNOWN_GAPS {
        assert!(
            !scrape.exposes(gap),
            "{gap} is exposed now; remove it from KNOWN_GAPS in tests/e2e/deploy/metrics.rs (it was listed because it was {why})"
        );
    }
}

/// A dashboard any Grafana imports: recent schema, a data source variable
/// used by every panel, unique panel ids.
fn check_dashboard_shape(path: &Path, dashboard: &Value, problems: &mut Vec<String>) {
    let origin = rel(path);
    let schema = at(dashboard, &["schemaVersion"]).and_then(Value::as_u64).unwrap_or(0);
    if schema < 36 {
        problems.push(format!("{origin}: schemaVersion {schema} is older than Grafana 9 (36)"));
    }
    let variables = array_at(dashboard, &["templating", "list"]);
    let datasource_var = variables
        .iter()
        .find(|v| str_at(v, &["type"]) == Some("datasource") && str_at(v, &["query"]) == Some("prometheus"))
        .and_then(|v| str_at(v, &["name"]));
    let Some(datasource_var) = datasource_var else {
        problems.push(format!("{origin}: no `datasource` template variable of type prometheus"));
        return;
    };
    let reference = format!("${{{datasource_var}}}");
    let mut ids = BTreeSet::new();
    for panel in array_at(dashboard, &["panels"]) {
        let title = str_at(panel, &["title"]).unwrap_or("?");
        if let Some(id) = at(panel, &["id"]).and_then(Value::as_u64) {
            if !ids.insert(id) {
                problems.push(format!("{origin}: panel id {id} is used twice"));
            }
        }
        if str_at(panel, &["type"]) == Some("row") {
            continue;
        }
        if str_at(panel, &["datasource", "uid"]) != Some(reference.as_str()) {
            problems.push(format!("{origin}: panel {title:?} does not use the data source {reference}"));
        }
        if array_at(panel, &["targets"]).is_empty() {
            problems.push(format!("{origin}: panel {title:?} has no query"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::{check_expression, dashboard_expressions, rule_expressions};
    use crate::exposition::Scrape;

    const EXPOSITION: &str = "# TYPE portcullis_requests_total counter\n\
                              portcullis_requests_total{decision=\"allow\",route=\"/a\"} 1\n";

    fn problems(expr: &str) -> Vec<String> {
        check_expression(expr, &Scrape::parse(EXPOSITION), "test", &mut BTreeSet::new())
    }

    #[test]
    fn check_expression_accepts_what_the_scrape_has_and_names_what_it_lacks() {
        let mut used = BTreeSet::new();
        let ok = r#"sum by (route, instance) (rate(portcullis_requests_total{decision=~"allow|public",job="p"}[5m]))"#;
        assert_eq!(check_expression(ok, &Scrape::parse(EXPOSITION), "test", &mut used), Vec::<String>::new());
        assert_eq!(used, BTreeSet::from(["portcullis_requests_total".to_owned()]));
        assert_eq!(
            problems("portcullis_gone_total"),
            ["test: portcullis_gone_total is not in /metrics (no `# TYPE` line)"]
        );
        assert_eq!(
            problems("sum by (colour) (portcullis_requests_total)"),
            ["test: grouping label \"colour\" is on no portcullis series"]
        );
        assert_eq!(problems(r#"portcullis_requests_total{colour="red"}"#).len(), 1);
        assert_eq!(
            problems(r#"portcullis_requests_total{decision="allowed"}"#),
            ["test: portcullis_requests_total{decision=\"allowed\"}: \"allowed\" is not a value portcullis uses \
             ([\"public\", \"allow\", \"unauthenticated\", \"invalid_token\", \"invalid_api_key\", \"issuer_unavailable\", \
             \"issuer_not_accepted\", \"insufficient_scope\", \"claim_not_met\", \"no_route\", \"rate_limited\", \"limit_unavailable\", \"preflight\", \
             \"cors_refused\", \"sign_in\", \"signed_in\", \"sign_in_failed\", \"signed_out\", \"cross_site_refused\", \
             \"session_unavailable\", \"client_cert_required\", \"client_cert_refused\", \"bad_request\", \"upstream_error\"])"]
        );
        // Regular expressions are checked only where an alternative is a literal word.
        assert!(problems(r#"portcullis_requests_total{decision=~"allow|.*error"}"#).is_empty());
    }

    #[test]
    fn dashboard_expressions_finds_targets_and_query_variables() {
        let dashboard = json!({
            "panels": [{"targets": [{"expr": "a"}, {"expr": "b"}]}],
            "templating": {"list": [{"query": "label_values(x, route)"}, {"query": "prometheus"}, {"definition": "c"}]}
        });
        let mut found = Vec::new();
        dashboard_expressions(&dashboard, "", &mut found);
        let found: Vec<(&str, &str)> = found.iter().map(|(w, e)| (w.as_str(), e.as_str())).collect();
        assert_eq!(
            found,
            [
                (".panels[0].targets[0].expr", "a"),
                (".panels[0].targets[1].expr", "b"),
                (".templating.list[0].query", "label_values(x, route)"),
                (".templating.list[2].definition", "c"),
            ]
        );
    }

    #[test]
    fn rule_expressions_names_alerts_and_recording_rules() {
        let groups = json!([{"rules": [{"alert": "Down", "expr": "up == 0"}, {"record": "r:x", "expr": "sum(x)"}]}]);
        assert_eq!(
            rule_expressions(&groups),
            [("Down".to_owned(), "up == 0".to_owned()), ("r:x".to_owned(), "sum(x)".to_owned())]
        );
    }
}
