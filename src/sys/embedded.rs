//! cairn-init (src/sys/mini_init/main.rs), embedded at build time, and how
//! to run it: from a sealed memfd, with execveat(2) and AT_EMPTY_PATH, so
//! nothing in any container's file system is ever involved.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Error, Result, check, cstr};

/// The program's bytes (empty where it is not built: not x86_64 or
/// aarch64 Linux).
pub const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/cairn-init"));

/// A close-on-exec, sealed memfd holding cairn-init, or `None` where there
/// is none.
pub fn init_memfd() -> Result<Option<OwnedFd>> {
    if INIT.is_empty() {
        return Ok(None);
    }
    let name = cstr("cairn-init")?;
    // MFD_EXEC (Linux 6.3) says we mean to execute it, which a host with
    // vm.memfd_noexec = 1 requires; older kernels refuse the flag.
    const MFD_EXEC: libc::c_uint = 0x10;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: valid C string; flags are constants.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), base | MFD_EXEC) };
    if fd == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), base) };
    }
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

/// Run the workload through cairn-init: execveat(2) of the sealed memfd
/// `init` as `cairn-exec ERR_FD PATH ARGV...` with the workload's
/// environment; cairn-init then execve(2)s `path`. The process that calls
/// that execve is cairn-init, not a fork of cairn, so `/proc/self/exe`
/// during it (an image script whose interpreter is `/proc/self/exe`, say)
/// names the sealed memfd and never the host binary. `err_fd` must not be
/// close-on-exec: cairn-init marks it so, and writes `E<errno>` to it if
/// its execve fails. `init` is an fd number the caller keeps open (a
/// forked child's keep list); a closed one only fails the execveat.
/// Only returns if the execveat itself failed.
pub fn exec_trampoline(
    init: std::os::fd::RawFd,
    err_fd: i32,
    path: &str,
    argv: &[String],
    env: &[String],
) -> Error {
    let mut words = vec![
        "cairn-exec".to_string(),
        err_fd.to_string(),
        path.to_string(),
    ];
    words.extend(argv.iter().cloned());
    let to_c =
        |v: &[String]| -> Result<Vec<std::ffi::CString>> { v.iter().map(|a| cstr(a)).collect() };
    let (args, envs) = match (to_c(&words), to_c(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let empty = match cstr("") {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut ap: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    ap.push(std::ptr::null());
    let mut ep: Vec<*const libc::c_char> = envs.iter().map(|c| c.as_ptr()).collect();
    ep.push(std::ptr::null());
    // SAFETY: valid fd, C strings and NULL-terminated arrays that outlive
    // the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            init,
            empty.as_ptr(),
            ap.as_ptr(),
            ep.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Error::last("execveat", "cairn-init (to run the workload)")
}
