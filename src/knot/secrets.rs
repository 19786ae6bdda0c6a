//! Decrypting an instance's secrets: in the knot, on the host side of the
//! pivot (the key is a host file), right before the workload's child is
//! forked. The plaintext lives in `Zeroizing` buffers of the knot: the
//! child copies what it needs into the workload's environment (its own
//! memory is replaced by the exec), `fs` writes the files into their
//! tmpfs, and the knot drops them as soon as the workload runs (a
//! `restart-process-only` knot keeps them for its restarts). The tree
//! only ever has the encrypted values.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypt::{self, DecryptError, KeyError, PrivateKey};
use crate::spec::InstanceSpec;

use super::steps::SetupError;

/// Largest key file read (ssh-keygen's ed25519 keys are about 400 bytes).
const MAX_KEY_FILE: usize = 64 << 10;

/// The decrypted secrets of an instance, wiped when dropped.
#[derive(Default)]
pub struct Plain {
    /// Environment variable → value.
    pub environ: Vec<(String, Zeroizing<String>)>,
    /// File name → content.
    pub files: Vec<(String, Zeroizing<Vec<u8>>)>,
}

impl Plain {
    pub fn env_value(&self, name: &str) -> Option<&str> {
        self.environ
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why the secrets could not be decrypted; names the key file or the
/// variable, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("secrets: the sandbox has no secrets-private-key")]
    NoKey,
    #[error("secrets-private-key {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secrets-private-key {}: {why}", .path.display())]
    Unsafe { path: PathBuf, why: String },
    #[error("secrets-private-key {}: {source}", .path.display())]
    Key { path: PathBuf, source: KeyError },
    #[error("{key}: cannot decrypt it: {}", describe(.errors))]
    Value {
        key: String,
        errors: Vec<DecryptError>,
    },
}

fn describe(errors: &[DecryptError]) -> String {
    if errors.len() == 1 {
        return errors[0].to_string();
    }
    errors
        .iter()
        .enumerate()
        .map(|(i, e)| format!("value {}: {e}", i + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<SecretsError> for SetupError {
    fn from(e: SecretsError) -> SetupError {
        let (errno, path) = match &e {
            SecretsError::Open { path, source } => {
                (source.raw_os_error(), Some(path.display().to_string()))
            }
            SecretsError::Unsafe { path, .. } | SecretsError::Key { path, .. } => {
                (None, Some(path.display().to_string()))
            }
            SecretsError::NoKey | SecretsError::Value { .. } => (None, None),
        };
        SetupError {
            message: e.to_string(),
            errno,
            path,
        }
    }
}

/// Read the private key file: a regular file owned by root that nobody
/// else may read or write (lithos: owner root, no mode bit beyond 0600).
pub fn read_keys(path: &Path) -> Result<Vec<PrivateKey>, SecretsError> {
    let open = |source| SecretsError::Open {
        path: path.to_path_buf(),
        source,
    };
    let unsafe_ = |why: String| SecretsError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(open)?;
    let st = crate::sys::fs::fstat(f.as_fd()).map_err(|e| open(e.source))?;
    if !crate::sys::fs::is_reg(&st) {
        return Err(unsafe_("not a regular file".into()));
    }
    if st.st_uid != 0 {
        return Err(unsafe_(format!(
            "owned by uid {}; it must be owned by root",
            st.st_uid
        )));
    }
    if st.st_mode & 0o177 != 0 {
        return Err(unsafe_(format!(
            "mode {:04o} lets others than root read or change it (or run it); it must be 0600 or 0400",
            st.st_mode & 0o7777
        )));
    }
    // Read into a buffer that never grows (a reallocation would leave a
    // copy of the key behind), wiped when dropped.
    let mut text = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE + 1));
    f.take(MAX_KEY_FILE as u64 + 1)
        .read_to_end(&mut text)
        .map_err(open)?;
    if text.len() > MAX_KEY_FILE {
        return Err(unsafe_(format!("larger than {MAX_KEY_FILE} bytes")));
    }
    crypt::parse_private_keys(&text).map_err(|source| SecretsError::Key {
        path: path.to_path_buf(),
        source,
    })
}

/// Decrypt every secret of `spec` (none: nothing is read).
pub fn decrypt(spec: &InstanceSpec) -> Result<Plain, SecretsError> {
    let s = &spec.secrets;
    if s.is_empty() {
        return Ok(Plain::default());
    }
    let path = s.key.as_ref().ok_or(SecretsError::NoKey)?;
    let keys = read_keys(path)?;
    decrypt_with(spec, &keys)
}

/// `decrypt` with the keys at hand.
pub fn decrypt_with(spec: &InstanceSpec, keys: &[PrivateKey]) -> Result<Plain, SecretsError> {
    let s = &spec.secrets;
    let mut plain = Plain::default();
    for (name, values) in &s.environ {
        let key = || format!("secret-environ.{name}");
        let secret = crypt::decrypt_any(keys, &s.namespaces, values)
            .map_err(|errors| SecretsError::Value { key: key(), errors })?;
        let value = crypt::env_value(secret).map_err(|e| SecretsError::Value {
            key: key(),
            errors: vec![e],
        })?;
        plain.environ.push((name.clone(), value));
    }
    for (name, values) in &s.files {
        let secret = crypt::decrypt_any(keys, &s.namespaces, values).map_err(|errors| {
            SecretsError::Value {
                key: format!("secret-files.{name}"),
                errors,
            }
        })?;
        plain.files.push((name.clone(), secret));
    }
    Ok(plain)
}
