//! Sealing: AES-256-GCM under the operator's session keys. A sealed value
//! is `base64url(key id ‖ nonce ‖ ciphertext ‖ tag)`; the key id (4 bytes
//! of the key's SHA-256) picks the key to open with, so a value sealed
//! with a retired key is refused without trying every key, and the
//! additional data binds a value to its purpose (a sign-in cookie cannot be
//! replayed as a session cookie, nor one cookie name's value as another's).
//!
//! Nonces are random (96 bits): a key may seal about 2³² values before the
//! collision risk matters, far beyond any session key's life (rotate keys
//! by putting a new one first).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use config::Secret;

const KEY_ID_LEN: usize = 4;
const TAG_LEN: usize = 16;

/// Why a sealed value did not open. Deliberately coarse: the answer is the
/// same whatever was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    #[error("not a sealed value")]
    Malformed,
    #[error("sealed with a key that is not configured")]
    UnknownKey,
    #[error("tampered with, or sealed for another purpose")]
    Forged,
}

/// The session keys; the first seals, every one opens.
pub(crate) struct Sealer {
    keys: Vec<([u8; KEY_ID_LEN], LessSafeKey)>,
    rng: SystemRandom,
}

impl Sealer {
    /// `None` when there is no key or a key is not 32 bytes (the
    /// configuration checks both).
    pub(crate) fn new(keys: &[Secret]) -> Option<Sealer> {
        let keys: Option<Vec<_>> = keys
            .iter()
            .map(|key| {
                let unbound = UnboundKey::new(&AES_256_GCM, key.expose()).ok()?;
                Some((key_id(key.expose()), LessSafeKey::new(unbound)))
            })
            .collect();
        let keys = keys.filter(|keys| !keys.is_empty())?;
        Some(Sealer { keys, rng: SystemRandom::new() })
    }

    /// Seal `plaintext` for `purpose`.
    pub(crate) fn seal(&self, purpose: &[u8], plaintext: &[u8]) -> Option<String> {
        let (id, key) = self.keys.first()?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose), &mut body).ok()?;
        out.extend_from_slice(&body);
        Some(URL_SAFE_NO_PAD.encode(out))
    }

    /// Open a value sealed for `purpose` by any configured key.
    pub(crate) fn open(&self, purpose: &[u8], sealed: &str) -> Result<Vec<u8>, OpenError> {
        let mut bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError::Malformed)?;
        const HEAD: usize = KEY_ID_LEN + NONCE_LEN;
        if bytes.len() < HEAD + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let id = &bytes[..KEY_ID_LEN];
        let key = self.keys.iter().find(|(kid, _)| kid == id).map(|(_, key)| key).ok_or(OpenError::UnknownKey)?;
        let nonce = Nonce::try_assume_unique_for_key(&bytes[KEY_ID_LEN..HEAD]).map_err(|_| OpenError::Malformed)?;
        // Opened where it was decoded: no copy of the ciphertext.
        let plain_len =
            key.open_in_place(nonce, Aad::from(purpose), &mut bytes[HEAD..]).map_err(|_| OpenError::Forged)?.len();
        bytes.drain(..HEAD);
        bytes.truncate(plain_len);
        Ok(bytes)
    }

    /// Random bytes, base64url: state, nonce, PKCE verifier, session ids.
    pub(crate) fn random_token(&self, bytes: usize) -> Option<String> {
        let mut buffer = vec![0u8; bytes];
        self.rng.fill(&mut buffer).ok()?;
        Some(URL_SAFE_NO_PAD.encode(buffer))
    }
}

fn key_id(key: &[u8]) -> [u8; KEY_ID_LEN] {
    let hash = digest::digest(&digest::SHA256, key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&hash.as_ref()[..KEY_ID_LEN]);
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(keys: &[[u8; 32]]) -> Sealer {
        let keys: Vec<Secret> = keys.iter().map(|k| Secret::new(k.to_vec())).collect();
        Sealer::new(&keys).expect("valid keys")
    }

    #[test]
    fn opens_what_it_sealed_for_the_same_purpose_only() {
        let s = sealer(&[[1; 32]]);
        let sealed = s.seal(b"session", b"hello").expect("sealed");
        assert_eq!(s.open(b"session", &sealed).as_deref(), Ok(&b"hello"[..]));
        assert_eq!(s.open(b"sign-in", &sealed), Err(OpenError::Forged));
        // Two seals of the same text differ (random nonce).
        assert_ne!(sealed, s.seal(b"session", b"hello").expect("sealed"));
    }

    #[test]
    fn refuses_tampered_truncated_and_foreign_values() {
        let s = sealer(&[[1; 32]]);
        let sealed = s.seal(b"p", b"some session data").expect("sealed");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(s.open(b"p", &URL_SAFE_NO_PAD.encode(&bytes)), Err(OpenError::Forged));
        bytes[last] ^= 1;
        bytes[KEY_ID_LEN + NONCE_LEN] ^= 0x80;
        assert_eq!(s.open(b"p", &URL_SAFE_NO_PAD.encode(&bytes)), Err(OpenError::Forged));
        assert!(s.open(b"p", &sealed[..sealed.len() - 3]).is_err());
        let truncated = URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1]);
        assert_eq!(s.open(b"p", &truncated), Err(OpenError::Forged));
        assert_eq!(s.open(b"p", &sealed[..20]), Err(OpenError::Malformed));
        assert_eq!(s.open(b"p", "not base64!"), Err(OpenError::Malformed));
        let other = sealer(&[[2; 32]]).seal(b"p", b"x").expect("sealed");
        assert_eq!(s.open(b"p", &other), Err(OpenError::UnknownKey));
    }

    #[test]
    fn rotation_keeps_old_values_until_their_key_is_removed() {
        let old = sealer(&[[1; 32]]).seal(b"p", b"v").expect("sealed");
        let rotated = sealer(&[[2; 32], [1; 32]]);
        assert_eq!(rotated.open(b"p", &old).as_deref(), Ok(&b"v"[..]));
        let new = rotated.seal(b"p", b"w").expect("sealed");
        assert_eq!(sealer(&[[2; 32]]).open(b"p", &new).as_deref(), Ok(&b"w"[..]));
        assert_eq!(sealer(&[[2; 32]]).open(b"p", &old), Err(OpenError::UnknownKey));
    }
}
