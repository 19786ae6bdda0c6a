//! Parsing a container config in a confined child process: the one parser
//! of untrusted configs, for the tree, `cairn cmd` and `cairn check`.
//!
//! Reading the file stays with the caller, which may be privileged (images
//! need not be readable by nobody): `openat2(RESOLVE_IN_ROOT)`, regular
//! file only, size-capped (`image::read_config`); that reads bytes but
//! interprets none. Interpreting them is the risky part, so the caller
//! forks a child that confines itself first (`sys::confine`: nobody, no
//! capability, no fd but its result pipe, no new fd, no fork, hard memory
//! and CPU limits, parent-death signal), then runs the bounded YAML
//! pre-flight and the quire parse and writes the typed config back as one
//! JSON document. The bytes reach the child through fork's copy of memory,
//! so it needs no fd into the image or anywhere else.
//!
//! The child ran hostile input: what it sends back is taken as a claim
//! about what the file says, no more. Callers validate it themselves
//! (`validate::container` against the sandbox, or `validate::standalone`),
//! so a parser taken over by the file can ask for nothing the file could
//! not have asked for in plain text.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

use crate::config::container::{self, ContainerConfig};
use crate::config::error::{ConfigError, Problems};
use crate::sys::confine::{self, Confinement};
use crate::sys::process::{self, Exit};

/// How long one parse may take before the child is killed.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Address space the child may grow by over what it inherits: the
/// pre-flight bounds the AST to 100,000 nodes, far below this.
const EXTRA_ADDRESS_SPACE: u64 = 512 << 20;
/// CPU seconds the child may use (the wall-clock timeout usually ends it
/// first; this holds when the caller is stopped).
const CPU_SECONDS: u64 = 10;
/// Largest answer taken from the child. A 1 MiB file whose every byte
/// comes back escaped, or as its own error, stays below this.
const MAX_REPLY: usize = 64 << 20;

/// The child's answer.
#[derive(Serialize, Deserialize)]
enum Reply {
    Parsed(Box<Result<ContainerConfig, Problems>>),
    /// Confining itself failed, so it parsed nothing.
    NotConfined(String),
    Panicked,
}

/// Parse the container config `bytes` (the content of `file`, for messages)
/// in a confined child. Not validated: the caller must validate the result.
pub fn parse(file: &str, bytes: &[u8]) -> Result<ContainerConfig, Problems> {
    let fail = |why: String| -> Problems { ConfigError::new(file, why).into() };
    let parent = process::getpid();
    let (r, w) =
        process::pipe().map_err(|e| fail(format!("cannot start the config parser: {e}")))?;
    let pid = match process::fork() {
        Ok(None) => {
            drop(r);
            child(file, bytes, parent, w);
        }
        Ok(Some(pid)) => pid,
        Err(e) => return Err(fail(format!("cannot start the config parser: {e}"))),
    };
    drop(w);
    let (reply, stop) = read_reply(r);
    if stop.is_some() {
        // Our own child; if it is already dead, wait_for reaps it below.
        if let Err(e) = process::kill(pid, libc::SIGKILL) {
            log::debug!("config parser {pid}: {e}");
        }
    }
    let exit =
        process::wait_for(pid).map_err(|e| fail(format!("waiting for the config parser: {e}")))?;
    if let Some(why) = stop {
        return Err(fail(format!("parsing this config failed: {why}")));
    }
    match serde_json::from_slice::<Reply>(&reply) {
        Ok(Reply::Parsed(result)) => *result,
        Ok(Reply::NotConfined(why)) => Err(fail(format!(
            "not parsed: the config parser could not drop its privileges: {why}"
        ))),
        Ok(Reply::Panicked) => Err(fail("the config parser panicked on this file".into())),
        Err(_) => Err(fail(format!("parsing this config failed: {}", died(exit)))),
    }
}

/// Why a child that sent no usable answer ended.
fn died(exit: Exit) -> String {
    match exit {
        Exit::Signal(libc::SIGXCPU) | Exit::Signal(libc::SIGKILL) => {
            "the parser ran out of CPU time or was killed".into()
        }
        Exit::Signal(s) => {
            format!("the parser crashed (signal {s}); the file is probably hostile")
        }
        Exit::Code(c) => {
            format!("the parser failed (exit {c}); the file is probably hostile or too large")
        }
    }
}

/// Read the child's answer until EOF, within `TIMEOUT` and `MAX_REPLY`;
/// the second value says why reading stopped early.
fn read_reply(r: OwnedFd) -> (Vec<u8>, Option<String>) {
    let mut file = std::fs::File::from(r);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let why = format!("took longer than {} s; stopped", TIMEOUT.as_secs());
            return (out, Some(why));
        }
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
        ) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return (out, Some(format!("poll: {e}"))),
        }
        match file.read(&mut chunk) {
            Ok(0) => return (out, None),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > MAX_REPLY {
                    let why = format!("the parser sent more than {MAX_REPLY} bytes");
                    return (out, Some(why));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (out, Some(format!("read: {e}"))),
        }
    }
}

/// The child: confine, parse, answer, exit. Never returns.
fn child(file: &str, bytes: &[u8], parent: i32, w: OwnedFd) -> ! {
    // Quiet: the parent reports a panic with the file name instead.
    std::panic::set_hook(Box::new(|_| {}));
    let keep = [w.as_raw_fd()];
    let confinement = Confinement {
        uid: confine::NOBODY,
        gid: confine::NOGROUP,
        keep_fds: &keep,
        extra_address_space: EXTRA_ADDRESS_SPACE,
        cpu_seconds: CPU_SECONDS,
        parent,
    };
    let reply = match confine::confine(&confinement) {
        Err(e) => Reply::NotConfined(e.to_string()),
        Ok(()) => std::panic::catch_unwind(|| container::parse(file, bytes))
            .map(|r| Reply::Parsed(Box::new(r)))
            .unwrap_or(Reply::Panicked),
    };
    let sent = serde_json::to_vec(&reply)
        .ok()
        .is_some_and(|data| std::fs::File::from(w).write_all(&data).is_ok());
    process::exit_now(if sent { 0 } else { 3 })
}
