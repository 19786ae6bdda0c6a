//! lithos's encrypted secrets, its "v2" format, pure (no system call but
//! the random bytes of `encrypt`).
//!
//! A value is `v2:KEY:NAMESPACE:SECRET:DATA`. `KEY`, `NAMESPACE` and
//! `SECRET` are short hashes (base64 of the 6-byte BLAKE2b) of the ed25519
//! public key the value was encrypted for (its 32 raw bytes), of the
//! namespace and of the secret; `DATA` is base64 of a sealed box
//! (libsodium's `crypto_box_seal`: an ephemeral X25519 key, then
//! XSalsa20-Poly1305 under the nonce BLAKE2b-24(ephemeral ‖ recipient))
//! of `NAMESPACE:SECRET`. The recipient is the ed25519 key turned into its
//! X25519 form: the public key's Montgomery u, and the private scalar from
//! the first half of SHA-512 of the ed25519 seed, clamped (libsodium's
//! `crypto_sign_ed25519_{pk,sk}_to_curve25519`). These are the facts of
//! lithos's `docs/tips/secrets.rst`, `src/bin/lithos_crypt.rs` and
//! `src/nacl.rs`; `tests.rs` checks them against values made by PyNaCl
//! (libsodium) the way lithos makes them.
//!
//! Decrypted secrets are held in `Zeroizing` buffers, wiped when dropped.

mod openssh;

pub use openssh::{KeyError, PrivateKey, PublicKey, parse_private_keys, parse_public_key};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use blake2::digest::{Update, VariableOutput};
use zeroize::Zeroizing;

/// The prefix of every value cairn reads or writes (lithos dropped `v1`).
pub const PREFIX: &str = "v2:";

/// Bytes of a sealed box besides its message: the ephemeral key and the
/// Poly1305 tag.
const SEAL_OVERHEAD: usize = 32 + 16;

/// base64 (standard alphabet) of the 6-byte BLAKE2b of `data` (`b2sum -l48`).
pub fn short_hash(data: &[u8]) -> String {
    let mut out = [0u8; 6];
    // 6 is a valid BLAKE2b output size (1 to 64), so neither call fails.
    if let Ok(mut h) = blake2::Blake2bVar::new(out.len()) {
        h.update(data);
        let _ = h.finalize_variable(&mut out);
    }
    STANDARD.encode(out)
}

/// A namespace as `lithos_crypt` accepts one: `^[a-zA-Z0-9_.-]*$` (the
/// empty namespace is the default of a sandbox without `secrets-namespaces`).
pub fn namespace_ok(ns: &str) -> bool {
    ns.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// Why a value is not a v2 secret at all (checked without any key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("not a lithos v2 secret: it must start with \"v2:\"")]
    NotV2,
    #[error(
        "a v2 secret has 5 fields separated by ':' (v2:KEY:NAMESPACE:SECRET:DATA); this one has {0}"
    )]
    Fields(usize),
    #[error("its {0} hash is not 8 characters of base64")]
    Hash(&'static str),
    #[error("its encrypted data is not base64")]
    Base64,
    #[error("its encrypted data is {0} bytes, too short for a sealed box")]
    Short(usize),
}

/// A value, split into its parts (see the module's doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub key_hash: String,
    pub namespace_hash: String,
    pub secret_hash: String,
    pub sealed: Vec<u8>,
}

impl Value {
    pub fn parse(text: &str) -> Result<Value, FormatError> {
        let rest = text.strip_prefix(PREFIX).ok_or(FormatError::NotV2)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [key, ns, secret, data] = parts[..] else {
            return Err(FormatError::Fields(parts.len() + 1));
        };
        for (name, h) in [("key", key), ("namespace", ns), ("secret", secret)] {
            let ok = h.len() == 8 && STANDARD.decode(h).is_ok_and(|b| b.len() == 6);
            if !ok {
                return Err(FormatError::Hash(name));
            }
        }
        let sealed = STANDARD.decode(data).map_err(|_| FormatError::Base64)?;
        // At least the `:` after the namespace is sealed.
        if sealed.len() <= SEAL_OVERHEAD {
            return Err(FormatError::Short(sealed.len()));
        }
        Ok(Value {
            key_hash: key.to_string(),
            namespace_hash: ns.to_string(),
            secret_hash: secret.to_string(),
            sealed,
        })
    }

    /// Whether this value was encrypted for one of `namespaces` (by its
    /// namespace hash: known without the key).
    pub fn for_namespace<'a>(&self, namespaces: &'a [String]) -> Option<&'a str> {
        namespaces
            .iter()
            .find(|n| short_hash(n.as_bytes()) == self.namespace_hash)
            .map(String::as_str)
    }
}

/// Why a value does not decrypt; none of these carries the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("{0}")]
    Format(#[from] FormatError),
    #[error(
        "encrypted for another key (key hash {value}; the sandbox's secrets-private-key has {})",
        ours.join(", ")
    )]
    WrongKey { value: String, ours: Vec<String> },
    #[error(
        "encrypted for a namespace this instance may not read (namespace hash {value}; allowed: {})",
        allowed_list(allowed)
    )]
    WrongNamespace { value: String, allowed: Vec<String> },
    #[error("corrupt: the key matches but the data does not decrypt")]
    Corrupt,
    #[error("corrupt: the decrypted {0} does not match its hash")]
    Mismatch(&'static str),
    #[error(
        "the decrypted secret has a NUL byte or is not UTF-8, so it cannot be an environment value"
    )]
    NotText,
}

fn allowed_list(ns: &[String]) -> String {
    ns.iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `encrypt` could not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error("namespace {0:?} is not valid: it must match ^[a-zA-Z0-9_.-]*$")]
    Namespace(String),
    #[error("the public key is not a point of ed25519")]
    BadKey,
    #[error("no random bytes: {0}")]
    Random(String),
}

/// Encrypt `secret` for `key` and `namespace`, as `lithos_crypt encrypt`
/// does (each call gives a different value: the ephemeral key is random).
pub fn encrypt(key: &PublicKey, namespace: &str, secret: &[u8]) -> Result<String, EncryptError> {
    if !namespace_ok(namespace) {
        return Err(EncryptError::Namespace(namespace.to_string()));
    }
    let recipient = key.montgomery().ok_or(EncryptError::BadKey)?;
    let mut plain = Zeroizing::new(Vec::with_capacity(namespace.len() + 1 + secret.len()));
    plain.extend_from_slice(namespace.as_bytes());
    plain.push(b':');
    plain.extend_from_slice(secret);
    let sealed = recipient
        .seal(&mut crypto_box::aead::OsRng, &plain)
        .map_err(|e| EncryptError::Random(e.to_string()))?;
    Ok(format!(
        "{PREFIX}{}:{}:{}:{}",
        short_hash(key.as_bytes()),
        short_hash(namespace.as_bytes()),
        short_hash(secret),
        STANDARD.encode(sealed)
    ))
}

/// Decrypt `text` with one of `keys`, for one of `namespaces` (exact
/// names, as lithos: no prefixes or patterns). Returns the secret's bytes.
pub fn decrypt(
    keys: &[PrivateKey],
    namespaces: &[String],
    text: &str,
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let v = Value::parse(text)?;
    let wrong_ns = || DecryptError::WrongNamespace {
        value: v.namespace_hash.clone(),
        allowed: namespaces.to_vec(),
    };
    // The key first (the clearer error), then the namespace by its hash:
    // nothing is decrypted that would not be used.
    let key = find_key(keys, &v)?;
    v.for_namespace(namespaces).ok_or_else(wrong_ns)?;
    let (ns, secret) = open_with(key, &v)?;
    if !namespaces.contains(&ns) {
        return Err(wrong_ns());
    }
    Ok(secret)
}

/// Decrypt `text` whatever its namespace (for `cairn crypt decrypt`, a
/// debugging aid of whoever holds the key): its namespace and secret.
pub fn open(keys: &[PrivateKey], text: &str) -> Result<(String, Zeroizing<Vec<u8>>), DecryptError> {
    let v = Value::parse(text)?;
    open_with(find_key(keys, &v)?, &v)
}

fn find_key<'k>(keys: &'k [PrivateKey], v: &Value) -> Result<&'k PrivateKey, DecryptError> {
    keys.iter()
        .find(|k| short_hash(k.public().as_bytes()) == v.key_hash)
        .ok_or_else(|| DecryptError::WrongKey {
            value: v.key_hash.clone(),
            ours: keys
                .iter()
                .map(|k| short_hash(k.public().as_bytes()))
                .collect(),
        })
}

/// Open the sealed box and check the plaintext against the value's hashes.
fn open_with(key: &PrivateKey, v: &Value) -> Result<(String, Zeroizing<Vec<u8>>), DecryptError> {
    let plain = Zeroizing::new(
        key.x25519()
            .unseal(&v.sealed)
            .map_err(|_| DecryptError::Corrupt)?,
    );
    let colon = plain
        .iter()
        .position(|&b| b == b':')
        .ok_or(DecryptError::Mismatch("namespace"))?;
    let (ns, secret) = (&plain[..colon], &plain[colon + 1..]);
    if short_hash(ns) != v.namespace_hash {
        return Err(DecryptError::Mismatch("namespace"));
    }
    if short_hash(secret) != v.secret_hash {
        return Err(DecryptError::Mismatch("secret"));
    }
    let ns = String::from_utf8_lossy(ns).into_owned();
    Ok((ns, Zeroizing::new(secret.to_vec())))
}

/// The first of `values` that decrypts (lithos tries each in turn: values
/// for several keys or namespaces let one config serve several clusters),
/// or every value's error, in order.
pub fn decrypt_any(
    keys: &[PrivateKey],
    namespaces: &[String],
    values: &[String],
) -> Result<Zeroizing<Vec<u8>>, Vec<DecryptError>> {
    let mut errors = Vec::new();
    for v in values {
        match decrypt(keys, namespaces, v) {
            Ok(s) => return Ok(s),
            Err(e) => errors.push(e),
        }
    }
    Err(errors)
}

/// A decrypted secret as an environment value: UTF-8 without NUL.
pub fn env_value(secret: Zeroizing<Vec<u8>>) -> Result<Zeroizing<String>, DecryptError> {
    if secret.contains(&0) {
        return Err(DecryptError::NotText);
    }
    // Move the bytes, never copy them: the buffer is wiped on drop.
    let mut secret = secret;
    let bytes = std::mem::take(&mut *secret);
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(DecryptError::NotText)
        }
    }
}

#[cfg(test)]
mod tests;
