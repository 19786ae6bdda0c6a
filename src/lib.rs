//! cairn: a hardened process supervisor for Linux, lithos-compatible.
//!
//! See DESIGN.md for the architecture. Layers, in dependency order:
//! `sys` (kernel wrappers, the only home of `unsafe`), `config` (pure),
//! `spec` (one resolved instance), then `knot`, `tree` and `cli`. `text`
//! (escaping untrusted text for logs and terminals, timestamps) depends on
//! nothing and serves every layer.

pub mod cli;
pub mod config;
pub mod image;
pub mod knot;
pub mod logger;
pub mod protocol;
pub mod spec;
pub mod sys;
pub mod text;
pub mod tree;

/// The version string: crate version plus the git commit, when known.
pub fn version() -> &'static str {
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("CAIRN_BUILD_ID"), ")")
}
