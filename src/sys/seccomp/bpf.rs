//! Classic BPF for seccomp(2): the program is an architecture check, then
//! a balanced binary tree over ranges of system call numbers, whose leaves
//! return an action or check one argument.
//!
//! Why a tree and not one comparison per system call (what the seccompiler
//! crate emits): the kernel pays for the program at every install, the
//! container start. It runs the program once per syscall number to fill its
//! cache of always-allowed calls (kernel/seccomp.c, seccomp_cache_prepare)
//! and JIT-compiles it, so the cost grows with length x path. A chain of
//! ~380 comparisons (1,515 instructions) took 572 us per install here; the
//! tree (~300 instructions, ~9 comparisons per number) takes a small
//! fraction of that, and a call not in the cache runs ~9 comparisons
//! instead of up to 380.

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

fn leaf_code(leaf: &Leaf) -> Vec<Insn> {
    match *leaf {
        Leaf::Ret(k) => vec![stmt(RET, k)],
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
            // For OneOf: a match jumps to the last RET (allow), falling
            // through every compare reaches the one before (deny). NoneOf
            // is the same with the two swapped.
            let n = values.len();
            let mut out = vec![stmt(LD_ABS, arg_low(arg))];
            for (i, v) in values.iter().enumerate() {
                out.push(jump(JEQ, *v, (n - i) as u8, 0));
            }
            out.push(stmt(RET, deny));
            out.push(stmt(RET, allow));
            out
        }
        Leaf::Bits {
            arg,
            forbidden,
            required,
            allow,
            deny,
        } => {
            let mut out = vec![stmt(LD_ABS, arg_low(arg))];
            if required == 0 {
                out.push(jump(JSET, forbidden, 1, 0));
            } else {
                out.push(jump(JSET, forbidden, 2, 0));
                out.push(jump(JSET, required, 0, 1));
            }
            out.push(stmt(RET, allow));
            out.push(stmt(RET, deny));
            out
        }
    }
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

/// The tree over `r` (non-empty): `nr >= middle start` goes right.
fn tree(r: &[(u32, Leaf)]) -> Vec<Insn> {
    if r.len() == 1 {
        return leaf_code(&r[0].1);
    }
    let mid = r.len() / 2;
    let left = tree(&r[..mid]);
    let right = tree(&r[mid..]);
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        Ok(skip) => out.push(jump(JGE, r[mid].0, skip, 0)),
        Err(_) => {
            // Conditional jumps reach 255 instructions at most: go
            // through an unconditional one (32-bit offset).
            out.push(jump(JGE, r[mid].0, 0, 1));
            out.push(stmt(JA, left.len() as u32));
        }
    }
    out.extend(left);
    out.extend(right);
    out
}

/// The whole program: `bad_arch` for any other architecture (i386 calls
/// through int 0x80 on x86_64 included), then the tree.
pub(super) fn program(
    arch: u32,
    bad_arch: u32,
    leaves: &[(u32, Leaf)],
    unknown: u32,
) -> Result<Vec<Insn>, usize> {
    let mut out = vec![
        stmt(LD_ABS, ARCH),
        jump(JEQ, arch, 1, 0),
        stmt(RET, bad_arch),
        stmt(LD_ABS, NR),
    ];
    out.extend(tree(&ranges(leaves, unknown)));
    if out.len() > MAX_LEN {
        return Err(out.len());
    }
    Ok(out)
}

/// Run a program on one call, as the kernel would (the opcodes we emit
/// only): for the tests.
#[cfg(test)]
pub(super) fn run(p: &[Insn], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
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
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = p[pc];
        pc += 1;
        let cond = |c: bool| usize::from(if c { i.jt } else { i.jf });
        match i.code {
            LD_ABS => acc = load(i.k),
            JA => pc += i.k as usize,
            JEQ => pc += cond(acc == i.k),
            JGE => pc += cond(acc >= i.k),
            JSET => pc += cond(acc & i.k != 0),
            RET => return i.k,
            c => panic!("opcode {c:#x}"),
        }
    }
}
