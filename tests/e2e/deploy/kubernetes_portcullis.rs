//! The portcullis containers of the Kubernetes workloads agree with the
//! configuration they run: it comes from a ConfigMap mounted read-only where
//! `-c` points, and the ports, probes, scrape annotation, secrets and
//! shutdown timing fit it. One check per property, each its own test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::common::{array_at, at, grace_period, parse_yaml, port_of, secret_envs, str_at};
use crate::kubernetes::{is_portcullis, resolve_port, Manifests, Workload};

/// A portcullis container with the configuration it runs.
pub(crate) struct Portcullis<'w, 'a> {
    workload: &'w Workload<'a>,
    container: &'w Value,
    /// The volume mount the configuration file is in.
    mount: &'w Value,
    config: Value,
    listen: u16,
    admin: u16,
}

impl Portcullis<'_, '_> {
    fn problem(&self, what: &str) -> String {
        self.workload.container_problem(self.container, what)
    }
}

/// The configuration `container` runs, from the ConfigMap mounted where
/// its `-c` points, or why there is none to check against.
pub(crate) fn resolve<'w, 'a>(workload: &'w Workload<'a>, container: &'w Value) -> Result<Portcullis<'w, 'a>, String> {
    let problem = |what: &str| workload.container_problem(container, what);
    let args: Vec<&str> = array_at(container, &["args"]).iter().filter_map(Value::as_str).collect();
    let Some(config_path) = args.windows(2).find(|w| w[0] == "-c").map(|w| Path::new(w[1])) else {
        return Err(problem("args have no `-c FILE`"));
    };
    let mount = array_at(container, &["volumeMounts"])
        .iter()
        .find(|m| str_at(m, &["mountPath"]).map(Path::new) == config_path.parent());
    let config_map = mount
        .and_then(|m| str_at(m, &["name"]))
        .and_then(|volume| workload.config_map_volumes().get(volume).copied())
        .and_then(|name| workload.find("ConfigMap", name));
    let key = config_path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let (Some(mount), Some(text)) = (mount, config_map.and_then(|cm| str_at(&cm.value, &["data", key]))) else {
        return Err(problem(&format!("no ConfigMap in this directory is mounted with key {key} for `-c`")));
    };
    // Parsed and checked by `configs::every_portcullis_config_passes_check`.
    let config = parse_yaml(text).map_err(|e| problem(&e))?.into_iter().next().unwrap_or_default();
    let listen = port_of(str_at(&config, &["listen"]).unwrap_or("0.0.0.0:8080"));
    let Some(admin) = str_at(&config, &["admin_listen"]).map(port_of) else {
        return Err(problem("its configuration has no admin_listen: nothing to probe"));
    };
    Ok(Portcullis { workload, container, mount, config, listen, admin })
}

/// Run `check` on every portcullis container; panic listing what it found,
/// or the containers whose configuration cannot be found.
fn assert_every_portcullis(check: fn(&Portcullis<'_, '_>) -> Vec<String>) {
    let manifests = Manifests::load();
    let workloads = manifests.workloads();
    let (mut problems, mut checked) = (Vec::new(), 0);
    for workload in &workloads {
        for container in workload.containers().iter().filter(|c| is_portcullis(c)) {
            match resolve(workload, container) {
                Ok(portcullis) => problems.extend(check(&portcullis)),
                Err(problem) => problems.push(problem),
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 2, "expected the sidecar and gateway examples, found {checked} portcullis containers");
}

pub(crate) fn config_mount_is_read_only(p: &Portcullis<'_, '_>) -> Vec<String> {
    if at(p.mount, &["readOnly"]) == Some(&Value::Bool(true)) {
        return Vec::new();
    }
    vec![p.problem("the configuration mount should be readOnly")]
}

pub(crate) fn listen_ports_are_container_ports(p: &Portcullis<'_, '_>) -> Vec<String> {
    let ports: BTreeSet<u16> = array_at(p.container, &["ports"])
        .iter()
        .filter_map(|port| at(port, &["containerPort"]).and_then(Value::as_u64).map(|n| n as u16))
        .collect();
    [("listen", p.listen), ("admin_listen", p.admin)]
        .into_iter()
        .filter(|(_, port)| !ports.contains(port))
        .map(|(what, port)| p.problem(&format!("{what} port {port} is not a containerPort")))
        .collect()
}

pub(crate) fn probes_use_the_admin_endpoints(p: &Portcullis<'_, '_>) -> Vec<String> {
    let mut problems = Vec::new();
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = at(p.container, &[probe, "httpGet"]).cloned().unwrap_or_default();
        if str_at(&get, &["path"]) != Some(path) {
            problems.push(p.problem(&format!("{probe} should GET {path}")));
        }
        let port = at(&get, &["port"]).and_then(|port| resolve_port(&p.workload.pod, port)).map(|(_, n)| n);
        if port != Some(p.admin) {
            problems.push(p.problem(&format!("{probe} should use the admin port {}, not {port:?}", p.admin)));
        }
    }
    problems
}

pub(crate) fn scrape_annotation_names_the_admin_port(p: &Portcullis<'_, '_>) -> Vec<String> {
    match str_at(&p.workload.template, &["metadata", "annotations", "prometheus.io/port"]) {
        Some(annotated) if annotated != p.admin.to_string() => {
            vec![p.problem(&format!("prometheus.io/port is {annotated}, admin_listen is {}", p.admin))]
        }
        _ => Vec::new(),
    }
}

pub(crate) fn secrets_come_from_secret_keys(p: &Portcullis<'_, '_>) -> Vec<String> {
    let env: BTreeMap<&str, &Value> =
        array_at(p.container, &["env"]).iter().filter_map(|e| Some((str_at(e, &["name"])?, e))).collect();
    let mut problems = Vec::new();
    for variable in secret_envs(&p.config) {
        let Some(entry) = env.get(variable.as_str()) else {
            problems.push(p.problem(&format!("{variable} (used by the configuration) is not in env")));
            continue;
        };
        let (Some(secret), Some(secret_key)) = (
            str_at(entry, &["valueFrom", "secretKeyRef", "name"]),
            str_at(entry, &["valueFrom", "secretKeyRef", "key"]),
        ) else {
            problems.push(p.problem(&format!("{variable} must come from valueFrom.secretKeyRef")));
            continue;
        };
        if let Some(secret_doc) = p.workload.find("Secret", secret) {
            let has_key = at(&secret_doc.value, &["stringData", secret_key]).is_some()
                || at(&secret_doc.value, &["data", secret_key]).is_some();
            if !has_key {
                problems.push(p.problem(&format!("Secret {secret} has no key {secret_key}")));
            }
        }
    }
    problems
}

/// The `tls:` files (certificate, key, client CA) are keys of a Secret
/// volume mounted whole (a `subPath` mount never sees a renewal), and a
/// Secret or a cert-manager Certificate in the directory provides them.
pub(crate) fn tls_files_come_from_a_mounted_secret(p: &Portcullis<'_, '_>) -> Vec<String> {
    let Some(tls) = at(&p.config, &["tls"]) else { return Vec::new() };
    let mut problems = Vec::new();
    for file in ["cert", "key", "client_ca"].iter().filter_map(|field| str_at(tls, &[field])) {
        let path = Path::new(file);
        let mount = array_at(p.container, &["volumeMounts"])
            .iter()
            .find(|m| str_at(m, &["mountPath"]).map(Path::new) == path.parent());
        let Some(mount) = mount else {
            problems.push(p.problem(&format!("tls file {file} is in no mounted volume")));
            continue;
        };
        if at(mount, &["subPath"]).is_some() {
            problems.push(p.problem(&format!("tls file {file}: a subPath mount never sees a renewal")));
        }
        let volume = str_at(mount, &["name"]).and_then(|name| {
            array_at(&p.workload.pod, &["volumes"]).iter().find(|v| str_at(v, &["name"]) == Some(name))
        });
        let Some(secret) = volume.and_then(|v| str_at(v, &["secret", "secretName"])) else {
            problems.push(p.problem(&format!("tls file {file} is not from a Secret volume")));
            continue;
        };
        let key = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        let from_secret = p.workload.find("Secret", secret).is_some_and(|doc| {
            at(&doc.value, &["stringData", key]).is_some() || at(&doc.value, &["data", key]).is_some()
        });
        let from_certificate = ["tls.crt", "tls.key", "ca.crt"].contains(&key)
            && p.workload.siblings.iter().any(|doc| {
                str_at(&doc.value, &["kind"]) == Some("Certificate")
                    && str_at(&doc.value, &["apiVersion"]).is_some_and(|v| v.starts_with("cert-manager.io/"))
                    && str_at(&doc.value, &["spec", "secretName"]) == Some(secret)
            });
        if !from_secret && !from_certificate {
            let what = format!("no Secret or cert-manager Certificate in the directory provides {secret}/{key}");
            problems.push(p.problem(&what));
        }
    }
    problems
}

pub(crate) fn termination_grace_covers_the_drain(p: &Portcullis<'_, '_>) -> Vec<String> {
    let pre_stop = at(p.container, &["lifecycle", "preStop", "sleep", "seconds"]).and_then(Value::as_u64);
    let termination = at(&p.workload.pod, &["terminationGracePeriodSeconds"]).and_then(Value::as_u64).unwrap_or(30);
    let needed = pre_stop.unwrap_or(0) + grace_period(&p.config);
    if termination > needed {
        return Vec::new();
    }
    vec![p.problem(&format!(
        "terminationGracePeriodSeconds {termination} leaves no margin over preStop + shutdown.grace_period ({needed}s)"
    ))]
}

#[test]
fn portcullis_runs_a_configuration_from_a_config_map_mounted_read_only() {
    assert_every_portcullis(config_mount_is_read_only);
}

#[test]
fn portcullis_listen_and_admin_ports_are_container_ports() {
    assert_every_portcullis(listen_ports_are_container_ports);
}

#[test]
fn portcullis_probes_get_healthz_and_readyz_on_the_admin_port() {
    assert_every_portcullis(probes_use_the_admin_endpoints);
}

#[test]
fn the_prometheus_port_annotation_is_the_admin_port() {
    assert_every_portcullis(scrape_annotation_names_the_admin_port);
}

#[test]
fn every_secret_the_configuration_reads_comes_from_a_secret_key() {
    assert_every_portcullis(secrets_come_from_secret_keys);
}

#[test]
fn tls_files_come_from_a_whole_secret_volume_that_something_provides() {
    assert_every_portcullis(tls_files_come_from_a_mounted_secret);
}

#[test]
fn the_termination_grace_period_covers_pre_stop_and_the_drain() {
    assert_every_portcullis(termination_grace_covers_the_drain);
}
