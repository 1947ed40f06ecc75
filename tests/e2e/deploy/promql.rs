//! The references a PromQL expression makes that the dashboard check needs:
//! `portcullis_*` metrics with their label matchers, and grouping labels.
//! Not a PromQL parser: enough of the lexical structure (identifiers,
//! quoted strings, `{...}` and `(...)`) to find those.

use crate::exposition::split_outside_quotes;

/// A metric used in a PromQL expression, with its label matchers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MetricUse {
    pub(crate) name: String,
    /// (label, operator, value).
    pub(crate) matchers: Vec<(String, String, String)>,
}

/// What a PromQL expression refers to: `portcullis_*` metrics with their
/// matchers, and the label names of `by`/`without`/`on`/`ignoring`/`group_*`.
pub(crate) fn promql_references(expr: &str) -> (Vec<MetricUse>, Vec<String>) {
    let chars: Vec<char> = expr.chars().collect();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut metrics = Vec::new();
    let mut grouping = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            quoted = !quoted;
            i += 1;
            continue;
        }
        if quoted {
            if c == '\\' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if !(is_ident(c) && (i == 0 || !is_ident(chars[i - 1]))) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let next = chars.get(j).copied();
        let closing = |from: usize, close: char| -> usize {
            let mut k = from;
            let mut q = false;
            while k < chars.len() && (q || chars[k] != close) {
                if chars[k] == '"' {
                    q = !q;
                } else if q && chars[k] == '\\' {
                    k += 1;
                }
                k += 1;
            }
            k
        };
        if word.starts_with("portcullis_") {
            let mut matchers = Vec::new();
            if next == Some('{') {
                let end = closing(j + 1, '}');
                let body: String = chars[j + 1..end.min(chars.len())].iter().collect();
                for matcher in split_outside_quotes(&body, ',') {
                    let op_at = matcher.find(['=', '!']).unwrap_or_else(|| panic!("bad matcher {matcher:?}"));
                    let label = matcher[..op_at].trim().to_owned();
                    let rest = &matcher[op_at..];
                    let op_len =
                        if rest.starts_with("=~") || rest.starts_with("!~") || rest.starts_with("!=") { 2 } else { 1 };
                    let value = rest[op_len..].trim().trim_matches('"').to_owned();
                    matchers.push((label, rest[..op_len].to_owned(), value));
                }
                i = end + 1;
            }
            metrics.push(MetricUse { name: word, matchers });
        } else if matches!(word.as_str(), "by" | "without" | "on" | "ignoring" | "group_left" | "group_right")
            && next == Some('(')
        {
            let end = closing(j + 1, ')');
            let body: String = chars[j + 1..end.min(chars.len())].iter().collect();
            grouping.extend(split_outside_quotes(&body, ','));
            i = end + 1;
        }
    }
    (metrics, grouping)
}

#[cfg(test)]
mod tests {
    use super::{promql_references, MetricUse};

    fn metric(name: &str, matchers: &[(&str, &str, &str)]) -> MetricUse {
        let matchers = matchers.iter().map(|(l, o, v)| ((*l).to_owned(), (*o).to_owned(), (*v).to_owned())).collect();
        MetricUse { name: name.to_owned(), matchers }
    }

    #[test]
    fn a_metric_with_every_matcher_operator_and_a_grouping() {
        let (metrics, grouping) = promql_references(
            r#"sum by (decision, route) (rate(portcullis_requests_total{decision=~"allow|public", route!="x", job="p", class!~"5.."}[5m]))"#,
        );
        assert_eq!(
            metrics,
            [metric(
                "portcullis_requests_total",
                &[("decision", "=~", "allow|public"), ("route", "!=", "x"), ("job", "=", "p"), ("class", "!~", "5..")]
            )]
        );
        assert_eq!(grouping, ["decision", "route"]);
    }

    #[test]
    fn several_metrics_and_every_grouping_keyword() {
        let (metrics, grouping) = promql_references(
            "histogram_quantile(0.99, sum without(pod) (rate(portcullis_request_duration_seconds_bucket[5m]))) \
             / on(instance) group_left(issuer) portcullis_issuer_ready \
             + ignoring (le) group_right (route) portcullis_jwks_keys",
        );
        assert_eq!(
            metrics,
            [
                metric("portcullis_request_duration_seconds_bucket", &[]),
                metric("portcullis_issuer_ready", &[]),
                metric("portcullis_jwks_keys", &[]),
            ]
        );
        assert_eq!(grouping, ["pod", "instance", "issuer", "le", "route"]);
    }

    #[test]
    fn other_metrics_strings_and_partial_words_are_not_references() {
        let (metrics, grouping) = promql_references(
            r#"up{job="portcullis_admin"} == 0 or label_replace(xportcullis_y, "portcullis_z", "by(x)", "", "")"#,
        );
        assert!(metrics.is_empty(), "{metrics:?}");
        assert!(grouping.is_empty(), "{grouping:?}");
        // `by` not followed by `(` is no grouping; a metric after one still counts.
        let (metrics, grouping) = promql_references("by + portcullis_config_reloads_total");
        assert_eq!(metrics, [metric("portcullis_config_reloads_total", &[])]);
        assert!(grouping.is_empty(), "{grouping:?}");
    }

    #[test]
    fn quotes_and_braces_inside_matcher_values_stay_in_the_value() {
        let (metrics, _) =
            promql_references(r#"portcullis_requests_total{route="/a/{id}",decision="x\"}",class="2xx"} > 0"#);
        assert_eq!(
            metrics,
            [metric(
                "portcullis_requests_total",
                &[("route", "=", "/a/{id}"), ("decision", "=", r#"x\"}"#), ("class", "=", "2xx")]
            )]
        );
    }
}
