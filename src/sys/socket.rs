//! Listening TCP sockets bound by the supervisor and passed to workloads
//! (socket(2), setsockopt(2), bind(2), listen(2)).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Result, check};

/// Options of one listening socket (from the container's tcp-ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub host: IpAddr,
    pub port: u16,
    pub backlog: u32,
    pub reuse_addr: bool,
    pub reuse_port: bool,
    pub nonblock: bool,
}

fn setopt(fd: &OwnedFd, opt: libc::c_int, on: bool, what: &str) -> Result<()> {
    let v: libc::c_int = i32::from(on);
    // SAFETY: valid fd and a c_int option value of the size we pass.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret, "setsockopt", what)?;
    Ok(())
}

/// A bound, listening, close-on-exec TCP socket.
pub fn listen(l: &Listen) -> Result<OwnedFd> {
    let addr = SocketAddr::new(l.host, l.port);
    let family = if l.host.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let mut kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    if l.nonblock {
        kind |= libc::SOCK_NONBLOCK;
    }
    // SAFETY: plain syscall.
    let fd = check(unsafe { libc::socket(family, kind, 0) }, "socket", addr)?;
    // SAFETY: a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    setopt(&fd, libc::SO_REUSEADDR, l.reuse_addr, "SO_REUSEADDR")?;
    if l.reuse_port {
        setopt(&fd, libc::SO_REUSEPORT, true, "SO_REUSEPORT")?;
    }
    let (storage, len) = sockaddr(&addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for this family.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &storage as *const _ as *const libc::sockaddr,
            len,
        )
    };
    check(ret, "bind", addr)?;
    let backlog = l.backlog.min(i32::MAX as u32) as i32;
    // SAFETY: plain syscall on our fd.
    check(
        unsafe { libc::listen(fd.as_raw_fd(), backlog) },
        "listen",
        addr,
    )?;
    Ok(fd)
}

/// A non-blocking, close-on-exec TCP socket connecting to `addr`:
/// `(fd, true)` when the connection is already made, `(fd, false)` while
/// it is in progress (wait for the fd to become writable, then read
/// `take_error`).
pub fn connect_start(addr: SocketAddr) -> Result<(OwnedFd, bool)> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: plain syscall.
    let fd = check(unsafe { libc::socket(family, kind, 0) }, "socket", addr)?;
    // SAFETY: a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (storage, len) = sockaddr(&addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for this family.
    let ret = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &storage as *const _ as *const libc::sockaddr,
            len,
        )
    };
    if ret == 0 {
        return Ok((fd, true));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return Ok((fd, false));
    }
    Err(super::Error::new("connect", addr, e))
}

/// The pending error of a socket (SO_ERROR): `None` once a non-blocking
/// connect has succeeded, the errno when it failed.
pub fn take_error(fd: BorrowedFd<'_>) -> Result<Option<i32>> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd; `v` and `len` are the option's buffer and size.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    check(ret, "getsockopt", "SO_ERROR")?;
    Ok((v != 0).then_some(v))
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is valid; we fill the family's part.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in, sin) };
            (
                st,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write(&mut st as *mut _ as *mut libc::sockaddr_in6, sin6) };
            (
                st,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

/// A close-on-exec `AF_UNIX` `SOCK_SEQPACKET` pair (socketpair(2)): one
/// message per send, and a peer that is gone reads as end of file.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut sv = [-1 as libc::c_int; 2];
    // SAFETY: socketpair writes two fds into the array.
    check(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        },
        "socketpair",
        "",
    )?;
    // SAFETY: two new fds nobody else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
}

/// Room for the control message of one fd.
const CMSG_ROOM: usize = 64;

/// Send one byte and the fd `pass` (`SCM_RIGHTS`, unix(7)) on `sock`.
pub fn send_fd(sock: BorrowedFd<'_>, byte: u8, pass: BorrowedFd<'_>) -> Result<()> {
    let mut data = [byte];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; CMSG_ROOM];
    // SAFETY: a zeroed msghdr is valid; every pointer we set points into
    // live buffers of this frame, and CMSG_* stay within `control`.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as _;
        std::ptr::write_unaligned(
            libc::CMSG_DATA(cmsg).cast::<libc::c_int>(),
            pass.as_raw_fd(),
        );
        check(
            libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) as i64,
            "sendmsg",
            "SCM_RIGHTS",
        )?;
    }
    Ok(())
}

/// Receive one message from `sock`: its first byte and the first fd it
/// carried (close-on-exec), or `None` at end of file (the peer is gone).
/// Any further fd is closed unread.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<Option<(u8, Option<OwnedFd>)>> {
    let mut data = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u8; CMSG_ROOM];
    // SAFETY: as in send_fd; the kernel fills at most msg_controllen bytes
    // of `control` and we walk them with CMSG_NXTHDR.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = CMSG_ROOM as _;
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break n;
        };
        let n = check(n as i64, "recvmsg", "SCM_RIGHTS")?;
        let mut first: Option<OwnedFd> = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header)
                    / std::mem::size_of::<libc::c_int>();
                let at = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                for i in 0..count {
                    let fd = OwnedFd::from_raw_fd(std::ptr::read_unaligned(at.add(i)));
                    if first.is_none() {
                        first = Some(fd);
                    }
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        if n == 0 && first.is_none() {
            return Ok(None);
        }
        Ok(Some((data[0], first)))
    }
}

/// Send one byte, alone, on `sock` (a `SOCK_SEQPACKET` socket).
pub fn send_byte(sock: BorrowedFd<'_>, byte: u8) -> Result<()> {
    // SAFETY: a one-byte buffer that outlives the call.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
            libc::MSG_NOSIGNAL,
        )
    };
    check(n as i64, "send", "")?;
    Ok(())
}
