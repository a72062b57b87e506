//! `sandbox-bench`: runs every contender and writes the report (see `scripts/bench.sh`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sandbox_bench::run::{run, Options};

/// Benchmarks our tunnel against direct TCP, websocat, websockify and ssh -L on loopback.
#[derive(Debug, Parser)]
struct Args {
    /// Tiny sizes, any error fails the run (CI smoke).
    #[arg(long)]
    smoke: bool,
    /// Where `sandbox-forward` and `sandbox-agent` are (default: beside this binary).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Extra directory to look for websocat/websockify/ssh in (repeatable).
    #[arg(long)]
    tools: Vec<PathBuf>,
    /// Repetitions of each bulk transfer (median reported).
    #[arg(long)]
    reps: Option<usize>,
    /// Run only these contenders (comma-separated or repeated, e.g. `--only ours,websocat`);
    /// direct TCP always runs, as every ratio needs it. Default: all.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Internal: run a bare relay `LISTEN:TARGET` on loopback (the reference contender).
    #[arg(long, hide = true, value_name = "LISTEN:TARGET")]
    relay_tcp: Option<String>,
    /// Internal: relay stdin/stdout to this loopback port (the reference ssh ProxyCommand).
    #[arg(long, hide = true, value_name = "PORT")]
    relay_stdio: Option<u16>,
    /// Write the Markdown report here (e.g. BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The reference relays run as processes of their own, like every contender.
fn relay(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(spec) = &args.relay_tcp {
        let (listen, target) = spec.split_once(':').context("--relay-tcp LISTEN:TARGET")?;
        rt.block_on(sandbox_bench::relay::tcp(listen.parse()?, target.parse()?))?;
    } else if let Some(target) = args.relay_stdio {
        rt.block_on(sandbox_bench::relay::stdio(target))?;
        // A stdin read may still be parked on the blocking pool (not for pipes).
        std::process::exit(0);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.relay_tcp.is_some() || args.relay_stdio.is_some() {
        return relay(&args);
    }
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?.parent().expect("binary has a directory").to_owned(),
    };
    let opts = Options {
        smoke: args.smoke,
        bin_dir,
        tool_dirs: args.tools,
        reps: args.reps.unwrap_or(if args.smoke { 1 } else { 3 }),
        only: args.only,
    };
    let report = run(opts)?;
    let md = report.markdown();
    println!("{md}");
    if let Some(out) = args.out {
        std::fs::write(&out, &md)?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
