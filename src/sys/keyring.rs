//! Kernel keyrings (keyrings(7)): the one thing cairn does with them is
//! give each workload a session keyring of its own.

use super::{Error, Result};

/// keyctl(2) KEYCTL_JOIN_SESSION_KEYRING with a NULL name: the calling
/// process gets a new anonymous session keyring (`_ses`) and loses its
/// handle on the one it inherited (the tree's, or that of whoever ran
/// `cairn cmd`, which may hold their secrets). Returns false when the
/// kernel has no keyrings at all (then there is nothing to share).
pub fn join_new_session_keyring() -> Result<bool> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with an integer operation and a NULL name pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if ret >= 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOSYS) {
        return Ok(false);
    }
    Err(Error::new("keyctl", "join a new session keyring", e))
}
