//! The `volumes` of a container config: `!Readonly`, `!Persistent`,
//! `!Tmpfs` and `!Statedir`, with lithos's defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::reader::{Value, finish_one, opt_bool};
use super::{container_path, read_container_path};

/// lithos's default size of a `!Tmpfs` (brought within the sandbox's
/// `max-tmpfs-size`).
pub const DEFAULT_TMPFS_SIZE: u64 = 100 << 20;

/// The bits of a volume mode that are refused: setuid and setgid. On the
/// host directory behind a volume, setgid hands the directory's group to
/// everything created in it, by anyone; the sticky bit stays allowed.
pub const SETID_BITS: u32 = 0o6000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Volume {
    /// Bind of a sandbox virtual path, read-only.
    Readonly(String),
    /// Bind of a writable virtual path, read-write. `user`/`group`: the
    /// owner of a directory `mkdir` creates; `None` is the container's own
    /// user-id/group-id (lithos's default of 0 would give root a directory
    /// the sandbox may not allow).
    Persistent {
        path: String,
        mkdir: bool,
        mode: u32,
        user: Option<u32>,
        group: Option<u32>,
    },
    /// A fresh tmpfs; size `None`: the default, within the sandbox's
    /// ceiling.
    Tmpfs { size: Option<u64>, mode: u32 },
    /// (A subdir of) the instance's state dir; owner as for `Persistent`.
    Statedir {
        path: String,
        mode: u32,
        user: Option<u32>,
        group: Option<u32>,
    },
}

impl Volume {
    /// The mode a volume's directory gets, if it has one.
    pub fn mode(&self) -> Option<u32> {
        match self {
            Volume::Readonly(_) => None,
            Volume::Persistent { mode, .. }
            | Volume::Tmpfs { mode, .. }
            | Volume::Statedir { mode, .. } => Some(*mode),
        }
    }
}

/// Read the volume at mount point `target`, recording the lines of its
/// fields in `lines` (as `volumes.TARGET.FIELD`).
pub(super) fn read_volume(
    v: &Value,
    target: &str,
    lines: &mut BTreeMap<String, usize>,
) -> Result<Volume, ConfigError> {
    lines.insert(format!("volumes.{target}"), v.line());
    let mut at = |field: &str, x: &Value| {
        lines.insert(format!("volumes.{target}.{field}"), x.line());
    };
    let tag = v.tag().ok_or_else(|| {
        v.err("a volume kind is expected: !Readonly, !Persistent, !Tmpfs or !Statedir")
    })?;
    let scalar_path = || -> Result<Option<String>, ConfigError> {
        match v.ast {
            quire::ast::Ast::Scalar(..) => {
                let s = v.str_any_tag()?;
                container_path(s).map(Some).map_err(|e| v.err(e))
            }
            _ => Ok(None),
        }
    };
    match tag {
        "Readonly" => {
            let path = scalar_path()?
                .ok_or_else(|| v.err("!Readonly needs a virtual path, e.g. !Readonly /data"))?;
            Ok(Volume::Readonly(path))
        }
        "Persistent" | "Statedir" => {
            let persistent = tag == "Persistent";
            let (path, mkdir, mode, user, group) = if let Some(path) = scalar_path()? {
                (path, false, 0o777, None, None)
            } else {
                let mut f = v.fields_tagged_ok()?;
                let path = match f.opt("path") {
                    Some(x) => read_container_path(&x)?,
                    None => "/".to_string(),
                };
                let mkdir = if persistent {
                    opt_bool(&mut f, "mkdir")?.unwrap_or(false)
                } else {
                    false
                };
                let mode = f
                    .opt("mode")
                    .map(|x| {
                        at("mode", &x);
                        x.mode()
                    })
                    .transpose()?
                    .unwrap_or(0o777);
                let mut id = |key: &str| {
                    f.opt(key)
                        .map(|x| {
                            at(key, &x);
                            x.id()
                        })
                        .transpose()
                };
                let user = id("user")?;
                let group = id("group")?;
                finish_one(f)?;
                (path, mkdir, mode, user, group)
            };
            Ok(if persistent {
                Volume::Persistent {
                    path,
                    mkdir,
                    mode,
                    user,
                    group,
                }
            } else {
                Volume::Statedir {
                    path,
                    mode,
                    user,
                    group,
                }
            })
        }
        "Tmpfs" => {
            let mut f = v.fields_tagged_ok()?;
            let size = f
                .opt("size")
                .map(|x| {
                    at("size", &x);
                    x.u64()
                })
                .transpose()?;
            let mode = f
                .opt("mode")
                .map(|x| {
                    at("mode", &x);
                    x.mode()
                })
                .transpose()?
                .unwrap_or(0o777);
            finish_one(f)?;
            if size == Some(0) {
                return Err(v.err("tmpfs size 0 would mean \"unlimited\"; give a size"));
            }
            Ok(Volume::Tmpfs { size, mode })
        }
        other => Err(v.err(format!(
            "unknown volume kind !{other} (expected !Readonly, !Persistent, !Tmpfs or !Statedir)"
        ))),
    }
}
