//! Reading from images: an image is a directory under a sandbox's
//! image-dir; its name and everything inside it are untrusted. Every path is
//! resolved from a directory fd so that no symlink in an image can point
//! our reads (or, later, our mounts) outside the image.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys::fs::{self, Resolve};

/// Largest container config we read (bytes).
pub const MAX_CONFIG_BYTES: usize = crate::config::yaml::UNTRUSTED.max_bytes;

/// Open the image `image` (relative, plain components) under `image_dir`.
/// No component may be a symlink: an image-dir entry that is a symlink to
/// `/` is refused, not followed.
pub fn open_image(image_dir: &Path, image: &str) -> Result<OwnedFd, String> {
    let dir = fs::open_dir(image_dir).map_err(|e| format!("image-dir: {e}"))?;
    let fd = fs::openat2(
        dir.as_fd(),
        image,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        Resolve::BeneathNoSymlinks,
    )
    .map_err(|e| match e.errno() {
        Some(libc::ELOOP) | Some(libc::EXDEV) => format!(
            "image {image:?} in {}: a path component is a symlink, which is not allowed",
            image_dir.display()
        ),
        Some(libc::ENOENT) => format!("image {image:?} not found in {}", image_dir.display()),
        Some(libc::ENOTDIR) => format!(
            "image {image:?} in {} is not a directory",
            image_dir.display()
        ),
        _ => format!("image {image:?}: {e}"),
    })?;
    Ok(fd)
}

/// Read a container config at `path` inside the image `root`: symlinks are
/// resolved inside the image only, and only a regular file of at most
/// `MAX_CONFIG_BYTES` is accepted (a FIFO or `/dev/zero` is refused).
pub fn read_config(root: &OwnedFd, path: &str) -> Result<Vec<u8>, String> {
    fs::read_in_root(root.as_fd(), path, MAX_CONFIG_BYTES).map_err(|e| match e {
        fs::ReadError::Sys(s) if s.errno() == Some(libc::ENOENT) => {
            "no such file in the image".to_string()
        }
        other => other.to_string(),
    })
}
