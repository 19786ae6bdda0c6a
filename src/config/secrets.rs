//! The container config's encrypted secrets: `secret-environ` and
//! `secret-environ-file` as lithos has them, and cairn's `secret-files`
//! with `secret-files-dir`: reading them, and the form of each value
//! (`crypt::Value`). `secrets_check` checks them against the sandbox and
//! the process entry. Pure, and without the private key: only the knot
//! decrypts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Problems};
use super::reader::{Fields, Value, check};
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

#[cfg(test)]
#[path = "secrets_tests.rs"]
mod tests;
