//! Classic BPF for seccomp(2): the program is an architecture check, then
//! a balanced binary tree over ranges of system call numbers, whose leaves
//! are one shared RET per action or a check of one argument.
//!
//! Why a tree and not one comparison per system call (what the seccompiler
//! crate emits): the kernel pays for the program at every install, that is
//! at every container start. It converts and JIT-compiles it, and runs it
//! once per syscall number to fill its cache of always-allowed calls
//! (kernel/seccomp.c, seccomp_cache_prepare), so the cost grows with length
//! and with path length. seccompiler's chain for this profile is 1,515
//! instructions and took 572 us per install here; this tree is ~107
//! instructions with at most ~16 steps per call, and installs in ~60-80 us
//! (most of it the kernel's fixed cost: a 1-instruction filter costs
//! ~15-20 us). Every opcode used is one the kernel's cache emulator knows,
//! so allowed calls without an argument check never run the program.

use serde::{Deserialize, Serialize};

/// One instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Opcodes (linux/bpf_common.h): the only ones we emit, all of which the
/// kernel's cache emulator understands.
pub(super) const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
pub(super) const JA: u16 = 0x05; // BPF_JMP | BPF_JA
pub(super) const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
pub(super) const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
pub(super) const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
pub(super) const RET: u16 = 0x06; // BPF_RET | BPF_K

/// The kernel's limit on a program's length (BPF_MAXINSNS).
pub(super) const MAX_LEN: usize = 4096;

/// Offsets in `struct seccomp_data`.
const NR: u32 = 0;
const ARCH: u32 = 4;

/// Offset of the low 32 bits of argument `i`. Every argument we check is an
/// `int` or `unsigned int` in the kernel's prototype (clone's and
/// unshare's flags are truncated to 32 bits there too), so the high half
/// is never looked at: a caller cannot hide a flag in it.
pub(super) fn arg_low(i: u8) -> u32 {
    16 + 8 * u32::from(i) + if cfg!(target_endian = "big") { 4 } else { 0 }
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}

/// What the program does for one system call number. Actions are
/// `SECCOMP_RET_*` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Leaf {
    Ret(u32),
    /// `allow` if argument `arg` is one of `values`, else `deny`.
    OneOf {
        arg: u8,
        values: &'static [u32],
        allow: u32,
        deny: u32,
    },
    /// `deny` if argument `arg` is one of `values`, else `allow`.
    NoneOf {
        arg: u8,
        values: &'static [u32],
        allow: u32,
        deny: u32,
    },
    /// `deny` if argument `arg` has any bit of `forbidden`, or (when
    /// `required` is not 0) none of `required`; else `allow`.
    Bits {
        arg: u8,
        forbidden: u32,
        required: u32,
        allow: u32,
        deny: u32,
    },
}

/// Ranges of numbers, each from its start to the next one's, with what
/// they do: `leaves` (sorted by number, each number once) with the gaps
/// and everything above the last one answering `unknown`.
fn ranges(leaves: &[(u32, Leaf)], unknown: u32) -> Vec<(u32, Leaf)> {
    let mut out: Vec<(u32, Leaf)> = Vec::new();
    let mut push = |lo: u32, leaf: Leaf| {
        if out.last().is_none_or(|(_, last)| *last != leaf) {
            out.push((lo, leaf));
        }
    };
    let mut next = 0u32;
    for (nr, leaf) in leaves {
        if *nr > next {
            push(next, Leaf::Ret(unknown));
        }
        push(*nr, leaf.clone());
        next = nr.saturating_add(1);
    }
    push(next, Leaf::Ret(unknown));
    out
}

/// A program built back to front, so that every (forward) jump's target
/// is already in place when the jump is emitted. A label is the number of
/// instructions from its target to the end.
struct Builder {
    rev: Vec<Insn>,
    /// The one RET of each action, at the end, shared by every jump.
    rets: Vec<(u32, usize)>,
}

impl Builder {
    fn label(&self) -> usize {
        self.rev.len()
    }

    fn push(&mut self, i: Insn) -> usize {
        self.rev.push(i);
        self.label()
    }

    fn ret(&self, k: u32) -> usize {
        self.rets
            .iter()
            .find(|(v, _)| *v == k)
            .map(|(_, l)| *l)
            .unwrap_or_else(|| unreachable!("every action has its RET"))
    }

    /// The offset from the next instruction to `target`, through an
    /// unconditional jump (32-bit offset) placed right after it when a
    /// conditional one (8 bits) cannot reach.
    fn reach(&mut self, target: usize) -> usize {
        if self.label() - target <= 255 {
            return target;
        }
        let off = (self.label() - target) as u32;
        self.push(stmt(JA, off))
    }

    fn cond(&mut self, code: u16, k: u32, jt: usize, jf: usize) -> usize {
        let jt = self.reach(jt);
        let jf = self.reach(jf);
        let off = |t: usize| (self.label() - t) as u8;
        let i = jump(code, k, off(jt), off(jf));
        self.push(i)
    }

    /// Where a leaf starts (a shared RET, or the code checking its argument).
    fn leaf(&mut self, leaf: &Leaf) -> usize {
        match *leaf {
            Leaf::Ret(k) => self.ret(k),
            Leaf::OneOf {
                arg,
                values,
                allow,
                deny,
            }
            | Leaf::NoneOf {
                arg,
                values,
                allow: deny,
                deny: allow,
            } => {
                // For OneOf: a match goes to allow, no match to deny;
                // NoneOf is the same with the two swapped.
                let (hit, miss) = (self.ret(allow), self.ret(deny));
                let mut next = miss;
                for v in values.iter().rev() {
                    next = self.cond(JEQ, *v, hit, next);
                }
                self.push(stmt(LD_ABS, arg_low(arg)))
            }
            Leaf::Bits {
                arg,
                forbidden,
                required,
                allow,
                deny,
            } => {
                let (allow, deny) = (self.ret(allow), self.ret(deny));
                let mut next = allow;
                if required != 0 {
                    next = self.cond(JSET, required, allow, deny);
                }
                self.cond(JSET, forbidden, deny, next);
                self.push(stmt(LD_ABS, arg_low(arg)))
            }
        }
    }

    /// The tree over `r` (non-empty): `nr >= middle start` goes right.
    fn tree(&mut self, r: &[(u32, Leaf)]) -> usize {
        if r.len() == 1 {
            return self.leaf(&r[0].1);
        }
        let mid = r.len() / 2;
        let right = self.tree(&r[mid..]);
        let left = self.tree(&r[..mid]);
        self.cond(JGE, r[mid].0, right, left)
    }
}

/// The whole program: `bad_arch` for any other architecture (i386 calls
/// through int 0x80 on x86_64 included), then the tree, then one RET per
/// action. Leaves cost no instruction of their own: a comparison jumps
/// straight to the RET of its action, so the program is about one
/// instruction per range of numbers (the kernel JIT-compiles it at every
/// install, in time proportional to its length).
pub(super) fn program(
    arch: u32,
    bad_arch: u32,
    leaves: &[(u32, Leaf)],
    unknown: u32,
) -> Result<Vec<Insn>, usize> {
    let r = ranges(leaves, unknown);
    let mut actions: Vec<u32> = vec![bad_arch];
    for (_, leaf) in &r {
        let ks = match *leaf {
            Leaf::Ret(k) => [k, k],
            Leaf::OneOf { allow, deny, .. }
            | Leaf::NoneOf { allow, deny, .. }
            | Leaf::Bits { allow, deny, .. } => [allow, deny],
        };
        actions.extend(ks);
    }
    actions.sort_unstable();
    actions.dedup();
    let mut b = Builder {
        rev: Vec::new(),
        rets: Vec::new(),
    };
    for k in actions {
        let l = b.push(stmt(RET, k));
        b.rets.push((k, l));
    }
    let entry = b.tree(&r);
    if entry != b.label() {
        // The tree is a single action: no comparison starts it.
        let off = (b.label() - entry) as u32;
        b.push(stmt(JA, off));
    }
    let nr = b.push(stmt(LD_ABS, NR));
    let bad = b.ret(bad_arch);
    b.cond(JEQ, arch, nr, bad);
    b.push(stmt(LD_ABS, ARCH));
    let mut out = b.rev;
    out.reverse();
    if out.len() > MAX_LEN {
        return Err(out.len());
    }
    Ok(out)
}

/// Run a program on one call, as the kernel would (the opcodes we emit
/// only): for the tests.
#[cfg(test)]
pub(super) fn run(p: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    run_counted(p, arch, nr, args).0
}

/// `run`, and how many instructions it took.
#[cfg(test)]
pub(super) fn run_counted(p: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> (u32, usize) {
    let load = |k: u32| -> u32 {
        match k {
            NR => nr,
            ARCH => arch,
            16..=63 => {
                let a = args[((k - 16) / 8) as usize];
                let high = (k - 16) % 8 == 4;
                if high ^ cfg!(target_endian = "big") {
                    (a >> 32) as u32
                } else {
                    a as u32
                }
            }
            _ => panic!("load of offset {k}"),
        }
    };
    let (mut acc, mut pc, mut steps) = (0u32, 0usize, 0usize);
    loop {
        let i = p[pc];
        pc += 1;
        steps += 1;
        let cond = |c: bool| usize::from(if c { i.jt } else { i.jf });
        match i.code {
            LD_ABS => acc = load(i.k),
            JA => pc += i.k as usize,
            JEQ => pc += cond(acc == i.k),
            JGE => pc += cond(acc >= i.k),
            JSET => pc += cond(acc & i.k != 0),
            RET => return (i.k, steps),
            c => panic!("opcode {c:#x}"),
        }
    }
}
