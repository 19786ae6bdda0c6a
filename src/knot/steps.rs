//! Steps of the container build that `fs` and `kernfs` share: the setup
//! error (words for the operator), a detached bind mount, and a directory
//! the image must have (both through the `seam::Kernel`).

use crate::sys::mount::{Attrs, Recursive};

use super::seam::Kernel;

/// A setup error: what failed, in words for the operator, the kernel's
/// errno when a system call failed, and the path involved when it is
/// known (recorded for the tree and `ps`, `last_exit.cause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    pub message: String,
    pub errno: Option<i32>,
    pub path: Option<String>,
}

impl SetupError {
    /// The same error, naming `path` as the one involved.
    pub fn at(mut self, path: impl Into<String>) -> SetupError {
        self.path = Some(path.into());
        self
    }
}

impl std::error::Error for SetupError {}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for SetupError {
    fn from(message: String) -> SetupError {
        SetupError {
            message,
            errno: None,
            path: None,
        }
    }
}

/// A failed system call, its words and errno as they are.
impl From<crate::sys::Error> for SetupError {
    fn from(e: crate::sys::Error) -> SetupError {
        SetupError {
            message: e.to_string(),
            errno: e.errno(),
            path: None,
        }
    }
}

/// An image that could not be opened, its words and errno as they are.
impl From<crate::image::ImageError> for SetupError {
    fn from(e: crate::image::ImageError) -> SetupError {
        SetupError {
            errno: e.errno(),
            ..SetupError::from(e.to_string())
        }
    }
}

impl From<&str> for SetupError {
    fn from(message: &str) -> SetupError {
        SetupError::from(message.to_string())
    }
}

pub type Result<T> = std::result::Result<T, SetupError>;

/// An error that may carry the kernel's errno.
pub(super) trait Errno: std::fmt::Display {
    fn errno(&self) -> Option<i32>;
}

impl Errno for crate::sys::Error {
    fn errno(&self) -> Option<i32> {
        crate::sys::Error::errno(self)
    }
}

impl Errno for std::io::Error {
    fn errno(&self) -> Option<i32> {
        self.raw_os_error()
    }
}

impl Errno for String {
    fn errno(&self) -> Option<i32> {
        None
    }
}

/// `r`, its error named by `what`.
pub(super) fn ctx<T, E: Errno>(
    r: std::result::Result<T, E>,
    what: impl FnOnce() -> String,
) -> Result<T> {
    r.map_err(|e| SetupError {
        message: format!("{}: {e}", what()),
        errno: e.errno(),
        path: None,
    })
}

/// A detached copy (`open_tree` clone) of the mount at `src`, with `set`
/// applied: a bind mount ready to attach. `name` labels kernel errors,
/// `what` says which mount failed.
pub(super) fn bound<K: Kernel>(
    k: &K,
    src: &K::Fd,
    name: &str,
    set: Attrs,
    recursive: Recursive,
    what: impl Fn() -> String,
) -> Result<K::Fd> {
    let b = ctx(k.clone_tree(src, name, recursive), &what)?;
    ctx(k.set_attrs(&b, name, set, Attrs::NONE, recursive), &what)?;
    Ok(b)
}

/// Open a directory the image must have, refusing symlinks and files.
pub(super) fn image_dir<K: Kernel>(k: &K, root: &K::Fd, path: &str, why: &str) -> Result<K::Fd> {
    k.open_dir_beneath(root, path).map_err(|e| SetupError {
        errno: e.errno(),
        path: Some(format!("/{}", path.trim_start_matches('/'))),
        message: match e.errno() {
        Some(libc::ENOENT) => format!("{path} does not exist in the image ({why})"),
        Some(libc::ELOOP) | Some(libc::EXDEV) => {
            format!("{path} in the image is or goes through a symlink; it must be a real directory ({why})")
        }
        Some(libc::ENOTDIR) => format!("{path} in the image is not a directory ({why})"),
        _ => format!("{path} in the image: {e}"),
        },
    })
}
