//! Pid 1 handed over to cairn-init once the workload runs: which knots do
//! it, and the exec with the fds and arguments cairn-init expects
//! (src/sys/mini_init/main.rs), the stdio log pump's among them.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::protocol::Context;
use crate::spec::InstanceSpec;

use super::{init, title};

/// Whether this knot hands pid 1 over to cairn-init.
pub(super) fn hands_over(spec: &InstanceSpec, ctx: &Context) -> bool {
    ctx.supervised && !spec.restart_process_only && ctx.init_fd.is_some()
}

/// Exec cairn-init with the fds it expects (3: status pipe, 4: instance
/// dir, 5: memory cgroup dir); returns only if that failed (why), with
/// every fd we had still usable.
pub(super) fn hand_over(
    init_fd: RawFd,
    workload: i32,
    spec: &InstanceSpec,
    ctx: &Context,
    inst: &OwnedFd,
    (oom_before, oom_dir): (u64, Option<&OwnedFd>),
    log: Option<&init::LogPump>,
) -> crate::sys::Error {
    let ready = ctx.ready;
    let steps = || -> crate::sys::Result<crate::sys::Error> {
        // Copies far above 3..5 first, so no dup2 below clobbers a source.
        let high = |fd: RawFd| crate::sys::fd::dup_above(fd, 100);
        let init = high(init_fd)?;
        let status = ready.map(high).transpose()?;
        let dir = high(inst.as_raw_fd())?;
        let oom = oom_dir.map(|d| high(d.as_raw_fd())).transpose()?;
        let sockets: Vec<OwnedFd> = ctx
            .sockets
            .iter()
            .map(|(_, fd)| high(*fd))
            .collect::<Result<_, _>>()?;
        // The stdio log pump: its pipe, the log and the log dir.
        let log_fds = match log {
            Some(l) => {
                let (file, dir, _) = l.log.parts();
                Some([
                    high(l.read.as_raw_fd())?,
                    high(file.as_raw_fd())?,
                    high(dir.as_raw_fd())?,
                ])
            }
            None => None,
        };
        crate::sys::fd::cloexec_from(3)?;
        for (src, dst) in [(status.as_ref(), 3), (Some(&dir), 4), (oom.as_ref(), 5)] {
            if let Some(src) = src {
                crate::sys::fd::dup2(src.as_raw_fd(), dst)?;
            }
        }
        // The listening sockets stay open in pid 1 too, at 6, 7, ...: a
        // restarted tree takes them back from there.
        for (i, sock) in sockets.iter().enumerate() {
            crate::sys::fd::dup2(sock.as_raw_fd(), 6 + i as RawFd)?;
        }
        let mut argv = vec![
            title::cmdline(title::INIT, &spec.name),
            workload.to_string(),
            u8::from(spec.interactive).to_string(),
            oom_before.to_string(),
            spec.service.stop_signal.to_string(),
        ];
        // Then the pump's: `PIPE,LOG,DIR,MAX_SIZE,FILES,TIMESTAMPS,NAMES`,
        // the name for the prefix and the log's file name.
        if let (Some(fds), Some(l)) = (&log_fds, log) {
            let first = 6 + sockets.len() as RawFd;
            for (i, fd) in fds.iter().enumerate() {
                crate::sys::fd::dup2(fd.as_raw_fd(), first + i as RawFd)?;
            }
            argv.push(format!(
                "{},{},{},{},{},{},{}",
                first,
                first + 1,
                first + 2,
                l.max_size,
                l.files,
                u8::from(l.timestamps),
                u8::from(!l.name.is_empty())
            ));
            argv.push(l.name.clone());
            argv.push(l.log.parts().2.to_string());
        }
        Ok(crate::sys::embedded::exec_init(init.as_fd(), &argv))
    };
    match steps() {
        Ok(e) | Err(e) => e,
    }
}
