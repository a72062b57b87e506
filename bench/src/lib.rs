//! The benchmark suite of Sandbox Forward: our tunnel against direct TCP, websocat, websockify
//! and OpenSSH `ssh -L`, all on loopback in one run, measured by one load generator of ours.
//!
//! `scripts/bench.sh` is the one command; `sandbox-bench --smoke` is the short run CI does.

pub mod fault;
pub mod load;
pub mod procs;
pub mod relay;
pub mod report;
pub mod run;
