//! One module per user command. Each returns the process exit code:
//! 0 success, 1 failed check or error (message on stderr), 2 bad usage.
//!
//! Text that may come from an image (config values, paths, errors quoting
//! them, anything from state.json) goes to the terminal through
//! `crate::text::escape`; `--json` output through `crate::text::json`.

pub mod check;
pub mod clean;
pub mod cmd;
pub mod crypt;
pub mod exec;
pub mod exec_relay;
pub mod exec_target;
pub mod ps;
pub mod ps_changes;
pub mod ps_text;
pub mod ps_watch;
pub mod request;
pub mod signal;
pub mod switch;
pub mod wait;

/// Print each problem on stderr, one escaped line each.
pub fn eprint_problems(p: &crate::config::error::Problems) {
    for e in p.iter() {
        eprintln!("{}", crate::text::escape(&e.to_string()));
    }
}

pub use crate::version;
