//! The Kubernetes manifests have the basics, one check per property: each
//! check returns the problems it finds in one workload (a Deployment,
//! StatefulSet or DaemonSet, with the manifests of its directory), and each
//! test runs one check over every workload. The checks that need the
//! portcullis configuration a container runs with are in
//! [`crate::kubernetes_portcullis`].

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::{array_at, at, rel, str_at, yaml_docs, Kind, YamlDoc};

/// A workload and the manifests next to it.
pub(crate) struct Workload<'a> {
    pub(crate) doc: &'a YamlDoc,
    pub(crate) name: &'a str,
    /// `FILE Kind/name`, for problems.
    pub(crate) origin: String,
    /// The Kubernetes documents in the same directory, itself included.
    pub(crate) siblings: Vec<&'a YamlDoc>,
    pub(crate) template: Value,
    pub(crate) pod: Value,
    pub(crate) pod_labels: Value,
}

impl Workload<'_> {
    pub(crate) fn containers(&self) -> &[Value] {
        array_at(&self.pod, &["containers"])
    }

    /// The sibling manifest of `kind` named `name`.
    pub(crate) fn find(&self, kind: &str, name: &str) -> Option<&YamlDoc> {
        self.siblings
            .iter()
            .copied()
            .find(|d| kind_of(d) == kind && str_at(&d.value, &["metadata", "name"]) == Some(name))
    }

    /// Pod volume name → ConfigMap name.
    pub(crate) fn config_map_volumes(&self) -> BTreeMap<&str, &str> {
        array_at(&self.pod, &["volumes"])
            .iter()
            .filter_map(|v| Some((str_at(v, &["name"])?, str_at(v, &["configMap", "name"])?)))
            .collect()
    }

    /// `origin container NAME: what`.
    pub(crate) fn container_problem(&self, container: &Value, what: &str) -> String {
        format!("{} container {}: {what}", self.origin, str_at(container, &["name"]).unwrap_or("?"))
    }
}

pub(crate) fn kind_of(doc: &YamlDoc) -> &str {
    str_at(&doc.value, &["kind"]).unwrap_or("")
}

/// Every workload under deploy/. Holds on to the parsed documents.
pub(crate) struct Manifests {
    docs: Vec<YamlDoc>,
}

impl Manifests {
    pub(crate) fn load() -> Manifests {
        Manifests { docs: yaml_docs().into_iter().filter(|d| d.kind == Kind::Kubernetes).collect() }
    }

    /// The manifests of a multi-document YAML `text`, as if it were the file
    /// `deploy/kubernetes/made-up/manifests.yaml`.
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Manifests {
        let path = crate::common::deploy_dir().join("kubernetes/made-up/manifests.yaml");
        let values = crate::common::parse_yaml(text).expect("test manifests parse");
        Manifests {
            docs: values
                .into_iter()
                .map(|value| YamlDoc { path: path.clone(), kind: Kind::Kubernetes, value })
                .collect(),
        }
    }

    pub(crate) fn docs(&self) -> &[YamlDoc] {
        &self.docs
    }

    /// The documents in `doc`'s directory.
    fn siblings(&self, doc: &YamlDoc) -> Vec<&YamlDoc> {
        self.docs.iter().filter(|d| d.path.parent() == doc.path.parent()).collect()
    }

    pub(crate) fn workloads(&self) -> Vec<Workload<'_>> {
        self.docs
            .iter()
            .filter(|d| matches!(kind_of(d), "Deployment" | "StatefulSet" | "DaemonSet"))
            .map(|doc| {
                let name = str_at(&doc.value, &["metadata", "name"]).unwrap_or("?");
                let template = at(&doc.value, &["spec", "template"]).cloned().unwrap_or_default();
                Workload {
                    doc,
                    name,
                    origin: format!("{} {}/{name}", rel(&doc.path), kind_of(doc)),
                    siblings: self.siblings(doc),
                    pod: at(&template, &["spec"]).cloned().unwrap_or_default(),
                    pod_labels: at(&template, &["metadata", "labels"]).cloned().unwrap_or_default(),
                    template,
                }
            })
            .collect()
    }
}

/// Run `check` on every workload; panic listing what it found.
fn assert_every_workload(check: fn(&Workload<'_>) -> Vec<String>) {
    let manifests = Manifests::load();
    let workloads = manifests.workloads();
    let problems: Vec<String> = workloads.iter().flat_map(check).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(workloads.len() >= 2, "expected the sidecar and gateway workloads, found {}", workloads.len());
}

/// Run `check` on every container of `workload`.
fn each_container(workload: &Workload<'_>, check: impl Fn(&Value) -> Vec<String>) -> Vec<String> {
    workload
        .containers()
        .iter()
        .flat_map(|c| check(c).into_iter().map(|what| workload.container_problem(c, &what)))
        .collect()
}

pub(crate) fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k).is_some_and(|l| l == v)))
}

/// The container port `port` (a name or a number) designates in `pod`, with
/// the container's name.
pub(crate) fn resolve_port(pod: &Value, port: &Value) -> Option<(String, u16)> {
    for container in array_at(pod, &["containers"]) {
        for declared in array_at(container, &["ports"]) {
            let Some(number) = at(declared, &["containerPort"]).and_then(Value::as_u64) else { continue };
            let number = number as u16;
            let matches = match port {
                Value::String(name) => str_at(declared, &["name"]) == Some(name.as_str()),
                Value::Number(n) => n.as_u64() == Some(u64::from(number)),
                _ => false,
            };
            if matches {
                return Some((str_at(container, &["name"]).unwrap_or("?").to_owned(), number));
            }
        }
    }
    None
}

pub(crate) fn is_portcullis(container: &Value) -> bool {
    str_at(container, &["name"]) == Some("portcullis")
        || str_at(container, &["image"]).is_some_and(|i| i.contains("/portcullis:") || i.starts_with("portcullis:"))
}

// ------------------------------------------------------------------ pods

pub(crate) fn selector_matches_pod_labels(w: &Workload<'_>) -> Vec<String> {
    let selector = at(&w.doc.value, &["spec", "selector", "matchLabels"]).unwrap_or(&Value::Null);
    if labels_match(selector, &w.pod_labels) {
        return Vec::new();
    }
    vec![format!("{}: spec.selector.matchLabels does not match the pod template's labels", w.origin)]
}

pub(crate) fn no_service_account_token(w: &Workload<'_>) -> Vec<String> {
    if at(&w.pod, &["automountServiceAccountToken"]) == Some(&Value::Bool(false)) {
        return Vec::new();
    }
    vec![format!("{}: set automountServiceAccountToken: false (portcullis needs no API access)", w.origin)]
}

pub(crate) fn runtime_default_seccomp(w: &Workload<'_>) -> Vec<String> {
    if str_at(&w.pod, &["securityContext", "seccompProfile", "type"]) == Some("RuntimeDefault") {
        return Vec::new();
    }
    vec![format!("{}: pod securityContext.seccompProfile.type should be RuntimeDefault", w.origin)]
}

// ------------------------------------------------------------------ containers

pub(crate) fn resources_are_set(w: &Workload<'_>) -> Vec<String> {
    each_container(w, |container| {
        [&["requests", "cpu"][..], &["requests", "memory"], &["limits", "memory"]]
            .into_iter()
            .filter(|path| at(container, &[&["resources"][..], path].concat()).is_none())
            .map(|path| format!("resources.{} is not set", path.join(".")))
            .collect()
    })
}

pub(crate) fn probes_are_set(w: &Workload<'_>) -> Vec<String> {
    each_container(w, |container| {
        ["livenessProbe", "readinessProbe"]
            .into_iter()
            .filter(|probe| at(container, &[probe]).is_none())
            .map(|probe| format!("no {probe}"))
            .collect()
    })
}

pub(crate) fn security_context_is_locked_down(w: &Workload<'_>) -> Vec<String> {
    each_container(w, |container| {
        let security = at(container, &["securityContext"]).cloned().unwrap_or_default();
        let mut problems = Vec::new();
        if at(&security, &["allowPrivilegeEscalation"]) != Some(&Value::Bool(false)) {
            problems.push("securityContext.allowPrivilegeEscalation must be false".to_owned());
        }
        if at(&security, &["readOnlyRootFilesystem"]) != Some(&Value::Bool(true)) {
            problems.push("securityContext.readOnlyRootFilesystem must be true".to_owned());
        }
        if !array_at(&security, &["capabilities", "drop"]).iter().any(|c| c == "ALL") {
            problems.push("securityContext.capabilities.drop must contain ALL".to_owned());
        }
        problems
    })
}

pub(crate) fn runs_as_non_root(w: &Workload<'_>) -> Vec<String> {
    let pod_non_root = at(&w.pod, &["securityContext", "runAsNonRoot"]) == Some(&Value::Bool(true));
    each_container(w, |container| {
        let non_root = pod_non_root || at(container, &["securityContext", "runAsNonRoot"]) == Some(&Value::Bool(true));
        if non_root {
            Vec::new()
        } else {
            vec!["runAsNonRoot is not set".to_owned()]
        }
    })
}

pub(crate) fn config_maps_are_mounted_whole(w: &Workload<'_>) -> Vec<String> {
    let config_map_volumes = w.config_map_volumes();
    each_container(w, |container| {
        array_at(container, &["volumeMounts"])
            .iter()
            .filter_map(|mount| str_at(mount, &["name"]).filter(|_| at(mount, &["subPath"]).is_some()))
            .filter(|volume| config_map_volumes.contains_key(volume))
            .map(|volume| {
                format!(
                    "ConfigMap volume {volume} is mounted with subPath: it will never see updates, so portcullis \
                     cannot reload"
                )
            })
            .collect()
    })
}

// ------------------------------------------------------------------ around the workload

pub(crate) fn services_reach_only_portcullis(w: &Workload<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    let services: Vec<&YamlDoc> = w
        .siblings
        .iter()
        .copied()
        .filter(|d| kind_of(d) == "Service")
        .filter(|d| labels_match(at(&d.value, &["spec", "selector"]).unwrap_or(&Value::Null), &w.pod_labels))
        .collect();
    let has_portcullis = w.containers().iter().any(is_portcullis);
    if has_portcullis && services.is_empty() {
        problems.push(format!("{}: no Service in its directory selects its pods", w.origin));
    }
    for service in services {
        let sname = str_at(&service.value, &["metadata", "name"]).unwrap_or("?");
        for port in array_at(&service.value, &["spec", "ports"]) {
            let target = at(port, &["targetPort"]).or_else(|| at(port, &["port"])).cloned().unwrap_or_default();
            match resolve_port(&w.pod, &target) {
                None => problems
                    .push(format!("{}: Service {sname} targets port {target}, which no container declares", w.origin)),
                Some((container, number)) if has_portcullis && container != "portcullis" => problems.push(format!(
                    "{}: Service {sname} exposes port {number} of container {container}: only portcullis may be \
                     reachable",
                    w.origin
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

pub(crate) fn replicas_left_to_the_hpa(w: &Workload<'_>) -> Vec<String> {
    let scaled = w.siblings.iter().any(|d| {
        kind_of(d) == "HorizontalPodAutoscaler" && str_at(&d.value, &["spec", "scaleTargetRef", "name"]) == Some(w.name)
    });
    if scaled && at(&w.doc.value, &["spec", "replicas"]).is_some() {
        return vec![format!("{}: an HPA scales it; remove spec.replicas (each apply would reset it)", w.origin)];
    }
    Vec::new()
}

/// A Deployment or StatefulSet: what an HPA scales and a PDB protects.
fn replicated(w: &Workload<'_>) -> bool {
    matches!(kind_of(w.doc), "Deployment" | "StatefulSet")
}

/// Problems of the HPAs, PDBs and Kustomizations of `manifests`: each
/// points at workloads or files that exist in its directory.
pub(crate) fn references_resolve(manifests: &Manifests) -> (Vec<String>, usize) {
    let (mut problems, mut checked) = (Vec::new(), 0);
    let workloads = manifests.workloads();
    for doc in manifests.docs() {
        let kind = kind_of(doc);
        let origin = format!("{} {kind}", rel(&doc.path));
        let dir = doc.path.parent().unwrap_or(Path::new("."));
        let mut here = workloads.iter().filter(|w| w.doc.path.parent() == Some(dir));
        match kind {
            "Kustomization" => {
                for resource in array_at(&doc.value, &["resources"]).iter().filter_map(Value::as_str) {
                    if !dir.join(resource).exists() {
                        problems.push(format!("{origin}: resource {resource} does not exist"));
                    }
                }
            }
            "HorizontalPodAutoscaler" => {
                let target = str_at(&doc.value, &["spec", "scaleTargetRef", "name"]);
                if !here.any(|w| replicated(w) && Some(w.name) == target) {
                    problems.push(format!("{origin}: scaleTargetRef {target:?} is not in its directory"));
                }
            }
            "PodDisruptionBudget" => {
                let selector = at(&doc.value, &["spec", "selector", "matchLabels"]).cloned().unwrap_or_default();
                if !here.any(|w| replicated(w) && labels_match(&selector, &w.pod_labels)) {
                    problems.push(format!("{origin}: its selector matches no workload in its directory"));
                }
            }
            _ => continue,
        }
        checked += 1;
    }
    (problems, checked)
}

// ------------------------------------------------------------------ tests

#[test]
fn workload_selectors_match_their_pod_labels() {
    assert_every_workload(selector_matches_pod_labels);
}

#[test]
fn pods_get_no_service_account_token() {
    assert_every_workload(no_service_account_token);
}

#[test]
fn pods_use_the_runtime_default_seccomp_profile() {
    assert_every_workload(runtime_default_seccomp);
}

#[test]
fn containers_request_cpu_and_memory_and_limit_memory() {
    assert_every_workload(resources_are_set);
}

#[test]
fn containers_have_liveness_and_readiness_probes() {
    assert_every_workload(probes_are_set);
}

#[test]
fn containers_cannot_escalate_write_their_root_or_keep_capabilities() {
    assert_every_workload(security_context_is_locked_down);
}

#[test]
fn containers_run_as_non_root() {
    assert_every_workload(runs_as_non_root);
}

#[test]
fn config_maps_are_mounted_whole_so_updates_reach_the_pod() {
    assert_every_workload(config_maps_are_mounted_whole);
}

#[test]
fn services_reach_only_the_portcullis_container() {
    assert_every_workload(services_reach_only_portcullis);
}

#[test]
fn autoscaled_workloads_leave_replicas_to_the_hpa() {
    assert_every_workload(replicas_left_to_the_hpa);
}

#[test]
fn kustomizations_hpas_and_pdbs_point_at_what_exists_in_their_directory() {
    let (problems, checked) = references_resolve(&Manifests::load());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 4, "expected kustomizations, an HPA and a PDB, checked {checked}");
}
