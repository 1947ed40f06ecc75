//! The part of the Prometheus text exposition format the dashboard check
//! needs: metric families, their types and the label names of their series.

use std::collections::{BTreeMap, BTreeSet};

/// What a scrape says about each metric family (a name with a `# TYPE`
/// line): its type and the label names its series carry.
pub(crate) struct Scrape {
    families: BTreeMap<String, (String, BTreeSet<String>)>,
}

impl Scrape {
    pub(crate) fn parse(text: &str) -> Scrape {
        let mut families: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    families.entry(name.to_owned()).or_default().0 = kind.to_owned();
                }
            }
        }
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let name_end = line.find(['{', ' ']).unwrap_or(line.len());
            let name = &line[..name_end];
            let family = Scrape::family_name(&families, name);
            let labels: BTreeSet<String> = match line[name_end..].strip_prefix('{') {
                Some(rest) => {
                    let body = &rest[..rest.rfind('}').unwrap_or(rest.len())];
                    split_outside_quotes(body, ',')
                        .iter()
                        .filter_map(|m| m.split_once('=').map(|(l, _)| l.trim().to_owned()))
                        .filter(|l| !l.is_empty())
                        .collect()
                }
                None => BTreeSet::new(),
            };
            if let Some(entry) = family.and_then(|f| families.get_mut(&f)) {
                entry.1.extend(labels);
            }
        }
        Scrape { families }
    }

    fn family_name(families: &BTreeMap<String, (String, BTreeSet<String>)>, series: &str) -> Option<String> {
        if families.contains_key(series) {
            return Some(series.to_owned());
        }
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| series.strip_suffix(suffix))
            .filter(|base| families.get(*base).is_some_and(|(kind, _)| kind == "histogram" || kind == "summary"))
            .map(str::to_owned)
    }

    /// The family a name used in PromQL refers to and the labels its series
    /// carry, or why it does not exist.
    pub(crate) fn resolve(&self, name: &str) -> Result<(String, BTreeSet<String>), String> {
        match self.families.get(name) {
            Some((kind, _)) if kind == "histogram" || kind == "summary" => {
                Err(format!("{name} is a {kind}: query {name}_bucket, _sum or _count"))
            }
            Some((_, labels)) => Ok((name.to_owned(), labels.clone())),
            None => {
                let family = Scrape::family_name(&self.families, name)
                    .ok_or_else(|| format!("{name} is not in /metrics (no `# TYPE` line)"))?;
                let mut labels = self.families[&family].1.clone();
                if name.ends_with("_bucket") {
                    labels.insert("le".to_owned());
                } else {
                    labels.remove("le");
                }
                Ok((family, labels))
            }
        }
    }

    /// Every label name on some series, and `le`.
    pub(crate) fn all_labels(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.families.values().flat_map(|(_, labels)| labels.iter().cloned()).collect();
        all.insert("le".to_owned());
        all
    }

    /// Whether the scrape has a `# TYPE` line for `family`.
    pub(crate) fn exposes(&self, family: &str) -> bool {
        self.families.contains_key(family)
    }
}

/// Split `text` at `separator` where it is not inside double quotes.
pub(crate) fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if quoted && escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(String::new());
            continue;
        }
        parts.last_mut().expect("a part").push(c);
    }
    parts.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{split_outside_quotes, Scrape};

    const EXPOSITION: &str = r#"# HELP portcullis_requests_total Requests by decision.
# TYPE portcullis_requests_total counter
portcullis_requests_total{decision="allow",route="/todos/**"} 3
portcullis_requests_total{decision="no_route",route="(none)"} 1
# TYPE portcullis_request_duration_seconds histogram
portcullis_request_duration_seconds_bucket{route="/a",le="0.1"} 1
portcullis_request_duration_seconds_bucket{route="/a",le="+Inf"} 1
portcullis_request_duration_seconds_sum{route="/a"} 0.05
portcullis_request_duration_seconds_count{route="/a"} 1
# TYPE portcullis_issuer_ready gauge
portcullis_issuer_ready 1
# TYPE portcullis_tricky gauge
portcullis_tricky{text="a,b=c}",other="\"q\""} 2
untyped_series{x="y"} 7
"#;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn split_outside_quotes_keeps_quoted_separators_and_drops_empty_parts() {
        assert_eq!(split_outside_quotes(r#"a="x,y", b="z""#, ','), [r#"a="x,y""#, r#"b="z""#]);
        assert_eq!(split_outside_quotes(r#"a="x\",y",b=1"#, ','), [r#"a="x\",y""#, "b=1"]);
        assert_eq!(split_outside_quotes(" a , ,b ,", ','), ["a", "b"]);
        assert!(split_outside_quotes("", ',').is_empty());
    }

    #[test]
    fn parse_collects_each_family_type_and_label_names() {
        let scrape = Scrape::parse(EXPOSITION);
        let families: Vec<(&str, &str, BTreeSet<String>)> = scrape
            .families
            .iter()
            .map(|(name, (kind, labels))| (name.as_str(), kind.as_str(), labels.clone()))
            .collect();
        assert_eq!(
            families,
            [
                ("portcullis_issuer_ready", "gauge", set(&[])),
                ("portcullis_request_duration_seconds", "histogram", set(&["le", "route"])),
                ("portcullis_requests_total", "counter", set(&["decision", "route"])),
                ("portcullis_tricky", "gauge", set(&["other", "text"])),
            ]
        );
        assert!(scrape.exposes("portcullis_issuer_ready"));
        assert!(!scrape.exposes("untyped_series"), "a series without `# TYPE` is no family");
        assert_eq!(scrape.all_labels(), set(&["decision", "le", "other", "route", "text"]));
    }

    #[test]
    fn resolve_names_the_family_and_the_labels_of_a_series_name() {
        let scrape = Scrape::parse(EXPOSITION);
        assert_eq!(
            scrape.resolve("portcullis_requests_total"),
            Ok(("portcullis_requests_total".to_owned(), set(&["decision", "route"])))
        );
        let histogram = "portcullis_request_duration_seconds";
        assert_eq!(scrape.resolve(&format!("{histogram}_bucket")), Ok((histogram.to_owned(), set(&["le", "route"]))));
        assert_eq!(scrape.resolve(&format!("{histogram}_count")), Ok((histogram.to_owned(), set(&["route"]))));
        assert_eq!(scrape.resolve(&format!("{histogram}_sum")), Ok((histogram.to_owned(), set(&["route"]))));
        assert_eq!(
            scrape.resolve(histogram),
            Err(format!("{histogram} is a histogram: query {histogram}_bucket, _sum or _count"))
        );
        assert_eq!(
            scrape.resolve("portcullis_issuer_ready_count"),
            Err("portcullis_issuer_ready_count is not in /metrics (no `# TYPE` line)".to_owned()),
            "only histograms and summaries have _count series"
        );
        assert!(scrape.resolve("untyped_series").is_err());
    }
}
