//! Steps of the container build that `fs` and `kernfs` share: the setup
//! error (words for the operator), a detached bind mount, and a directory
//! the image must have.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::fs as sfs;
use crate::sys::mount::{self, Attrs, Recursive};

/// A setup error: what failed, in words for the operator.
pub type Result<T> = std::result::Result<T, String>;

pub(super) fn ctx<T, E: std::fmt::Display>(
    r: std::result::Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// A detached copy (`open_tree` clone) of the mount at `src`, with `set`
/// applied: a bind mount ready to attach. `name` labels kernel errors,
/// `what` says which mount failed.
pub(super) fn bound(
    src: BorrowedFd<'_>,
    name: &str,
    set: Attrs,
    recursive: Recursive,
    what: impl Fn() -> String,
) -> Result<OwnedFd> {
    let b = ctx(mount::clone_tree(src, name, recursive), &what)?;
    ctx(
        mount::set_attrs(b.as_fd(), name, set, Attrs::NONE, recursive),
        &what,
    )?;
    Ok(b)
}

/// Open a directory the image must have, refusing symlinks and files.
pub(super) fn image_dir(root: BorrowedFd<'_>, path: &str, why: &str) -> Result<OwnedFd> {
    sfs::open_dir_beneath(root, path).map_err(|e| match e.errno() {
        Some(libc::ENOENT) => format!("{path} does not exist in the image ({why})"),
        Some(libc::ELOOP) | Some(libc::EXDEV) => {
            format!("{path} in the image is or goes through a symlink; it must be a real directory ({why})")
        }
        Some(libc::ENOTDIR) => format!("{path} in the image is not a directory ({why})"),
        _ => format!("{path} in the image: {e}"),
    })
}
