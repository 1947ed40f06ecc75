//! API keys against the real binary: keys made by `portcullis keys new`
//! and pasted into a key file as printed, their scopes and identity
//! headers, every way a key can be wrong, keys added and removed under
//! load, route restrictions on credential kinds, `check` and `explain`,
//! and no key in the logs at `trace`.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::client::{get, get_with_token, request};
use harness::config::TestConfig;
use harness::fixtures::{World, HS_ENV, HS_SECRET};
use harness::proxy::run_cli;
use harness::wait_until;

/// A key made by the binary: the key, and its entry as printed.
struct NewKey {
    key: String,
    entry: String,
}

fn new_key(subject: &str, scopes: &[&str], extra: &[&str]) -> NewKey {
    let mut args = vec!["keys", "new", "--subject", subject];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    args.extend(extra);
    let (code, stdout, stderr) = run_cli(&args, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (key, entry) = stdout.split_once('\n').expect("a key line, then the entry");
    assert!(key.starts_with("pk_"), "{key}");
    NewKey { key: key.to_owned(), entry: entry.to_owned() }
}

/// A key file holding `keys`, as an operator pastes them.
fn key_file(keys: &[&NewKey]) -> String {
    let mut text = "keys:\n".to_owned();
    for key in keys {
        text.push_str(&key.entry);
    }
    text
}

/// Write a file the way an editor or a ConfigMap does: a new file renamed
/// over the old one (a name the glob does not match until the rename).
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("partial");
    fs::write(&temp, text).expect("write key file");
    fs::rename(&temp, path).expect("rename key file");
}

/// The standard world with API keys from `dir/*.yaml`, in `X-API-Key` too.
fn world_with_keys(dir: &Path, configure: impl FnOnce(TestConfig) -> TestConfig) -> World {
    let section = format!("api_keys:\n  files: [\"{}/*.yaml\"]\n  header: X-API-Key\n", dir.display());
    World::start_configured(|config| configure(config.extra(&section)))
}

fn with_key(key: &str) -> [(&'static str, String); 1] {
    [("Authorization", format!("ApiKey {key}"))]
}

fn get_with_key(world: &World, target: &str, key: &str) -> harness::client::Response {
    let [(name, value)] = with_key(key);
    get(world.proxy.addr, target, &[(name, &value)])
}

#[test]
fn a_key_from_keys_new_is_accepted_with_its_scopes_and_identity_headers() {
    let dir = tempfile::tempdir().unwrap();
    let reader = new_key("ci-bot", &["tasks:read"], &["--note", "CI pipeline"]);
    write_atomically(&dir.path().join("ci.yaml"), &key_file(&[&reader]));
    let w = world_with_keys(dir.path(), |c| c);

    let ok = get_with_key(&w, "/todos/1", &reader.key);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let received = w.upstream.last();
    assert_eq!(received.header("x-auth-subject").as_deref(), Some("ci-bot"));
    assert_eq!(received.header("x-auth-scopes").as_deref(), Some("tasks:read"));
    assert_eq!(received.header("x-auth-issuer").as_deref(), Some("api_key"));
    assert_eq!(received.header("x-auth-email"), None, "a key carries no other claim");
    assert_eq!(received.header("authorization"), None, "the key never reaches the upstream");

    // The operator's header works the same, and is removed too.
    let by_header = get(w.proxy.addr, "/todos/2", &[("X-API-Key", &reader.key)]);
    assert_eq!(by_header.status, 200, "{}", by_header.text());
    assert_eq!(w.upstream.last().header("x-api-key"), None);
    assert_eq!(w.upstream.last().header("x-auth-subject").as_deref(), Some("ci-bot"));
    // Client-sent identity headers are replaced, as for tokens.
    let [(name, value)] = with_key(&reader.key);
    let spoofed = get(w.proxy.addr, "/todos/3", &[(name, &value), ("X-Auth-Subject", "admin")]);
    assert_eq!(spoofed.status, 200);
    assert_eq!(w.upstream.last().headers_named("x-auth-subject"), ["ci-bot"]);

    // Scopes decide as for tokens: writing needs tasks:write.
    let write = request(w.proxy.addr, "DELETE", "/todos/1", &[(name, &value)], b"");
    assert_eq!((write.status, write.json()["error"].as_str()), (403, Some("insufficient_scope")));
    assert_eq!(
        write.header("www-authenticate"),
        Some("ApiKey realm=\"test-api\", error=\"insufficient_scope\", scope=\"tasks:write\"")
    );
    // A route that names issuers takes tokens only: the key counts as absent.
    let sso_only = get_with_key(&w, "/sso-only/x", &reader.key);
    assert_eq!(sso_only.status, 401);
    assert_eq!(sso_only.header("www-authenticate"), Some("Bearer realm=\"test-api\""));
    // Bearer tokens are unaffected.
    assert_eq!(get_with_token(w.proxy.addr, "/todos/1", &w.token("alice", "tasks:read")).status, 200);

    let metrics = w.proxy.metrics();
    assert!(metrics.contains("portcullis_auth_duration_seconds_count{source=\"api_key\"} 4"), "{metrics}");
}

#[test]
fn unknown_wrong_expired_and_malformed_keys_get_401_with_the_api_key_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let good = new_key("svc", &["tasks:read"], &[]);
    let expired = new_key("old-svc", &["tasks:read"], &["--expires", "2020-01-01"]);
    write_atomically(&dir.path().join("keys.yaml"), &key_file(&[&good, &expired]));
    let w = world_with_keys(dir.path(), |c| c);

    // The id has no '_'; the base64url secret may.
    let (id, secret) = good.key.strip_prefix("pk_").and_then(|rest| rest.split_once('_')).unwrap();
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let wrong_secret = format!("pk_{id}_{flipped}{}", &secret[1..]);
    assert_ne!(wrong_secret, good.key);
    let unknown_id = format!("pk_nosuchkey_{secret}");
    let challenge =
        |why: &str| format!("ApiKey realm=\"test-api\", error=\"invalid_key\", error_description=\"{why}\"");
    for (key, why) in [
        (&wrong_secret[..], "the API key is not valid"),
        (&unknown_id[..], "the API key is not valid"),
        (&expired.key[..], "the API key has expired"),
        ("pk_nounderscore", "the API key is malformed"),
        ("hello", "the API key is malformed"),
        ("pk_a_b+c", "the API key is malformed"),
    ] {
        let r = get_with_key(&w, "/todos/1", key);
        assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_key")), "{key}: {}", r.text());
        assert_eq!(r.json()["error_description"], why, "{key}");
        assert_eq!(r.header("www-authenticate"), Some(&challenge(why)[..]), "{key}");
        assert!(!r.text().contains(key), "the answer never echoes the key");
    }
    // An empty key, or characters no key has.
    for headers in [[("X-API-Key", "")], [("Authorization", "ApiKey")], [("X-API-Key", "pk_a b")]] {
        let r = get(w.proxy.addr, "/todos/1", &headers);
        assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_key")), "{headers:?}");
    }
    // Two keys, or a key and a token: which one is meant? 400, as for a
    // token sent in two places.
    let [(name, value)] = with_key(&good.key);
    let two = get(w.proxy.addr, "/todos/1", &[(name, &value), ("X-API-Key", &good.key)]);
    assert_eq!((two.status, two.json()["error"].as_str()), (400, Some("invalid_request")));
    let token = format!("Bearer {}", w.token("alice", "tasks:read"));
    let both = get(w.proxy.addr, "/todos/1", &[("Authorization", &token), ("X-API-Key", &good.key)]);
    assert_eq!((both.status, both.json()["error"].as_str()), (400, Some("invalid_request")));
    // No credential: both schemes are offered.
    let none = get(w.proxy.addr, "/todos/1", &[]);
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer realm=\"test-api\", ApiKey realm=\"test-api\""));
    assert_eq!(none.json()["error_description"], "a bearer token or an API key is required");
    assert_eq!(w.upstream.count(), 0, "nothing was forwarded");
    // The good key still works.
    assert_eq!(get_with_key(&w, "/todos/1", &good.key).status, 200);
    let metrics = w.proxy.metrics();
    assert!(metrics.contains("decision=\"invalid_api_key\""), "{metrics}");
}

#[test]
fn routes_accept_the_credential_kinds_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key("robot", &["tasks:read"], &[]);
    write_atomically(&dir.path().join("k.yaml"), &key_file(&[&key]));
    let w = world_with_keys(dir.path(), |config| {
        config
            .leading_route(&[("path", "/machines/**"), ("credentials", "[api_key]")])
            .leading_route(&[("path", "/people/**"), ("credentials", "[bearer]")])
    });
    let token = w.token("alice", "tasks:read");
    assert_eq!(get_with_key(&w, "/machines/1", &key.key).status, 200);
    let person = get_with_token(w.proxy.addr, "/machines/1", &token);
    assert_eq!(person.status, 401, "a token counts as absent where only keys are accepted");
    assert_eq!(person.header("www-authenticate"), Some("ApiKey realm=\"test-api\""));
    assert_eq!(person.json()["error_description"], "an API key is required");

    assert_eq!(get_with_token(w.proxy.addr, "/people/1", &token).status, 200);
    let machine = get_with_key(&w, "/people/1", &key.key);
    assert_eq!(machine.status, 401);
    assert_eq!(machine.header("www-authenticate"), Some("Bearer realm=\"test-api\""));
}

#[test]
fn keys_added_and_removed_under_load_take_effect_without_failing_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    let steady = new_key("steady", &["tasks:read"], &[]);
    let main_file = dir.path().join("main.yaml");
    write_atomically(&main_file, &key_file(&[&steady]));
    let w = world_with_keys(dir.path(), |c| c);
    let addr = w.proxy.addr;

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, errors, sent, key) =
                (Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&sent), steady.key.clone());
            std::thread::spawn(move || {
                let value = format!("ApiKey {key}");
                while !stop.load(Ordering::Relaxed) {
                    let r = get(addr, "/todos/1", &[("Authorization", &value)]);
                    if r.status != 200 {
                        errors.lock().unwrap().push(format!("status {}: {}", r.status, r.text()));
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let status = |key: &NewKey| get_with_key(&w, "/todos/1", &key.key).status;
    let waits = |key: &NewKey, wanted: u16| wait_until(Duration::from_secs(10), || status(key) == wanted);
    for round in 0..3 {
        // Added to the file the steady key is in, then removed from it.
        let added = new_key(&format!("added-{round}"), &["tasks:read"], &[]);
        assert_eq!(status(&added), 401);
        write_atomically(&main_file, &key_file(&[&steady, &added]));
        assert!(waits(&added, 200), "round {round}: the added key never worked\n{}", w.proxy.logs());
        write_atomically(&main_file, &key_file(&[&steady]));
        assert!(waits(&added, 401), "round {round}: the removed key kept working\n{}", w.proxy.logs());

        // A new file the glob starts matching, then deleted.
        let other = new_key(&format!("other-{round}"), &["tasks:read"], &[]);
        let other_file = dir.path().join(format!("other-{round}.yaml"));
        write_atomically(&other_file, &key_file(&[&other]));
        assert!(waits(&other, 200), "round {round}: the new file's key never worked\n{}", w.proxy.logs());
        fs::remove_file(&other_file).unwrap();
        assert!(waits(&other, 401), "round {round}: the deleted file's key kept working\n{}", w.proxy.logs());
    }
    // A broken key file keeps the keys in force (the reload is refused).
    write_atomically(&main_file, "keys:\n  - id: [broken\n");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(status(&steady), 200);
    write_atomically(&main_file, &key_file(&[&steady]));

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let errors = errors.lock().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    assert!(errors.is_empty(), "{} of {sent} requests failed: {:?}", errors.len(), &errors[..errors.len().min(5)]);
    assert!(sent > 50, "the load kept going: {sent}");
}

#[test]
fn no_key_reaches_the_logs_at_trace() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key("quiet", &["tasks:read"], &[]);
    let unknown = new_key("unknown", &["tasks:read"], &[]);
    write_atomically(&dir.path().join("k.yaml"), &key_file(&[&key]));
    let w = world_with_keys(dir.path(), |config| config.main_option("log_level", "trace"));
    assert_eq!(get_with_key(&w, "/todos/1", &key.key).status, 200);
    assert_eq!(get(w.proxy.addr, "/todos/1", &[("X-API-Key", &key.key)]).status, 200);
    assert_eq!(get_with_key(&w, "/todos/1", &unknown.key).status, 401);
    assert!(wait_until(Duration::from_secs(5), || w.proxy.logs().matches("portcullis::access").count() >= 3));
    let logs = w.proxy.logs();
    for secret in [&key.key, &unknown.key] {
        // The whole secret after `pk_<id>_` (it may itself contain '_').
        let secret_part = secret.strip_prefix("pk_").and_then(|rest| rest.split_once('_')).unwrap().1;
        assert!(!logs.contains(secret_part), "a key's secret is in the logs");
    }
    assert!(!logs.to_ascii_lowercase().contains("apikey "), "an Authorization value was logged");
}

#[test]
fn check_warns_and_explain_says_a_route_accepts_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key("ci", &["tasks:read"], &["--id", "ci-1"]);
    let expired = new_key("old", &["tasks:read"], &["--expires", "2021-06-30T12:00:00Z"]);
    write_atomically(&dir.path().join("a.yaml"), &key_file(&[&key, &expired]));
    // The same id again in another file: the first entry stays in force.
    let twin = new_key("twin", &["admin"], &["--id", "ci-1"]);
    write_atomically(&dir.path().join("b.yaml"), &key_file(&[&twin]));
    let w = world_with_keys(dir.path(), |c| c);
    assert_eq!(get_with_key(&w, "/todos/1", &key.key).status, 200);
    assert_eq!(get_with_key(&w, "/admin/x", &twin.key).status, 401, "the duplicate entry is ignored");

    let path = w.proxy.config_path.to_string_lossy().into_owned();
    let (code, stdout, _) = run_cli(&["check", "-c", &path], &[(HS_ENV, HS_SECRET)]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("a.yaml:") && stdout.contains("has expired"), "{stdout}");
    assert!(stdout.contains("b.yaml:3:") && stdout.contains("API key id 'ci-1' is already used at"), "{stdout}");
    assert!(stdout.contains("2 API keys"), "{stdout}");

    let (code, stdout, _) =
        run_cli(&["explain", "-c", &path, "GET", "/todos/1", "-s", "tasks:read"], &[(HS_ENV, HS_SECRET)]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("requires: a valid token or API key with all of [tasks:read]"), "{stdout}");
    assert!(stdout.contains("credentials: bearer, api_key"), "{stdout}");
    assert!(
        stdout.contains("with a valid API key with scopes [tasks:read] (2 keys configured): 200-class"),
        "{stdout}"
    );
    let (_, stdout, _) = run_cli(&["explain", "-c", &path, "GET", "/sso-only/x"], &[(HS_ENV, HS_SECRET)]);
    assert!(stdout.contains("credentials: bearer\n"), "{stdout}");
    assert!(stdout.contains("with a valid API key with scopes [] (2 keys configured): not accepted here"), "{stdout}");

    // An invalid entry is an error with its position.
    write_atomically(&dir.path().join("c.yaml"), "keys:\n  - id: bad_id\n    sha256: abc\n    subject: x\n");
    let (code, stdout, _) = run_cli(&["check", "-c", &path], &[(HS_ENV, HS_SECRET)]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("c.yaml:2:9: API key id 'bad_id'"), "{stdout}");
    assert!(stdout.contains("c.yaml:3:13: sha256 must be"), "{stdout}");
}

#[test]
fn keys_named_by_an_api_key_issuer_are_accepted_where_routes_list_it_and_revoked_like_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let partner = new_key("acme", &["tasks:read"], &["--issuer", "partners"]);
    let internal = new_key("ci-bot", &["tasks:read"], &[]);
    assert!(partner.entry.contains("issuer: \"partners\""), "{}", partner.entry);
    write_atomically(&dir.path().join("keys.yaml"), &key_file(&[&partner, &internal]));
    let admin_token = "an-admin-token-for-tests-only-32";
    let section = format!(
        "admin_token_env: TEST_ADMIN_TOKEN\napi_keys:\n  files: [\"{}/*.yaml\"]\n  issuers: [partners]\n",
        dir.path().display()
    );
    let w = World::start_with_env(
        |c| {
            c.extra(&section)
                .leading_route(&[("path", "/partner/**"), ("issuers", "[partners]"), ("scopes", "[tasks:read]")])
                .leading_route(&[("path", "/mixed/**"), ("issuers", "[partners, sso]"), ("scopes", "[tasks:read]")])
        },
        &[("TEST_ADMIN_TOKEN", admin_token)],
    );
    assert_eq!(get_with_key(&w, "/partner/1", &partner.key).status, 200);
    let other = get_with_key(&w, "/partner/1", &internal.key);
    assert_eq!((other.status, other.json()["error"].as_str()), (401, Some("invalid_key")), "{}", other.text());
    assert!(other.text().contains("not accepted for this resource"), "{}", other.text());
    // A token is no credential here: the route names only a key issuer.
    let token = get_with_token(w.proxy.addr, "/partner/1", &w.token("alice", "tasks:read"));
    assert_eq!(token.status, 401);
    assert_eq!(token.header("www-authenticate"), Some("ApiKey realm=\"test-api\""));
    // Naming both kinds takes both.
    assert_eq!(get_with_key(&w, "/mixed/1", &partner.key).status, 200);
    assert_eq!(get_with_token(w.proxy.addr, "/mixed/1", &w.token("alice", "tasks:read")).status, 200);
    // Unlabelled routes take every key, as before.
    assert_eq!(get_with_key(&w, "/todos/1", &partner.key).status, 200);

    // Revoked by id (its jti) through the admin listener, without Redis.
    let id = partner.key.strip_prefix("pk_").and_then(|rest| rest.split_once('_')).unwrap().0;
    let revoke = |body: String| {
        let authorization = format!("Bearer {admin_token}");
        request(w.proxy.admin, "POST", "/revocations", &[("Authorization", &authorization)], body.as_bytes())
    };
    let done = revoke(format!("{{\"jti\": \"{id}\", \"iss\": \"api_key\"}}"));
    assert_eq!((done.status, done.json()["shared"].as_bool()), (200, Some(false)), "{}", done.text());
    let refused = get_with_key(&w, "/todos/1", &partner.key);
    assert_eq!((refused.status, refused.json()["error"].as_str()), (401, Some("invalid_key")));
    assert!(refused.text().contains("revoked"), "{}", refused.text());
    // By subject: a subject entry for any issuer covers tokens only (it
    // expires with them); one for api_key covers the subject's keys.
    assert_eq!(revoke("{\"sub\": \"ci-bot\"}".to_owned()).status, 200);
    assert_eq!(get_with_key(&w, "/todos/1", &internal.key).status, 200);
    let done = revoke("{\"sub\": \"ci-bot\", \"iss\": \"api_key\"}".to_owned());
    assert_eq!(done.json()["expires"], u64::MAX, "kept for good: {}", done.text());
    assert_eq!(get_with_key(&w, "/todos/1", &internal.key).status, 401);
    // An issuer name the configuration does not know would match nothing.
    assert_eq!(revoke("{\"jti\": \"x\", \"iss\": \"nobody\"}".to_owned()).status, 400);
    assert!(!w.proxy.logs().contains(&partner.key), "a key reached the log");
}

#[test]
fn check_refuses_a_key_issuer_nobody_declared() {
    let dir = tempfile::tempdir().unwrap();
    let key = new_key("acme", &["tasks:read"], &["--issuer", "vendors"]);
    write_atomically(&dir.path().join("keys.yaml"), &key_file(&[&key]));
    let config = harness::config::TestConfig::new("https://sso.example.com", "http://127.0.0.1:9")
        .extra(&format!("api_keys:\n  files: [\"{}/*.yaml\"]\n  issuers: [partners, sso]\n", dir.path().display()))
        .render();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config).unwrap();
    let (code, stdout, stderr) = harness::proxy::run_cli(&["check", "-c", path.to_str().unwrap()], &[]);
    let output = format!("{stdout}{stderr}");
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("keys.yaml:") && output.contains("unknown API key issuer 'vendors'"), "{output}");
    assert!(output.contains("'sso' is already a token issuer's name"), "{output}");
}
