//! The command line: `check`, `explain`, `run` with a bad file, `demo`
//! (its curl commands and its browser sign-in).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::client::{get, get_with_token, request};
use harness::fixtures::standard_config;
use harness::proxy::{binary, run_cli};
use harness::{free_port, free_port_block, loopback, wait_until};

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
fn run_exits_naming_a_listen_address_that_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(harness::fixtures::HS_ENV, harness::fixtures::HS_SECRET)];
    for setting in ["listen", "admin_listen"] {
        let taken = std::net::TcpListener::bind(loopback(0)).unwrap();
        let taken_port = taken.local_addr().unwrap().port();
        let free = free_port();
        let (port, admin) = if setting == "listen" { (taken_port, free) } else { (free, taken_port) };
        let config = format!(
            "listen: \"127.0.0.1:{port}\"\nadmin_listen: \"127.0.0.1:{admin}\"\n{}",
            standard_config("https://sso.example.com", "http://127.0.0.1:9", "")
        );
        let path = write(&dir, &format!("{setting}.yaml"), &config);
        let (code, _, stderr) = run_cli(&["run", "-c", &path], &env);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(&format!("{setting}: cannot listen on 127.0.0.1:{taken_port}")), "{stderr}");
    }
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
    assert!(
        stdout.contains("without a token: 401 unauthorized: a bearer token is required [decision: unauthenticated]"),
        "{stdout}"
    );
    assert!(stdout.contains("403 insufficient_scope: the token lacks the scope"), "{stdout}");
    assert!(stdout.contains("[decision: insufficient_scope]"), "{stdout}");
    assert!(stdout.contains("error=\"insufficient_scope\", scope=\"tasks:write\""), "{stdout}");

    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "//todos/%34%32", "-s", "tasks:read"], &[]);
    assert!(stdout.contains("normalised path: /todos/42"), "{stdout}");
    assert!(stdout.contains("200-class: forwarded to the upstream as /todos/42"), "{stdout}");

    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "/nowhere", "-s", "admin"], &[]);
    assert!(stdout.contains("route: none matches (default deny)"), "{stdout}");
    assert!(stdout.contains("403 insufficient_scope: access to this resource is not granted"), "{stdout}");
    assert!(stdout.contains("[decision: no_route]"), "{stdout}");

    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "/todos/../admin"], &[]);
    assert!(stdout.contains("400 invalid_request"), "{stdout}");
}

/// A running `portcullis demo`, killed when dropped.
struct Demo {
    child: Child,
    port: u16,
    lines: Vec<String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the demo on four free ports and wait for its instructions. The ports
/// were free a moment before the demo binds them; when another test takes
/// one in between, the demo exits naming it and we try other ports.
fn start_demo() -> Demo {
    for _ in 0..3 {
        let port = free_port_block(4);
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(binary())
            .args(["demo", "--port", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("starting the demo");
        let mut demo = Demo { child, port, lines: Vec::new() };
        let stdout = demo.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut exited = None;
        let ready = wait_until(Duration::from_secs(30), || {
            while let Ok(line) = rx.try_recv() {
                demo.lines.push(line);
            }
            exited = demo.child.try_wait().unwrap();
            exited.is_some() || demo.lines.iter().any(|l| l.contains("Stop with Ctrl-C"))
        });
        let errors = std::fs::read_to_string(stderr.path()).unwrap_or_default();
        match exited {
            None if ready => return demo,
            Some(_) if errors.contains("cannot listen") || errors.contains("port") && errors.contains("in use") => {
                continue
            }
            _ => panic!(
                "the demo printed no instructions (exit: {exited:?})\nstdout:\n{}\nstderr:\n{errors}",
                demo.lines.join("\n")
            ),
        }
    }
    panic!("the demo found its ports taken three times in a row");
}

#[test]
fn demo_prints_commands_that_show_200_401_403_and_429() {
    let demo = start_demo();
    let (port, lines) = (demo.port, &demo.lines);
    let text = lines.join("\n");
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
}

/// The URL the banner gives for the browser flow works: the demo issuer's
/// page offers users, picking one signs in, and the upstream sees who.
#[test]
fn demo_signs_a_browser_in_at_its_one_click_page() {
    let demo = start_demo();
    let text = demo.lines.join("\n");
    let app = format!("http://127.0.0.1:{}/app/", demo.port);
    assert!(text.contains(&app), "the banner names {app}:\n{text}");
    let mut agent = harness::signin::Agent::new();
    let (page, visited) = agent.navigate(&app);
    assert_eq!(page.status, 200, "{visited:?}");
    assert!(visited.last().is_some_and(|url| url.contains("/authorize?")), "{visited:?}");
    let html = page.text();
    let start = html.find("/authorize/approve?").expect("a sign-in button");
    let end = start + html[start..].find('"').expect("end of the link");
    let approve = html[start..end].replace("&amp;", "&");
    let issuer = harness::signin::Url::parse(visited.last().expect("the page"));
    let (answer, visited) = agent.navigate(&issuer.join(&approve));
    assert_eq!(answer.status, 200, "{visited:?}\n{}", answer.text());
    assert_eq!(visited.last(), Some(&app), "{visited:?}");
    assert_eq!(answer.json()["headers"]["x-auth-subject"], "alice");
    // Logout continues at the demo issuer and comes back signed out.
    let (_, visited) = agent.navigate(&format!("http://127.0.0.1:{}/.portcullis/logout", demo.port));
    assert!(visited.iter().any(|url| url.contains("/logout?")), "{visited:?}");
    let again = agent.get(&app, harness::signin::NAVIGATION_HEADERS);
    assert_eq!(again.status, 302, "signed out: {}", again.text());
}
