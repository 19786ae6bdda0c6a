//! The checks of `ready`, `watchdog-timeout` and `health-check` that
//! need more of the container config than the key itself (`validate`
//! runs them with the rest of `standalone`).

use super::container::ContainerConfig;
use super::error::{ConfigError, Problems};
use super::probe::{DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT, Probe};
use super::variables::{self, Activation, VarType};

/// `ready`: a literal port is a port; a `!Fd` is none of the fds the
/// workload gets otherwise (tcp-ports, systemd-activated ports).
pub(super) fn check(
    c: &ContainerConfig,
    p: &mut Problems,
    err: &dyn Fn(&str, String) -> ConfigError,
) {
    let line = c.lines.get("ready").copied().unwrap_or(0);
    match &c.ready {
        Some(Probe::Fd(fd)) => {
            let systemd = c
                .variables
                .values()
                .filter(|t| {
                    matches!(
                        t,
                        VarType::TcpPort {
                            activation: Activation::Systemd
                        }
                    )
                })
                .count() as u32;
            if let Some((k, _)) = c.tcp_ports.iter().find(|(_, t)| t.fd == *fd) {
                p.push(err("ready", format!("fd {fd} is the fd of tcp-ports.{k}")).at(line));
            } else if (3..3 + systemd).contains(fd) {
                p.push(
                    err(
                        "ready",
                        format!(
                            "fd {fd} is taken by a systemd-activated port (fds 3-{})",
                            2 + systemd
                        ),
                    )
                    .at(line),
                );
            }
        }
        Some(probe) => {
            if let Some(port) = probe.port().filter(|p| variables::references(p).is_empty())
                && let Err(m) = variables::parse_port(port)
            {
                p.push(err("ready.port", m).at(line));
            }
        }
        None => {}
    }
    // The watchdog is pinged on the notify socket: without one, nothing
    // could ever ping it.
    if c.watchdog_timeout.is_some() && c.ready != Some(Probe::Notify) {
        let line = c.lines.get("watchdog-timeout").copied().unwrap_or(0);
        p.push(
            err(
                "watchdog-timeout",
                "only with `ready: !Notify` (the workload pings with WATCHDOG=1 on its notify socket)"
                    .to_string(),
            )
            .at(line),
        );
    }
    health_check(c, p, err);
}

/// `health-check` and its numbers: a literal port is a port; the numbers
/// need the check; a timeout no longer than the interval.
fn health_check(c: &ContainerConfig, p: &mut Problems, err: &dyn Fn(&str, String) -> ConfigError) {
    let at = |key: &str| c.lines.get(key).copied().unwrap_or(0);
    match &c.health_check {
        None => {
            for (key, given) in [
                ("health-interval", c.health_interval.is_some()),
                ("health-timeout", c.health_timeout.is_some()),
                ("health-failures", c.health_failures.is_some()),
            ] {
                if given {
                    p.push(err(key, "has no effect without health-check".into()).at(at(key)));
                }
            }
        }
        Some(probe) => {
            if let Some(port) = probe.port().filter(|p| variables::references(p).is_empty())
                && let Err(m) = variables::parse_port(port)
            {
                p.push(err("health-check.port", m).at(at("health-check")));
            }
            let interval = c.health_interval.unwrap_or(DEFAULT_HEALTH_INTERVAL);
            let timeout = c.health_timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT);
            if timeout > interval {
                p.push(
                    err(
                        "health-timeout",
                        format!("{timeout} s is longer than health-interval ({interval} s)"),
                    )
                    .at(at("health-timeout").max(at("health-interval"))),
                );
            }
        }
    }
}
