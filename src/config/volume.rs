//! The `volumes` of a container config: `!Readonly`, `!Persistent`,
//! `!Tmpfs` and `!Statedir`, with lithos's defaults.

use serde::{Deserialize, Serialize};

use super::container::{finish_one, opt_bool};
use super::error::ConfigError;
use super::reader::Value;
use super::{container_path, read_container_path};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Volume {
    /// Bind of a sandbox virtual path, read-only.
    Readonly(String),
    /// Bind of a writable virtual path, read-write.
    Persistent {
        path: String,
        mkdir: bool,
        mode: u32,
        user: u32,
        group: u32,
    },
    /// A fresh tmpfs.
    Tmpfs { size: u64, mode: u32 },
    /// (A subdir of) the instance's state dir.
    Statedir {
        path: String,
        mode: u32,
        user: u32,
        group: u32,
    },
}

pub(super) fn read_volume(v: &Value) -> Result<Volume, ConfigError> {
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
                (path, false, 0o777, 0, 0)
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
                    .map(|x| x.mode())
                    .transpose()?
                    .unwrap_or(0o777);
                let user = f.opt("user").map(|x| x.id()).transpose()?.unwrap_or(0);
                let group = f.opt("group").map(|x| x.id()).transpose()?.unwrap_or(0);
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
                .map(|x| x.u64())
                .transpose()?
                .unwrap_or(100 << 20);
            let mode = f
                .opt("mode")
                .map(|x| x.mode())
                .transpose()?
                .unwrap_or(0o777);
            finish_one(f)?;
            if size == 0 {
                return Err(v.err("tmpfs size 0 would mean \"unlimited\"; give a size"));
            }
            Ok(Volume::Tmpfs { size, mode })
        }
        other => Err(v.err(format!(
            "unknown volume kind !{other} (expected !Readonly, !Persistent, !Tmpfs or !Statedir)"
        ))),
    }
}
