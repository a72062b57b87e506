//! The wire contract between `sandbox-forward` and a sandbox pod.
//!
//! Both sides depend on this crate and on nothing of each other: the JSON bodies of the HTTP
//! API ([`api`]) and the rules of the raw-TCP WebSocket tunnel ([`tunnel`]), including the one
//! byte pump ([`tunnel::splice`]) that every tunnel end runs.

pub mod api;
pub mod tunnel;
