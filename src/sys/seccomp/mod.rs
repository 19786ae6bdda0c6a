//! System call filters (seccomp(2), `SECCOMP_SET_MODE_FILTER`).
//!
//! cairn's default profile is a table, one line per system call
//! (`table.rs`), modelled on Docker's default profile: what a process
//! without capabilities needs is allowed; what only a capability makes
//! useful opens when the container keeps that capability; the kernel
//! surfaces containers have no business with (new namespaces, mounts,
//! keyrings, BPF, perf, io_uring, userfaultfd, kexec and modules, clock
//! setting, file handles, exotic socket families) are refused with EPERM.
//! clone3(2) answers ENOSYS, so that libc falls back to clone(2), whose
//! flags a filter can read; numbers the table does not know (newer
//! system calls, the x32 ABI) answer ENOSYS too, and calls of another
//! architecture (i386 through int 0x80) kill the process.
//!
//! A profile compiles (`compile`) to a small classic-BPF program (`bpf`)
//! once; the tree keeps one per distinct profile (`Cache`) and every knot
//! it forks inherits it; the workload installs it (`install`) as its last
//! step before execve.

mod bpf;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

pub use bpf::Insn;
use bpf::Leaf;

use super::{Error, Result, check};

/// What a profile does with what it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Mode {
    /// Refuse (EPERM, ENOSYS, or kill for another architecture).
    Enforce,
    /// Let everything through, and have the kernel log each call that
    /// `Enforce` would refuse (SECCOMP_RET_LOG: an audit record of type
    /// 1326, in the kernel log or auditd's log).
    Log,
}

/// Everything a program depends on; equal profiles compile to equal
/// programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Profile {
    pub mode: Mode,
    /// The sandbox's `allow-user-namespaces`: clone/unshare with namespace
    /// flags, setns, and the mount family (which then only work on
    /// namespaces the workload made itself).
    pub user_namespaces: bool,
    /// The capabilities the process keeps: bit N is capability N.
    pub caps: u64,
    /// The config parser's profile (see `parser`).
    pub parser: bool,
}

impl Profile {
    /// The profile of a workload.
    pub fn workload(mode: Mode, user_namespaces: bool, caps: &[String]) -> Result<Profile> {
        Ok(Profile {
            mode,
            user_namespaces,
            caps: cap_mask(caps)?,
            parser: false,
        })
    }
}

/// A compiled profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    profile: Profile,
    insns: Vec<Insn>,
}

impl Program {
    pub fn profile(&self) -> &Profile {
        &self.profile
    }
    pub fn len(&self) -> usize {
        self.insns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

/// What the table says about one system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Allow,
    /// Refused whatever the container keeps.
    Deny,
    /// Allowed to a container that keeps one of these capabilities.
    Caps(u64),
    /// Allowed with `allow-user-namespaces`, or one of these capabilities.
    UserNs(u64),
    /// clone(2): without namespace flags (threads, fork).
    Clone,
    /// clone3(2): ENOSYS (its flags are in memory a filter cannot read).
    Clone3,
    /// unshare(2): without namespace flags.
    Unshare,
    /// socket(2), socketpair(2): the families in `FAMILIES` only.
    Socket,
    /// personality(2): the values in `PERSONAS` only.
    Personality,
    /// ioctl(2): not TIOCSTI or TIOCLINUX.
    Ioctl,
}

/// Capability bits (linux/capability.h), for the table.
mod cap {
    pub const DAC_READ_SEARCH: u64 = 1 << 2;
    pub const SYS_MODULE: u64 = 1 << 16;
    pub const SYS_RAWIO: u64 = 1 << 17;
    pub const SYS_CHROOT: u64 = 1 << 18;
    pub const SYS_PTRACE: u64 = 1 << 19;
    pub const SYS_PACCT: u64 = 1 << 20;
    pub const SYS_ADMIN: u64 = 1 << 21;
    pub const SYS_BOOT: u64 = 1 << 22;
    pub const SYS_NICE: u64 = 1 << 23;
    pub const SYS_TIME: u64 = 1 << 25;
    pub const SYS_TTY_CONFIG: u64 = 1 << 26;
    pub const SYSLOG: u64 = 1 << 34;
    pub const PERFMON: u64 = 1 << 38;
    pub const BPF: u64 = 1 << 39;
}

/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
const CLONE_NEW_ANY: u32 = 0x7e02_0000;
/// CLONE_NEWTIME (unshare only: in clone's flags that bit is the signal).
const CLONE_NEWTIME: u32 = 0x80;
const CLONE_THREAD: u32 = 0x0001_0000;
/// AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET (which needs
/// CAP_NET_RAW). Not AF_VSOCK (the hypervisor), AF_ALG (the kernel's
/// crypto API), nor the rarely used families whose code the kernel loads
/// on demand (Bluetooth, RDS, TIPC, ...), where many holes were found.
const FAMILIES: &[u32] = &[1, 2, 10, 16, 17];
/// PER_LINUX, PER_LINUX32, UNAME26 alone and with PER_LINUX32, and the
/// query 0xffffffff (as Docker): not ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC
/// and the other flags that weaken the process's own hardening.
const PERSONAS: &[u32] = &[0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];
/// TIOCSTI (push input into a terminal: an interactive command's
/// terminal is the caller's) and TIOCLINUX (the console's selection).
const IOCTLS_REFUSED: &[u32] = &[0x5412, 0x541c];

/// What the config parser may not do on top of the default profile: run
/// programs, make processes (threads stay), signal, reach the network or
/// change files. It only reads files and writes to a pipe.
const PARSER_REFUSED: &[&str] = &[
    "execve",
    "execveat",
    "fork",
    "vfork",
    "unshare",
    "kill",
    "pidfd_send_signal",
    "pidfd_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "mknod",
    "mknodat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "truncate",
    "creat",
];

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_LOG: u32 = 0x7ffc_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// AUDIT_ARCH_X86_64 (linux/audit.h).
#[cfg(target_arch = "x86_64")]
const ARCH: (u32, &[(u32, &str, Rule)]) = (0xc000_003e, table::X86_64);

/// The actions of a mode: (refused, unknown number, other architecture).
fn actions(mode: Mode) -> (u32, u32, u32) {
    match mode {
        Mode::Enforce => (
            RET_ERRNO | libc::EPERM as u32,
            RET_ERRNO | libc::ENOSYS as u32,
            RET_KILL_PROCESS,
        ),
        Mode::Log => (RET_LOG, RET_LOG, RET_LOG),
    }
}

/// What one table line becomes under a profile.
fn leaf(name: &str, rule: Rule, p: &Profile) -> Leaf {
    let (deny, nosys, _) = actions(p.mode);
    let allow = RET_ALLOW;
    let has = |mask: u64| p.caps & mask != 0;
    let yes = |ok: bool| Leaf::Ret(if ok { allow } else { deny });
    let flags = |forbidden: u32, required: u32| Leaf::Bits {
        arg: 0,
        forbidden,
        required,
        allow,
        deny,
    };
    if p.parser {
        if PARSER_REFUSED.contains(&name) {
            return Leaf::Ret(deny);
        }
        if rule == Rule::Clone {
            return flags(CLONE_NEW_ANY, CLONE_THREAD);
        }
    }
    match rule {
        Rule::Allow => Leaf::Ret(allow),
        Rule::Deny => Leaf::Ret(deny),
        Rule::Caps(m) => yes(has(m)),
        Rule::UserNs(m) => yes(p.user_namespaces || has(m)),
        Rule::Clone if p.user_namespaces || has(cap::SYS_ADMIN) => Leaf::Ret(allow),
        Rule::Clone => flags(CLONE_NEW_ANY, 0),
        Rule::Unshare if p.user_namespaces || has(cap::SYS_ADMIN) => Leaf::Ret(allow),
        Rule::Unshare => flags(CLONE_NEW_ANY | CLONE_NEWTIME, 0),
        Rule::Clone3 if has(cap::SYS_ADMIN) => Leaf::Ret(allow),
        Rule::Clone3 => Leaf::Ret(nosys),
        Rule::Socket => Leaf::OneOf {
            arg: 0,
            values: FAMILIES,
            allow,
            deny,
        },
        Rule::Personality => Leaf::OneOf {
            arg: 0,
            values: PERSONAS,
            allow,
            deny,
        },
        Rule::Ioctl if has(cap::SYS_ADMIN) => Leaf::Ret(allow),
        Rule::Ioctl => Leaf::NoneOf {
            arg: 1,
            values: IOCTLS_REFUSED,
            allow,
            deny,
        },
    }
}

fn unsupported(what: String) -> Error {
    Error::new(
        "seccomp",
        what,
        std::io::Error::from(std::io::ErrorKind::Unsupported),
    )
}

/// Compile a profile. Done once per distinct profile (see `Cache`).
pub fn compile(p: &Profile) -> Result<Program> {
    #[cfg(target_arch = "x86_64")]
    {
        let (arch, table) = ARCH;
        let (_, nosys, bad_arch) = actions(p.mode);
        let leaves: Vec<(u32, Leaf)> = table
            .iter()
            .map(|&(nr, name, rule)| (nr, leaf(name, rule, p)))
            .collect();
        let insns = bpf::program(arch, bad_arch, &leaves, nosys).map_err(|n| {
            unsupported(format!("a filter of {n} instructions (the limit is 4096)"))
        })?;
        Ok(Program { profile: *p, insns })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, leaf);
        Err(unsupported(format!(
            "no system call table for {} (seccomp: unconfined runs without a filter)",
            std::env::consts::ARCH
        )))
    }
}

/// Install `p` on the calling thread, for good: it survives execve and is
/// inherited by every child. Sets no_new_privs first (the kernel requires
/// it, or CAP_SYS_ADMIN, for an unprivileged process to install a filter).
pub fn install(p: &Program) -> Result<()> {
    super::process::set_no_new_privs()?;
    let len = u16::try_from(p.insns.len())
        .map_err(|_| unsupported(format!("a filter of {} instructions", p.insns.len())))?;
    let prog = libc::sock_fprog {
        len,
        filter: p.insns.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `Insn` has the layout of `struct sock_filter` (repr(C): u16,
    // u8, u8, u32); the kernel copies the program before returning and
    // never writes to it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    check(ret, "seccomp", "install the system call filter")?;
    Ok(())
}

/// The capability bits of `names` (`CAP_...`, as in the spec).
pub fn cap_mask(names: &[String]) -> Result<u64> {
    let mut mask = 0u64;
    for n in names {
        let cap: ::caps::Capability = n.parse().map_err(|_| {
            Error::new(
                "capability",
                n,
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })?;
        mask |= 1u64 << cap.index();
    }
    Ok(mask)
}

/// Programs by profile: each compiled the first time it is asked for, then
/// shared (the tree keeps one `Cache`; the knots it forks inherit it).
#[derive(Debug, Default)]
pub struct Cache(HashMap<Profile, Arc<Program>>);

impl Cache {
    pub fn get(&mut self, p: &Profile) -> Result<Arc<Program>> {
        if let Some(prog) = self.0.get(p) {
            return Ok(prog.clone());
        }
        let prog = Arc::new(compile(p)?);
        self.0.insert(*p, prog.clone());
        Ok(prog)
    }
    /// How many distinct profiles were compiled.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The config parser's program: the default profile without capabilities,
/// minus `PARSER_REFUSED`, and clone(2) for threads only. Compiled on the
/// first call and kept for the process's life: call it once in the parent
/// before forking parsers, so that each child only installs it.
pub fn parser() -> Result<&'static Program> {
    static PARSER: OnceLock<std::result::Result<Program, String>> = OnceLock::new();
    let p = Profile {
        mode: Mode::Enforce,
        user_namespaces: false,
        caps: 0,
        parser: true,
    };
    PARSER
        .get_or_init(|| compile(&p).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| unsupported(e.clone()))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
