//! How the knot and cairn-init name themselves, for `ps` and `top`. Both
//! are pid 1 of an instance's container, one after the other; both say
//! which instance they serve:
//!
//! - the command line (`ps -f`, `top -c`): `cairn-knot SANDBOX/PROCESS.N`,
//!   then `cairn-init SANDBOX/PROCESS.N` once the workload runs (its
//!   arguments follow: the workload's pid, interactive, OOM kills before,
//!   the stop signal);
//! - the name (`comm`: `top`, `ps -e`, `pgrep`), at most 15 bytes (the
//!   kernel's limit): the instance name when it fits (`box/web.0`), else
//!   its `PROCESS.N` (`ticker.0` for `example/ticker.0`), else the last 15
//!   bytes of that (`ss-name-here.12`): the index is what tells instances
//!   apart.
//!
//! Names are `[A-Za-z0-9_-]` (config checks them) joined by `/` and `.`;
//! anything else that reached a title would show as `?`, and a title is
//! at most 200 bytes: nothing from a config can break a line of `ps` or
//! drive a terminal.

/// The knot's role in its command line.
pub const KNOT: &str = "cairn-knot";
/// cairn-init's argv[0] starts with this and a space (it checks).
pub const INIT: &str = "cairn-init";

/// The most of an instance name a title shows.
const MAX: usize = 200;
/// The kernel's limit for a process name (TASK_COMM_LEN less the NUL).
const COMM_LEN: usize = 15;

/// `instance` as a title shows it.
pub fn shown(instance: &str) -> String {
    instance
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-./".contains(c) {
                c
            } else {
                '?'
            }
        })
        .take(MAX)
        .collect()
}

/// The command line of `role` (`KNOT` or `INIT`) serving `instance`.
pub fn cmdline(role: &str, instance: &str) -> String {
    format!("{role} {}", shown(instance))
}

/// The process name (`comm`) of the knot and cairn-init of `instance`.
/// cairn-init makes the same from what follows `cairn-init ` in its
/// argv[0] (`mini_init::comm_of`).
pub fn comm(instance: &str) -> String {
    let s = shown(instance);
    if s.len() <= COMM_LEN {
        return s;
    }
    let after = s.rsplit('/').next().unwrap_or(&s);
    // ASCII only (`shown`): any byte is a char boundary.
    after[after.len().saturating_sub(COMM_LEN)..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_name_the_role_and_the_instance() {
        assert_eq!(cmdline(KNOT, "box/web.0"), "cairn-knot box/web.0");
        assert_eq!(cmdline(INIT, "box/web.0"), "cairn-init box/web.0");
    }

    #[test]
    fn names_keep_the_instance_or_its_process_and_index_in_15_bytes() {
        assert_eq!(comm("box/web.0"), "box/web.0");
        assert_eq!(comm("example/crash.0"), "example/crash.0");
        assert_eq!(comm("example/ticker.0"), "ticker.0");
        assert_eq!(comm("box/long-process.12"), "long-process.12");
        assert_eq!(comm("box/a-very-long-process-name.12"), "process-name.12");
        assert_eq!(comm("box/cmd.shell.123456"), "md.shell.123456");
        assert_eq!(comm("no-slash-but-long-name.3"), "but-long-name.3");
    }

    #[test]
    fn nothing_but_name_characters_reaches_a_title() {
        assert_eq!(shown("a b\n\u{1b}[2J/é.0"), "a?b???2J/?.0");
        assert_eq!(shown("cmd.sh-ell_1.42"), "cmd.sh-ell_1.42");
        assert_eq!(shown(&"x".repeat(500)).len(), 200);
        assert!(!cmdline(KNOT, "a\0b").contains('\0'));
    }
}
