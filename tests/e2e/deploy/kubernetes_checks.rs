//! Each Kubernetes check finds what it is for: run on made-up manifests
//! that get every property wrong, it names exactly the problems put there.
//! The checks run on deploy/ in [`crate::kubernetes`] and
//! [`crate::kubernetes_portcullis`]; these tests keep them from passing
//! because they look at nothing.

use crate::kubernetes::{self as k8s, Manifests, Workload};
use crate::kubernetes_portcullis::{self as portcullis, Portcullis};

/// An app with a portcullis sidecar, wrong in every way the workload and
/// container checks look at, and an HPA, PDB and kustomization that point
/// at nothing.
const WRONG_WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  replicas: 2
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: app}}
    spec:
      volumes: [{name: config, configMap: {name: config}}]
      containers:
        - name: app
          ports: [{name: http, containerPort: 8000}]
          volumeMounts: [{name: config, mountPath: /etc/app/app.yaml, subPath: app.yaml}]
        - name: portcullis
          ports: [{name: proxy, containerPort: 8080}]
          resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 64Mi}}
          livenessProbe: {httpGet: {path: /healthz, port: proxy}}
          readinessProbe: {httpGet: {path: /readyz, port: proxy}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata: {name: app}
spec: {selector: {app: app}, ports: [{port: 80, targetPort: http}, {port: 81, targetPort: missing}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: app}
spec: {scaleTargetRef: {name: app}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: gone}
spec: {scaleTargetRef: {name: gone}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: app}
spec: {selector: {matchLabels: {app: nothing}}}
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [not-there.yaml]
"#;

/// A portcullis gateway whose configuration disagrees with its container.
const WRONG_PORTCULLIS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: gw}
spec:
  template:
    metadata: {labels: {app: gw}, annotations: {prometheus.io/port: "9000"}}
    spec:
      terminationGracePeriodSeconds: 20
      volumes: [{name: config, configMap: {name: gw}}, {name: pki, secret: {secretName: missing}}]
      containers:
        - name: portcullis
          args: ["-c", "/etc/portcullis/portcullis.yaml"]
          ports: [{name: admin, containerPort: 9901}]
          volumeMounts: [{name: config, mountPath: /etc/portcullis}, {name: pki, mountPath: /etc/pki, subPath: ca.crt}]
          env: [{name: A, value: plain}, {name: B, valueFrom: {secretKeyRef: {name: s, key: nope}}}]
          lifecycle: {preStop: {sleep: {seconds: 5}}}
          livenessProbe: {httpGet: {path: /health, port: admin}}
          readinessProbe: {httpGet: {path: /readyz, port: 8080}}
        - name: portcullis-without-config
          image: ghcr.io/example/portcullis:1
          args: ["run"]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: gw}
data:
  portcullis.yaml: |
    admin_listen: "0.0.0.0:9901"
    shutdown: {grace_period: 15s}
    tls: {cert: /etc/portcullis/tls.crt, key: /tls/tls.key, client_ca: /etc/pki/ca.crt}
    issuers: [{secret_env: A}, {introspection: {client_secret_env: B, client_id_env: C}}]
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {other: x}
"#;

/// What `check` finds in the made-up workload of `text`, its file name
/// shortened to `FILE`.
fn found(text: &str, check: fn(&Workload<'_>) -> Vec<String>) -> Vec<String> {
    let manifests = Manifests::parse(text);
    let workloads = manifests.workloads();
    assert_eq!(workloads.len(), 1);
    check(&workloads[0]).into_iter().map(shorten).collect()
}

/// `FILE Kind/name` for the made-up file's path, whatever the checkout's.
fn shorten(problem: String) -> String {
    problem.replace(&crate::common::rel(&crate::common::deploy_dir().join("kubernetes/made-up/manifests.yaml")), "FILE")
}

#[test]
fn pod_checks_name_the_workload() {
    let app = "FILE Deployment/app";
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::selector_matches_pod_labels),
        [format!("{app}: spec.selector.matchLabels does not match the pod template's labels")]
    );
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::no_service_account_token),
        [format!("{app}: set automountServiceAccountToken: false (portcullis needs no API access)")]
    );
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::runtime_default_seccomp),
        [format!("{app}: pod securityContext.seccompProfile.type should be RuntimeDefault")]
    );
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::replicas_left_to_the_hpa),
        [format!("{app}: an HPA scales it; remove spec.replicas (each apply would reset it)")]
    );
}

#[test]
fn container_checks_name_the_container_and_the_missing_setting() {
    let app = |what: &str| format!("FILE Deployment/app container app: {what}");
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::resources_are_set),
        [
            app("resources.requests.cpu is not set"),
            app("resources.requests.memory is not set"),
            app("resources.limits.memory is not set"),
        ]
    );
    assert_eq!(found(WRONG_WORKLOAD, k8s::probes_are_set), [app("no livenessProbe"), app("no readinessProbe")]);
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::security_context_is_locked_down),
        [
            app("securityContext.allowPrivilegeEscalation must be false"),
            app("securityContext.readOnlyRootFilesystem must be true"),
            app("securityContext.capabilities.drop must contain ALL"),
        ]
    );
    assert_eq!(found(WRONG_WORKLOAD, k8s::runs_as_non_root), [app("runAsNonRoot is not set")]);
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::config_maps_are_mounted_whole),
        [app(
            "ConfigMap volume config is mounted with subPath: it will never see updates, so portcullis cannot reload"
        )]
    );
}

#[test]
fn service_and_reference_checks_name_what_they_point_at() {
    assert_eq!(
        found(WRONG_WORKLOAD, k8s::services_reach_only_portcullis),
        [
            "FILE Deployment/app: Service app exposes port 8000 of container app: only portcullis may be reachable",
            "FILE Deployment/app: Service app targets port \"missing\", which no container declares",
        ]
    );
    let (problems, checked) = k8s::references_resolve(&Manifests::parse(WRONG_WORKLOAD));
    let problems: Vec<String> = problems.into_iter().map(shorten).collect();
    assert_eq!(
        problems,
        [
            "FILE HorizontalPodAutoscaler: scaleTargetRef Some(\"gone\") is not in its directory",
            "FILE PodDisruptionBudget: its selector matches no workload in its directory",
            "FILE Kustomization: resource not-there.yaml does not exist",
        ]
    );
    assert_eq!(checked, 4);
    // A portcullis pod no Service selects.
    assert_eq!(
        found(WRONG_PORTCULLIS, k8s::services_reach_only_portcullis),
        ["FILE Deployment/gw: no Service in its directory selects its pods"]
    );
}

/// What `check` finds in the portcullis container of the made-up gateway.
fn found_in_gateway(check: fn(&Portcullis<'_, '_>) -> Vec<String>) -> Vec<String> {
    let manifests = Manifests::parse(WRONG_PORTCULLIS);
    let workloads = manifests.workloads();
    let resolved = portcullis::resolve(&workloads[0], &workloads[0].containers()[0]).expect("the gateway resolves");
    check(&resolved).into_iter().map(shorten).collect()
}

#[test]
fn portcullis_checks_compare_the_container_with_its_configuration() {
    let gw = |what: &str| format!("FILE Deployment/gw container portcullis: {what}");
    assert_eq!(
        found_in_gateway(portcullis::config_mount_is_read_only),
        [gw("the configuration mount should be readOnly")]
    );
    assert_eq!(
        found_in_gateway(portcullis::listen_ports_are_container_ports),
        [gw("listen port 8080 is not a containerPort")]
    );
    assert_eq!(
        found_in_gateway(portcullis::probes_use_the_admin_endpoints),
        [gw("livenessProbe should GET /healthz"), gw("readinessProbe should use the admin port 9901, not None"),]
    );
    assert_eq!(
        found_in_gateway(portcullis::scrape_annotation_names_the_admin_port),
        [gw("prometheus.io/port is 9000, admin_listen is 9901")]
    );
    assert_eq!(
        found_in_gateway(portcullis::secrets_come_from_secret_keys),
        [
            gw("A must come from valueFrom.secretKeyRef"),
            gw("Secret s has no key nope"),
            gw("C (used by the configuration) is not in env"),
        ]
    );
    assert_eq!(
        found_in_gateway(portcullis::tls_files_come_from_a_mounted_secret),
        [
            gw("tls file /etc/portcullis/tls.crt is not from a Secret volume"),
            gw("tls file /tls/tls.key is in no mounted volume"),
            gw("tls file /etc/pki/ca.crt: a subPath mount never sees a renewal"),
            gw("no Secret or cert-manager Certificate in the directory provides missing/ca.crt"),
        ]
    );
    assert_eq!(
        found_in_gateway(portcullis::termination_grace_covers_the_drain),
        [gw("terminationGracePeriodSeconds 20 leaves no margin over preStop + shutdown.grace_period (20s)")]
    );
}

#[test]
fn a_portcullis_container_without_a_mounted_configuration_is_named() {
    let manifests = Manifests::parse(WRONG_PORTCULLIS);
    let workloads = manifests.workloads();
    let problem = portcullis::resolve(&workloads[0], &workloads[0].containers()[1]).err().map(shorten);
    assert_eq!(
        problem.as_deref(),
        Some("FILE Deployment/gw container portcullis-without-config: args have no `-c FILE`")
    );
}
