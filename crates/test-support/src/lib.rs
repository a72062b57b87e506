//! What the tests of every crate share (`tests/`, `crates/*/tests`, `bench`), so that it exists
//! once: processes stopped by PID when their guard drops (also when a test fails half-way),
//! commands run with a deadline, free loopback ports, echo servers, a python listener, a
//! spawned or in-process `sandbox-agent`, one raw HTTP request, and the OpenID providers.
//! Everything listens on and talks to loopback only.
//!
//! Features: `tokio` (the async helpers in [`aio`] and the fake OpenID provider), `oidc-node`
//! (the real OpenID peers: node-oidc-provider and Apache mod_auth_openidc).

#[cfg(feature = "tokio")]
pub mod aio;
pub mod net;
pub mod oidc;
pub mod process;

pub use net::{agent_command, echo_server, python_listener, AgentProcess};
pub use process::{
    bin, bin_dir, descendants, eventually, exit_within, free_port, kill, ok, output_within, run, stderr,
    stdout, wait, Guard, PidGuard,
};
