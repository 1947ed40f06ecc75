//! `api_keys` and key files: the format, what the model holds, and every
//! diagnostic with its FILE:LINE:COL.

use std::fs;
use std::path::Path;

use config::{load_with_env, CredentialKinds, LoadError, Loaded, Mode, Severity};

const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER_HASH: &str = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

mod common;
use common::Dir;

fn load(path: &Path) -> Result<Loaded, LoadError> {
    load_with_env(path, Mode::Check, &|_| None)
}

/// A main file with one upstream, `section` (the api_keys part) and `routes`.
fn main_file(section: &str, routes: &str) -> String {
    format!("upstreams:\n  api:\n    url: http://127.0.0.1:8000\n{section}routes:\n{routes}")
}

const KEYS_SECTION: &str = "api_keys:\n  files: [\"keys/*.yaml\"]\n  header: X-API-Key\n";

fn entry(id: &str, hash: &str, extra: &str) -> String {
    format!("  - id: {id}\n    sha256: {hash}\n    subject: svc-{id}\n    scopes: [read, write]\n{extra}")
}

/// The diagnostics (errors and warnings) as `NAME:LINE:COL: message`, file
/// names relative to the directory.
fn diagnostics(dir: &Dir, result: &Result<Loaded, LoadError>) -> Vec<String> {
    let list = match result {
        Ok(loaded) => &loaded.warnings,
        Err(error) => &error.diagnostics,
    };
    let prefix = format!("{}/", dir.0.path().display());
    list.iter().map(|d| d.to_string().replace(&prefix, "")).collect()
}

#[test]
fn key_files_load_into_the_model_and_are_watched() {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", &main_file(KEYS_SECTION, "  - path: /x\n"));
    dir.write(
        "keys/a.yaml",
        &format!("keys:\n{}", entry("ci-1", HASH, "    expires: 2999-01-31\n    note: \"CI pipeline\"\n")),
    );
    dir.write("keys/b.yaml", &format!("keys:\n{}", entry("ops", &HASH.to_uppercase(), "")));
    let loaded = load(&path).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    let keys = config.api_keys.as_ref().unwrap();
    assert_eq!(keys.header.as_deref(), Some("x-api-key"));
    let ids: Vec<&str> = keys.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["ci-1", "ops"]);
    let first = &keys.keys[0];
    assert_eq!(first.subject, "svc-ci-1");
    assert_eq!(first.scopes, ["read", "write"]);
    assert_eq!(first.note.as_deref(), Some("CI pipeline"));
    assert_eq!(first.expires, config::parse_time("2999-01-31"));
    assert_eq!(first.sha256[0], 0x9f);
    assert_eq!(first.sha256, keys.keys[1].sha256, "hex is read in either case");
    assert_eq!((first.position.line, first.position.column), (2, 5));
    // Key files are sources, and their glob is watched like policy globs.
    assert!(config.sources.iter().any(|s| s.ends_with("keys/a.yaml")), "{:?}", config.sources);
    assert!(config.policy_globs.iter().any(|g| g.ends_with("keys/*.yaml")), "{:?}", config.policy_globs);
    // Routes accept every configured kind by default.
    assert_eq!(config.route_credentials, [CredentialKinds { bearer: false, api_key: true, session: false }]);
}

#[test]
fn a_route_can_be_protected_by_keys_alone_and_name_its_kinds() {
    let dir = Dir::new();
    let issuer = "issuers:\n  - name: sso\n    issuer: https://sso.example.com\n    audiences: [api]\n";
    let routes = "  - path: /a\n  - path: /b\n    credentials: [bearer]\n  - path: /c\n    credentials: [api_key]\n  - path: /d\n    issuers: [sso]\n";
    let path = dir.write("portcullis.yaml", &main_file(&format!("{issuer}{KEYS_SECTION}"), routes));
    let config = load(&path).unwrap().config;
    let kinds = |bearer, api_key| CredentialKinds { bearer, api_key, session: false };
    assert_eq!(
        config.route_credentials,
        [kinds(true, true), kinds(true, false), kinds(false, true), kinds(true, false)],
        "a route naming issuers takes tokens only"
    );
}

#[test]
fn key_file_and_route_mistakes_have_positions() {
    let dir = Dir::new();
    let routes = "  - path: /x\n    credentials: [api_key, cookie]\n  - path: /y\n    credentials: []\n  - path: /z\n    public: true\n    credentials: [api_key]\n";
    let path = dir.write("portcullis.yaml", &main_file(KEYS_SECTION, routes));
    dir.write(
        "keys/bad.yaml",
        "keys:\n  - id: has_underscore\n    sha256: abc\n    subject: \"\"\n    scopes: [\"two words\"]\n    expires: tomorrow\n",
    );
    dir.write("keys/unknown-field.yaml", &format!("keys:\n{}    secret: nope\n", entry("x", HASH, "")));
    let result = load(&path);
    let lines = diagnostics(&dir, &result);
    let expected = [
        "portcullis.yaml:9:28: unknown credential kind 'cookie' (defined: api_key, bearer, client_cert, session)",
        "portcullis.yaml:11:18: credentials: [] accepts nothing; omit it to accept every configured kind",
        "portcullis.yaml:12:5: a public route cannot also have credentials",
        "keys/bad.yaml:2:9: API key id 'has_underscore' must be 1 to 64 ASCII letters, digits or '-'",
        "keys/bad.yaml:3:13: sha256 must be the key's SHA-256 as 64 hex digits (`portcullis keys new` prints it)",
        "keys/bad.yaml:4:14: subject must be printable ASCII and not empty",
        "keys/bad.yaml:5:14: 'two words' is not a valid scope (no spaces, quotes or backslashes)",
        "keys/bad.yaml:6:14: expires: 'tomorrow' is not a UTC time like 2027-01-31T00:00:00Z or 2027-01-31",
    ];
    for line in expected {
        assert!(lines.iter().any(|l| l == line), "missing {line}\nin {lines:#?}");
    }
    assert!(lines.iter().any(|l| l.starts_with("keys/unknown-field.yaml:6:5:") && l.contains("secret")), "{lines:#?}");
}

#[test]
fn expired_duplicate_and_unreadable_keys_are_warnings_that_fail_closed() {
    let dir = Dir::new();
    let path = dir.write("portcullis.yaml", &main_file(KEYS_SECTION, "  - path: /x\n"));
    dir.write("keys/a.yaml", &format!("keys:\n{}", entry("old", HASH, "    expires: 2020-01-01T00:00:00Z\n")));
    dir.write("keys/b.yaml", &format!("keys:\n{}{}", entry("dup", HASH, ""), entry("dup", OTHER_HASH, "")));
    // A directory matched by the glob is not a file: skipped. An unreadable
    // file (not valid UTF-8 here, as root can read anything) is a warning.
    fs::write(dir.0.path().join("keys/c.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let loaded = load(&path).expect("warnings only");
    let lines = diagnostics(&dir, &Ok(Loaded { config: loaded.config.clone(), warnings: loaded.warnings.clone() }));
    assert!(loaded.warnings.iter().all(|d| d.severity == Severity::Warning));
    assert!(
        lines.contains(
            &"keys/a.yaml:6:14: warning: API key 'old' has expired (2020-01-01T00:00:00Z); it is refused".to_owned()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("keys/b.yaml:6:5: warning: API key id 'dup' is already used at ")
            && l.contains("keys/b.yaml:2:5")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("keys/c.yaml: warning: cannot read")), "{lines:#?}");
    let keys = &loaded.config.api_keys.as_ref().unwrap().keys;
    let dup: Vec<_> = keys.iter().filter(|k| k.id == "dup").collect();
    assert_eq!(dup.len(), 1, "the second entry is left out");
    assert_eq!(dup[0].sha256[0], 0x9f, "the first entry stays in force");
    assert!(keys.iter().any(|k| k.id == "old"), "an expired key is kept, and refused when presented");
}

#[test]
fn the_section_and_its_references_are_checked() {
    let dir = Dir::new();
    let section = "identity_headers:\n  X-Key: sub\napi_keys:\n  files: []\n  header: X-Key\n";
    let path = dir.write("portcullis.yaml", &main_file(section, "  - path: /x\n"));
    let lines = diagnostics(&dir, &load(&path));
    assert!(
        lines.iter().any(|l| l == "portcullis.yaml:7:3: api_keys.files is empty: name at least one key file or glob"),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("portcullis.yaml:8:11: 'X-Key' is an identity header")), "{lines:#?}");

    let reserved = "api_keys:\n  files: [keys.yaml]\n  header: Authorization\n";
    let path = dir.write("portcullis.yaml", &main_file(reserved, "  - path: /x\n    credentials: [bearer]\n"));
    let lines = diagnostics(&dir, &load(&path));
    assert!(
        lines.iter().any(|l| l.starts_with("portcullis.yaml:6:11: 'Authorization' cannot carry API keys")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l == "portcullis.yaml:5:11: key file 'keys.yaml' does not exist"), "{lines:#?}");
    assert!(lines.iter().any(|l| l == "portcullis.yaml:9:19: bearer: no issuers are configured"), "{lines:#?}");

    // Without api_keys, a route cannot ask for keys, and still needs an issuer.
    let path = dir.write("portcullis.yaml", &main_file("", "  - path: /x\n    credentials: [api_key]\n"));
    let lines = diagnostics(&dir, &load(&path));
    assert!(
        lines.iter().any(|l| l == "portcullis.yaml:6:19: api_key: no api_keys section is configured"),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("no issuers (or api_keys) are configured")), "{lines:#?}");
}
