//! `sandbox-forward`: argument parsing and wiring only; every operation lives in `sandbox-core`.

mod cli;
mod commands;
mod compat;
mod environment;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `SANDBOX_FORWARD_COMPLETE=SHELL sandbox-forward …` (set by the hook `completions SHELL` prints): answer the
    // shell's completion request and exit.
    // Our own variable: a `COMPLETE` set by another tool would otherwise reach this through ssh
    // and turn the ProxyCommand into a completion request.
    clap_complete::CompleteEnv::with_factory(<cli::Cli as clap::CommandFactory>::command)
        .var(commands::COMPLETE_VAR)
        .complete();
    let cli = cli::Cli::parse_from(compat::normalise_args(std::env::args_os()));
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    init_logging(&cli, level);
    if environment::tunnel_protocol_v1() {
        sandbox_core::tunnel::offer_v1_only();
    }
    // One thread: the CLI's tunnels are I/O-bound, and a single thread that blocks in epoll and
    // runs the woken task itself avoids cross-thread wake-ups on every packet (measured: 1 B
    // round trip through proxy and agent ~180 -> ~140 us).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(commands::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            // One line: cause and fix. `{:#}` keeps anyhow context on the same line.
            // Control characters removed: a message may quote a server (the core already cleans
            // what it quotes; this is the last line of defence for the user's terminal).
            let message = sandbox_core::untrusted::printable(&format!("{e:#}"));
            eprintln!("sandbox-forward: error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr at `level`. A tunnel on stdio (`proxy --ssh`, the ProxyCommand, and
/// `proxy --stdio`) also logs at `info` to a file under the state directory: a resuming tunnel
/// reports only there, since the terminal is ssh's (`~/.config/sandbox/logs/proxy.log`).
fn init_logging(cli: &cli::Cli, level: &str) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let filter = |level: &str| {
        EnvFilter::new(format!("sandbox_core={level},sandbox_wire={level},sandbox_forward={level}"))
    };
    let stderr_filter = EnvFilter::try_from_env("SANDBOX_FORWARD_LOG").unwrap_or_else(|_| filter(level));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(environment::log_colour())
        .with_target(false)
        .with_filter(stderr_filter);
    let on_stdio = matches!(&cli.command, cli::Command::Proxy(p) if p.ssh || p.stdio);
    let file = on_stdio.then(environment::proxy_log).flatten().map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_target(false)
            .with_filter(filter("info"))
    });
    tracing_subscriber::registry().with(stderr).with(file).init();
}
