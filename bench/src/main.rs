//! `sandbox-bench`: runs every contender and writes the report (see `scripts/bench.sh`).

use std::path::PathBuf;

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
    /// Write the Markdown report here (e.g. BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
