//! The supervisor.

pub mod apply;
pub mod desired;
pub mod instance;
pub mod lifecycle;
pub mod parse;
pub mod plan;
pub mod run;
pub mod state;
