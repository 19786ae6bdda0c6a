//! Loading the desired set from the config files: each sandbox's process
//! entries, and each entry's container config read from its image and
//! checked, in a confined short-lived child (DESIGN.md invariant 3). The
//! tree, `cairn check` and `cairn cmd` all load through here.

pub mod confined;
pub mod desired;
pub mod imagecheck;
pub mod parse;
pub mod parsed;
