//! Checks of a container config's secrets (`secrets`): on their own (the
//! names, `secret-files-dir`) and against the sandbox and the process
//! entry (a key to decrypt with, a namespace each may be read in), all
//! without the private key.

use super::container::ContainerConfig;
use super::error::{ConfigError, Problems};
use super::process::ProcessEntry;
use super::sandbox::Sandbox;
use super::secrets::RESERVED;
use crate::crypt;

/// Whether the config has any secret.
pub fn any(c: &ContainerConfig) -> bool {
    !c.secret_environ.is_empty()
        || !c.secret_files.is_empty()
        || c.secret_environ_from_file
            .as_ref()
            .is_some_and(|f| !f.environ.is_empty())
}

/// What can be checked without a sandbox: names, and the dir of
/// `secret-files`.
pub fn standalone(file: &str, c: &ContainerConfig, p: &mut Problems) {
    let err = |key: &str, msg: String| {
        let line = c.lines.get(key).copied().unwrap_or(0);
        ConfigError::new(file, msg).key(key.to_string()).at(line)
    };
    for k in c.secret_environ.keys() {
        if RESERVED.contains(&k.as_str()) {
            let key = format!("secret-environ.{k}");
            p.push(err(&key, "is set by cairn".into()));
        }
    }
    match (&c.secret_files_dir, c.secret_files.is_empty()) {
        (None, false) => p.push(err(
            "secret-files",
            "needs secret-files-dir: where the files are mounted".into(),
        )),
        (Some(_), true) => p.push(err(
            "secret-files-dir",
            "without secret-files there is nothing to mount".into(),
        )),
        (Some(dir), false) => {
            if dir == "/"
                || ["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|k| dir == k || dir.starts_with(&format!("{k}/")))
            {
                p.push(err(
                    "secret-files-dir",
                    format!("secret files may not be mounted on {dir}"),
                ));
            }
            for target in c.volumes.keys() {
                if target == dir || target.starts_with(&format!("{dir}/")) {
                    p.push(err(
                        "secret-files-dir",
                        format!("volume {target} would be mounted on or inside it"),
                    ));
                }
            }
        }
        (None, true) => {}
    }
}

/// Against the sandbox and the entry: a key to decrypt with, and for each
/// name a value encrypted for a namespace the entry may read.
pub fn validate(file: &str, c: &ContainerConfig, s: &Sandbox, e: &ProcessEntry, p: &mut Problems) {
    if !any(c) {
        return;
    }
    let allowed = namespaces(s, e);
    let first_key = if !c.secret_environ.is_empty() {
        "secret-environ"
    } else if !c.secret_files.is_empty() {
        "secret-files"
    } else {
        "secret-environ-file"
    };
    if s.secrets_private_key.is_none() {
        let line = c.lines.get(first_key).copied().unwrap_or(0);
        p.push(
            ConfigError::new(
                file,
                format!(
                    "sandbox {:?} has no secrets-private-key to decrypt secrets with",
                    s.name
                ),
            )
            .key(first_key)
            .at(line),
        );
    }
    let check_one = |shown: &str, key: String, line: usize, values: &[String]| {
        let parsed: Vec<crypt::Value> = values
            .iter()
            .filter_map(|v| crypt::Value::parse(v).ok())
            .collect();
        if parsed.iter().any(|v| v.for_namespace(&allowed).is_some()) {
            return None;
        }
        let hashes: Vec<&str> = parsed.iter().map(|v| v.namespace_hash.as_str()).collect();
        let names: Vec<String> = allowed.iter().map(|n| format!("{n:?}")).collect();
        Some(
            ConfigError::new(
                shown,
                format!(
                    "no value is encrypted for a namespace this entry may read \
                     (namespace hash {}; allowed: {}, from the sandbox's \
                     secrets-namespaces and the entry's extra-secrets-namespaces)",
                    hashes.join(", "),
                    names.join(", ")
                ),
            )
            .key(key)
            .at(line),
        )
    };
    let line = |k: &str| c.lines.get(k).copied().unwrap_or(0);
    for (k, values) in &c.secret_environ {
        let key = format!("secret-environ.{k}");
        if let Some(e) = check_one(file, key.clone(), line(&key), values) {
            p.push(e);
        }
    }
    for (k, values) in &c.secret_files {
        let key = format!("secret-files.{k}");
        if let Some(e) = check_one(file, key.clone(), line(&key), values) {
            p.push(e);
        }
    }
    if let Some(f) = &c.secret_environ_from_file {
        for (k, values) in &f.environ {
            let l = f.lines.get(k).copied().unwrap_or(0);
            if c.secret_environ.contains_key(k) {
                p.push(
                    ConfigError::new(
                        &f.shown,
                        format!(
                            "{k} is in secret-environ of {file} too; lithos does not say \
                             which one wins, so give it in one place"
                        ),
                    )
                    .key(k.clone())
                    .at(l),
                );
            }
            if RESERVED.contains(&k.as_str()) {
                p.push(
                    ConfigError::new(&f.shown, "is set by cairn")
                        .key(k.clone())
                        .at(l),
                );
            }
            if let Some(e) = check_one(&f.shown, k.clone(), l, values) {
                p.push(e);
            }
        }
    }
}

/// The namespaces an entry's secrets may be encrypted for: the sandbox's
/// `secrets-namespaces` (only `""` when it has none, as lithos) and the
/// entry's `extra-secrets-namespaces`.
pub fn namespaces(s: &Sandbox, e: &ProcessEntry) -> Vec<String> {
    let mut out = if s.secrets_namespaces.is_empty() {
        vec![String::new()]
    } else {
        s.secrets_namespaces.clone()
    };
    for n in &e.extra_secrets_namespaces {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}
