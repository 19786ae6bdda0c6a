//! What `cairn check` can tell of an instance from its image before any
//! start: the executable, the workdir and every volume's mount point must
//! be there (else every start fails), and an image without `/etc/hosts`
//! gets none of the hosts entries cairn would write (a warning). Paths are
//! looked up with `openat2` under the image as the knot does (the
//! executable and workdir resolved inside it, mount points without any
//! symlink), `O_PATH` only: nothing in the image is opened for reading.

use std::os::fd::{AsFd, OwnedFd};

use crate::config::error::ConfigError;
use crate::image;
use crate::spec::InstanceSpec;
use crate::sys::fs::{self as sfs, Resolve};

/// What was found: errors (every start would fail) and warnings.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
}

/// Whether `path` is a volume's mount point or lies below one: what the
/// image has there does not matter, the volume does.
fn under_a_volume(spec: &InstanceSpec, path: &str, strictly: bool) -> bool {
    spec.mounts.iter().any(|m| {
        let t = m.target.trim_end_matches('/');
        (!strictly && path == t) || path.starts_with(&format!("{t}/"))
    })
}

enum Want {
    File,
    Dir,
}

fn look(root: &OwnedFd, path: &str, resolve: Resolve, want: Want) -> Result<(), String> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let fd =
        sfs::openat2(root.as_fd(), rel, libc::O_PATH, 0, resolve).map_err(|e| match e.errno() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => "does not exist in the image".to_string(),
            Some(libc::ELOOP) | Some(libc::EXDEV) => {
                "leads through a symlink or a magic link out of place".to_string()
            }
            _ => e.to_string(),
        })?;
    let st = sfs::fstat(fd.as_fd()).map_err(|e| e.to_string())?;
    match want {
        Want::File if sfs::is_dir(&st) => Err("is a directory".into()),
        Want::Dir if !sfs::is_dir(&st) => Err("is not a directory".into()),
        _ => Ok(()),
    }
}

/// Check `spec`'s paths in its image; `file` is the container config the
/// errors name.
pub fn check(spec: &InstanceSpec, file: &str) -> Findings {
    let mut out = Findings::default();
    let root = match image::open_image(&spec.image_dir, &spec.image) {
        Ok(r) => r,
        Err(e) => {
            out.errors
                .push(ConfigError::new(file, e.to_string()).key("image".to_string()));
            return out;
        }
    };
    let mut err = |key: &str, what: String| {
        out.errors
            .push(ConfigError::new(file, what).key(key.to_string()));
    };
    if !under_a_volume(spec, &spec.executable, false)
        && let Err(m) = look(&root, &spec.executable, Resolve::InRoot, Want::File)
    {
        err("executable", format!("{} {m}", spec.executable));
    }
    if !under_a_volume(spec, &spec.workdir, false)
        && let Err(m) = look(&root, &spec.workdir, Resolve::InRoot, Want::Dir)
    {
        err("workdir", format!("{} {m}", spec.workdir));
    }
    for m in &spec.mounts {
        // A mount point inside another volume is that volume's business.
        if under_a_volume(spec, &m.target, true) {
            continue;
        }
        if let Err(why) = look(&root, &m.target, Resolve::BeneathNoSymlinks, Want::Dir) {
            err(
                &format!("volumes.{}", m.target),
                format!(
                    "mount point {} {why}; a volume needs a real directory there",
                    m.target
                ),
            );
        }
    }
    for (name, key, f) in [
        ("hosts", "hosts-file", &spec.hosts_file),
        ("resolv.conf", "resolv-conf", &spec.resolv_conf),
    ] {
        if !f.wanted() || f.mount == Some(false) {
            continue;
        }
        let path = format!("/etc/{name}");
        if look(&root, &path, Resolve::BeneathNoSymlinks, Want::File).is_err() {
            let what = format!(
                "the image has no regular /etc/{name}: the one cairn writes is not mounted{}",
                if name == "hosts" {
                    " (localhost may not resolve inside, additional hosts are dropped)"
                } else {
                    ""
                }
            );
            if f.mount == Some(true) {
                err(key, format!("{what}, and `mount: true` fails every start"));
            } else {
                out.warnings.push(format!("{file}: {what}"));
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "imagecheck_tests.rs"]
mod tests;
