//! The container config's encrypted secrets: `secret-environ` and
//! `secret-environ-file` as lithos has them, and cairn's `secret-files`
//! with `secret-files-dir`. Pure: the values are checked for their form
//! (`crypt::Value`) and, against the sandbox and the process entry, for
//! their namespace, both without the private key; only the knot decrypts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::container::ContainerConfig;
use super::error::{ConfigError, Problems};
use super::process::ProcessEntry;
use super::reader::{Fields, Value, check};
use super::sandbox::Sandbox;
use super::{container_path, yaml};
use crate::crypt;

/// Names cairn sets itself: a secret may not take them.
pub const RESERVED: [&str; 4] = ["CAIRN_NAME", "LITHOS_NAME", "CAIRN_CONFIG", "LITHOS_CONFIG"];

/// Most files in `secret-files` (each is an inode of a small tmpfs).
pub const MAX_SECRET_FILES: usize = 1024;

/// Name → its encrypted values (lithos: a string or a list; the first
/// that decrypts is used).
pub type SecretMap = BTreeMap<String, Vec<String>>;

/// The file `secret-environ-file` names, read from the image (by `load`,
/// parsed in a confined child like the config itself).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SecretEnvironFile {
    /// The file, for messages (its host path).
    pub shown: String,
    pub environ: SecretMap,
    /// The line of each name.
    pub lines: BTreeMap<String, usize>,
}

/// The keys of the container config (see `read`).
#[derive(Debug, Default)]
pub struct SecretKeys {
    pub environ: SecretMap,
    pub environ_file: Option<String>,
    pub files: SecretMap,
    pub files_dir: Option<String>,
}

/// A file name in `secret-files`: one path component of plain characters.
pub fn file_name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn env_name_ok(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

/// One name's values: a string or a non-empty list of them, each a well
/// formed v2 value (the form is checked here, where the line is known).
fn read_values(v: &Value) -> Result<Vec<String>, ConfigError> {
    let items = match v.ast {
        quire::ast::Ast::Seq(..) => v.seq()?,
        _ => vec![v.clone()],
    };
    if items.is_empty() {
        return Err(v.err("an empty list: give at least one encrypted value"));
    }
    let mut out = Vec::with_capacity(items.len());
    for i in &items {
        let s = i.string()?;
        if let Err(e) = crypt::Value::parse(&s) {
            return Err(i.err(format!("{e} (encrypt values with `cairn crypt`)")));
        }
        out.push(s);
    }
    Ok(out)
}

/// A mapping of names to values; `lines` gets `PREFIX.NAME` → line.
fn read_map(
    v: &Value,
    prefix: &str,
    name_ok: fn(&str) -> bool,
    what: &str,
    lines: &mut BTreeMap<String, usize>,
    p: &mut Problems,
) -> SecretMap {
    let mut out = SecretMap::new();
    for (k, item) in check(p, v.map()).unwrap_or_default() {
        if !name_ok(k) {
            p.push(item.err(format!("{k:?} is not {what}")));
            continue;
        }
        lines.insert(format!("{prefix}{k}"), item.line());
        if let Some(values) = check(p, read_values(&item)) {
            out.insert(k.to_string(), values);
        }
    }
    out
}

/// Read the secret keys of a container config.
pub fn read(f: &mut Fields, p: &mut Problems, lines: &mut BTreeMap<String, usize>) -> SecretKeys {
    let mut keys = SecretKeys::default();
    if let Some(v) = f.opt("secret-environ") {
        keys.environ = read_map(
            &v,
            "secret-environ.",
            env_name_ok,
            "an environment variable name",
            lines,
            p,
        );
    }
    let path = |v: Value, p: &mut Problems| {
        let s = check(p, v.string())?;
        match container_path(&s) {
            Ok(t) => Some(t),
            Err(e) => {
                p.push(v.err(e));
                None
            }
        }
    };
    if let Some(v) = f.opt("secret-environ-file") {
        lines.insert("secret-environ-file".into(), v.line());
        keys.environ_file = path(v, p);
    }
    if let Some(v) = f.opt("secret-files") {
        lines.insert("secret-files".into(), v.line());
        keys.files = read_map(
            &v,
            "secret-files.",
            file_name_ok,
            "a file name (letters, digits, '_', '.', '-')",
            lines,
            p,
        );
        if keys.files.len() > MAX_SECRET_FILES {
            p.push(v.err(format!("more than {MAX_SECRET_FILES} files")));
        }
    }
    if let Some(v) = f.opt("secret-files-dir") {
        lines.insert("secret-files-dir".into(), v.line());
        keys.files_dir = path(v, p);
    }
    keys
}

/// Parse the file `secret-environ-file` names (untrusted, from the image):
/// a mapping as `secret-environ` is.
pub fn parse_environ_file(file: &str, bytes: &[u8]) -> Result<SecretEnvironFile, Problems> {
    let ast = yaml::parse(file, bytes, &yaml::UNTRUSTED)?;
    let root = Value::root(file, &ast);
    let mut p = Problems::new();
    let mut lines = BTreeMap::new();
    let environ = read_map(
        &root,
        "",
        env_name_ok,
        "an environment variable name",
        &mut lines,
        &mut p,
    );
    p.into_result(SecretEnvironFile {
        shown: file.to_string(),
        environ,
        lines,
    })
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

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
