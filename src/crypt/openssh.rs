//! OpenSSH ed25519 keys, as `ssh-keygen -t ed25519` writes them: the
//! public key line (`ssh-ed25519 BASE64 comment`) and the unencrypted
//! private key file (`openssh-key-v1`, OpenSSH's PROTOCOL.key). Only what
//! lithos's keys use: ed25519, no passphrase.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

const KEY_TYPE: &[u8] = b"ssh-ed25519";
const MAGIC: &[u8] = b"openssh-key-v1\0";
const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";

/// Why a key file or line is not a usable ed25519 key. No variant holds
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an OpenSSH public key line (ssh-ed25519 BASE64 [comment])")]
    PublicLine,
    #[error("a {0} key; only ssh-ed25519 keys are supported")]
    Type(String),
    #[error("not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE KEY-----)")]
    PrivateArmor,
    #[error("the key is encrypted with a passphrase; the secrets key must not be")]
    Encrypted,
    #[error("the key data is malformed ({0})")]
    Malformed(&'static str),
    #[error("the private and public halves do not belong together")]
    Mismatch,
    #[error("it holds no key")]
    Empty,
}

/// An ed25519 public key: 32 bytes, the compressed Edwards y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(b: [u8; 32]) -> PublicKey {
        PublicKey(b)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The X25519 (Montgomery) form, for `crypto_box`; `None` when the
    /// bytes are no point of the curve.
    pub(super) fn montgomery(&self) -> Option<crypto_box::PublicKey> {
        let point = CompressedEdwardsY(self.0).decompress()?;
        Some(crypto_box::PublicKey::from(point.to_montgomery()))
    }
}

/// An ed25519 private key: its seed (wiped on drop) and public key.
pub struct PrivateKey {
    seed: Zeroizing<[u8; 32]>,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({:?})", super::short_hash(&self.public.0))
    }
}

impl PrivateKey {
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The ed25519 secret scalar, clamped: the first half of SHA-512 of the
    /// seed (RFC 8032), which is also its X25519 private key.
    fn scalar_bytes(&self) -> Zeroizing<[u8; 32]> {
        let hash = Zeroizing::new(Sha512::digest(self.seed.as_slice()));
        let mut half = Zeroizing::new([0u8; 32]);
        half.copy_from_slice(&hash[..32]);
        Zeroizing::new(clamp_integer(*half))
    }

    /// The X25519 secret key for `crypto_box` (wiped when dropped).
    pub(super) fn x25519(&self) -> crypto_box::SecretKey {
        crypto_box::SecretKey::from_bytes(*self.scalar_bytes())
    }

    /// A key from its seed and the public key stored with it; refused
    /// when they do not belong together.
    pub fn from_seed(seed: Zeroizing<[u8; 32]>, public: [u8; 32]) -> Result<PrivateKey, KeyError> {
        let key = PrivateKey {
            seed,
            public: PublicKey(public),
        };
        let s = Zeroizing::new(Scalar::from_bytes_mod_order(*key.scalar_bytes()));
        if EdwardsPoint::mul_base(&s).compress().0 != public {
            return Err(KeyError::Mismatch);
        }
        Ok(key)
    }
}

/// The first key line of a public key file (`NAME.pub`).
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or(KeyError::PublicLine)?;
    let mut words = line.split_ascii_whitespace();
    let (Some(kind), Some(data)) = (words.next(), words.next()) else {
        return Err(KeyError::PublicLine);
    };
    if kind.as_bytes() != KEY_TYPE {
        return Err(KeyError::Type(kind.to_string()));
    }
    let blob = STANDARD.decode(data).map_err(|_| KeyError::PublicLine)?;
    let mut r = Reader(&blob);
    let inner = r.string()?;
    if inner != KEY_TYPE {
        return Err(KeyError::Type(String::from_utf8_lossy(inner).into_owned()));
    }
    let key = r.string()?;
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| KeyError::Malformed("key size"))?;
    Ok(PublicKey(key))
}

/// Every key of an OpenSSH private key file (lithos accepts several and
/// tries each).
pub fn parse_private_keys(text: &[u8]) -> Result<Vec<PrivateKey>, KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| KeyError::PrivateArmor)?;
    let start = text.find(BEGIN).ok_or(KeyError::PrivateArmor)? + BEGIN.len();
    let end = text[start..].find(END).ok_or(KeyError::PrivateArmor)? + start;
    let b64: Zeroizing<String> = Zeroizing::new(
        text[start..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    let blob = Zeroizing::new(
        STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| KeyError::Malformed("base64"))?,
    );
    let mut r = Reader(blob.as_slice());
    if r.take(MAGIC.len())? != MAGIC {
        return Err(KeyError::Malformed("magic"));
    }
    let cipher = r.string()?;
    let kdf = r.string()?;
    let _kdf_options = r.string()?;
    if cipher != b"none" || kdf != b"none" {
        return Err(KeyError::Encrypted);
    }
    let n = r.u32()? as usize;
    if n == 0 {
        return Err(KeyError::Empty);
    }
    // The public halves, again in the private section.
    for _ in 0..n {
        r.string()?;
    }
    let mut p = Reader(r.string()?);
    if p.u32()? != p.u32()? {
        return Err(KeyError::Malformed("check bytes"));
    }
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = p.string()?;
        if kind != KEY_TYPE {
            return Err(KeyError::Type(String::from_utf8_lossy(kind).into_owned()));
        }
        let public: [u8; 32] = p
            .string()?
            .try_into()
            .map_err(|_| KeyError::Malformed("public key size"))?;
        let pair = p.string()?;
        if pair.len() != 64 || pair[32..] != public {
            return Err(KeyError::Malformed("private key"));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&pair[..32]);
        let _comment = p.string()?;
        keys.push(PrivateKey::from_seed(seed, public)?);
    }
    Ok(keys)
}

/// SSH wire data: big-endian u32s and length-prefixed strings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        if self.0.len() < n {
            return Err(KeyError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, KeyError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], KeyError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
