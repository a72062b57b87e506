//! The orchestrator: starts the agent, the target server and every contender, measures each with
//! the same load generator, and collects a [`Report`].

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::load::{self, Direction};
use crate::procs::{self, Guard};
use crate::report::{Hold, Machine, Report, Row, SshRow, Stat, OURS, OURS_V1, REFERENCE, REFERENCE_SSH};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny sizes; every error fails the run.
    pub smoke: bool,
    /// Directory holding `sandbox-forward` and `sandbox-agent`.
    pub bin_dir: PathBuf,
    /// Extra directories to look for `websocat` etc. in (besides `PATH`).
    pub tool_dirs: Vec<PathBuf>,
    /// Repetitions of each bulk measurement (the median is reported).
    pub reps: usize,
    /// Contenders to run besides direct TCP (empty: all).
    pub only: Vec<String>,
}

impl Options {
    /// Whether the contender (or ssh path) `name` is part of this run.
    fn wants(&self, name: &str) -> bool {
        name.starts_with("direct")
            || name.starts_with("ssh -p")
            || self.only.is_empty()
            || self.only.iter().any(|o| o.eq_ignore_ascii_case(name) || (name == OURS_V1 && o == OURS))
    }
}

/// The client's switch to tunnel protocol v1 (`sandbox_core`'s `PROTOCOL_ENV`).
pub const PROTOCOL_ENV: &str = "SANDBOX_FORWARD_TUNNEL_PROTOCOL";

/// Amounts of work per contender.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub bulk: u64,
    pub streams: usize,
    pub latency_iters: usize,
    pub setup_iters: usize,
    pub hold: usize,
    pub ssh_true_iters: usize,
    pub ssh_bulk: u64,
    /// Resets, and outages, per recovery measurement.
    pub recovery_iters: usize,
    /// How long each outage of the recovery measurement lasts.
    pub outage: Duration,
}

impl Sizes {
    pub fn for_mode(smoke: bool) -> Sizes {
        if smoke {
            Sizes {
                bulk: 4 << 20,
                streams: 8,
                latency_iters: 50,
                setup_iters: 10,
                hold: 50,
                ssh_true_iters: 2,
                ssh_bulk: 2 << 20,
                recovery_iters: 2,
                outage: Duration::from_millis(300),
            }
        } else {
            Sizes {
                bulk: 1 << 30,
                streams: 8,
                latency_iters: 5000,
                setup_iters: 300,
                // As many as one forward of ours serves at once (more wait in its backlog).
                hold: sandbox_core::forward::MAX_CONNECTIONS,
                ssh_true_iters: 20,
                ssh_bulk: 1 << 30,
                recovery_iters: 10,
                outage: Duration::from_secs(2),
            }
        }
    }
}

const NAME: &str = "bench";

/// How long a contender may take to start listening.
const START_WAIT: Duration = Duration::from_secs(20);

struct Env {
    opts: Options,
    sizes: Sizes,
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    log: PathBuf,
    workspace: PathBuf,
    target_port: u16,
    agent: Guard,
    agent_port: u16,
    ssh_port: u16,
    home: PathBuf,
    ssh: Option<PathBuf>,
    websocat: Option<PathBuf>,
    websockify: Option<PathBuf>,
}

/// A contender set up and forwarding `127.0.0.1:port` to the target.
struct Running {
    port: u16,
    client_pid: Option<u32>,
    server_pid: Option<u32>,
    _guards: Vec<Guard>,
}

/// Runs everything.
pub fn run(opts: Options) -> anyhow::Result<Report> {
    let nofile = procs::raise_nofile();
    let sizes = Sizes::for_mode(opts.smoke);
    let tmp = tempfile::Builder::new().prefix("sandbox-bench-").tempdir()?;
    let dir = tmp.path().to_owned();
    let log = dir.join("processes.log");
    let result = run_in(opts, sizes, &dir, &log, nofile);
    if result.is_err() {
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<_> = text.lines().rev().take(40).collect();
            eprintln!("--- last lines of the processes' log ---");
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
    result
}

fn run_in(opts: Options, sizes: Sizes, dir: &Path, log: &Path, nofile: u64) -> anyhow::Result<Report> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let target_port = listener.local_addr()?.port();
    rt.spawn(load::serve(listener));

    for bin in ["sandbox-forward", "sandbox-agent"] {
        let p = opts.bin_dir.join(bin);
        anyhow::ensure!(
            p.is_file(),
            "{} not built (cargo build -p sandbox-forward -p sandbox-agent)",
            p.display()
        );
    }
    let workspace = dir.join("workspace");
    let home = dir.join("home");
    std::fs::create_dir_all(&workspace)?;
    std::fs::create_dir_all(&home)?;
    let agent_port = procs::free_port();
    let mut cmd = Command::new(opts.bin_dir.join("sandbox-agent"));
    cmd.arg("--api-addr").arg(format!("127.0.0.1:{agent_port}")).arg("--workspace").arg(&workspace);
    cmd.arg("--dev-mode");
    let mut agent = Guard::spawn("sandbox-agent", cmd, log)?;
    procs::wait_listening(&mut agent, agent_port, Duration::from_secs(20))?;
    let ssh_port = ssh_port(agent_port)?;

    let tool = |name: &str| procs::find_tool(name, &opts.tool_dirs);
    let ssh = tool("ssh");
    if ssh.is_some() {
        let mut c = Command::new(opts.bin_dir.join("sandbox-forward"));
        c.args(["ssh-setup", NAME, "--server", &format!("http://127.0.0.1:{agent_port}")]);
        c.env("HOME", &home).env_remove("SANDBOX_FORWARD_LOG");
        procs::ok(procs::run(c, Duration::from_secs(60))?).context("sandbox-forward ssh-setup")?;
    }
    let env = Env {
        websocat: tool("websocat"),
        websockify: tool("websockify"),
        ssh,
        opts,
        sizes,
        rt,
        dir: dir.to_owned(),
        log: log.to_owned(),
        workspace: workspace.clone(),
        target_port,
        agent,
        agent_port,
        ssh_port,
        home,
    };
    let mut report = Report {
        machine: Machine::detect(),
        smoke: env.opts.smoke,
        sizes: env.sizes.clone(),
        reps: env.opts.reps,
        nofile,
        rows: Vec::new(),
        ssh_rows: Vec::new(),
        notes: Vec::new(),
    };
    report.machine.tools = tool_versions(&env);

    let contenders: [(&str, &str); 7] = [
        ("direct TCP", "no tunnel: the physical limit"),
        (
            OURS,
            "`sandbox-forward proxy --port` → `sandbox-agent`, tunnel protocol v2 (resumable; the default)",
        ),
        (
            OURS_V1,
            "the same with `SANDBOX_FORWARD_TUNNEL_PROTOCOL=v1`: tunnel protocol v1 (a plain byte stream; \
             what the original server speaks)",
        ),
        (
            REFERENCE,
            "reference, not a peer: two bare tokio TCP relays chained (the two hops ours has), \
             no WebSocket, no masking, same 1 MiB buffers (allocated up front, so its RSS is not comparable)",
        ),
        ("websocat", "`websocat tcp-l: ws://` → `websocat ws-l: tcp:`"),
        ("websockify", "`websocat` client → `websockify` (Debian)"),
        ("ssh -L", "OpenSSH `ssh -L` → the agent's embedded SSH server"),
    ];
    let wanted: Vec<(&str, &str)> = contenders.into_iter().filter(|(n, _)| env.opts.wants(n)).collect();
    let mut next = 0;
    while next < wanted.len() {
        // Ours as v2 and as v1 run side by side, measured in turn: the comparison of the two
        // protocols stays fair on a machine whose load drifts.
        let together = wanted[next].0 == OURS && wanted.get(next + 1).is_some_and(|c| c.0 == OURS_V1);
        let group = &wanted[next..next + if together { 2 } else { 1 }];
        next += group.len();
        let mut started = Vec::new();
        for &(name, what) in group {
            eprintln!("== {name}");
            match start(&env, name) {
                Ok(Some(r)) => started.push((name, what, r)),
                Ok(None) => {
                    let note = format!("{name}: skipped, its tool is not installed (run scripts/bench.sh)");
                    eprintln!("{note}");
                    report.notes.push(note);
                }
                Err(e) => {
                    let mut row = Row::new(name, what);
                    row.errors.push(format!("could not start: {e:#}"));
                    report.rows.push(row);
                }
            }
        }
        if started.is_empty() {
            continue;
        }
        let list: Vec<(&str, &str, &Running)> = started.iter().map(|(n, w, r)| (*n, *w, r)).collect();
        let rows = measure_together(&env, &list);
        drop(started);
        for mut row in rows {
            // Held connections on fresh processes: after the throughput runs, freed buffers
            // would be reused and hide what a connection costs.
            match start_fresh(&env, &row.name) {
                Ok(Some(running)) => measure_hold(&env, &running, &mut row),
                Ok(None) => {}
                Err(e) => row.errors.push(format!("could not start again to hold connections: {e:#}")),
            }
            if row.name == OURS || row.name == OURS_V1 {
                measure_recovery(&env, &mut row);
            }
            report.rows.push(row);
        }
    }
    if env.ssh.is_some() {
        let variants: &[(&str, &str)] = &[
            ("ssh -p (direct)", "`ssh -p PORT` straight to the agent's SSH port"),
            ("ours", "ProxyCommand `sandbox-forward proxy --ssh --sandbox NAME`"),
            (
                REFERENCE_SSH,
                "reference: ProxyCommand `sandbox-bench --relay-stdio PORT`, ssh's pipes relayed \
                 straight to the SSH port (the pipe hop and one TCP hop, no WebSocket)",
            ),
            ("websocat", "ProxyCommand `websocat -b ws://AGENT/api/port-forward?port=SSH`"),
        ];
        for (name, what) in variants.iter().filter(|(n, _)| env.opts.wants(n)) {
            if *name == "websocat" && env.websocat.is_none() {
                continue;
            }
            if *name == REFERENCE_SSH && !bench_bin(&env.opts).is_file() {
                report
                    .notes
                    .push(format!("{name}: skipped, sandbox-bench is not built beside sandbox-forward"));
                continue;
            }
            eprintln!("== ssh via {name}");
            report.ssh_rows.push(measure_ssh(&env, name, what));
        }
    } else {
        report.notes.push("ssh: skipped, OpenSSH client not installed".into());
    }
    let _ = (&env.dir, &env.log, env.agent.pid());
    if env.opts.smoke {
        let mut failures = Vec::new();
        for r in &report.rows {
            failures.extend(r.errors.iter().map(|e| format!("{}: {e}", r.name)));
        }
        for r in &report.ssh_rows {
            failures.extend(r.errors.iter().map(|e| format!("ssh via {}: {e}", r.name)));
        }
        if !failures.is_empty() {
            bail!("smoke run failed:\n  {}", failures.join("\n  "));
        }
    }
    Ok(report)
}

/// `GET /api/ssh-port` on the dev-mode agent.
fn ssh_port(agent_port: u16) -> anyhow::Result<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", agent_port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /api/ssh-port HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).context("no HTTP body")?;
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).with_context(|| format!("ssh-port body {body:?}"))?;
    let port = v.get("port").and_then(|p| p.as_u64()).context("no port in /api/ssh-port")?;
    Ok(port as u16)
}

/// A WebSocket server contender (`server`, given its listen port by `args`) with a websocat
/// client in front of it, as the peers are run.
fn ws_server_behind_websocat(
    env: &Env,
    websocat: &Path,
    label: &'static str,
    server: &Path,
    args: impl FnOnce(&mut Command, u16),
) -> anyhow::Result<Running> {
    let ws_port = procs::free_port();
    let mut c = Command::new(server);
    args(&mut c, ws_port);
    let mut server = Guard::spawn(label, c, &env.log)?;
    procs::wait_listening(&mut server, ws_port, START_WAIT)?;
    let local = procs::free_port();
    let mut c = Command::new(websocat);
    c.args(["-b", &format!("tcp-l:127.0.0.1:{local}"), &format!("ws://127.0.0.1:{ws_port}/")]);
    let mut client = Guard::spawn("websocat (client)", c, &env.log)?;
    procs::wait_listening(&mut client, local, START_WAIT)?;
    Ok(Running {
        port: local,
        client_pid: Some(client.pid()),
        server_pid: Some(server.pid()),
        _guards: vec![client, server],
    })
}

fn start(env: &Env, name: &str) -> anyhow::Result<Option<Running>> {
    let target = format!("127.0.0.1:{}", env.target_port);
    Ok(Some(match name {
        "direct TCP" => {
            Running { port: env.target_port, client_pid: None, server_pid: None, _guards: vec![] }
        }
        OURS | OURS_V1 => {
            let (c, local) = ours_command(env, name, env.agent_port);
            in_front_of_agent(env, "sandbox-forward proxy", c, local)?
        }
        REFERENCE => {
            let bench = bench_bin(&env.opts);
            if !bench.is_file() {
                return Ok(None);
            }
            let (first, second) = (procs::free_port(), procs::free_port());
            let mut c = Command::new(&bench);
            c.arg("--relay-tcp").arg(format!("{second}:{}", env.target_port));
            let mut far = Guard::spawn("relay (server end)", c, &env.log)?;
            procs::wait_listening(&mut far, second, START_WAIT)?;
            let mut c = Command::new(&bench);
            c.arg("--relay-tcp").arg(format!("{first}:{second}"));
            let mut near = Guard::spawn("relay (local end)", c, &env.log)?;
            procs::wait_listening(&mut near, first, START_WAIT)?;
            Running {
                port: first,
                client_pid: Some(near.pid()),
                server_pid: Some(far.pid()),
                _guards: vec![near, far],
            }
        }
        "websocat" => {
            let Some(ws) = &env.websocat else { return Ok(None) };
            ws_server_behind_websocat(env, ws, "websocat (server)", ws, |c, ws_port| {
                c.args(["-b", &format!("ws-l:127.0.0.1:{ws_port}"), &format!("tcp:{target}")]);
            })?
        }
        "websockify" => {
            let (Some(ws), Some(wsfy)) = (&env.websocat, &env.websockify) else { return Ok(None) };
            ws_server_behind_websocat(env, ws, "websockify", wsfy, |c, ws_port| {
                c.arg(format!("127.0.0.1:{ws_port}")).arg(&target);
            })?
        }
        "ssh -L" => {
            if env.ssh.is_none() {
                return Ok(None);
            }
            let local = procs::free_port();
            let mut c = ssh_base(env, "ssh -p (direct)");
            c.args([
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                &format!("127.0.0.1:{local}:{target}"),
                NAME,
            ]);
            in_front_of_agent(env, "ssh -L", c, local)?
        }
        other => bail!("unknown contender {other}"),
    }))
}

/// `sandbox-forward proxy --port TARGET` on a free local port (returned), reaching the agent
/// at `server_port`, speaking the protocol `name` stands for.
fn ours_command(env: &Env, name: &str, server_port: u16) -> (Command, u16) {
    let local = procs::free_port();
    let mut c = Command::new(env.opts.bin_dir.join("sandbox-forward"));
    c.args(["proxy", "--server", &format!("http://127.0.0.1:{server_port}")]);
    c.args(["--port", &env.target_port.to_string(), "--local-port", &local.to_string()]);
    c.env("HOME", &env.home).env_remove("SANDBOX_FORWARD_LOG").env_remove(PROTOCOL_ENV);
    if name == OURS_V1 {
        c.env(PROTOCOL_ENV, "v1");
    }
    (c, local)
}

/// Recovery of one connection through ours when the network between the CLI and the agent
/// fails (`fault::Resettable`): after resets, and after outages. v1 cannot resume: that the
/// connection breaks is its figure, not an error.
fn measure_recovery(env: &Env, row: &mut Row) {
    let s = &env.sizes;
    let result = (|| -> anyhow::Result<crate::load::Recovery> {
        let relay = crate::fault::Resettable::start(&env.rt, env.agent_port)?;
        let (c, local) = ours_command(env, &row.name, relay.port());
        let running = in_front_of_agent(env, "sandbox-forward proxy (recovery)", c, local)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], running.port));
        env.rt.block_on(load::recovery(addr, &relay, s.recovery_iters, s.outage))
    })();
    match result {
        Ok(r) => {
            row.recovery_reset = Some(percentiles(r.after_reset));
            row.recovery_outage = Some(percentiles(r.after_outage));
            eprintln!(
                "  recovery µs p50/max: reset {:?} outage {:?}",
                row.recovery_reset, row.recovery_outage
            );
        }
        Err(e) if row.name == OURS_V1 => {
            eprintln!("  recovery: none ({e:#})");
            row.recovery_broke = Some(format!("{e:#}"));
        }
        Err(e) => {
            eprintln!("  recovery: FAILED {e:#}");
            row.errors.push(format!("recovery: {e:#}"));
        }
    }
}

/// `name` started anew; ours with an agent of its own too, so that both ends are fresh.
fn start_fresh(env: &Env, name: &str) -> anyhow::Result<Option<Running>> {
    if name != OURS && name != OURS_V1 {
        return start(env, name);
    }
    let agent_port = procs::free_port();
    let mut cmd = Command::new(env.opts.bin_dir.join("sandbox-agent"));
    cmd.arg("--api-addr").arg(format!("127.0.0.1:{agent_port}")).arg("--workspace").arg(&env.workspace);
    cmd.arg("--dev-mode");
    let mut agent = Guard::spawn("sandbox-agent (fresh)", cmd, &env.log)?;
    procs::wait_listening(&mut agent, agent_port, START_WAIT)?;
    let (c, local) = ours_command(env, name, agent_port);
    let mut g = Guard::spawn("sandbox-forward proxy (fresh)", c, &env.log)?;
    procs::wait_listening(&mut g, local, START_WAIT)?;
    Ok(Some(Running {
        port: local,
        client_pid: Some(g.pid()),
        server_pid: Some(agent.pid()),
        _guards: vec![g, agent],
    }))
}

/// A contender whose local end `c` listens on `local` in front of the agent.
fn in_front_of_agent(env: &Env, label: &str, c: Command, local: u16) -> anyhow::Result<Running> {
    let mut g = Guard::spawn(label, c, &env.log)?;
    procs::wait_listening(&mut g, local, START_WAIT)?;
    Ok(Running {
        port: local,
        client_pid: Some(g.pid()),
        server_pid: Some(env.agent.pid()),
        _guards: vec![g],
    })
}

/// `sandbox-bench` itself, built beside the binaries under test (it runs the reference relays).
fn bench_bin(opts: &Options) -> PathBuf {
    opts.bin_dir.join("sandbox-bench")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentiles(mut v: Vec<Duration>) -> Stat {
    v.sort();
    let at = |p: f64| v[((p / 100.0) * (v.len() - 1) as f64).round() as usize].as_secs_f64() * 1e6;
    Stat { p50: at(50.0), p99: at(99.0) }
}

fn gbit(bytes: u64, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

/// Samples of one metric from each contender at `addrs`, in `rounds` rounds whose order
/// alternates (A B, B A, …), so load that drifts during the run weighs on each alike. A
/// contender's first failure ends its samples.
fn alternate<T>(
    addrs: &[SocketAddr],
    rounds: usize,
    mut sample: impl FnMut(SocketAddr) -> anyhow::Result<Vec<T>>,
) -> Vec<Result<Vec<T>, String>> {
    let mut out: Vec<Result<Vec<T>, String>> = addrs.iter().map(|_| Ok(Vec::new())).collect();
    for round in 0..rounds {
        let mut order: Vec<usize> = (0..addrs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            if let Ok(v) = &mut out[i] {
                match sample(addrs[i]) {
                    Ok(s) => v.extend(s),
                    Err(e) => out[i] = Err(format!("{e:#}")),
                }
            }
        }
    }
    out
}

/// A figure for `row`, or its error recorded there.
fn keep<T>(row: &mut Row, what: &str, r: Result<T, String>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("  {}: {what}: FAILED {e}", row.name);
            row.errors.push(format!("{what}: {e}"));
            None
        }
    }
}

/// Measures the traffic of contenders that run side by side (ours as v2 and as v1): every
/// metric's samples are taken from each in turn.
fn measure_together(env: &Env, list: &[(&str, &str, &Running)]) -> Vec<Row> {
    let addrs: Vec<SocketAddr> =
        list.iter().map(|(_, _, r)| SocketAddr::from(([127, 0, 0, 1], r.port))).collect();
    let mut rows: Vec<Row> = list.iter().map(|(n, w, _)| Row::new(n, w)).collect();
    let s = &env.sizes;
    // Contenders in turn (A B, B A, …): an even number of rounds puts each first as often, so
    // neither gains from going first (a quieter moment, a warmer cache).
    let reps = if list.len() > 1 { env.opts.reps.max(1).next_multiple_of(2) } else { env.opts.reps.max(1) };
    let rt = &env.rt;
    let each = s.bulk / s.streams as u64;
    let bulk =
        |dir| alternate(&addrs, reps, |a| Ok(vec![gbit(s.bulk, rt.block_on(load::bulk(a, dir, s.bulk))?)]));
    let par = |dir| {
        alternate(&addrs, reps, |a| {
            Ok(vec![gbit(each * s.streams as u64, rt.block_on(load::parallel(a, dir, s.streams, each))?)])
        })
    };
    let (up, down) = (bulk(Direction::Up), bulk(Direction::Down));
    let (par_up, par_down) = (par(Direction::Up), par(Direction::Down));
    // One contender: one run of each; several: ten rounds in turn.
    let rounds = if list.len() > 1 { 10 } else { 1 };
    let iters = (s.latency_iters / rounds).max(1);
    let warm = (iters / 10).max(5);
    let lat = |size| alternate(&addrs, rounds, |a| rt.block_on(load::pingpong(a, size, iters, warm)));
    let (lat1, lat4k) = (lat(1), lat(4096));
    let setup = alternate(&addrs, rounds, |a| rt.block_on(load::setup(a, (s.setup_iters / rounds).max(1))));
    for (i, row) in rows.iter_mut().enumerate() {
        row.up = keep(row, "upload", up[i].clone().map(median));
        row.down = keep(row, "download", down[i].clone().map(median));
        row.par_up = keep(row, "8-stream upload", par_up[i].clone().map(median));
        row.par_down = keep(row, "8-stream download", par_down[i].clone().map(median));
        row.lat1 = keep(row, "1 B ping-pong", lat1[i].clone().map(percentiles));
        row.lat4k = keep(row, "4 KiB ping-pong", lat4k[i].clone().map(percentiles));
        row.setup = keep(row, "setup", setup[i].clone().map(percentiles));
        eprintln!(
            "  {}: Gbit/s up {:.2?} down {:.2?} 8×up {:.2?} 8×down {:.2?}",
            row.name, row.up, row.down, row.par_up, row.par_down
        );
        eprintln!(
            "  {}: µs p50/p99: 1 B {:?} 4 KiB {:?} setup {:?}",
            row.name, row.lat1, row.lat4k, row.setup
        );
    }
    rows
}

/// Many connections held at once: failures, and RSS growth per connection at each end.
fn measure_hold(env: &Env, running: &Running, row: &mut Row) {
    let s = &env.sizes;
    let rt = &env.rt;
    let addr = SocketAddr::from(([127, 0, 0, 1], running.port));
    std::thread::sleep(Duration::from_millis(300));
    let rss = |pid: Option<u32>| pid.map(procs::tree_rss_kib);
    let (client0, server0) = (rss(running.client_pid), rss(running.server_pid));
    let held = rt.block_on(load::open_many(addr, s.hold, 64));
    std::thread::sleep(Duration::from_millis(500));
    let (client1, server1) = (rss(running.client_pid), rss(running.server_pid));
    let opened = held.conns.len();
    let mut failures = held.errors;
    failures.extend(rt.block_on(load::ping_all(held.conns)));
    let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if opened > 0 => Some((b as f64 - a as f64) / opened as f64),
        _ => None,
    };
    row.hold = Some(Hold {
        n: s.hold,
        failures: failures.len(),
        client_kib: per(client0, client1),
        server_kib: per(server0, server1),
    });
    eprintln!(
        "  {}: {} connections: {} failed; RSS KiB/conn {:?}",
        row.name,
        s.hold,
        failures.len(),
        row.hold
    );
    if let Some(first) = failures.first() {
        row.errors.push(format!("{} of {} held connections failed, first: {first}", failures.len(), s.hold));
    }
    // Let the contender tear the connections down before the next one starts.
    std::thread::sleep(Duration::from_millis(300));
}

fn ssh_base(env: &Env, variant: &str) -> Command {
    let mut c = Command::new(env.ssh.as_deref().expect("ssh present"));
    c.arg("-F").arg(env.home.join(".ssh/config"));
    c.args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]);
    c.env("HOME", &env.home).env_remove("SANDBOX_FORWARD_LOG");
    match variant {
        "ssh -p (direct)" => {
            c.args(["-o", "ProxyCommand=none", "-o", "HostName=127.0.0.1", "-p", &env.ssh_port.to_string()]);
        }
        REFERENCE_SSH => {
            c.arg("-o").arg(format!(
                "ProxyCommand={} --relay-stdio {}",
                bench_bin(&env.opts).display(),
                env.ssh_port
            ));
        }
        "websocat" => {
            let ws = env.websocat.as_deref().expect("websocat present");
            c.arg("-o").arg(format!(
                "ProxyCommand={} -b ws://127.0.0.1:{}/api/port-forward?port={}",
                ws.display(),
                env.agent_port,
                env.ssh_port
            ));
        }
        _ => {}
    }
    c
}

fn measure_ssh(env: &Env, name: &str, what: &str) -> SshRow {
    let mut row = SshRow { name: name.into(), what: what.into(), ..Default::default() };
    let s = &env.sizes;
    let timeout = Duration::from_secs(300);
    // `ssh NAME true`: one warm-up, then timed runs.
    let mut times = Vec::new();
    for i in 0..=s.ssh_true_iters {
        let mut c = ssh_base(env, name);
        c.args([NAME, "true"]);
        let t0 = Instant::now();
        match ssh_exit(env, c, timeout) {
            Ok(_) if i > 0 => times.push(t0.elapsed()),
            Ok(_) => {}
            Err(e) => {
                row.errors.push(format!("ssh true: {e:#}"));
                break;
            }
        }
    }
    if !times.is_empty() && row.errors.is_empty() {
        row.true_ms = Some(percentiles(times).p50 / 1000.0);
    }
    let reps = env.opts.reps.max(1);
    let mut ups = Vec::new();
    let mut downs = Vec::new();
    for _ in 0..reps {
        match ssh_upload(env, name, s.ssh_bulk, timeout) {
            Ok(d) => ups.push(d.as_secs_f64()),
            Err(e) => row.errors.push(format!("ssh upload: {e:#}")),
        }
        match ssh_download(env, name, s.ssh_bulk, timeout) {
            Ok(d) => downs.push(d.as_secs_f64()),
            Err(e) => row.errors.push(format!("ssh download: {e:#}")),
        }
    }
    row.up_s = (!ups.is_empty()).then(|| median(ups));
    row.down_s = (!downs.is_empty()).then(|| median(downs));
    eprintln!(
        "  true {:?} ms; {} bytes up {:?} s, down {:?} s",
        row.true_ms, s.ssh_bulk, row.up_s, row.down_s
    );
    for e in &row.errors {
        eprintln!("  FAILED {e}");
    }
    row
}

/// ssh's stderr goes to the log file, not a pipe: a ProxyCommand inherits it, and the time that
/// counts is ssh's exit, not the moment the ProxyCommand (which ssh does not wait for) is gone.
fn ssh_stderr(env: &Env) -> anyhow::Result<Stdio> {
    Ok(std::fs::OpenOptions::new().create(true).append(true).open(&env.log)?.into())
}

/// Runs an ssh command with stdout discarded; returns when ssh itself has exited.
fn ssh_exit(env: &Env, mut c: Command, timeout: Duration) -> anyhow::Result<()> {
    let child = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(ssh_stderr(env)?).spawn()?;
    let status = procs::wait_exit(child, timeout)?;
    anyhow::ensure!(status.success(), "ssh exited with {status} (see the log)");
    Ok(())
}

/// `ssh NAME 'wc -c'` fed `len` pattern bytes; checks the checksum against ours.
fn ssh_upload(env: &Env, name: &str, len: u64, timeout: Duration) -> anyhow::Result<Duration> {
    let mut c = ssh_base(env, name);
    c.args([NAME, "wc -c"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(ssh_stderr(env)?);
    let t0 = Instant::now();
    let mut child = c.spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut off = 0u64;
        while off < len {
            let n = (len - off).min(load::CHUNK as u64) as usize;
            stdin.write_all(load::pattern_at(off, n))?;
            off += n as u64;
        }
        Ok(())
    });
    let status = procs::wait_exit(child, timeout)?;
    let took = t0.elapsed();
    anyhow::ensure!(status.success(), "ssh exited with {status}");
    writer.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
    let out = reader.join().map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let got: u64 = out.trim().parse().with_context(|| format!("wc said {out:?}"))?;
    anyhow::ensure!(got == len, "sent {len} bytes, the remote end counted {got}");
    Ok(took)
}

/// `ssh NAME 'head -c LEN /dev/zero'`; counts and checks what arrives.
fn ssh_download(env: &Env, name: &str, len: u64, timeout: Duration) -> anyhow::Result<Duration> {
    let mut c = ssh_base(env, name);
    c.args([NAME, &format!("head -c {len} /dev/zero")]);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(ssh_stderr(env)?);
    let t0 = Instant::now();
    let mut child = c.spawn()?;
    let pid = child.id();
    let mut stdout = child.stdout.take().context("stdout")?;
    let watchdog = std::thread::spawn(move || {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        procs::kill(pid);
    });
    let mut buf = vec![0u8; load::CHUNK];
    let (mut got, mut zeros) = (0u64, true);
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        zeros &= buf[..n].iter().all(|b| *b == 0);
        got += n as u64;
    }
    let status = child.wait()?;
    let took = t0.elapsed();
    let _ = watchdog.join();
    anyhow::ensure!(status.success(), "ssh exited with {status}");
    anyhow::ensure!(got == len && zeros, "expected {len} zero bytes, got {got} (all zero: {zeros})");
    Ok(took)
}

fn tool_versions(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    let first_line = |mut c: Command| -> Option<String> {
        let o = procs::run(std::mem::replace(&mut c, Command::new("true")), Duration::from_secs(10)).ok()?;
        let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
        String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_owned())
    };
    if let Some(ws) = &env.websocat {
        let mut c = Command::new(ws);
        c.arg("--version");
        out.extend(first_line(c));
    }
    if env.websockify.is_some() {
        let mut c = Command::new("dpkg-query");
        c.args(["-W", "-f", "websockify ${Version}", "websockify"]);
        out.push(first_line(c).unwrap_or_else(|| "websockify".into()));
    }
    if let Some(ssh) = &env.ssh {
        let mut c = Command::new(ssh);
        c.arg("-V");
        out.extend(first_line(c));
    }
    let mut c = Command::new("rustc");
    c.arg("-V");
    out.extend(first_line(c));
    out
}
