//! The core of Sandbox Forward: everything the `sandbox-forward` CLI and the tray app share.
//!
//! This crate knows nothing of a GUI or of the command line, and never reads `$HOME` or the
//! environment itself: paths and settings come in as values ([`paths::Paths`]), so tests can
//! point everything at a temporary directory.

pub mod add_link;
pub mod api;
pub mod auth;
pub mod browser;
pub mod detached;
pub mod forward;
pub mod forwards;
pub mod fsutil;
pub mod ide;
pub mod inspect;
pub mod keys;
pub mod known_hosts;
pub mod name;
pub mod net;
pub mod oidc;
pub mod paths;
pub mod ports;
pub mod profile;
pub mod server;
pub mod setup;
pub mod ssh_config;
pub mod ssh_proxy;
pub mod stdio;
pub mod tunnel;
pub mod untrusted;
