//! Certificates made at test time with the `openssl` command: a CA, and
//! leaf certificates it signs for given names and validity (expired ones
//! too, through `openssl ca`, whose start and end dates are free).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A private CA in a directory of its own.
pub struct Ca {
    dir: PathBuf,
    pub cert: PathBuf,
}

/// A certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("running openssl");
    assert!(
        output.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `YYYYMMDDHHMMSSZ`, what `openssl ca` wants, for now + `offset` seconds.
fn asn1_time(offset: i64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64;
    let output = Command::new("date")
        .args(["-u", "-d", &format!("@{}", now + offset), "+%Y%m%d%H%M%SZ"])
        .output()
        .expect("running date");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let dir = dir.join("ca");
        std::fs::create_dir_all(dir.join("issued")).expect("ca dir");
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n[test]\ndir = .\ndatabase = index.txt\nnew_certs_dir = issued\nserial = serial\n\
             default_md = sha256\npolicy = any\ncopy_extensions = copy\nunique_subject = no\npreserve = yes\n\
             [any]\ncommonName = supplied\norganizationName = optional\norganizationalUnitName = optional\n",
        )
        .expect("ca config");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=portcullis test CA",
                "-days",
                "3650",
            ],
            &dir,
        );
        Ca { cert: dir.join("ca.crt"), dir }
    }

    /// A certificate for `names` (DNS names or IP addresses), valid from
    /// `from` to `until` seconds from now, written to `out_dir/stem.crt`
    /// and `.key`.
    pub fn issue(&self, out_dir: &Path, stem: &str, names: &[&str], from: i64, until: i64) -> Leaf {
        let sans: Vec<String> = names
            .iter()
            .map(|n| if n.parse::<std::net::IpAddr>().is_ok() { format!("IP:{n}") } else { format!("DNS:{n}") })
            .collect();
        let extensions = [format!("subjectAltName={}", sans.join(","))];
        self.sign(out_dir, stem, &format!("/CN={}", names[0]), &extensions, from, until)
    }

    /// A client certificate (`extendedKeyUsage = clientAuth`) for
    /// `subject` (`/CN=…/O=…`) with subject alternative names as openssl
    /// writes them (`URI:spiffe://…`, `DNS:…`), valid for a day.
    pub fn issue_client(&self, out_dir: &Path, stem: &str, subject: &str, sans: &[&str]) -> Leaf {
        let mut extensions = vec!["extendedKeyUsage=clientAuth".to_owned()];
        if !sans.is_empty() {
            extensions.push(format!("subjectAltName={}", sans.join(",")));
        }
        self.sign(out_dir, stem, subject, &extensions, -60, 86_400)
    }

    fn sign(&self, out_dir: &Path, stem: &str, subject: &str, extensions: &[String], from: i64, until: i64) -> Leaf {
        let key = out_dir.join(format!("{stem}.key"));
        let csr = self.dir.join(format!("{stem}.csr"));
        let cert = out_dir.join(format!("{stem}.crt"));
        let (key_text, csr_text, cert_text) = (path(&key), path(&csr), path(&cert));
        let mut request: Vec<&str> = vec![
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key_text,
            "-out",
            &csr_text,
            "-subj",
            subject,
        ];
        for extension in extensions {
            request.extend(["-addext", extension.as_str()]);
        }
        openssl(&request, &self.dir);
        openssl(
            &[
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.crt",
                "-keyfile",
                "ca.key",
                "-in",
                &csr_text,
                "-out",
                &cert_text,
                "-startdate",
                &asn1_time(from),
                "-enddate",
                &asn1_time(until),
            ],
            &self.dir,
        );
        Leaf { cert, key }
    }
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The serial number of the certificate a TLS server at `addr` presents
/// for `server_name`, as `openssl s_client` sees it (hex).
pub fn served_serial(addr: std::net::SocketAddr, server_name: &str) -> String {
    let script = format!(
        "openssl s_client -connect {addr} -servername {server_name} </dev/null 2>/dev/null | openssl x509 -noout -serial"
    );
    let output = Command::new("sh").args(["-c", &script]).output().expect("openssl s_client");
    String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("serial=").to_owned()
}

/// SHA-256 of a certificate's DER: its fingerprint, and RFC 8705's
/// `x5t#S256` once base64url-encoded.
pub fn sha256_of(cert: &Path) -> [u8; 32] {
    let output = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -outform DER -in \"$0\" | openssl dgst -sha256 -binary")
        .arg(cert)
        .output()
        .expect("openssl dgst");
    output.stdout.try_into().expect("a SHA-256 digest")
}

/// A certificate's subject as `openssl x509 -nameopt RFC2253` writes it.
pub fn subject_rfc2253(cert: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(cert)
        .output()
        .expect("openssl x509");
    String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("subject=").to_owned()
}

/// The serial number of a certificate file (hex).
pub fn serial_of(cert: &Path) -> String {
    let output =
        Command::new("openssl").args(["x509", "-noout", "-serial", "-in"]).arg(cert).output().expect("openssl x509");
    String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("serial=").to_owned()
}
