//! `bridged-network`: each instance gets a veth pair. One end is `eth0` in
//! the container's network namespace, with the instance's address, `lo` up
//! and the default route; the other end, `cn<knot pid>`, is attached to the
//! sandbox's bridge in the namespace the knot was cloned from. Like lithos,
//! this runs iproute2's `ip` (and the sandbox's `after-setup-command`) from
//! the host's filesystem, before the container's root replaces it. The pair
//! goes away with the container's network namespace.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::spec::NetworkSpec;

/// Where `ip` is looked for (the host's, never the image's).
const IP_PATHS: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];
/// `PATH` of the commands we run here.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the network could not be set up; each names the command or file.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bridged-network needs iproute2's `ip` on the host (looked for {})", IP_PATHS.join(", "))]
    NoIp,
    #[error("{path}: {source}")]
    Netns {
        path: &'static str,
        source: std::io::Error,
    },
    /// Making our namespace's fd visible to `ip`, or moving between the
    /// namespaces: the call names itself.
    #[error("{0}")]
    Sys(#[from] crate::sys::Error),
    #[error("bridged-network: cannot read our pid from /proc/self")]
    OwnPid,
    #[error("bridged-network: {command}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("bridged-network: {command} failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("after-setup-command: {0}")]
    AfterSetup(Box<NetError>),
}

impl NetError {
    /// The errno of the system call that failed, if one did.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Netns { source, .. } | NetError::Spawn { source, .. } => {
                source.raw_os_error()
            }
            NetError::Sys(e) => e.errno(),
            NetError::AfterSetup(e) => e.errno(),
            NetError::NoIp | NetError::OwnPid | NetError::Failed { .. } => None,
        }
    }
}

/// A network setup failure fails the container's setup, errno kept.
impl From<NetError> for super::fs::SetupError {
    fn from(e: NetError) -> super::fs::SetupError {
        super::fs::SetupError {
            message: e.to_string(),
            errno: e.errno(),
            path: None,
        }
    }
}

/// The host-side interface name of a knot: at most 15 bytes, unique while
/// the knot lives (an old container's pair may still be going away when
/// the next instance starts, under another knot pid).
pub fn host_interface(knot_pid: u32) -> String {
    format!("cn{knot_pid}")
}

/// `after-setup-command` with `@{container_ip}` filled in.
pub fn after_setup_argv(net: &NetworkSpec) -> Vec<String> {
    let ip = net.ip.to_string();
    net.after_setup_command
        .iter()
        .map(|a| a.replace("@{container_ip}", &ip))
        .collect()
}

/// Set the network up; we are in the container's (new, empty) network
/// namespace and come back to it whatever happens. `host_netns` is an fd of
/// the namespace that holds the bridge.
pub fn setup(net: &NetworkSpec, host_netns: RawFd) -> Result<(), NetError> {
    let ip = IP_PATHS
        .iter()
        .copied()
        .find(|p| Path::new(p).is_file())
        .ok_or(NetError::NoIp)?;
    const OWN: &str = "/proc/self/ns/net";
    let own: OwnedFd = std::fs::File::open(OWN)
        .map_err(|source| NetError::Netns { path: OWN, source })?
        .into();
    // `ip` finds our namespace through its own /proc/self/fd.
    crate::sys::fd::clear_cloexec(own.as_raw_fd())?;
    let own_path = format!("/proc/self/fd/{}", own.as_raw_fd());
    let knot_pid: u32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .ok_or(NetError::OwnPid)?;
    let host_if = host_interface(knot_pid);

    crate::sys::namespace::enter_netns(host_netns)?;
    let host_side = run(
        ip,
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &own_path,
        ],
    )
    .and_then(|()| run(ip, &["link", "set", &host_if, "master", &net.bridge, "up"]));
    // Nothing else may run in the host's namespace: back first, then
    // report. If the pair was made, it dies with our namespace.
    crate::sys::namespace::enter_netns(own.as_raw_fd())?;
    host_side?;

    let family = if net.ip.is_ipv6() { "-6" } else { "-4" };
    let addr = format!("{}/{}", net.ip, net.prefix);
    run(ip, &["link", "set", "lo", "up"])?;
    run(ip, &[family, "addr", "add", &addr, "dev", "eth0"])?;
    run(ip, &["link", "set", "eth0", "up"])?;
    if let Some(gw) = net.gateway {
        let fam = if gw.is_ipv6() { "-6" } else { "-4" };
        run(
            ip,
            &[fam, "route", "add", "default", "via", &gw.to_string()],
        )?;
    }
    let argv = after_setup_argv(net);
    if let Some((prog, args)) = argv.split_first() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(prog, &args).map_err(|e| NetError::AfterSetup(Box::new(e)))?;
    }
    Ok(())
}

/// Run `prog args` with a clean environment and wait; a failure carries
/// its status and stderr.
fn run(prog: &str, args: &[&str]) -> Result<(), NetError> {
    let command = format!("`{prog} {}`", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(source) => return Err(NetError::Spawn { command, source }),
    };
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Failed {
        command,
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arguments() {
        assert_eq!(host_interface(4194304), "cn4194304");
        assert!(host_interface(u32::MAX).len() <= 15);
        let net = NetworkSpec {
            bridge: "br0".into(),
            ip: "10.71.0.2".parse().unwrap(),
            prefix: 16,
            gateway: None,
            after_setup_command: vec![
                "/usr/bin/arping".into(),
                "-U".into(),
                "@{container_ip}".into(),
                "x@{container_ip}y".into(),
            ],
        };
        assert_eq!(
            after_setup_argv(&net),
            ["/usr/bin/arping", "-U", "10.71.0.2", "x10.71.0.2y"]
        );
    }

    #[test]
    fn errors_name_the_command_and_keep_the_errno() {
        let e = run("/nonexistent/arping", &["-U", "10.0.0.1"]).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(
            e.to_string()
                .starts_with("bridged-network: `/nonexistent/arping -U 10.0.0.1`: "),
            "{e}"
        );
        let e = NetError::AfterSetup(Box::new(e));
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(
            e.to_string()
                .starts_with("after-setup-command: bridged-network: `/nonexistent/arping")
        );
        let e = run("/bin/sh", &["-c", "echo no bridge >&2; exit 3"]).unwrap_err();
        assert_eq!(e.errno(), None);
        assert_eq!(
            e.to_string(),
            "bridged-network: `/bin/sh -c echo no bridge >&2; exit 3` failed (exit status: 3): no bridge"
        );
    }
}
