//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET`.
//! `READY=1` once every instance of the first load has started, given up
//! or outlived its setup deadline, `RELOADING=1`/`READY=1` around reloads.
//! The pid never changes across upgrades, so `MAINPID` stays right.

use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notify {
    addr: SocketAddr,
    sock: UnixDatagram,
}

impl Notify {
    pub fn from_env() -> Option<Notify> {
        let path = std::env::var("NOTIFY_SOCKET").ok()?;
        let addr = if let Some(name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).ok()?
        } else {
            SocketAddr::from_pathname(&path).ok()?
        };
        let sock = UnixDatagram::unbound().ok()?;
        Some(Notify { addr, sock })
    }

    pub fn send(&self, msg: &str) {
        if let Err(e) = self.sock.send_to_addr(msg.as_bytes(), &self.addr) {
            log::warn!("sd_notify {msg:?}: {e}");
        }
    }
}
