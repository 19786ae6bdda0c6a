//! Recovery after the tree died without a hand-off (kill -9, a crash that
//! could not re-exec, a reboot of the service): running instances are
//! found from the instance state dirs (the knot records its host pid, start
//! time and config hash in `<instance>/knot`) and from the tree's cgroup
//! subtree, verified by pid and start time, and adopted. Nothing is started
//! before this is done, so nothing runs twice.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::{ExitRecord, KNOT_FILE, KnotRecord, SETUP_FAILED};
use crate::spec::InstanceSpec;
use crate::sys::hostfs::HostDir;
use crate::sys::{pidfd, proc};

use super::hostdirs;
use super::instance::Instance;
use super::lifecycle::Life;
use super::supervisor::Tree;

/// Set by the crash handler's re-exec, for the log.
pub const RECOVER_ENV: &str = "CAIRN_RECOVERED";

/// The `knot` file of an instance dir, if root alone could have written
/// it (`hostdirs::record`): a forged one must never make us adopt, and
/// later kill, a process that is not a knot.
fn read_knot_file(dir: &HostDir) -> Option<KnotRecord> {
    let text = String::from_utf8(hostdirs::record(dir, KNOT_FILE)?).ok()?;
    KnotRecord::parse(&text)
}

/// The exit record of a knot that died while no tree ran.
fn read_exit(dir: &HostDir) -> Option<(ExitRecord, Option<String>)> {
    match hostdirs::exit_record(dir) {
        (Some(r), e) => Some((r, e)),
        (None, Some(e)) => Some((
            ExitRecord {
                status: SETUP_FAILED,
                signal: None,
                oom_killed: false,
                failure: None,
            },
            Some(e),
        )),
        (None, None) => None,
    }
}

/// `PROCESS.N` → (process, N); `cmd.*` leaves belong to `cairn cmd`.
fn parse_leaf(leaf: &str) -> Option<(String, u32)> {
    if leaf.starts_with("cmd.") {
        return None;
    }
    let (p, n) = leaf.rsplit_once('.')?;
    Some((p.to_string(), n.parse().ok()?))
}

/// The pid-namespace init among `pids` (NSpid ends in 1): the knot.
fn find_knot(pids: &[i32]) -> Option<i32> {
    pids.iter().copied().find(|p| {
        crate::sys::proc::read_text(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                proc::status_field(&s, "NSpid").map(|v| v.split_whitespace().last() == Some("1"))
            })
            .unwrap_or(false)
    })
}

impl Tree {
    pub fn recover(&mut self) {
        let mut found: BTreeMap<String, KnotRecord> = BTreeMap::new();
        // Names come from listing the state dir; each dir and file is then
        // opened from the checked state dir's fd, never through a symlink.
        let state = match HostDir::open(&self.master.state_dir, false) {
            Ok(d) => d,
            Err(e) => {
                log::error!("state-dir: {e}; no instance adopted from it");
                None
            }
        };
        if let Some(state) = &state
            && let Ok(sandboxes) = std::fs::read_dir(state.path())
        {
            for sb in sandboxes.flatten() {
                let Some(sandbox) = sb.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let Ok(leaves) = std::fs::read_dir(sb.path()) else {
                    continue;
                };
                for l in leaves.flatten() {
                    let Some(leaf) = l.file_name().to_str().map(str::to_string) else {
                        continue;
                    };
                    if parse_leaf(&leaf).is_none() {
                        continue;
                    }
                    let Some(dir) = hostdirs::instance_in(state, &sandbox, &leaf) else {
                        continue;
                    };
                    if let Some(f) = read_knot_file(&dir) {
                        let name = format!("{sandbox}/{leaf}");
                        // A knot is the init of its own pid namespace: a
                        // process with the recorded start time that is not
                        // one is not ours.
                        if proc::start_time(f.pid) == Some(f.ticks) && find_knot(&[f.pid]).is_some()
                        {
                            found.insert(name, f);
                        } else if let Some(exit) = read_exit(&dir) {
                            // It died while no tree ran: report that death
                            // when the instance is started again.
                            self.died_away.insert(name, exit);
                        }
                    }
                }
            }
        }
        if let Some(cg) = self.io.cgroups.clone() {
            for leaf in cg.leaves() {
                let Some((sandbox, rest)) = leaf.split_once(':') else {
                    continue;
                };
                if parse_leaf(rest).is_none() {
                    continue;
                }
                let name = format!("{sandbox}/{rest}");
                let pids = cg.procs(&leaf);
                if let Some(f) = found.get(&name) {
                    if !pids.contains(&f.pid) && !pids.is_empty() {
                        log::warn!(
                            "{name}: knot {} is not in its cgroup; trusting the cgroup",
                            f.pid
                        );
                    } else {
                        continue;
                    }
                }
                if let Some(pid) = find_knot(&pids)
                    && let Some(ticks) = proc::start_time(pid)
                {
                    let file = state
                        .as_ref()
                        .and_then(|s| hostdirs::instance_in(s, sandbox, rest))
                        .and_then(|d| read_knot_file(&d));
                    found.insert(
                        name,
                        KnotRecord {
                            pid,
                            ticks,
                            hash: file.as_ref().map(|f| f.hash.clone()).unwrap_or_default(),
                            sockets: Vec::new(),
                            policy: file.and_then(|f| f.policy),
                        },
                    );
                }
            }
        }
        for (name, f) in found {
            // Already known (restored from a hand-off that was torn after
            // it): never twice.
            if !self.instances.contains_key(&name) {
                self.adopt(&name, f);
            }
        }
    }

    fn adopt(&mut self, name: &str, mut f: KnotRecord) {
        let Some((sandbox, leaf)) = name.split_once('/') else {
            return;
        };
        let Some((process, index)) = parse_leaf(leaf) else {
            return;
        };
        let mut spec: InstanceSpec = InstanceSpec::placeholder(sandbox, &process, index);
        spec.host.state_dir = self.master.state_dir.join(sandbox).join(leaf);
        spec.host.cgroup = self
            .io
            .cgroups
            .as_ref()
            .map(|_| format!("{sandbox}:{leaf}"));
        // Until a config names it again (and for good when none does), it
        // is stopped and restarted as its config said when it started.
        if let Some(p) = f.policy.take() {
            spec.restart_timeout_ms = p.restart_timeout_ms;
            spec.kill_timeout_ms = p.kill_timeout_ms;
            spec.normal_exit_codes = p.normal_exit_codes;
        }
        let token = self.new_token();
        let sockets = std::mem::take(&mut f.sockets);
        let mut inst = Instance::new(Arc::new(spec), f.hash.clone(), token);
        inst.life = Life::running(Instant::now());
        inst.spawns = 1;
        inst.pid = Some(f.pid);
        inst.start_ticks = Some(f.ticks);
        if !pidfd::is_our_child(f.pid) {
            match pidfd::open(f.pid) {
                Ok(fd) => inst.pidfd = Some(fd),
                Err(e) => {
                    log::error!("{name}: cannot watch knot {}: {e}; not adopted", f.pid);
                    return;
                }
            }
        }
        self.reclaim_sockets(name, &inst, &sockets);
        log::info!("{name}: adopted running knot {}", f.pid);
        self.watch(&mut inst);
        self.by_pid.insert(f.pid, name.to_string());
        self.by_token.insert(token, name.to_string());
        self.instances.insert(name.to_string(), inst);
        // Adopted running: its health check (if its config has one) runs.
        self.start_health(name);
        self.dirty = true;
    }
}

impl Tree {
    /// Take back the listening sockets an adopted knot holds, unless we
    /// have them already (after a crash or kill -9 the tree lost its copies,
    /// and binding again would fail while the knots hold the port).
    fn reclaim_sockets(
        &mut self,
        name: &str,
        inst: &Instance,
        sockets: &[(i32, IpAddr, u16, Option<String>)],
    ) {
        if sockets.is_empty() {
            return;
        }
        let Some(pid) = inst.pid else { return };
        let own;
        let pfd = match &inst.pidfd {
            Some(p) => p,
            None => match pidfd::open(pid) {
                Ok(p) => {
                    own = p;
                    &own
                }
                Err(e) => {
                    log::error!("{name}: cannot reach knot {pid} for its sockets: {e}");
                    return;
                }
            },
        };
        for (fd, host, port, owner) in sockets {
            let key = super::sockets::SocketKey {
                host: *host,
                port: *port,
                owner: owner.clone(),
            };
            if self.io.sockets.contains(&key) {
                continue;
            }
            match pidfd::get_fd(std::os::fd::AsFd::as_fd(pfd), *fd) {
                Ok(sock) => {
                    log::info!("{name}: took back the socket of {host}:{port}");
                    self.io.sockets.insert(key, sock);
                }
                Err(e) => log::error!("{name}: cannot take back the socket of {host}:{port}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves() {
        assert_eq!(parse_leaf("web.0"), Some(("web".into(), 0)));
        assert_eq!(parse_leaf("my-app.12"), Some(("my-app".into(), 12)));
        assert_eq!(parse_leaf("cmd.web.1234"), None);
        assert_eq!(parse_leaf("web"), None);
        assert_eq!(parse_leaf("web.x"), None);
    }
}
