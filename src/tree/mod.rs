//! The supervisor.

pub mod desired;
