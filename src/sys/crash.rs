//! Surviving our own crash: on a fatal signal (SIGSEGV, SIGBUS, SIGILL,
//! SIGFPE, SIGABRT) the supervisor execs itself again instead of dying.
//! The handler only calls execve(2), which is async-signal-safe; every
//! string it needs is prepared beforehand. The new image finds the running
//! instances and adopts them (nothing is restarted).

use std::ffi::CString;
use std::sync::OnceLock;

struct Prepared {
    path: CString,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

// SAFETY: written once before the handler is installed, then only read
// (by the handler); the pointers point into the owned CStrings above.
unsafe impl Sync for Prepared {}
unsafe impl Send for Prepared {}

static PREPARED: OnceLock<Prepared> = OnceLock::new();

pub const FATAL: &[i32] = &[
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

extern "C" fn on_fatal(_sig: libc::c_int) {
    if let Some(p) = PREPARED.get() {
        // SAFETY: execve is async-signal-safe; all pointers are valid and
        // NULL-terminated arrays prepared before installation.
        unsafe { libc::execve(p.path.as_ptr(), p.argv_ptrs.as_ptr(), p.envp_ptrs.as_ptr()) };
    }
    // exec failed: die as the signal would have made us.
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + _sig) };
}

/// Prepare `path argv` with `env` and install the handler for every fatal
/// signal. Those signals must not be blocked (a blocked fault kills).
pub fn reexec_on_fatal(path: &str, argv: &[String], env: &[String]) -> Result<(), super::Error> {
    let c = |s: &str| {
        CString::new(s).map_err(|_| {
            super::Error::new(
                "crash handler",
                s,
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })
    };
    let path_c = c(path)?;
    let argv_c: Vec<CString> = argv.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let envp_c: Vec<CString> = env.iter().map(|a| c(a)).collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv_c.iter().map(|s| s.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp_c.iter().map(|s| s.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let _ = PREPARED.set(Prepared {
        path: path_c,
        _argv: argv_c,
        _envp: envp_c,
        argv_ptrs,
        envp_ptrs,
    });
    for &sig in FATAL {
        // SAFETY: installing a plain handler; zeroed sigaction is valid and
        // sa_mask empty means nothing else is blocked in the handler.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_fatal as *const () as usize;
            sa.sa_flags = libc::SA_RESETHAND;
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(super::Error::last("sigaction", sig));
            }
        }
    }
    unblock(FATAL)
}

/// Unblock `sigs` in the calling thread.
pub fn unblock(sigs: &[i32]) -> Result<(), super::Error> {
    // SAFETY: sigset operations on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in sigs {
            libc::sigaddset(&mut set, s);
        }
        if libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(super::Error::last("pthread_sigmask", "unblock"));
        }
    }
    Ok(())
}

/// In a forked child (knot, parser): fatal signals back to their default
/// action, so a crashing child never turns into a second supervisor.
pub fn reset_fatal() {
    for &sig in FATAL {
        // SAFETY: SIG_DFL for one signal.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}
