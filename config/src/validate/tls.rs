//! `tls:`: which files, for which names. The files are only checked to be
//! readable here; whether a key matches its certificate and when the
//! certificate expires is checked by the proxy, which parses them (and by
//! `portcullis check` through it).

use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::values::socket_addr;
use crate::diag::{Position, Reporter};
use crate::file::{Text, TlsFile};
use crate::model::{CertificateFiles, ClientCertAuth, NamedCertificate, TlsSettings};

/// The `tls:` section and the files it names (they join the sources a
/// reload watches); `None` when absent or invalid (reported).
pub(super) fn tls(
    file: Option<&Spanned<TlsFile>>,
    base: &Path,
    r: &mut Reporter<'_>,
) -> Option<(TlsSettings, Vec<std::path::PathBuf>)> {
    let section = file?;
    let t = &section.value;
    let errors_before = super::count_errors(r);
    let mut sources = Vec::new();
    let mut files = |cert: &Text, key: &Text, at: Location, r: &mut Reporter<'_>| {
        let cert_path = readable(cert, base, "certificate", r);
        let key_path = readable(key, base, "key", r);
        sources.extend(cert_path.iter().chain(key_path.iter()).cloned());
        Some(CertificateFiles { cert: cert_path?, key: key_path?, position: Position::new(r.file, at) })
    };
    let default = files(&t.cert, &t.key, section.referenced, r);
    let mut named = Vec::new();
    for entry in t.certificates.iter().flatten() {
        let e = &entry.value;
        if e.names.is_empty() {
            r.error(entry, "a named certificate needs names: [host, ...]");
        }
        let mut names = Vec::new();
        for name in &e.names {
            let lower = name.value.to_ascii_lowercase();
            let bare = lower.strip_prefix("*.").unwrap_or(&lower);
            let valid = !bare.is_empty()
                && bare.split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            if valid {
                names.push(lower);
            } else {
                r.error(name, format!("'{}' is not a host name (or *.domain)", name.value));
            }
        }
        if let Some(files) = files(&e.cert, &e.key, entry.referenced, r) {
            named.push(NamedCertificate { files, names });
        }
    }
    let redirect_listen = t.redirect_listen.as_ref().and_then(|text| socket_addr(text, r));
    let client_auth = client_auth(t, base, r);
    let tls13_only = match &t.min_version {
        None => false,
        Some(text) => match text.value.as_str() {
            "1.2" => false,
            "1.3" => true,
            other => {
                r.error(
                    text,
                    format!("min_version is \"1.2\" or \"1.3\", not '{other}' (older versions are never served)"),
                );
                false
            }
        },
    };
    if let Some(auth) = &client_auth {
        sources.push(auth.ca_file.clone());
    }
    if super::count_errors(r) > errors_before {
        return None;
    }
    Some((TlsSettings { default: default?, named, redirect_listen, client_auth, tls13_only }, sources))
}

/// `client_ca` and `client_auth` (which needs `client_ca`). Whether the
/// bundle holds usable certificates is checked by the proxy, which parses it.
fn client_auth(t: &TlsFile, base: &Path, r: &mut Reporter<'_>) -> Option<ClientCertAuth> {
    let required = match &t.client_auth {
        None => true,
        Some(text) => match text.value.as_str() {
            "required" => true,
            "optional" => false,
            other => {
                r.error(text, format!("client_auth is 'required' or 'optional', not '{other}'"));
                true
            }
        },
    };
    let Some(ca) = &t.client_ca else {
        if let Some(text) = &t.client_auth {
            r.error(text, "client_auth needs client_ca: the CA bundle client certificates are verified against");
        }
        return None;
    };
    let ca_file = readable(ca, base, "client CA", r)?;
    Some(ClientCertAuth { ca_file, required, position: Position::new(r.file, ca.referenced) })
}

fn readable(text: &Text, base: &Path, what: &str, r: &mut Reporter<'_>) -> Option<std::path::PathBuf> {
    let path = base.join(&text.value);
    match std::fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() => Some(path),
        Ok(_) => {
            r.error(text, format!("the {what} file {} is empty", path.display()));
            None
        }
        Err(e) => {
            r.error(text, format!("cannot read the {what} file {}: {e}", path.display()));
            None
        }
    }
}
