//! cairn: a hardened process supervisor for Linux, lithos-compatible.
//!
//! See docs/architecture.md. Layers, lowest first, each importing only
//! from below it (`tests/layers.rs` checks this, and that no modules
//! import each other around a loop): `sys` (kernel wrappers, the only home
//! of `unsafe`), `text` (escaping untrusted text, timestamps) and `crypt`
//! (lithos's encrypted secrets, pure); `config`
//! (pure) and `logger`; `spec` (one resolved instance) and `image`;
//! `protocol` (what the tree and a knot exchange) and `load` (loading the
//! desired set from the config files, in confined children); `knot` and
//! `tree`, which know each other only through `protocol`; `cli`.

pub mod cli;
pub mod config;
pub mod crypt;
pub mod image;
pub mod knot;
pub mod load;
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
