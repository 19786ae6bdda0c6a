//! cairn-init (src/sys/mini_init/main.rs), embedded at build time, and how
//! to run it: from a sealed memfd, with execveat(2) and AT_EMPTY_PATH, so
//! nothing in any container's file system is ever involved.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Error, Result, check, cstr};

/// The program's bytes (empty where it is not built: not x86_64 Linux).
pub const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cairn-init"));

/// A close-on-exec, sealed memfd holding cairn-init, or `None` where there
/// is none.
pub fn init_memfd() -> Result<Option<OwnedFd>> {
    if INIT.is_empty() {
        return Ok(None);
    }
    let name = cstr("cairn-init")?;
    // SAFETY: valid C string; flags are constants.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    let fd = check(fd, "memfd_create", "cairn-init")?;
    // SAFETY: a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd);
    f.write_all(INIT)
        .map_err(|e| Error::new("write", "cairn-init memfd", e))?;
    let fd = OwnedFd::from(f);
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: plain fcntl on our fd.
    check(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) },
        "fcntl F_ADD_SEALS",
        "cairn-init",
    )?;
    Ok(Some(fd))
}

/// execveat(fd, "", argv, {}, AT_EMPTY_PATH). Only returns on failure.
pub fn exec_init(fd: BorrowedFd<'_>, argv: &[String]) -> Error {
    let empty = match cstr("") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let args: Vec<std::ffi::CString> = match argv.iter().map(|a| cstr(a)).collect() {
        Ok(a) => a,
        Err(e) => return e,
    };
    let mut ap: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    ap.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: valid fd, C strings and NULL-terminated arrays that outlive
    // the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            ap.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Error::last("execveat", "cairn-init")
}
