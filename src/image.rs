//! Reading from images: an image is a directory under a sandbox's
//! image-dir; its name and everything inside it are untrusted. Every path is
//! resolved from a directory fd so that no symlink in an image can point
//! our reads (or, later, our mounts) outside the image.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys::fs::{self, Resolve};

/// Largest container config we read (bytes).
pub const MAX_CONFIG_BYTES: usize = crate::config::yaml::UNTRUSTED.max_bytes;

/// Why an image or its container config could not be opened; keeps the
/// kernel's errno.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image-dir: {0}")]
    ImageDir(#[source] crate::sys::Error),
    #[error("{}", open_words(image, dir, source))]
    Open {
        image: String,
        dir: std::path::PathBuf,
        #[source]
        source: crate::sys::Error,
    },
    #[error("no such file in the image")]
    NoConfig,
    #[error("{0}")]
    ReadConfig(#[source] fs::ReadError),
}

impl ImageError {
    /// The errno of the failed system call, when there was one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            ImageError::ImageDir(e) | ImageError::Open { source: e, .. } => e.errno(),
            ImageError::NoConfig => Some(libc::ENOENT),
            ImageError::ReadConfig(fs::ReadError::Sys(e)) => e.errno(),
            ImageError::ReadConfig(_) => None,
        }
    }
}

fn open_words(image: &str, dir: &Path, e: &crate::sys::Error) -> String {
    let dir = dir.display();
    match e.errno() {
        Some(libc::ELOOP) | Some(libc::EXDEV) => {
            format!("image {image:?} in {dir}: a path component is a symlink, which is not allowed")
        }
        Some(libc::ENOENT) => format!("image {image:?} not found in {dir}"),
        Some(libc::ENOTDIR) => format!("image {image:?} in {dir} is not a directory"),
        _ => format!("image {image:?}: {e}"),
    }
}

/// Open the image `image` (relative, plain components) under `image_dir`.
/// No component may be a symlink: an image-dir entry that is a symlink to
/// `/` is refused, not followed.
pub fn open_image(image_dir: &Path, image: &str) -> Result<OwnedFd, ImageError> {
    let dir = fs::open_dir(image_dir).map_err(ImageError::ImageDir)?;
    fs::openat2(
        dir.as_fd(),
        image,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        Resolve::BeneathNoSymlinks,
    )
    .map_err(|source| ImageError::Open {
        image: image.to_string(),
        dir: image_dir.to_path_buf(),
        source,
    })
}

/// Read a container config at `path` inside the image `root`: symlinks are
/// resolved inside the image only, and only a regular file of at most
/// `MAX_CONFIG_BYTES` is accepted (a FIFO or `/dev/zero` is refused).
pub fn read_config(root: &OwnedFd, path: &str) -> Result<Vec<u8>, ImageError> {
    fs::read_in_root(root.as_fd(), path, MAX_CONFIG_BYTES).map_err(|e| match e {
        fs::ReadError::Sys(s) if s.errno() == Some(libc::ENOENT) => ImageError::NoConfig,
        other => ImageError::ReadConfig(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_errors_name_the_image_and_keep_the_errno() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = open_image(dir.path(), "web").expect_err("no image");
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().contains("image \"web\" not found in"), "{e}");
        std::fs::write(dir.path().join("file"), "").expect("file");
        let e = open_image(dir.path(), "file").expect_err("a file");
        assert_eq!(e.errno(), Some(libc::ENOTDIR));
        assert!(e.to_string().contains("is not a directory"), "{e}");
        std::os::unix::fs::symlink("/", dir.path().join("root")).expect("symlink");
        let e = open_image(dir.path(), "root").expect_err("a symlink");
        assert!(
            e.to_string().contains("a path component is a symlink"),
            "{e}"
        );
        let e = open_image(&dir.path().join("none"), "web").expect_err("no image-dir");
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().starts_with("image-dir: "), "{e}");
        let img = open_image(dir.path(), ".").expect("the dir itself");
        let e = read_config(&img, "config.yaml").expect_err("no config");
        assert_eq!(
            (e.to_string().as_str(), e.errno()),
            ("no such file in the image", Some(libc::ENOENT))
        );
    }
}
