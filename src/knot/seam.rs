//! The seam between the container build and the kernel: every system
//! call `fs`, `kernfs` and `steps` make while building the root goes
//! through `Kernel`, and every id and capability step of the workload
//! through `Privileges`. `Real` is the one implementation cairn runs: each
//! method calls the `crate::sys` function of the same name, unchanged, and
//! the build is generic over the trait (monomorphised, so the seam costs
//! nothing at run time). The unit tests use a recording fake instead
//! (`seam_fake`), which answers with plain labels for fds and can be told
//! to fail a given call, so the exact flags and the order of the steps are
//! checked without root.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys::Result;
use crate::sys::fs::{self as sfs, Resolve};
use crate::sys::mount::{self, Attrs, Recursive};
use crate::sys::{caps, process};

/// The kernel as the container build sees it. `Fd` is what a call hands
/// back (an open file or a detached mount): an `OwnedFd` for real.
pub(super) trait Kernel {
    type Fd;

    /// mount(2) `MS_REC | MS_PRIVATE` of `/` (`mount::make_all_private`).
    fn make_all_private(&self) -> Result<()>;
    /// The image dir `image` under `image_dir` (`image::open_image`).
    fn open_image(
        &self,
        image_dir: &Path,
        image: &str,
    ) -> std::result::Result<Self::Fd, crate::image::ImageError>;
    /// A trusted host dir by its path (`fs::open_dir`).
    fn open_dir(&self, path: &Path) -> Result<Self::Fd>;
    /// A dir below `dir`, no symlinks (`fs::open_dir_beneath`).
    fn open_dir_beneath(&self, dir: &Self::Fd, path: &str) -> Result<Self::Fd>;
    /// openat2(2) (`fs::openat2`).
    fn openat2(
        &self,
        dir: &Self::Fd,
        path: &str,
        flags: i32,
        mode: u32,
        resolve: Resolve,
    ) -> Result<Self::Fd>;
    /// Whether `fd` is a regular file (fstat(2)).
    fn is_regular(&self, fd: &Self::Fd) -> Result<bool>;
    /// `fs::mkdir_beneath`: the dir, and whether it was created.
    fn mkdir_beneath(&self, dir: &Self::Fd, path: &str, mode: u32) -> Result<(Self::Fd, bool)>;
    /// `fs::chown_chmod`.
    fn chown_chmod(&self, fd: &Self::Fd, what: &str, uid: u32, gid: u32, mode: u32) -> Result<()>;
    /// `fs::replace_file`.
    fn replace_file(&self, dir: &Self::Fd, name: &str, content: &[u8], mode: u32) -> Result<()>;
    /// A host file the operator named, at most `cap` bytes
    /// (`config::read_file_capped`).
    fn read_host_file(&self, path: &Path, cap: usize) -> std::result::Result<Vec<u8>, String>;
    /// The host's name and first non-loopback IPv4 address.
    fn public_host(&self) -> Option<(String, String)>;
    /// open_tree(2) clone (`mount::clone_tree`).
    fn clone_tree(&self, dir: &Self::Fd, what: &str, recursive: Recursive) -> Result<Self::Fd>;
    /// mount_setattr(2) (`mount::set_attrs`).
    fn set_attrs(
        &self,
        mnt: &Self::Fd,
        what: &str,
        set: Attrs,
        clear: Attrs,
        recursive: Recursive,
    ) -> Result<()>;
    /// move_mount(2) (`mount::attach`).
    fn attach(&self, mnt: &Self::Fd, target: &Self::Fd, what: &str) -> Result<()>;
    /// fsopen(2), fsconfig(2), fsmount(2) (`mount::new_fs`).
    fn new_fs(&self, fstype: &str, options: &[(&str, &str)], attrs: Attrs) -> Result<Self::Fd>;
    /// `mount::make_nodes`.
    fn make_nodes(
        &self,
        dir: &Self::Fd,
        devices: &[(&str, u32, u32, u32)],
        dirs: &[(&str, u32)],
    ) -> Result<()>;
    /// symlinkat(2) (`mount::symlink_at`).
    fn symlink_at(&self, target: &str, dir: &Self::Fd, name: &str) -> Result<()>;
    /// `mount::pivot_into`.
    fn pivot_into(&self, new_root: &Self::Fd) -> Result<()>;
}

/// The workload's id and capability steps.
pub(super) trait Privileges {
    /// `caps::drop_whole_bounding_set`.
    fn drop_whole_bounding_set(&self) -> Result<()>;
    /// `caps::drop_bounding`.
    fn drop_bounding(&self, keep: &[String]) -> Result<()>;
    /// `process::set_keepcaps`.
    fn set_keepcaps(&self, on: bool) -> Result<()>;
    /// `process::set_ids`: setgroups, setresgid, setresuid.
    fn set_ids(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<()>;
    /// `caps::clear_all_sets`.
    fn clear_all_sets(&self) -> Result<()>;
    /// `caps::set_exactly`.
    fn set_exactly(&self, keep: &[String]) -> Result<()>;
    /// `process::set_no_new_privs`.
    fn set_no_new_privs(&self) -> Result<()>;
    /// `process::set_dumpable`.
    fn set_dumpable(&self, on: bool) -> Result<()>;
}

/// The kernel itself.
pub(super) struct Real;

impl Kernel for Real {
    type Fd = OwnedFd;

    fn make_all_private(&self) -> Result<()> {
        mount::make_all_private()
    }
    fn open_image(
        &self,
        image_dir: &Path,
        image: &str,
    ) -> std::result::Result<OwnedFd, crate::image::ImageError> {
        crate::image::open_image(image_dir, image)
    }
    fn open_dir(&self, path: &Path) -> Result<OwnedFd> {
        sfs::open_dir(path)
    }
    fn open_dir_beneath(&self, dir: &OwnedFd, path: &str) -> Result<OwnedFd> {
        sfs::open_dir_beneath(dir.as_fd(), path)
    }
    fn openat2(
        &self,
        dir: &OwnedFd,
        path: &str,
        flags: i32,
        mode: u32,
        resolve: Resolve,
    ) -> Result<OwnedFd> {
        sfs::openat2(dir.as_fd(), path, flags, mode, resolve)
    }
    fn is_regular(&self, fd: &OwnedFd) -> Result<bool> {
        sfs::fstat(fd.as_fd()).map(|st| sfs::is_reg(&st))
    }
    fn mkdir_beneath(&self, dir: &OwnedFd, path: &str, mode: u32) -> Result<(OwnedFd, bool)> {
        sfs::mkdir_beneath(dir.as_fd(), path, mode)
    }
    fn chown_chmod(&self, fd: &OwnedFd, what: &str, uid: u32, gid: u32, mode: u32) -> Result<()> {
        sfs::chown_chmod(fd.as_fd(), what, uid, gid, mode)
    }
    fn replace_file(&self, dir: &OwnedFd, name: &str, content: &[u8], mode: u32) -> Result<()> {
        sfs::replace_file(dir.as_fd(), name, content, mode)
    }
    fn read_host_file(&self, path: &Path, cap: usize) -> std::result::Result<Vec<u8>, String> {
        crate::config::read_file_capped(path, cap)
    }
    fn public_host(&self) -> Option<(String, String)> {
        let name = nix::unistd::gethostname().ok()?.into_string().ok()?;
        let addr = nix::ifaddrs::getifaddrs()
            .ok()?
            .filter_map(|i| i.address.and_then(|a| a.as_sockaddr_in().map(|s| s.ip())))
            .find(|ip| !ip.is_loopback())
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "127.0.1.1".to_string());
        Some((name, addr))
    }
    fn clone_tree(&self, dir: &OwnedFd, what: &str, recursive: Recursive) -> Result<OwnedFd> {
        mount::clone_tree(dir.as_fd(), what, recursive)
    }
    fn set_attrs(
        &self,
        mnt: &OwnedFd,
        what: &str,
        set: Attrs,
        clear: Attrs,
        recursive: Recursive,
    ) -> Result<()> {
        mount::set_attrs(mnt.as_fd(), what, set, clear, recursive)
    }
    fn attach(&self, mnt: &OwnedFd, target: &OwnedFd, what: &str) -> Result<()> {
        mount::attach(mnt.as_fd(), target.as_fd(), what)
    }
    fn new_fs(&self, fstype: &str, options: &[(&str, &str)], attrs: Attrs) -> Result<OwnedFd> {
        mount::new_fs(fstype, options, attrs)
    }
    fn make_nodes(
        &self,
        dir: &OwnedFd,
        devices: &[(&str, u32, u32, u32)],
        dirs: &[(&str, u32)],
    ) -> Result<()> {
        mount::make_nodes(dir.as_fd(), devices, dirs)
    }
    fn symlink_at(&self, target: &str, dir: &OwnedFd, name: &str) -> Result<()> {
        mount::symlink_at(target, dir.as_fd(), name)
    }
    fn pivot_into(&self, new_root: &OwnedFd) -> Result<()> {
        mount::pivot_into(new_root.as_fd())
    }
}

impl Privileges for Real {
    fn drop_whole_bounding_set(&self) -> Result<()> {
        caps::drop_whole_bounding_set()
    }
    fn drop_bounding(&self, keep: &[String]) -> Result<()> {
        caps::drop_bounding(keep)
    }
    fn set_keepcaps(&self, on: bool) -> Result<()> {
        process::set_keepcaps(on)
    }
    fn set_ids(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
        process::set_ids(uid, gid, groups)
    }
    fn clear_all_sets(&self) -> Result<()> {
        caps::clear_all_sets()
    }
    fn set_exactly(&self, keep: &[String]) -> Result<()> {
        caps::set_exactly(keep)
    }
    fn set_no_new_privs(&self) -> Result<()> {
        process::set_no_new_privs()
    }
    fn set_dumpable(&self, on: bool) -> Result<()> {
        process::set_dumpable(on)
    }
}

#[cfg(test)]
#[path = "seam_fake.rs"]
pub(super) mod fake;
