//! Sealing and opening secret values: AES-256-GCM with a fresh random nonce
//! per write, and associated data that binds each value to its environment,
//! scope and name, so a row copied under another name or environment does
//! not open. Key bytes live in `Zeroizing` buffers and are wiped on drop.

use std::sync::OnceLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

/// Version byte that starts every sealed value.
const FORMAT_V1: u8 = 0x01;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Prefix of the associated data of every sealed value.
const AAD_PREFIX: &[u8] = b"mage-secrets/v1\0";
/// Plaintext of an environment's `key_check`.
const KEY_CHECK_PLAINTEXT: &[u8] = b"mage-secrets key check v1";

/// An environment's 256-bit key.
pub struct Key {
    bytes: Zeroizing<[u8; 32]>,
    /// The key's AES schedule, expanded at the first seal or open and kept
    /// for the rest (a render opens every secret it places). It wipes
    /// itself when dropped (see `aes` in Cargo.toml).
    cipher: OnceLock<Aes256Gcm>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a key file's text is not a key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyFormatError {
    NotBase64,
    WrongLength(usize),
}

impl std::fmt::Display for KeyFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFormatError::NotBase64 => f.write_str("not valid base64"),
            KeyFormatError::WrongLength(n) => {
                write!(
                    f,
                    "holds {n} bytes, a key is 32 (truncated or not a key file)"
                )
            }
        }
    }
}

impl Key {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Key {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        Key::with_bytes(bytes)
    }

    /// Parses the key file format: standard padded base64 of 32 bytes,
    /// surrounding whitespace ignored.
    pub fn from_file_text(text: &str) -> Result<Key, KeyFormatError> {
        let decoded = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyFormatError::NotBase64)?,
        );
        if decoded.len() != 32 {
            return Err(KeyFormatError::WrongLength(decoded.len()));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&decoded);
        Ok(Key::with_bytes(bytes))
    }

    /// The key file's contents: base64 and a newline.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(STANDARD.encode(self.bytes.as_ref()));
        text.push('\n');
        text
    }

    fn with_bytes(bytes: Zeroizing<[u8; 32]>) -> Key {
        Key {
            bytes,
            cipher: OnceLock::new(),
        }
    }

    fn cipher(&self) -> &Aes256Gcm {
        self.cipher
            .get_or_init(|| Aes256Gcm::new_from_slice(self.bytes.as_ref()).expect("32-byte key"))
    }

    /// Seals `plaintext` for (env, scope, name).
    pub fn seal(&self, env_uuid: &str, scope: &str, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(env_uuid, scope, name);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a bounded message cannot fail");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens a sealed value; `None` when the key, the binding or the bytes are wrong.
    pub fn open(
        &self,
        env_uuid: &str,
        scope: &str,
        name: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return None;
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let aad = associated_data(env_uuid, scope, name);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// The environment's `key_check`: a known plaintext sealed under this key.
    /// Scope and name are empty, which no real secret can have.
    pub fn key_check(&self, env_uuid: &str) -> Vec<u8> {
        self.seal(env_uuid, "", "", KEY_CHECK_PLAINTEXT)
    }

    /// Whether this key made `key_check` for `env_uuid`.
    pub fn opens_key_check(&self, env_uuid: &str, key_check: &[u8]) -> bool {
        self.open(env_uuid, "", "", key_check)
            .is_some_and(|p| p.as_slice() == KEY_CHECK_PLAINTEXT)
    }
}

fn associated_data(env_uuid: &str, scope: &str, name: &str) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(AAD_PREFIX.len() + env_uuid.len() + scope.len() + name.len() + 2);
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(env_uuid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(scope.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: &str = "4f6c0a2e-0000-4000-8000-000000000001";

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let key = Key::generate();
        let a = key.seal(ENV, "global", "pw", b"hunter2");
        let b = key.seal(ENV, "global", "pw", b"hunter2");
        assert_ne!(a, b, "nonce must be fresh per write");
        assert_eq!(a[0], FORMAT_V1);
        assert_eq!(a.len(), 1 + 12 + 7 + 16);
        assert_eq!(
            key.open(ENV, "global", "pw", &a).unwrap().as_slice(),
            b"hunter2"
        );
        assert_eq!(
            key.open(ENV, "global", "pw", &key.seal(ENV, "global", "pw", b""))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn binding_to_environment_scope_and_name() {
        let key = Key::generate();
        let sealed = key.seal(ENV, "global", "pw", b"v");
        assert!(key.open("other", "global", "pw", &sealed).is_none());
        assert!(key.open(ENV, "pipeline:p", "pw", &sealed).is_none());
        assert!(key.open(ENV, "global", "pw2", &sealed).is_none());
        // "ab" + "c" must not collide with "a" + "bc".
        let s = key.seal(ENV, "ab", "c", b"v");
        assert!(key.open(ENV, "a", "bc", &s).is_none());
    }

    /// A value sealed by another AES-GCM implementation (Python's
    /// `cryptography`, from OpenSSL) opens: the stored format does not
    /// depend on which AES code a build uses (software or AES-NI).
    #[test]
    fn opens_a_value_sealed_elsewhere() {
        let key = Key::from_file_text("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        let sealed: Vec<u8> = (0..)
            .step_by(2)
            .map_while(|i| KNOWN.get(i..i + 2))
            .map(|hex| u8::from_str_radix(hex, 16).unwrap())
            .collect();
        let opened = key.open(ENV, "global", "pg_password", &sealed).unwrap();
        assert_eq!(
            opened.as_slice(),
            b"hunter2: a value longer than one AES block"
        );
        assert!(key.open(ENV, "global", "other", &sealed).is_none());
        // The other way: what this build seals, the same key opens (above,
        // twice, so the cached cipher is used again too).
        let again = key.seal(ENV, "global", "pg_password", opened.as_slice());
        assert_eq!(
            key.open(ENV, "global", "pg_password", &again)
                .unwrap()
                .as_slice(),
            opened.as_slice()
        );
    }

    /// `AESGCM(bytes(range(32))).encrypt(bytes(range(100, 112)), value, aad)`
    /// behind the format byte and the nonce.
    const KNOWN: &str = "016465666768696a6b6c6d6e6f206eb0121c9b64a41e037f9ebb091f9862ae6964ec098152d3b9cd26dbcccb2db4a805936c70f76b9e984431ef2a8263905e54044704dd37a079";

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let key = Key::generate();
        let mut sealed = key.seal(ENV, "global", "pw", b"value");
        assert!(Key::generate().open(ENV, "global", "pw", &sealed).is_none());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(key.open(ENV, "global", "pw", &sealed).is_none());
        assert!(key.open(ENV, "global", "pw", &[1, 2, 3]).is_none());
        assert!(key.open(ENV, "global", "pw", &[]).is_none());
    }

    #[test]
    fn key_file_format() {
        let key = Key::generate();
        let text = key.to_file_text();
        assert!(text.ends_with('\n'));
        assert_eq!(text.len(), 45);
        let again = Key::from_file_text(&text).unwrap();
        let check = key.key_check(ENV);
        assert!(again.opens_key_check(ENV, &check));
        assert!(!Key::generate().opens_key_check(ENV, &check));
        assert_eq!(
            Key::from_file_text("not base64!").err(),
            Some(KeyFormatError::NotBase64)
        );
        assert!(Key::from_file_text(&text[..20]).is_err());
        assert_eq!(
            Key::from_file_text("AAAA").err(),
            Some(KeyFormatError::WrongLength(3))
        );
    }
}
