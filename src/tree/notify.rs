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

impl super::run::Tree {
    /// Tell systemd we are ready, once no instance is settling: each one
    /// runs, backs off, has failed, or has outlived its setup deadline (a
    /// knot stuck in setup holds readiness up for setup-timeout at most).
    pub fn notify_ready(&mut self) {
        if self.ready_sent {
            return;
        }
        if self.instances.values().any(|i| i.life.settling()) {
            return;
        }
        self.ready_sent = true;
        if let Some(n) = &self.notify {
            n.send(&format!(
                "READY=1\nMAINPID={}\nSTATUS=supervising {} instances",
                crate::sys::process::getpid(),
                self.instances.len()
            ));
        }
    }

    /// Around a reload: RELOADING=1 now, READY=1 when it is done.
    pub fn notify_reloading(&mut self) {
        if let Some(n) = &self.notify {
            let usec = crate::sys::process::monotonic_ns() / 1000;
            n.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
        }
        self.ready_sent = false;
    }
}
