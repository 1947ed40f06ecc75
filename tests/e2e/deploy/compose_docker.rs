//! The Compose file, the Dockerfile and its health check agree with the
//! configurations and files they refer to.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::free_port;
use harness::proxy::{Proxy, ProxyOptions};
use harness::servers::Upstream;
use serde_json::Value;

use crate::common::{
    array_at, at, deploy_dir, docs_of, grace_period, parse_yaml, port_of, read, rel, repo_root, seconds, str_at,
    yaml_docs, Kind, YamlDoc,
};

/// The file on the host that a compose service sees at `in_container`,
/// through one of its `volumes` (paths relative to the compose file's `dir`).
fn mounted_file(dir: &Path, service: &Value, in_container: &str) -> Option<PathBuf> {
    array_at(service, &["volumes"]).iter().filter_map(Value::as_str).map(volume_parts).find_map(|(source, target)| {
        Path::new(in_container).strip_prefix(target).ok().map(|rest| dir.join(source).join(rest))
    })
}

/// (source, target) of a short-syntax volume `src:dst[:mode]`.
fn volume_parts(volume: &str) -> (&str, &str) {
    let mut parts = volume.splitn(3, ':');
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

#[test]
fn compose_file_is_wired_to_real_files_and_ports() {
    let docs = yaml_docs();
    let composes: Vec<&YamlDoc> = docs_of(&docs, Kind::Compose).collect();
    assert!(!composes.is_empty(), "no compose file");
    for compose in composes {
        let dir = compose.path.parent().expect("directory");
        let origin = rel(&compose.path);
        let services = at(&compose.value, &["services"]).and_then(Value::as_object).expect("services");
        // Bind mounts and build files exist.
        for (name, service) in services {
            for volume in array_at(service, &["volumes"]).iter().filter_map(Value::as_str) {
                let (source, _) = volume_parts(volume);
                if source.starts_with('.') || source.starts_with('/') {
                    assert!(
                        dir.join(source).exists(),
                        "{origin}: service {name} mounts {source}, which does not exist"
                    );
                }
            }
            if let Some(context) = str_at(service, &["build", "context"]) {
                let dockerfile = str_at(service, &["build", "dockerfile"]).unwrap_or("Dockerfile");
                let context = dir.join(context);
                assert!(context.join("Cargo.toml").is_file(), "{origin}: {name}'s build context is not the workspace");
                assert!(context.join(dockerfile).is_file(), "{origin}: {name}'s Dockerfile {dockerfile} is missing");
            }
        }
        // portcullis: its configuration is a mounted file, Prometheus scrapes its admin port.
        let portcullis = services.get("portcullis").expect("a portcullis service");
        let command: Vec<&str> = array_at(portcullis, &["command"]).iter().filter_map(Value::as_str).collect();
        let config_in_container = command.windows(2).find(|w| w[0] == "-c").map(|w| w[1]).expect("-c FILE");
        let config_file = mounted_file(dir, portcullis, config_in_container)
            .unwrap_or_else(|| panic!("{origin}: {config_in_container} is not in a mounted directory"));
        let config = parse_yaml(&read(&config_file)).expect("config parses").remove(0);
        let admin = port_of(str_at(&config, &["admin_listen"]).expect("admin_listen"));
        let health = str_at(portcullis, &["environment", "PORTCULLIS_HEALTH_ADDR"]).map(port_of);
        assert!(health.is_none_or(|p| p == admin), "{origin}: PORTCULLIS_HEALTH_ADDR is not admin_listen's port");
        let stop = str_at(portcullis, &["stop_grace_period"]).map_or(10, seconds);
        assert!(stop > grace_period(&config), "{origin}: stop_grace_period {stop}s must exceed shutdown.grace_period");

        let prometheus = services.get("prometheus").expect("a prometheus service");
        let config_flag = array_at(prometheus, &["command"])
            .iter()
            .filter_map(Value::as_str)
            .find_map(|a| a.strip_prefix("--config.file="))
            .expect("--config.file");
        let prometheus_file = mounted_file(dir, prometheus, config_flag)
            .unwrap_or_else(|| panic!("{origin}: {config_flag} is not mounted"));
        let prometheus_config = parse_yaml(&read(&prometheus_file)).expect("prometheus config").remove(0);
        let target = format!("portcullis:{admin}");
        let scraped = array_at(&prometheus_config, &["scrape_configs"])
            .iter()
            .flat_map(|job| array_at(job, &["static_configs"]))
            .flat_map(|s| array_at(s, &["targets"]))
            .any(|t| t.as_str() == Some(target.as_str()));
        assert!(scraped, "{}: no job scrapes {target}", rel(&prometheus_file));
    }
}

#[test]
fn dockerfile_copies_real_files_and_checks_health_on_the_admin_port() {
    let dockerfile_path = deploy_dir().join("docker/Dockerfile");
    let dockerfile = read(&dockerfile_path);
    let ignore = read(&deploy_dir().join("docker/Dockerfile.dockerignore"));
    let ignore_lines: Vec<&str> =
        ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let root = repo_root();
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).filter(|w| !w.starts_with("--")).collect();
        for source in &words[..words.len() - 1] {
            assert!(root.join(source).exists(), "Dockerfile: COPY source {source} does not exist");
            // Not excluded from the build context, unless re-included with `!`.
            let excluded = ignore_lines.iter().any(|p| !p.starts_with('!') && Path::new(source).starts_with(p));
            let reincluded = ignore_lines.iter().any(|p| p.strip_prefix('!') == Some(source));
            assert!(!excluded || reincluded, "Dockerfile.dockerignore excludes COPY source {source}");
        }
    }
    assert!(dockerfile.contains("HEALTHCHECK"), "no HEALTHCHECK");
    assert!(dockerfile.contains("deploy/docker/healthcheck.sh /usr/local/bin/portcullis-healthcheck"));
    assert!(dockerfile.contains("CMD [\"/usr/local/bin/portcullis-healthcheck\"]"));
    assert!(
        dockerfile.lines().any(|l| l.starts_with("USER ") && !l.contains("root")),
        "the image must not run as root"
    );
}

#[test]
fn docker_health_check_script_passes_only_on_a_200_from_healthz() {
    let upstream = Upstream::start("api");
    let config = format!(
        "threads: 1\nupstreams:\n  api:\n    url: \"{}\"\nroutes:\n  - path: /api/**\n    public: true\n",
        upstream.url()
    );
    let proxy = Proxy::start_with(ProxyOptions { config: &config, env: &[], wait_ready: true });
    let script = deploy_dir().join("docker/healthcheck.sh");
    let run = |addr: String| {
        Command::new("bash").arg(&script).env("PORTCULLIS_HEALTH_ADDR", addr).status().expect("running bash").success()
    };
    assert!(run(proxy.admin.to_string()), "the health check failed against a live admin port");
    assert!(!run(format!("127.0.0.1:{}", free_port())), "the health check passed against a closed port");
    // The proxy port answers /healthz with 401 (no route): not healthy.
    assert!(!run(proxy.addr.to_string()), "the health check passed on a 401");
}
