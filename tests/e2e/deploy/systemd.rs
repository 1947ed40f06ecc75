//! The systemd unit is hardened and fits the configuration it starts.

use std::path::Path;

use crate::common::{deploy_dir, grace_period, parse_yaml, read, seconds, secret_envs};

#[test]
fn systemd_unit_is_hardened_and_fits_its_configuration() {
    let unit = read(&deploy_dir().join("systemd/portcullis.service"));
    let directives: Vec<(&str, &str)> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .collect();
    let value = |key: &str| directives.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect::<Vec<_>>();
    for (key, expected) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("KillSignal", "SIGTERM"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("DynamicUser", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(value(key), [expected], "{key}");
    }
    assert!(value("ReadOnlyPaths").iter().any(|v| v.split_whitespace().any(|p| p == "/etc/portcullis")));
    assert!(value("ExecReload").contains(&"/bin/kill -HUP $MAINPID"), "ExecReload must send SIGHUP");
    assert!(value("EnvironmentFile").iter().any(|v| v.contains("/etc/portcullis/")), "secrets via EnvironmentFile");

    // ExecStart's configuration is the example next to the unit.
    let exec = value("ExecStart");
    let exec: Vec<&str> = exec.first().expect("ExecStart").split_whitespace().collect();
    let config_path = exec.windows(2).find(|w| w[0] == "-c").map(|w| w[1]).expect("ExecStart -c FILE");
    let name = Path::new(config_path).file_name().expect("file name");
    let config = parse_yaml(&read(&deploy_dir().join("systemd").join(name))).expect("config").remove(0);
    let stop = seconds(value("TimeoutStopSec").first().expect("TimeoutStopSec"));
    assert!(stop > grace_period(&config), "TimeoutStopSec {stop}s must exceed shutdown.grace_period");
    // Every secret the configuration reads is in the EnvironmentFile example.
    let env_example = read(&deploy_dir().join("systemd/portcullis.env.example"));
    for variable in secret_envs(&config) {
        assert!(
            env_example.lines().any(|l| l.starts_with(&format!("{variable}="))),
            "{variable} not in the env example"
        );
    }
}
