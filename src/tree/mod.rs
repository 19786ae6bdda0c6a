//! The supervisor.

pub mod apply;
pub mod confined;
pub mod desired;
pub mod events;
pub mod handoff;
pub mod hostdirs;
pub mod instance;
pub mod lifecycle;
pub mod limits;
pub mod notify;
pub mod parse;
pub mod plan;
pub mod recover;
pub mod run;
pub mod sockets;
pub mod state;
