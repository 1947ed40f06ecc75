//! The deployment examples under `deploy/` are real: every YAML and JSON file
//! parses and is recognised, every portcullis configuration (standalone, or a
//! key of a Kubernetes ConfigMap) passes `portcullis check`, the Grafana
//! dashboard and the alert rules use only metrics, labels and label values the
//! running proxy exposes, promtool accepts the Prometheus files, and the
//! Kubernetes, Compose, Docker and systemd files agree with the configurations
//! they carry (ports, paths, secrets, grace periods).
//!
//! How files are recognised (first match wins, per YAML document; the code is
//! `common::classify`):
//! - `apiVersion` with `kind` → a Kubernetes object (kustomize's
//!   `Kustomization` included); `apiVersion: 1` (a number) → Grafana
//!   provisioning;
//! - `services` → a Compose file; `scrape_configs` → a Prometheus
//!   configuration; `tests` → promtool rule tests; `groups` → Prometheus rules;
//! - `upstreams` → a portcullis configuration (every real one has an upstream);
//! - only `routes` → a portcullis policy file, which must be included by the
//!   `policy_files` of a configuration in its directory or the one above.
//!
//! Anything else fails the test: a new kind of file gets a rule here.
//!
//! One module per kind of check:
//! - [`common`]: finding, parsing and classifying the files; small value helpers;
//! - [`configs`]: every portcullis configuration passes `portcullis check`;
//! - [`exposition`] and [`promql`]: the small parsers of the Prometheus text
//!   format and of PromQL references that [`metrics`] uses, with unit tests;
//! - [`metrics`]: the dashboard and the alert rules against a real scrape;
//! - [`promtool`]: promtool checks the rules, their tests and both Prometheus
//!   configurations (the Kubernetes one through [`promtool::static_discovery`]);
//! - [`kubernetes`] and [`kubernetes_portcullis`]: the manifests, one check
//!   per property; [`kubernetes_checks`]: each check finds what it is for;
//! - [`compose_docker`] and [`systemd`]: the other ways to run it.

mod common;
mod compose_docker;
mod configs;
mod exposition;
mod kubernetes;
mod kubernetes_checks;
mod kubernetes_portcullis;
mod metrics;
mod promql;
mod promtool;
mod systemd;
