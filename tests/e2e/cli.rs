//! The command line: `check`, `explain`, `run` with a bad file, `demo`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::client::{get, get_with_token, request};
use harness::fixtures::standard_config;
use harness::proxy::{binary, run_cli};
use harness::{free_port, loopback, wait_until};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn check_accepts_a_valid_config_and_lists_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let config = standard_config("https://sso.example.com", "http://127.0.0.1:9", "policy_files: [\"p/*.yaml\"]\n");
    let path = write(&dir, "portcullis.yaml", &config);
    write(&dir, "p/10-shadowed.yaml", "routes:\n  - path: /todos/{id}\n    methods: [GET]\n");
    // The HMAC secret is unset: a warning for check, not an error.
    let (code, stdout, _) = run_cli(&["check", "-c", &path], &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("warning: environment variable TEST_HS_SECRET is not set"), "{stdout}");
    assert!(stdout.contains("10-shadowed.yaml:2:5: warning: route 'GET /todos/{id}' can never match"), "{stdout}");
    assert!(stdout.contains("OK (7 routes, 2 issuers, 1 upstreams, 2 files), 2 warnings"), "{stdout}");
}

#[test]
fn check_rejects_a_bad_config_with_file_line_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "portcullis.yaml", "upstreams:\n  api:\n    url: http://127.0.0.1:9\npolicy_files: [\"p/*.yaml\"]\nroutes:\n  - path: /a\n    public: true\n");
    let bad = write(&dir, "p/a.yaml", "routes:\n  - path: /b\n    methodz: [GET]\n");
    let (code, stdout, _) = run_cli(&["check", "-c", &path], &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains(&format!("{bad}:3:5: unknown field `methodz`")), "{stdout}");
    assert!(stdout.contains("invalid (1 error)"), "{stdout}");
}

#[test]
fn run_refuses_a_bad_config_with_file_line_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "portcullis.yaml", "upstreams:\n  api:\n    url: http://127.0.0.1:9\nissuers:\n  - name: x\n    issuer: https://x.example.com\n    audiences: [a]\n    algorithms: [none]\nroutes:\n  - path: /a\n");
    let (code, _, stderr) = run_cli(&["run", "-c", &path], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("{path}:8:18: 'none' is never accepted")), "{stderr}");
    // `portcullis -c FILE` means `run`.
    let (code, _, stderr) = run_cli(&["-c", &path], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("'none' is never accepted"), "{stderr}");
}

#[test]
fn explain_names_the_route_its_requirement_and_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let config = standard_config("https://sso.example.com", "http://127.0.0.1:9", "");
    let path = write(&dir, "portcullis.yaml", &config);
    let (code, stdout, _) = run_cli(&["explain", "-c", &path, "POST", "/todos/42", "--scope", "tasks:read"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("route: POST,PUT,PATCH,DELETE /todos/** (defined at"), "{stdout}");
    assert!(stdout.contains("requires: a valid token with all of [tasks:write]"), "{stdout}");
    assert!(stdout.contains("without a token: 401"), "{stdout}");
    assert!(stdout.contains("403 insufficient_scope (scope=\"tasks:write\")"), "{stdout}");

    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "//todos/%34%32", "-s", "tasks:read"], &[]);
    assert!(stdout.contains("normalised path: /todos/42"), "{stdout}");
    assert!(stdout.contains("200-class: forwarded to the upstream as /todos/42"), "{stdout}");

    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "/nowhere", "-s", "admin"], &[]);
    assert!(stdout.contains("route: none matches (default deny)"), "{stdout}");
    assert!(stdout.contains("403 (no route: default deny)"), "{stdout}");

    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "/todos/../admin"], &[]);
    assert!(stdout.contains("400 invalid_request"), "{stdout}");
}

#[test]
fn demo_prints_commands_that_show_200_401_403_and_429() {
    let port = free_port();
    // The demo takes port..port+3; make sure they were free a moment ago.
    let mut child = Command::new(binary())
        .args(["demo", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let found = wait_until(Duration::from_secs(20), || {
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        lines.iter().any(|l| l.contains("Stop with Ctrl-C"))
    });
    let text = lines.join("\n");
    assert!(found, "the demo printed no instructions:\n{text}");
    assert!(text.contains("NOT FOR PRODUCTION"), "{text}");
    let token = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}='")).map(|t| t.trim_end_matches('\'').to_owned()))
            .unwrap_or_else(|| panic!("no {name} token in:\n{text}"))
    };
    let (read, write) = (token("READ"), token("WRITE"));
    let proxy = loopback(port);
    let r = get_with_token(proxy, "/todos/42", &read);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-auth-subject"], "alice");
    assert_eq!(get(proxy, "/todos/42", &[]).status, 401);
    let r = request(proxy, "POST", "/todos", &[("Authorization", &format!("Bearer {read}"))], b"");
    assert_eq!(r.status, 403);
    let r = request(proxy, "POST", "/todos", &[("Authorization", &format!("Bearer {write}"))], b"");
    assert_eq!(r.status, 200);
    let statuses: Vec<u16> = (0..6).map(|_| request(proxy, "POST", "/auth/login", &[], b"").status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    let _ = child.kill();
    let _ = child.wait();
}
