//! A sandbox's opt-outs from the default isolation (operator-trusted):
//! `seccomp`, `allow-user-namespaces`, `sysfs`. Every container gets the
//! strictest setting unless its sandbox writes one of these keys.
//!
//! The instance spec carries them (`InstanceSpec::isolation`); at their
//! defaults they serialize to nothing, so an upgrade to the version that
//! added them changes no instance's hash.

use serde::{Deserialize, Serialize};

use super::error::{ConfigError, Problems};
use super::reader::{Fields, Value, check};

/// `seccomp`: which system call filter the workloads get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// cairn's default profile: refused calls fail.
    #[default]
    Default,
    /// The default profile, reporting instead of refusing.
    Log,
    /// No filter.
    Unconfined,
}

impl Seccomp {
    fn read(v: &Value) -> Result<Seccomp, ConfigError> {
        match v.str()? {
            "default" => Ok(Seccomp::Default),
            "log" => Ok(Seccomp::Log),
            "unconfined" => Ok(Seccomp::Unconfined),
            other => Err(v.err(format!(
                "{other:?} is not a seccomp setting (default, log or unconfined)"
            ))),
        }
    }
    fn is_default(&self) -> bool {
        *self == Seccomp::Default
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The three keys, as resolved (defaults when not written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Isolation {
    #[serde(default, skip_serializing_if = "Seccomp::is_default")]
    pub seccomp: Seccomp,
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_user_namespaces: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sysfs: bool,
}

impl Isolation {
    pub fn read(f: &mut Fields, p: &mut Problems) -> Isolation {
        let mut flag = |key: &str, p: &mut Problems| {
            f.opt(key).and_then(|v| check(p, v.bool())).unwrap_or(false)
        };
        let allow_user_namespaces = flag("allow-user-namespaces", p);
        let sysfs = flag("sysfs", p);
        let seccomp = f
            .opt("seccomp")
            .and_then(|v| check(p, Seccomp::read(&v)))
            .unwrap_or_default();
        Isolation {
            seccomp,
            allow_user_namespaces,
            sysfs,
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Isolation::default()
    }
}
