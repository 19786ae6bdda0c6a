//! Parsing a container config in a confined child process: the one parser
//! of untrusted configs, for the tree, `cairn cmd` and `cairn check`.
//!
//! Reading the file stays with the caller, which may be privileged (images
//! need not be readable by nobody): `openat2(RESOLVE_IN_ROOT)`, regular
//! file only, size-capped (`image::read_config`); that reads bytes but
//! interprets none. Interpreting them is the risky part. A `Parser` is a
//! forked child that confines itself at once (`sys::confine`: nobody, no
//! capability, no fd but its two pipes, no new fd, no fork, hard memory and
//! CPU limits, parent-death signal), then waits for the bytes on one pipe,
//! runs the bounded YAML pre-flight and the quire parse, writes the typed
//! config back as JSON on the other, and exits.
//!
//! The child is forked before the bytes exist so that `cairn cmd` can start
//! it first thing, while the process is small and cheap to fork, and let it
//! confine itself while the command reads its trusted configs.
//!
//! The child ran hostile input: what it sends back is taken as a claim
//! about what the file says, no more. Callers validate it themselves
//! (`validate::container` against the sandbox, or `validate::standalone`),
//! so a parser taken over by the file cannot grant its container anything
//! the sandbox does not allow. (The value checks of the parse itself, such
//! as normalized paths, are not repeated: the knot resolves every such
//! path beneath its root anyway.)

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde::{Deserialize, Serialize};

use crate::config::container::{self, ContainerConfig};
use crate::config::error::{ConfigError, Problems};
use crate::config::secrets::{self, SecretEnvironFile};
use crate::image::MAX_CONFIG_BYTES;
use crate::sys::confine::{self, Confinement};
use crate::sys::process::{self, Exit};

/// How long one parse may take (from handing over the bytes) before the
/// child is killed.
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
    /// The file `secret-environ-file` names (`parse_secret_environ_file`).
    Secrets(Box<Result<SecretEnvironFile, Problems>>),
    /// Confining itself failed, so it parsed nothing.
    NotConfined(String),
    Panicked,
}

/// A confined child waiting for one config to parse. Dropping it kills
/// and reaps the child (at once if it has already answered and exited).
pub struct Parser {
    pid: i32,
    /// Where the bytes go (closed once they are sent).
    bytes: Option<OwnedFd>,
    reply: OwnedFd,
    /// After `send`: when the answer is due, and whether sending worked.
    sent: Option<(Instant, Result<(), String>)>,
}

impl Parser {
    /// Fork the child; it confines itself and waits for the bytes.
    pub fn start() -> Result<Parser, String> {
        Parser::start_for(What::Container)
    }

    fn start_for(what: What) -> Result<Parser, String> {
        let start = |e: crate::sys::Error| format!("cannot start the config parser: {e}");
        let parent = process::getpid();
        // Compiled here, once per process, so the child only installs it.
        let filter = match crate::sys::seccomp::parser() {
            Ok(f) => Some(f),
            Err(e) if e.source.kind() == std::io::ErrorKind::Unsupported => None,
            Err(e) => return Err(start(e)),
        };
        let (bytes_r, bytes_w) = crate::sys::fd::pipe().map_err(start)?;
        let (reply_r, reply_w) = crate::sys::fd::pipe().map_err(start)?;
        match process::fork().map_err(start)? {
            None => {
                drop(bytes_w);
                drop(reply_r);
                child(parent, filter, bytes_r, reply_w, what)
            }
            Some(pid) => Ok(Parser {
                pid,
                bytes: Some(bytes_w),
                reply: reply_r,
                sent: None,
            }),
        }
    }

    /// Have the child parse `bytes` (the content of `file`, for messages).
    /// Not validated: the caller must validate the result.
    pub fn parse(&mut self, file: &str, bytes: &[u8]) -> Result<ContainerConfig, Problems> {
        self.send(bytes);
        self.receive(file)
    }

    /// The reply to what was sent, whatever it is.
    fn reply(&mut self, file: &str) -> Result<Reply, Problems> {
        let fail = |why: String| -> Problems { ConfigError::new(file, why).into() };
        let Some((deadline, sent)) = self.sent.take() else {
            return Err(fail("the config parser was given nothing to parse".into()));
        };
        let (reply, stop) = read_reply(&self.reply, deadline);
        if let Some(why) = stop.or_else(|| sent.err().filter(|_| reply.is_empty())) {
            return Err(fail(format!("parsing this file failed: {why}")));
        }
        serde_json::from_slice::<Reply>(&reply).map_err(|_| {
            let why = match self.reap() {
                Ok(exit) => died(exit),
                Err(e) => e.to_string(),
            };
            fail(format!("parsing this file failed: {why}"))
        })
    }

    /// Hand `bytes` to the child, which starts parsing them; `receive`
    /// gets the answer. In between the caller may do work of its own.
    pub fn send(&mut self, bytes: &[u8]) {
        let deadline = Instant::now() + TIMEOUT;
        let result = match self.bytes.take() {
            Some(to_child) => send(to_child, bytes, deadline),
            None => Err("the config parser was given a second file".into()),
        };
        self.sent = Some((deadline, result));
    }

    /// The answer to what `send` handed over (see `parse`).
    pub fn receive(&mut self, file: &str) -> Result<ContainerConfig, Problems> {
        let fail = |why: String| -> Problems { ConfigError::new(file, why).into() };
        let Some((deadline, sent)) = self.sent.take() else {
            return Err(fail("the config parser was given nothing to parse".into()));
        };
        // A child that failed to confine itself has exited and says why on
        // the reply pipe; a write to it then fails with EPIPE (SIGPIPE is
        // ignored in every process that parses).
        let (reply, stop) = read_reply(&self.reply, deadline);
        if let Some(why) = stop.or_else(|| sent.err().filter(|_| reply.is_empty())) {
            return Err(fail(format!("parsing this config failed: {why}")));
        }
        match serde_json::from_slice::<Reply>(&reply) {
            Ok(Reply::Parsed(result)) => (*result).map_err(|mut p| {
                // Every problem is about this file, whatever the child says.
                for e in &mut p.0 {
                    e.file = file.to_string();
                }
                p
            }),
            Ok(Reply::NotConfined(why)) => Err(fail(format!(
                "not parsed: the config parser could not drop its privileges: {why}"
            ))),
            Ok(Reply::Panicked) => Err(fail("the config parser panicked on this file".into())),
            Ok(Reply::Secrets(_)) => Err(fail(
                "the config parser answered for another kind of file".into(),
            )),
            Err(_) => {
                let why = match self.reap() {
                    Ok(exit) => died(exit),
                    Err(e) => e.to_string(),
                };
                Err(fail(format!("parsing this config failed: {why}")))
            }
        }
    }

    /// Kill (a no-op once it has exited) and reap the child.
    fn reap(&mut self) -> crate::sys::Result<Exit> {
        let pid = std::mem::replace(&mut self.pid, 0);
        if pid <= 0 {
            return Err(crate::sys::Error::new(
                "waitpid",
                "config parser",
                std::io::Error::from_raw_os_error(libc::ECHILD),
            ));
        }
        // Our own child, not yet reaped, so the pid is still its own.
        if let Err(e) = process::kill(pid, libc::SIGKILL) {
            log::debug!("config parser {pid}: {e}");
        }
        process::wait_for(pid)
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        self.bytes = None;
        if self.pid > 0
            && let Err(e) = self.reap()
        {
            log::debug!("config parser: {e}");
        }
    }
}

/// What a parser child parses.
#[derive(Clone, Copy)]
enum What {
    Container,
    SecretEnvironFile,
}

/// Parse the file a container config's `secret-environ-file` names (read
/// from the image as the config is) in a new confined child: it is as
/// untrusted as the config. Not validated: `validate::container` checks
/// its values with the config's.
pub fn parse_secret_environ_file(file: &str, bytes: &[u8]) -> Result<SecretEnvironFile, Problems> {
    let fail = |why: String| -> Problems { ConfigError::new(file, why).into() };
    let mut parser = Parser::start_for(What::SecretEnvironFile).map_err(fail)?;
    parser.send(bytes);
    match parser.reply(file)? {
        Reply::Secrets(result) => (*result)
            .map(|mut f| {
                f.shown = file.to_string();
                f
            })
            .map_err(|mut p| {
                for e in &mut p.0 {
                    e.file = file.to_string();
                }
                p
            }),
        Reply::NotConfined(why) => Err(fail(format!(
            "not parsed: the parser could not drop its privileges: {why}"
        ))),
        Reply::Panicked => Err(fail("the parser panicked on this file".into())),
        Reply::Parsed(_) => Err(fail("the parser answered for another kind of file".into())),
    }
}

/// Parse `bytes` in a new confined child (see `Parser`).
pub fn parse(file: &str, bytes: &[u8]) -> Result<ContainerConfig, Problems> {
    let mut parser = Parser::start().map_err(|e| Problems::from(ConfigError::new(file, e)))?;
    parser.parse(file, bytes)
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

/// Wait until `fd` is ready for `flags`, or say why not by `deadline`.
fn wait_ready(fd: &impl AsFd, flags: PollFlags, deadline: Instant) -> Result<(), String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("took longer than {} s; stopped", TIMEOUT.as_secs()));
        }
        let mut fds = [PollFd::new(fd.as_fd(), flags)];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE),
        ) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}

/// Write all of `bytes` to the child, then close the pipe (its EOF ends
/// the input). Non-blocking, so a stopped child cannot hold us past the
/// deadline.
fn send(to_child: OwnedFd, bytes: &[u8], deadline: Instant) -> Result<(), String> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    fcntl(&to_child, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| format!("sending the config to the parser: {e}"))?;
    let mut file = std::fs::File::from(to_child);
    let mut left = bytes;
    while !left.is_empty() {
        match file.write(left) {
            Ok(n) => left = &left[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                wait_ready(&file, PollFlags::POLLOUT, deadline)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("sending the config to the parser: {e}")),
        }
    }
    Ok(())
}

/// Read the child's answer until EOF, within the deadline and `MAX_REPLY`;
/// the second value says why reading stopped early.
fn read_reply(from_child: &OwnedFd, deadline: Instant) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Err(why) = wait_ready(from_child, PollFlags::POLLIN, deadline) {
            return (out, Some(why));
        }
        match nix::unistd::read(from_child, &mut chunk) {
            Ok(0) => return (out, None),
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > MAX_REPLY {
                    let why = format!("the parser sent more than {MAX_REPLY} bytes");
                    return (out, Some(why));
                }
            }
            Err(nix::Error::EINTR) => {}
            Err(e) => return (out, Some(format!("read: {e}"))),
        }
    }
}

/// A config that takes the parser and the serializer through their usual
/// paths (see `warm_up`).
const WARM_UP: &str = "kind: Daemon
variables:
  port: !TcpPort
  name: !Name
user-id: 1000
group-id: 1000
memory-limit: 32Mi
volumes:
  /tmp: !Tmpfs {size: 1Mi}
  /data: !Persistent {path: /data/x, mkdir: true, mode: 0o755}
  /shared: !Readonly /shared
  /state: !Statedir {}
executable: /bin/sh
arguments: [-c, 'exec app -p @{port}']
environ: {PATH: /bin}
tcp-ports: {'@{port}': {fd: 3}}
";

/// Parse and serialize a small config while the caller is still reading
/// its own configs. Right after fork(2) the child has none of the parser's
/// code mapped (file-backed pages are faulted in lazily) and shares every
/// heap page copy-on-write; in a VM each of those faults costs
/// microseconds. Taking them now, in parallel with the caller, keeps them
/// off the time to the answer.
fn warm_up() {
    let parsed = std::panic::catch_unwind(|| container::parse("", WARM_UP.as_bytes()));
    if let Ok(result) = parsed {
        let _ = serde_json::to_vec(&Reply::Parsed(Box::new(result)));
    }
}

/// The child: confine, read the bytes, parse, answer, exit.
fn child(
    parent: i32,
    filter: Option<&crate::sys::seccomp::Program>,
    bytes: OwnedFd,
    reply: OwnedFd,
    what: What,
) -> ! {
    // Quiet: the parent reports a panic with the file name instead.
    std::panic::set_hook(Box::new(|_| {}));
    let keep = [bytes.as_raw_fd(), reply.as_raw_fd()];
    let confinement = Confinement {
        uid: confine::NOBODY,
        gid: confine::NOGROUP,
        keep_fds: &keep,
        extra_address_space: EXTRA_ADDRESS_SPACE,
        cpu_seconds: CPU_SECONDS,
        parent,
        filter,
    };
    let answer = match confine::confine(&confinement) {
        Err(e) => Reply::NotConfined(e.to_string()),
        Ok(()) => {
            warm_up();
            let mut text = Vec::new();
            let read = std::fs::File::from(bytes)
                .take(MAX_CONFIG_BYTES as u64 + 1)
                .read_to_end(&mut text);
            if read.is_err() {
                // The parent went away or closed early: nobody to answer.
                process::exit_now(3);
            }
            // The file name only appears in messages, and the parent puts
            // its own in each (see `Parser::parse`).
            std::panic::catch_unwind(|| match what {
                What::Container => Reply::Parsed(Box::new(container::parse("", &text))),
                What::SecretEnvironFile => {
                    Reply::Secrets(Box::new(secrets::parse_environ_file("", &text)))
                }
            })
            .unwrap_or(Reply::Panicked)
        }
    };
    let mut out = std::fs::File::from(reply);
    let sent = serde_json::to_vec(&answer)
        .ok()
        .is_some_and(|data| out.write_all(&data).is_ok());
    // Close the pipe before exiting: the parent reads EOF now, not after
    // the kernel has torn down our address space.
    drop(out);
    process::exit_now(if sent { 0 } else { 3 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warm-up is meant to take the parser through its usual paths,
    /// which a config it refuses would not do.
    #[test]
    fn warm_up_config_parses() {
        let cfg = container::parse("warm-up", WARM_UP.as_bytes()).expect("valid");
        assert_eq!(cfg.volumes.len(), 4);
        assert_eq!(cfg.tcp_ports.len(), 1);
    }
}
