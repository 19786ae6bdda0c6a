//! One module per user command. Each returns the process exit code:
//! 0 success, 1 failed check or error (message on stderr), 2 bad usage.

pub mod check;
pub mod cmd;
pub mod ps;
pub mod signal;
pub mod switch;

/// The version string: crate version plus the git commit, when known.
pub fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("CAIRN_BUILD_ID"), ")")
}
