//! The wire contract between `sandbox-forward` and a sandbox pod.
//!
//! Both sides depend on this crate and on nothing of each other: the JSON bodies of the HTTP
//! API ([`api`]) and the rules of the raw-TCP WebSocket tunnel ([`tunnel`]), including the one
//! byte pump ([`tunnel::splice`]) that every tunnel end runs, over the frame format ([`frame`])
//! and the client's opening handshake ([`handshake`]); and the one reader of the kernel's TCP
//! tables ([`proc_net`]), which the agent and the client's SSH fallback both parse. [`local`] is
//! what a pump reads its local side from.

pub mod api;
pub mod frame;
pub mod handshake;
pub mod local;
pub mod pace;
pub mod proc_net;
pub mod resume;
pub mod tunnel;
