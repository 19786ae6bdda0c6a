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
pub fn setup(net: &NetworkSpec, host_netns: RawFd) -> Result<(), String> {
    let ip = IP_PATHS
        .iter()
        .copied()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| {
            format!(
                "bridged-network needs iproute2's `ip` on the host (looked for {})",
                IP_PATHS.join(", ")
            )
        })?;
    let own: OwnedFd = std::fs::File::open("/proc/self/ns/net")
        .map_err(|e| format!("/proc/self/ns/net: {e}"))?
        .into();
    // `ip` finds our namespace through its own /proc/self/fd.
    crate::sys::fd::clear_cloexec(own.as_raw_fd()).map_err(|e| e.to_string())?;
    let own_path = format!("/proc/self/fd/{}", own.as_raw_fd());
    let knot_pid: u32 = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str().and_then(|s| s.parse().ok()))
        .ok_or("bridged-network: cannot read our pid from /proc/self")?;
    let host_if = host_interface(knot_pid);

    crate::sys::namespace::enter_netns(host_netns).map_err(|e| e.to_string())?;
    let host_side = run(
        ip,
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &own_path,
        ],
    )
    .and_then(|()| run(ip, &["link", "set", &host_if, "master", &net.bridge, "up"]));
    // Nothing else may run in the host's namespace: back first, then
    // report. If the pair was made, it dies with our namespace.
    crate::sys::namespace::enter_netns(own.as_raw_fd()).map_err(|e| e.to_string())?;
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
        run(prog, &args).map_err(|e| format!("after-setup-command: {e}"))?;
    }
    Ok(())
}

/// Run `prog args` with a clean environment and wait; a failure carries
/// its status and stderr.
fn run(prog: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("`{prog} {}`", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .env_clear()
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("bridged-network: {shown}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "bridged-network: {shown} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    ))
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
}
