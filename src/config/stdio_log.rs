//! How a sandbox's stdio log (`STDIO-LOG-DIR/SANDBOX.log`) is written:
//! `stdio-log-max-size`, `stdio-log-files`, `stdio-log-timestamps`,
//! `stdio-log-names` of the sandbox config. By default the log is capped
//! (10 MiB a file, 5 rotated files kept) and every line says when it was
//! written and by which instance.
//!
//! The instance spec carries these (`InstanceSpec::stdio_log`); at their
//! defaults they serialize to nothing, so an upgrade to the version that
//! added them changes no instance's hash.

use serde::{Deserialize, Serialize};

use super::error::Problems;
use super::reader::{Fields, check};

/// `stdio-log-max-size` when not written.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// `stdio-log-files` when not written.
pub const DEFAULT_FILES: u32 = 5;
/// The smallest `stdio-log-max-size`.
pub const MIN_MAX_SIZE: u64 = 4096;
/// The most `stdio-log-files`.
pub const MAX_FILES: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StdioLog {
    /// Rotate at this size; `None` (`stdio-log-max-size: null`): never.
    pub max_size: Option<u64>,
    /// Rotated files kept.
    pub files: u32,
    /// Each line prefixed with the time it was written.
    pub timestamps: bool,
    /// Each line prefixed with the instance's name.
    pub names: bool,
}

impl Default for StdioLog {
    fn default() -> Self {
        StdioLog {
            max_size: Some(DEFAULT_MAX_SIZE),
            files: DEFAULT_FILES,
            timestamps: true,
            names: true,
        }
    }
}

impl StdioLog {
    pub fn read(f: &mut Fields, p: &mut Problems) -> StdioLog {
        let mut s = StdioLog::default();
        // `null` is a value here: no size limit.
        if let Some(v) = f.get("stdio-log-max-size") {
            s.max_size = if v.is_null() {
                None
            } else {
                match check(p, v.u64()) {
                    Some(n) if n >= MIN_MAX_SIZE => Some(n),
                    Some(n) => {
                        p.push(v.err(format!(
                            "{n} bytes is below the smallest stdio-log-max-size, \
                             {MIN_MAX_SIZE} (4Ki); `null` means no limit"
                        )));
                        s.max_size
                    }
                    None => s.max_size,
                }
            };
        }
        if let Some(v) = f.opt("stdio-log-files") {
            match check(p, v.u32()) {
                Some(n) if (1..=MAX_FILES).contains(&n) => s.files = n,
                Some(n) => p.push(v.err(format!("{n} is not between 1 and {MAX_FILES}"))),
                None => {}
            }
        }
        if let Some(v) = f.opt("stdio-log-timestamps") {
            s.timestamps = check(p, v.bool()).unwrap_or(s.timestamps);
        }
        if let Some(v) = f.opt("stdio-log-names") {
            s.names = check(p, v.bool()).unwrap_or(s.names);
        }
        s
    }

    pub fn is_default(&self) -> bool {
        *self == StdioLog::default()
    }

    /// Whether the workload's output goes through a pump (its init reads
    /// a pipe and writes the log); else it writes the log file itself.
    pub fn pumped(&self) -> bool {
        self.max_size.is_some() || self.timestamps || self.names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reader::Value;

    fn read(yaml: &str) -> Result<StdioLog, String> {
        let ast =
            crate::config::yaml::parse("s.yaml", yaml.as_bytes(), &crate::config::yaml::TRUSTED)
                .map_err(|e| format!("{e:?}"))?;
        let root = Value::root("s.yaml", &ast);
        let mut f = root.fields().map_err(|e| e.to_string())?;
        let mut p = Problems::new();
        let s = StdioLog::read(&mut f, &mut p);
        f.finish(&mut p);
        p.into_result(s).map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_cap_and_prefix() {
        let s = read("stdio-log-files: 5\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s, StdioLog::default());
        assert_eq!(s.max_size, Some(10 << 20));
        assert!(s.pumped() && s.is_default());
    }

    #[test]
    fn every_key_and_null_for_no_limit() {
        let s = read(
            "stdio-log-max-size: 1Mi\nstdio-log-files: 2\n\
             stdio-log-timestamps: false\nstdio-log-names: false\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s,
            StdioLog {
                max_size: Some(1 << 20),
                files: 2,
                timestamps: false,
                names: false
            }
        );
        let s =
            read("stdio-log-max-size: null\nstdio-log-timestamps: false\nstdio-log-names: false\n")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.max_size, None);
        // Nothing to do per line: the workload writes the file itself.
        assert!(!s.pumped());
    }

    #[test]
    fn bad_values_name_their_line() {
        for (yaml, want) in [
            ("stdio-log-max-size: 100\n", "s.yaml:1"),
            ("x: 1\nstdio-log-files: 0\n", "s.yaml:2"),
            ("stdio-log-files: 101\n", "between 1 and 100"),
            ("stdio-log-max-size: 10MB\n", "10MB"),
            ("stdio-log-names: yes please\n", "not a boolean"),
        ] {
            let e = read(yaml).err().unwrap_or_default();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
