//! `processes/NAME.yaml`: which entries run in a sandbox and how many
//! (written by the orchestrator, trusted, installed by `cairn switch`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Problems};
use super::reader::{Value, check};
use super::values::read_ip;
use super::{container_path, is_safe_name, read_file_capped, yaml};

/// The kind of a process entry or container config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Daemon,
    Command,
    CommandOrDaemon,
}

impl Kind {
    pub fn read(v: &Value) -> Result<Kind, ConfigError> {
        match v.str()? {
            "Daemon" => Ok(Kind::Daemon),
            "Command" => Ok(Kind::Command),
            "CommandOrDaemon" => Ok(Kind::CommandOrDaemon),
            other => Err(v.err(format!(
                "kind {other:?} is not one of Daemon, Command, CommandOrDaemon"
            ))),
        }
    }
    /// The tree supervises entries of this kind.
    pub fn is_daemon(self) -> bool {
        matches!(self, Kind::Daemon | Kind::CommandOrDaemon)
    }
    /// `cairn cmd` may run entries of this kind.
    pub fn is_command(self) -> bool {
        matches!(self, Kind::Command | Kind::CommandOrDaemon)
    }
}

/// The most instances one entry may ask for.
pub const MAX_INSTANCES: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub name: String,
    pub kind: Kind,
    /// Relative to the sandbox's image-dir.
    pub image: String,
    /// Absolute path of the container config inside the image.
    pub config: String,
    pub instances: u32,
    pub variables: BTreeMap<String, String>,
    pub ip_addresses: Vec<IpAddr>,
    pub extra_secrets_namespaces: Vec<String>,
    /// `min-ready`, seconds: how long a rollout's new instance must stay
    /// ready before the rollout replaces the next one.
    #[serde(default)]
    pub min_ready: f64,
    /// The process config file and the entry's line in it, for messages.
    pub file: String,
    pub line: usize,
}

impl ProcessEntry {
    /// An error about key `key` of this entry, in its process config file.
    pub fn err(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.file, message)
            .at(self.line)
            .key(format!("{}.{key}", self.name))
    }
}

/// A whole process config: entries by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Processes {
    pub file: String,
    pub entries: BTreeMap<String, ProcessEntry>,
}

impl Processes {
    pub fn load(path: &Path) -> Result<Processes, Problems> {
        let shown = path.display().to_string();
        let bytes = read_file_capped(path, yaml::TRUSTED.max_bytes)
            .map_err(|e| ConfigError::new(&shown, e))?;
        Processes::parse(&shown, &bytes)
    }

    pub fn parse(file: &str, bytes: &[u8]) -> Result<Processes, Problems> {
        complete(file, bytes)?;
        let ast = yaml::parse(file, bytes, &yaml::TRUSTED)?;
        if matches!(ast, quire::ast::Ast::Null(..)) {
            return Err(ConfigError::new(
                file,
                "the file holds no mapping (only comments or nothing): it looks like \
                 it is being written; to run no entries write `{}`",
            )
            .into());
        }
        let root = Value::root(file, &ast);
        let mut p = Problems::new();
        let mut entries = BTreeMap::new();
        for (name, v) in root.map().map_err(Problems::from)? {
            // As in every cairn mapping of fixed keys, `_` keys are a place
            // for YAML anchors, not entries.
            if name.starts_with('_') {
                continue;
            }
            if !is_safe_name(name) {
                p.push(v.err(format!(
                    "process name {name:?} must be letters, digits, '-' and '_'"
                )));
                continue;
            }
            if let Some(e) = read_entry(file, name, &v, &mut p) {
                entries.insert(name.to_string(), e);
            }
        }
        p.into_result(Processes {
            file: file.to_string(),
            entries,
        })
    }
}

/// A process config decides what runs: a file read while a non-atomic
/// writer (an editor, a config-management tool) is half done would stop
/// the instances it no longer lists. So a file that is empty, or whose
/// last line has no newline (`instances: 5` cut from `instances: 50`),
/// is taken as unfinished and refused; the tree keeps running what it ran
/// (the sandbox's instances are left as they are) and `cairn check` says
/// the same. Removing every entry on purpose takes an explicit `{}`.
/// `cairn switch` installs files atomically and never shows either.
fn complete(file: &str, bytes: &[u8]) -> Result<(), ConfigError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigError::new(
            file,
            "the file is empty: it looks like it is being written; to run no entries write `{}`",
        ));
    }
    if !bytes.ends_with(b"\n") {
        let line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(ConfigError::new(
            file,
            "the last line does not end with a newline: the file looks cut off while being \
             written; nothing in it is applied (install process configs with `cairn switch`, \
             or write a new file and rename it into place)",
        )
        .at(line));
    }
    Ok(())
}

fn read_entry(file: &str, name: &str, v: &Value, p: &mut Problems) -> Option<ProcessEntry> {
    let mut f = check(p, v.fields())?;
    let kind = match f.opt("kind") {
        Some(k) => check(p, Kind::read(&k)),
        None => Some(Kind::Daemon),
    };
    let image = check(p, f.req("image").and_then(|i| read_image(&i)));
    let config = check(
        p,
        f.req("config")
            .and_then(|c| container_path(c.str()?).map_err(|e| c.err(e))),
    );
    let instances = match f.opt("instances") {
        Some(i) => check(p, i.bounded(u64::from(MAX_INSTANCES)).map(|n| n as u32)),
        None => Some(1),
    };
    let mut variables = BTreeMap::new();
    if let Some(vars) = f.opt("variables") {
        for (k, val) in check(p, vars.map()).unwrap_or_default() {
            if let Some(s) = check(p, val.string()) {
                variables.insert(k.to_string(), s);
            }
        }
    }
    let ip_addresses = f
        .opt("ip-addresses")
        .and_then(|ips| check(p, ips.seq().and_then(|s| s.iter().map(read_ip).collect())))
        .unwrap_or_default();
    let extra_secrets_namespaces = f
        .opt("extra-secrets-namespaces")
        .and_then(|x| {
            check(
                p,
                x.seq().and_then(|s| s.iter().map(|i| i.string()).collect()),
            )
        })
        .unwrap_or_default();
    let min_ready = f
        .opt("min-ready")
        .and_then(|v| check(p, v.seconds()))
        .unwrap_or(0.0);
    f.finish(p);
    Some(ProcessEntry {
        name: name.to_string(),
        kind: kind?,
        image: image?,
        config: config?,
        instances: instances?,
        variables,
        ip_addresses,
        extra_secrets_namespaces,
        min_ready,
        file: file.to_string(),
        line: v.line(),
    })
}

/// `image`: a relative path of plain components (level count is checked
/// against the sandbox later).
fn read_image(v: &Value) -> Result<String, ConfigError> {
    let s = v.str()?;
    if s.starts_with('/') {
        return Err(v.err(format!(
            "image {s:?} must be relative to the sandbox's image-dir"
        )));
    }
    for c in s.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(v.err(format!(
                "image {s:?} must be plain path components (no empty, '.' or '..')"
            )));
        }
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree supervises Daemon and CommandOrDaemon entries; `cairn cmd`
    /// runs Command and CommandOrDaemon entries.
    #[test]
    fn kinds() {
        let kinds = [Kind::Daemon, Kind::Command, Kind::CommandOrDaemon];
        let daemon: Vec<bool> = kinds.iter().map(|k| k.is_daemon()).collect();
        let command: Vec<bool> = kinds.iter().map(|k| k.is_command()).collect();
        assert_eq!(daemon, [true, false, true]);
        assert_eq!(command, [false, true, true]);
    }

    fn parse(text: &str) -> Result<Processes, Problems> {
        Processes::parse("/etc/c/processes/web.yaml", text.as_bytes())
    }

    #[test]
    fn defaults_and_keys() {
        let p = parse(
            "web:\n  image: web-1.0\n  config: /config/web.yaml\n\
             cmd:\n  kind: Command\n  image: a/b\n  config: /c.yaml\n  instances: 0\n  \
             variables: {port: 8080, mode: fast}\n  ip_addresses: [10.0.0.2]\n  \
             extra-secrets-namespaces: [x]\n",
        )
        .unwrap();
        let w = &p.entries["web"];
        assert_eq!(w.kind, Kind::Daemon);
        assert_eq!(w.image, "web-1.0");
        assert_eq!(w.config, "/config/web.yaml");
        assert_eq!(w.instances, 1);
        assert!(w.variables.is_empty() && w.ip_addresses.is_empty());
        assert!(w.extra_secrets_namespaces.is_empty());
        let c = &p.entries["cmd"];
        assert_eq!(c.kind, Kind::Command);
        assert_eq!(c.instances, 0);
        assert_eq!(c.variables["port"], "8080");
        assert_eq!(c.ip_addresses[0].to_string(), "10.0.0.2");
        assert_eq!(c.extra_secrets_namespaces, ["x"]);
    }

    #[test]
    fn underscore_keys_are_not_entries() {
        let p = parse("_tpl: &t\n  image: i\n  config: /c\nw:\n  <<: *t\n").unwrap();
        assert_eq!(p.entries.keys().collect::<Vec<_>>(), ["w"]);
        assert_eq!(p.entries["w"].image, "i");
    }

    #[test]
    fn an_unfinished_file_is_refused_and_an_explicit_empty_mapping_is_no_entries() {
        assert!(parse("{}\n").unwrap().entries.is_empty());
        for (text, needle, line) in [
            ("", "empty", None),
            ("\n  \n", "empty", None),
            ("# all gone\n", "no mapping", None),
            (
                "web:\n  image: i\n  config: /c\n  instances: 5",
                "newline",
                Some(4),
            ),
            (
                "web:\n  image: i\n  config: /c\n  instances: 5\nwor",
                "newline",
                Some(5),
            ),
            ("{}", "newline", Some(1)),
        ] {
            let e = parse(text).unwrap_err();
            let first = e.iter().next().unwrap();
            assert!(first.to_string().contains(needle), "{text:?} gave {e}");
            assert_eq!(first.line, line, "{text:?}");
        }
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yaml");
        std::fs::write(&path, "w:\n  image: i\n  config: /c\n  instances: 2\n").unwrap();
        let p = Processes::load(&path).unwrap();
        assert_eq!(p.file, path.display().to_string());
        assert_eq!(p.entries["w"].instances, 2);
        let e = Processes::load(&dir.path().join("none.yaml")).unwrap_err();
        assert!(e.to_string().contains("cannot open"), "{e}");
    }

    #[test]
    fn rejects() {
        for (text, needle) in [
            ("w:\n  config: /c\n", "\"image\" is missing"),
            ("w:\n  image: i\n", "\"config\" is missing"),
            ("w:\n  image: /abs\n  config: /c\n", "relative"),
            ("w:\n  image: a/../b\n  config: /c\n", "plain path"),
            ("w:\n  image: a//b\n  config: /c\n", "plain path"),
            ("w:\n  image: a/\n  config: /c\n", "plain path"),
            ("w:\n  image: ./a\n  config: /c\n", "plain path"),
            ("w:\n  image: a/.\n  config: /c\n", "plain path"),
            ("w:\n  image: i\n  config: rel.yaml\n", "absolute"),
            (
                "w:\n  image: i\n  config: /c\n  instances: 10001\n",
                "maximum",
            ),
            ("w:\n  image: i\n  config: /c\n  kind: Deamon\n", "kind"),
            ("w.x:\n  image: i\n  config: /c\n", "process name"),
            ("w:\n  image: i\n  config: /c\n  ip-addresses: [x]\n", "IP"),
            (
                "w:\n  image: i\n  config: /c\n  replicas: 2\n",
                "unknown key",
            ),
            ("- a\n", "mapping"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?} gave {e}");
            assert!(e.starts_with("/etc/c/processes/web.yaml:"), "{e}");
        }
    }
}
