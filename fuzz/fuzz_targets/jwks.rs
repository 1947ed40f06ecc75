//! JWKS documents, as fetched from an issuer's `jwks_uri`.
//!
//! Input: the document's bytes. Parsed once with every algorithm allowed and
//! once pinned to RS256 only.
//!
//! Invariants:
//! - never a panic, whatever the JSON or key material;
//! - a document is accepted only if it is a JSON object with a "keys" array;
//!   then kept + skipped == the number of entries, 1 <= kept <= MAX_KEYS, and
//!   `NoUsableKey { skipped }` counts every entry;
//! - every kept key can be found by `lookup` with its own kid and one of the
//!   allowed algorithms, and `contains` its fingerprint; a kid that no key
//!   has is `UnknownKid`;
//! - pinning to fewer algorithms never keeps more keys.
#![no_main]

use config::Algorithm;
use credentials::keys::{JwksError, KeyLookup, KeySet, MAX_KEYS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[path = "common.rs"]
mod common;
use common::enforced;

fn check(document: &[u8], allowed: &[Algorithm]) -> Option<usize> {
    // `None` when serde_json will not build a `Value` although the product
    // may read the document: members it skips are not fully validated
    // (invalid UTF-8 in an unknown member), and may nest deeper than
    // `Value`'s recursion limit. Harmless; the counts are then not checked.
    let parsed = serde_json::from_slice::<Value>(document).ok();
    let entries = match &parsed {
        Some(Value::Object(map)) => match map.get("keys") {
            Some(Value::Array(keys)) => Some(keys.len()),
            _ => None,
        },
        _ => None,
    };
    match KeySet::from_jwks(document, allowed) {
        Err(JwksError::NotJwks) => None,
        Err(JwksError::NoUsableKey { skipped }) => {
            if let Some(entries) = entries {
                assert_eq!(skipped, entries, "NoUsableKey must count every entry");
            }
            Some(0)
        }
        Ok(jwks) => {
            // Finding jwks-array-document: serde reads a struct from a JSON
            // array too, so `[[{...key...}]]` is accepted as a JWKS
            // (regressions/jwks/keys-in-a-json-array).
            if parsed.is_some() && enforced("jwks-array-document") {
                assert!(entries.is_some(), "accepted a document that is not an object with a 'keys' array");
            }
            let kept = jwks.keys.len();
            assert!((1..=MAX_KEYS).contains(&kept), "{kept} keys kept");
            if let Some(entries) = entries {
                assert_eq!(kept + jwks.skipped, entries, "kept + skipped != entries");
            }
            let parsed = jwks;
            let keys = &parsed.keys;
            let kids: Vec<Option<String>> = keys.kids().map(|k| k.map(str::to_owned)).collect();
            assert_eq!(kids.len(), kept);
            for kid in &kids {
                let mut found = false;
                for &alg in allowed {
                    match keys.lookup(kid.as_deref(), alg) {
                        KeyLookup::Found(key) => {
                            // Without a kid, any one usable key is the answer.
                            if kid.is_some() {
                                assert_eq!(&key.kid, kid, "lookup returned a key with another kid");
                            }
                            assert!(key.alg.is_none_or(|a| a == alg), "key pinned to {:?} used for {alg:?}", key.alg);
                            assert!(allowed.contains(&alg));
                            assert!(keys.contains(key.id));
                            found = true;
                        }
                        KeyLookup::UnknownKid => panic!("kid {kid:?} of a kept key is unknown"),
                        // Without a kid, several keys of one family are ambiguous by design.
                        KeyLookup::Ambiguous => found |= kid.is_none(),
                        KeyLookup::Incompatible => {}
                    }
                }
                // E.g. an RSA key that says "alg": "ES256" must be skipped
                // (regressions/jwks/rsa-key-pinned-to-es256).
                assert!(found, "kept key {kid:?} is usable with no allowed algorithm");
            }
            let absent = "\u{0}no such kid\u{0}";
            if !kids.iter().any(|k| k.as_deref() == Some(absent)) {
                assert!(matches!(keys.lookup(Some(absent), allowed[0]), KeyLookup::UnknownKid));
            }
            Some(kept)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let all = check(data, &Algorithm::ALL);
    let rs256 = check(data, &[Algorithm::RS256]);
    assert_eq!(all.is_none(), rs256.is_none(), "NotJwks must not depend on the algorithms");
    if let (Some(all), Some(rs256)) = (all, rs256) {
        assert!(rs256 <= all, "pinning to RS256 kept more keys ({rs256} > {all})");
    }
});
