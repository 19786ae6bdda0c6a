//! The notify socket of an instance: an `AF_UNIX` datagram socket bound
//! by the tree in a dir of its own, read with the sender's credentials
//! (unix(7) `SO_PASSCRED`, `SCM_CREDENTIALS`; socket(2), bind(2),
//! recvmsg(2)).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Error, Result, check, cstr};

/// A bound notify socket and an `O_PATH` fd of its file (what a knot
/// binds into the container).
pub struct Bound {
    pub socket: OwnedFd,
    pub file: OwnedFd,
}

/// Bind a new close-on-exec, non-blocking datagram socket with
/// `SO_PASSCRED` on at `name` in `dir` (an fd of a root-only dir; `name`
/// is a plain file name), replacing whatever socket file was there, and
/// make the file writable by every user: who may send is decided by the
/// dir (only root reaches it on the host) and the credentials of each
/// datagram, not by the file's mode. `proc_pid` is our pid as /proc
/// numbers it: the bind goes through `/proc/PID/fd/DIR/NAME`, so its
/// length does not depend on the dir's path (`sun_path` holds 108 bytes).
pub fn bind_notify(dir: BorrowedFd<'_>, name: &str, proc_pid: i32) -> Result<Bound> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::new(
            "bind",
            name.escape_debug(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a plain file name"),
        ));
    }
    let path = format!("/proc/{proc_pid}/fd/{}/{name}", dir.as_raw_fd());
    let kind = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: plain syscall.
    let fd = check(
        unsafe { libc::socket(libc::AF_UNIX, kind, 0) },
        "socket",
        name,
    )?;
    // SAFETY: a new fd nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let on: libc::c_int = 1;
    // SAFETY: valid fd and a c_int option value of the size we pass.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            &on as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret, "setsockopt", "SO_PASSCRED")?;
    let cname = cstr(name)?;
    // The socket file of an earlier start (or an earlier tree) goes.
    // SAFETY: valid fd and C string.
    let gone = unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) };
    if gone == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(Error::new("unlink", name.escape_debug(), e));
        }
    }
    // SAFETY: a zeroed sockaddr_un is valid; we fill family and path.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(Error::new(
            "bind",
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path too long"),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a sockaddr_un of at least `len` bytes.
    let ret = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            &addr as *const libc::sockaddr_un as *const libc::sockaddr,
            len as libc::socklen_t,
        )
    };
    check(ret, "bind", &path)?;
    // SAFETY: valid fd and C string.
    let ret = unsafe { libc::fchmodat(dir.as_raw_fd(), cname.as_ptr(), 0o666, 0) };
    check(ret, "chmod", name.escape_debug())?;
    let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: valid fd and C string.
    let f = check(
        unsafe { libc::openat(dir.as_raw_fd(), cname.as_ptr(), flags) },
        "open",
        name.escape_debug(),
    )?;
    // SAFETY: a new fd nobody else owns.
    let file = unsafe { OwnedFd::from_raw_fd(f) };
    Ok(Bound { socket, file })
}

/// Remove the socket file `name` in `dir` (gone already is fine).
pub fn unlink_notify(dir: BorrowedFd<'_>, name: &str) -> Result<()> {
    let cname = cstr(name)?;
    // SAFETY: valid fd and C string.
    let gone = unsafe { libc::unlinkat(dir.as_raw_fd(), cname.as_ptr(), 0) };
    if gone == -1 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOENT) {
            return Err(Error::new("unlink", name.escape_debug(), e));
        }
    }
    Ok(())
}

/// The sender of a datagram as the kernel tells it (`SCM_CREDENTIALS`,
/// in our pid and user namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    pub pid: i32,
    pub uid: u32,
}

/// One datagram read.
#[derive(Debug)]
pub struct Datagram {
    pub len: usize,
    /// Longer than the buffer: the rest is lost.
    pub truncated: bool,
    /// `None` when the kernel sent no credentials (it always does with
    /// `SO_PASSCRED`; never trust a datagram without).
    pub sender: Option<Sender>,
}

/// Read one datagram into `buf` without blocking: `Ok(None)` when none
/// is waiting. Any fds a sender attached (`SCM_RIGHTS`) are closed.
pub fn recv_with_sender(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<Datagram>> {
    // Room for the credentials and a few fds a sender may have attached
    // (closed below; fds beyond the room are discarded by the kernel).
    const CONTROL: usize = 256;
    #[repr(C, align(8))]
    struct Control([u8; CONTROL]);
    let mut control = Control([0; CONTROL]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; we point it at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = CONTROL as _;
    let n = loop {
        // SAFETY: `msg` points at `iov` (into `buf`) and `control`, both
        // live and of the sizes given.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(None),
            _ => return Err(Error::new("recvmsg", "notify socket", e)),
        }
    };
    let mut sender = None;
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk the
    // control buffer within `msg_controllen`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            let data = libc::CMSG_DATA(c);
            let data_len = (h.cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_CREDENTIALS {
                if data_len >= std::mem::size_of::<libc::ucred>() {
                    let u = std::ptr::read_unaligned(data as *const libc::ucred);
                    sender = Some(Sender {
                        pid: u.pid,
                        uid: u.uid,
                    });
                }
            } else if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
                let count = data_len / std::mem::size_of::<libc::c_int>();
                for k in 0..count {
                    let f = std::ptr::read_unaligned((data as *const libc::c_int).add(k));
                    drop(OwnedFd::from_raw_fd(f));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some(Datagram {
        len: n.min(buf.len()),
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        sender,
    }))
}
