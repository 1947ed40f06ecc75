//! Client certificates: `tls.client_ca`/`client_auth`, routes'
//! `client_certs:` and `credentials: [client_cert]`, certificate identity
//! headers, `require_bound_tokens`: what loads, what it means in the
//! model, and every mistake with its FILE:LINE:COL.

use config::{load_with_env, CertField, HeaderValueSource, Mode};
use policy::{Access, ClientCertificate, DistinguishedName};

mod common;
use common::Dir;

fn text(tls: &str, routes: &str) -> String {
    format!(
        r#"tls:
  cert: server.crt
  key: server.key
{tls}upstreams:
  api:
    url: "http://127.0.0.1:8000"
issuers:
  - name: sso
    issuer: "https://sso.example.com"
    jwks_uri: "https://sso.example.com/jwks"
    audiences: [api]
    require_bound_tokens: true
identity_headers:
  X-Client-Id: client_cert:uri
  X-Client-Print: client_cert:sha256
routes:
{routes}"#
    )
}

const CLIENT_CA: &str = "  client_ca: ca.pem\n  client_auth: optional\n";

fn load(text: &str) -> Result<config::Loaded, Vec<String>> {
    let dir = Dir::new();
    for file in ["server.crt", "server.key", "ca.pem"] {
        dir.write(file, "-----BEGIN X-----\n-----END X-----\n");
    }
    let path = dir.write("portcullis.yaml", text);
    load_with_env(&path, Mode::Check, &|_| None).map_err(|e| {
        let prefix = format!("{}:", path.display());
        e.errors().map(|d| d.to_string().trim_start_matches(&prefix).to_owned()).collect()
    })
}

fn certificate(uri: &str) -> ClientCertificate {
    ClientCertificate {
        subject: DistinguishedName::parse("CN=billing").unwrap(),
        subject_text: "CN=billing".into(),
        dns_names: Box::new([]),
        uris: Box::new([uri.into()]),
        sha256: [0xab; 32],
    }
}

#[test]
fn client_certificates_load_into_the_model() {
    let routes = r#"  - path: /internal/**
    credentials: [client_cert]
    client_certs:
      uris: ["spiffe://cluster.local/ns/billing/*"]
      fingerprints: ["sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB"]
  - path: /api/**
    scopes: [read]
    client_certs: {subjects: ["CN=billing"]}
  - path: /open/**
    scopes: [read]
"#;
    let config = load(&text(CLIENT_CA, routes)).expect("valid").config;
    let auth = config.tls.as_ref().and_then(|t| t.client_auth.as_ref()).expect("client auth");
    assert!(!auth.required);
    assert!(auth.ca_file.ends_with("ca.pem"));
    assert!(config.issuers[0].require_bound_tokens);
    let [internal, api, open] = &config.route_client_certs[..] else { panic!("three routes") };
    let internal = internal.as_ref().expect("internal requires certificates");
    assert!(internal.alone);
    assert_eq!(config.routes[0].access, Access::Public, "no token is looked at");
    assert!(internal.rule.allows(&certificate("spiffe://cluster.local/ns/billing/sa/api")));
    assert!(internal.rule.allows(&certificate("spiffe://other/x")), "the fingerprint matches");
    let api = api.as_ref().expect("api requires certificates");
    assert!(!api.alone);
    assert!(matches!(config.routes[1].access, Access::Protected(_)));
    assert!(open.is_none());
    assert_eq!(config.identity_headers[0].source, HeaderValueSource::ClientCert(CertField::Uri));
    assert_eq!(config.identity_headers[1].source, HeaderValueSource::ClientCert(CertField::Sha256));
    // client_auth defaults to required.
    let required = load(&text("  client_ca: ca.pem\n", "  - path: /x\n")).expect("valid").config;
    assert!(required.tls.and_then(|t| t.client_auth).expect("client auth").required);
}

#[test]
fn every_mistake_is_named_with_its_position() {
    let routes = r#"  - path: /a
    credentials: [client_cert, bearer]
    scopes: [read]
    client_certs:
      subjects: ["billing"]
      dns_names: ["bad name"]
      uris: ["not-a-uri"]
      fingerprints: ["abcd"]
  - path: /b
    credentials: [client_cert]
  - path: /c
    public: true
    client_certs: {}
"#;
    let errors = load(&text("  client_ca: ca.pem\n  client_auth: sometimes\n", routes)).expect_err("invalid");
    for expected in [
        "5:16: client_auth is 'required' or 'optional', not 'sometimes'",
        "20:18: client_cert stands alone in credentials",
        "19:5: a route admitted by its client certificate alone cannot also have scopes",
        "23:18: 'billing' is not a distinguished name (CN=…,O=…)",
        "24:19: 'bad name' is not a host name",
        "25:14: 'not-a-uri' is not a URI",
        "26:22: 'abcd' is not a SHA-256 fingerprint",
        "27:5: credentials: [client_cert] needs client_certs:",
        "31:19: a public route takes no credential; for a certificate alone write credentials: [client_cert]",
    ] {
        assert!(errors.iter().any(|e| e.contains(expected)), "missing {expected} in {errors:#?}");
    }
    let errors = load(&text("  client_auth: optional\n", "  - path: /x\n    client_certs: {}\n")).expect_err("no CA");
    for expected in ["4:16: client_auth needs client_ca", "19:19: client_certs needs tls.client_ca"] {
        assert!(errors.iter().any(|e| e.contains(expected)), "missing {expected} in {errors:#?}");
    }
    let errors = load(&text(CLIENT_CA, "  - path: /x\n").replace("client_cert:sha256", "client_cert:issuer"))
        .expect_err("bad header source");
    assert!(errors.iter().any(|e| e.contains("followed by subject, uri, dns or sha256")), "{errors:#?}");
}

#[test]
fn min_version_is_1_2_or_1_3() {
    let tls13 = load(&text("  min_version: \"1.3\"\n", "  - path: /x\n")).expect("valid").config;
    assert!(tls13.tls.expect("tls").tls13_only);
    let default = load(&text("", "  - path: /x\n")).expect("valid").config;
    assert!(!default.tls.expect("tls").tls13_only);
    let errors = load(&text("  min_version: \"1.1\"\n", "  - path: /x\n")).expect_err("1.1");
    assert!(errors.iter().any(|e| e.contains("4:16: min_version is \"1.2\" or \"1.3\", not '1.1'")), "{errors:#?}");
}
