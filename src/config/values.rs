//! Readers of values that several config files share: capability names
//! and IP addresses.

use std::net::IpAddr;

use super::error::ConfigError;
use super::reader::Value;

/// Capability names we know (`CAP_` prefix, as in capabilities(7)).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn read_capabilities(v: &Value) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for item in v.seq()? {
        let s = item.str()?.to_ascii_uppercase();
        let name = if s.starts_with("CAP_") {
            s
        } else {
            format!("CAP_{s}")
        };
        if !CAPABILITIES.contains(&name.as_str()) {
            return Err(item.err(format!("unknown capability {name:?}")));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// An IP address, as a string.
pub fn read_ip(v: &Value) -> Result<IpAddr, ConfigError> {
    let s = v.str()?;
    s.parse()
        .map_err(|_| v.err(format!("{s:?} is not an IP address")))
}

/// The signals a `stop-signal` may name, with their numbers (the same on
/// every architecture cairn runs on).
pub const STOP_SIGNALS: &[(&str, i32)] = &[
    ("TERM", libc::SIGTERM),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("HUP", libc::SIGHUP),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("WINCH", libc::SIGWINCH),
    ("KILL", libc::SIGKILL),
];

/// A signal by name, `QUIT` or `SIGQUIT`, one of `STOP_SIGNALS`.
pub fn read_stop_signal(v: &Value) -> Result<i32, ConfigError> {
    let s = v.string()?;
    let name = s.strip_prefix("SIG").unwrap_or(&s);
    STOP_SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, num)| *num)
        .ok_or_else(|| {
            let names: Vec<&str> = STOP_SIGNALS.iter().map(|(n, _)| *n).collect();
            v.err(format!(
                "{s:?} is not a stop signal; one of {}",
                names.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::CAPABILITIES;

    /// The names a config may use are exactly the ones the container build
    /// can keep (`sys::caps` parses them with the `caps` crate).
    #[test]
    fn known_capabilities_are_the_ones_the_build_can_keep() {
        let mut ours: Vec<String> = CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let mut theirs: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs);
    }
}
