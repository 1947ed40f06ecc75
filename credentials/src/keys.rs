//! Verification keys: JWKS documents parsed into usable keys.

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::AlgorithmFamily;

use crate::jws::{PublicKeyMaterial, SignatureKey};

/// Largest number of keys kept from one JWKS; a document with more is
/// truncated (real IdPs publish a handful).
pub const MAX_KEYS: usize = 64;

/// One key an issuer may sign with.
pub struct VerificationKey {
    /// Fingerprint of the key material: the same key keeps the same id across
    /// refreshes, so cached verifications can check it is still published.
    pub id: u64,
    pub kid: Option<String>,
    /// The JWK's own `alg`, when it names one: the key is then only used for it.
    pub alg: Option<Algorithm>,
    pub family: AlgorithmFamily,
    /// The key parsed for each pinned algorithm it can verify, once, when
    /// the JWKS or secret was loaded.
    prepared: Vec<SignatureKey>,
}

impl VerificationKey {
    /// The key ready for `alg`, if it was prepared for it.
    pub fn for_alg(&self, alg: Algorithm) -> Option<&SignatureKey> {
        self.prepared.iter().find(|key| key.alg() == alg)
    }
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey").field("id", &self.id).field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

/// The keys of one issuer at one moment.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

/// The answer to "which key verifies this token?".
#[derive(Debug)]
pub enum KeyLookup<'a> {
    Found(&'a VerificationKey),
    /// No key has the token's `kid`: worth a JWKS refresh.
    UnknownKid,
    /// The token has no `kid` and several keys could verify it.
    Ambiguous,
    /// The key named by `kid` (or every key) cannot be used with the token's `alg`.
    Incompatible,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS is not a JSON object with a 'keys' array")]
    NotJwks,
    #[error("JWKS has no key usable with the configured algorithms ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
}

/// A parsed JWKS and how many of its entries were skipped.
#[derive(Debug)]
pub struct ParsedJwks {
    pub keys: KeySet,
    pub skipped: usize,
}

pub fn family_of(alg: Algorithm) -> AlgorithmFamily {
    to_jwt_algorithm(alg).family()
}

pub fn to_jwt_algorithm(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::HS256 => J::HS256,
        Algorithm::HS384 => J::HS384,
        Algorithm::HS512 => J::HS512,
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
    }
}

impl KeySet {
    /// The single key of an HMAC issuer, prepared for its `allowed` HMAC
    /// algorithms.
    pub fn from_secret(secret: &[u8], allowed: &[Algorithm]) -> KeySet {
        let prepared = allowed.iter().filter_map(|&alg| SignatureKey::hmac(alg, secret)).collect();
        KeySet { keys: vec![VerificationKey { id: 0, kid: None, alg: None, family: AlgorithmFamily::Hmac, prepared }] }
    }

    /// Parse a JWKS, keeping the keys usable with `allowed` algorithms.
    /// Entries with unknown key types, encryption keys and keys for other
    /// algorithms are skipped, not fatal: IdPs publish all sorts.
    pub fn from_jwks(document: &[u8], allowed: &[Algorithm]) -> Result<ParsedJwks, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        if !crate::peek::is_json_object(document) {
            return Err(JwksError::NotJwks);
        }
        let document: Document = serde_json::from_slice(document).map_err(|_| JwksError::NotJwks)?;
        let mut keys = Vec::new();
        let mut skipped = 0;
        for entry in document.keys {
            match usable_key(entry, allowed) {
                Some(key) if keys.len() < MAX_KEYS => keys.push(key),
                _ => skipped += 1,
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey { skipped });
        }
        Ok(ParsedJwks { keys: KeySet { keys }, skipped })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Is the key with this fingerprint still published?
    pub fn contains(&self, id: u64) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    pub fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> KeyLookup<'_> {
        let usable = |key: &&VerificationKey| key.family == family_of(alg) && key.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => {
                let mut named = self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).peekable();
                if named.peek().is_none() {
                    return KeyLookup::UnknownKid;
                }
                named.find(usable).map_or(KeyLookup::Incompatible, KeyLookup::Found)
            }
            None => {
                let mut candidates = self.keys.iter().filter(usable);
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => KeyLookup::Found(key),
                    (Some(_), Some(_)) => KeyLookup::Ambiguous,
                    (None, _) => KeyLookup::Incompatible,
                }
            }
        }
    }

    pub fn kids(&self) -> impl Iterator<Item = Option<&str>> {
        self.keys.iter().map(|k| k.kid.as_deref())
    }
}

fn usable_key(entry: serde_json::Value, allowed: &[Algorithm]) -> Option<VerificationKey> {
    if entry.get("use").and_then(|u| u.as_str()).is_some_and(|u| u != "sig") {
        return None;
    }
    let fingerprint = digest::digest(&digest::SHA256, entry.to_string().as_bytes());
    let jwk: Jwk = serde_json::from_value(entry).ok()?;
    let material = public_material(&jwk.algorithm)?;
    let family = material_family(&material);
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(named) => {
            let name = format!("{named:?}");
            // The key's own `alg` must be pinned, and of the key's kind: an
            // RSA key that says ES256 is unusable, not a key for ES256.
            Some(Algorithm::from_name(&name).filter(|a| allowed.contains(a) && family_of(*a) == family)?)
        }
    };
    let prepared: Vec<SignatureKey> = allowed
        .iter()
        .filter(|&&a| family_of(a) == family && alg.is_none_or(|own| own == a))
        .filter_map(|&a| SignatureKey::public(a, &material))
        .collect();
    // Of no use with any pinned algorithm (or not a valid key at all).
    if prepared.is_empty() {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&fingerprint.as_ref()[..8]);
    Some(VerificationKey { id: u64::from_le_bytes(id), kid: jwk.common.key_id, alg, family, prepared })
}

/// A JWK's public key, decoded. Symmetric keys are not among them: a
/// secret in a public JWKS is a misconfiguration at best.
fn public_material(parameters: &AlgorithmParameters) -> Option<PublicKeyMaterial> {
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    Some(match parameters {
        AlgorithmParameters::RSA(rsa) => PublicKeyMaterial::Rsa { n: decode(&rsa.n)?, e: decode(&rsa.e)? },
        AlgorithmParameters::EllipticCurve(ec) if matches!(ec.curve, EllipticCurve::P256 | EllipticCurve::P384) => {
            let mut point = vec![0x04];
            point.extend(decode(&ec.x)?);
            point.extend(decode(&ec.y)?);
            PublicKeyMaterial::EcPoint(point)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            PublicKeyMaterial::Ed25519(decode(&okp.x)?)
        }
        _ => return None,
    })
}

fn material_family(material: &PublicKeyMaterial) -> AlgorithmFamily {
    match material {
        PublicKeyMaterial::Rsa { .. } => AlgorithmFamily::Rsa,
        PublicKeyMaterial::EcPoint(_) => AlgorithmFamily::Ec,
        PublicKeyMaterial::Ed25519(_) => AlgorithmFamily::Ed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn rsa_jwk(kid: &str, extra: &str) -> String {
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{RSA_N}","e":"AQAB"{extra}}}"#)
    }

    #[test]
    fn parses_and_skips_what_it_cannot_use() {
        let doc = format!(
            r#"{{"keys":[{},{},{},{},{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"weird"}},42]}}"#,
            rsa_jwk("a", ""),
            rsa_jwk("b", r#","use":"enc""#),
            rsa_jwk("c", r#","alg":"RS512""#),
            rsa_jwk("d", r#","alg":"RS256","use":"sig""#),
        );
        let parsed = KeySet::from_jwks(doc.as_bytes(), &[Algorithm::RS256]).unwrap();
        assert_eq!(parsed.keys.kids().collect::<Vec<_>>(), [Some("a"), Some("d")]);
        assert_eq!(parsed.skipped, 5);
        let mislabelled =
            format!(r#"{{"keys":[{},{}]}}"#, rsa_jwk("rsa-says-ec", r#","alg":"ES256""#), rsa_jwk("ok", ""));
        let parsed = KeySet::from_jwks(mislabelled.as_bytes(), &[Algorithm::RS256, Algorithm::ES256]).unwrap();
        assert_eq!(parsed.keys.kids().collect::<Vec<_>>(), [Some("ok")]);
    }

    #[test]
    fn refuses_documents_without_usable_keys() {
        assert_eq!(KeySet::from_jwks(b"[]", &[Algorithm::RS256]).unwrap_err(), JwksError::NotJwks);
        assert_eq!(KeySet::from_jwks(b"{}", &[Algorithm::RS256]).unwrap_err(), JwksError::NotJwks);
        // serde reads a struct from an array too: `[[key]]` is not a JWKS
        // (fuzz/regressions/jwks/keys-in-a-json-array).
        let array = format!("[[{}]]", rsa_jwk("a", ""));
        assert_eq!(KeySet::from_jwks(array.as_bytes(), &[Algorithm::RS256]).unwrap_err(), JwksError::NotJwks);
        assert_eq!(
            KeySet::from_jwks(b"{\"keys\":[]}", &[Algorithm::RS256]).unwrap_err(),
            JwksError::NoUsableKey { skipped: 0 }
        );
        let doc = format!(r#"{{"keys":[{}]}}"#, rsa_jwk("a", ""));
        assert!(matches!(KeySet::from_jwks(doc.as_bytes(), &[Algorithm::ES256]), Err(JwksError::NoUsableKey { .. })));
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        let one = KeySet::from_jwks(format!(r#"{{"keys":[{}]}}"#, rsa_jwk("a", "")).as_bytes(), &[Algorithm::RS256])
            .unwrap()
            .keys;
        let again = KeySet::from_jwks(format!(r#"{{"keys":[{}]}}"#, rsa_jwk("a", "")).as_bytes(), &[Algorithm::RS256])
            .unwrap()
            .keys;
        let other = KeySet::from_jwks(format!(r#"{{"keys":[{}]}}"#, rsa_jwk("b", "")).as_bytes(), &[Algorithm::RS256])
            .unwrap()
            .keys;
        assert_eq!(one.keys[0].id, again.keys[0].id);
        assert_ne!(one.keys[0].id, other.keys[0].id);
        assert!(one.contains(again.keys[0].id));
    }

    #[test]
    fn lookup_rules() {
        let doc = format!(r#"{{"keys":[{},{}]}}"#, rsa_jwk("a", r#","alg":"RS256""#), rsa_jwk("b", ""));
        let keys = KeySet::from_jwks(doc.as_bytes(), &[Algorithm::RS256, Algorithm::PS256]).unwrap().keys;
        assert!(
            matches!(keys.lookup(Some("a"), Algorithm::RS256), KeyLookup::Found(k) if k.kid.as_deref() == Some("a"))
        );
        assert!(matches!(keys.lookup(Some("a"), Algorithm::PS256), KeyLookup::Incompatible));
        assert!(matches!(keys.lookup(Some("b"), Algorithm::PS256), KeyLookup::Found(_)));
        assert!(matches!(keys.lookup(Some("z"), Algorithm::RS256), KeyLookup::UnknownKid));
        assert!(matches!(keys.lookup(None, Algorithm::RS256), KeyLookup::Ambiguous));
        assert!(matches!(keys.lookup(None, Algorithm::PS256), KeyLookup::Found(k) if k.kid.as_deref() == Some("b")));
        assert!(matches!(keys.lookup(None, Algorithm::ES256), KeyLookup::Incompatible));
    }
}
