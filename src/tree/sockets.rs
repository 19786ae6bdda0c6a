//! Listening sockets of `tcp-ports`: bound by the tree (it may bind
//! privileged ports), shared by every instance that declares the same host
//! and port (one per instance with `reuse-port`), kept across upgrades and
//! reloads, closed once no instance needs them. The exception: the
//! non-`external` ports of a `bridged-network` instance belong in its own
//! network namespace, so its knot opens them there
//! (`InstanceSpec::container_ports`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

use crate::spec::InstanceSpec;
use crate::sys::socket::{self, Listen};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SocketKey {
    pub host: IpAddr,
    pub port: u16,
    /// The instance owning it, for `reuse-port` (one socket each).
    pub owner: Option<String>,
}

#[derive(Default)]
pub struct Sockets {
    open: BTreeMap<SocketKey, OwnedFd>,
}

/// The socket keys an instance uses (the ports the tree opens), with the
/// fd each goes to.
pub fn keys(spec: &InstanceSpec) -> Vec<(SocketKey, u32, Listen)> {
    spec.tcp_ports
        .iter()
        .filter(|p| !spec.port_in_container(p))
        .map(|p| {
            let s = &p.settings;
            (
                SocketKey {
                    host: s.host,
                    port: p.port,
                    owner: s.reuse_port.then(|| spec.name.clone()),
                },
                s.fd,
                p.listen(),
            )
        })
        .collect()
}

impl Sockets {
    /// The (workload fd, our fd) pairs for `spec`, binding what is missing.
    pub fn for_spec(&mut self, spec: &InstanceSpec) -> Result<Vec<(u32, RawFd)>, String> {
        let mut out = Vec::new();
        for (key, target, listen) in keys(spec) {
            if !self.open.contains_key(&key) {
                let fd = socket::listen(&listen)
                    .map_err(|e| format!("tcp port {}: {e}", listen.port))?;
                log::info!(
                    "listening on {}:{} for {}",
                    listen.host,
                    listen.port,
                    spec.name
                );
                self.open.insert(key.clone(), fd);
            }
            if let Some(fd) = self.open.get(&key) {
                out.push((target, fd.as_raw_fd()));
            }
        }
        Ok(out)
    }

    /// Close every socket not in `used`.
    pub fn retain(&mut self, used: &BTreeSet<SocketKey>) {
        self.open.retain(|k, _| {
            let keep = used.contains(k);
            if !keep {
                log::info!(
                    "closing tcp port {}:{} (no instance uses it)",
                    k.host,
                    k.port
                );
            }
            keep
        });
    }

    pub fn contains(&self, key: &SocketKey) -> bool {
        self.open.contains_key(key)
    }

    /// Keep a socket taken back from an adopted knot.
    pub fn insert(&mut self, key: SocketKey, fd: OwnedFd) {
        self.open.entry(key).or_insert(fd);
    }

    /// For the upgrade hand-off: keys and fd numbers.
    pub fn handoff(&self) -> Vec<(SocketKey, i32)> {
        self.open
            .iter()
            .map(|(k, fd)| (k.clone(), fd.as_raw_fd()))
            .collect()
    }

    pub fn fds(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.open.values().map(|f| f.as_raw_fd())
    }

    /// Take back sockets after an upgrade.
    pub fn restore(&mut self, list: Vec<(SocketKey, i32)>) {
        for (k, fd) in list {
            match crate::sys::fs::adopt_fd(fd) {
                Ok(owned) => {
                    self.open.insert(k, owned);
                }
                Err(e) => log::error!("tcp port {}: lost across the upgrade: {e}", k.port),
            }
        }
    }
}
