//! Results and their Markdown rendering (absolute figures, ratios to direct TCP and to the best
//! peer, and the targets).

use std::fmt::Write;

use crate::run::Sizes;

/// p50 and p99, microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub p50: f64,
    pub p99: f64,
}

/// Many connections held at once.
#[derive(Debug, Clone)]
pub struct Hold {
    pub n: usize,
    pub failures: usize,
    /// RSS growth per connection of the client-side process (tree), KiB.
    pub client_kib: Option<f64>,
    /// RSS growth per connection of the server-side process (tree), KiB.
    pub server_kib: Option<f64>,
}

/// One contender's figures; `None` where it failed or was not applicable.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub name: String,
    pub what: String,
    pub up: Option<f64>,
    pub down: Option<f64>,
    pub par_up: Option<f64>,
    pub par_down: Option<f64>,
    pub lat1: Option<Stat>,
    pub lat4k: Option<Stat>,
    pub setup: Option<Stat>,
    pub hold: Option<Hold>,
    /// Ours only: first byte echoed after a reset of the network (µs).
    pub recovery_reset: Option<Stat>,
    /// Ours only: first byte echoed after the network came back from an outage (µs).
    pub recovery_outage: Option<Stat>,
    /// Ours only: how the connection broke instead of recovering (v1).
    pub recovery_broke: Option<String>,
    pub errors: Vec<String>,
}

impl Row {
    pub fn new(name: &str, what: &str) -> Row {
        Row { name: name.into(), what: what.into(), ..Default::default() }
    }
}

/// One way of reaching the agent's SSH server with OpenSSH.
#[derive(Debug, Clone, Default)]
pub struct SshRow {
    pub name: String,
    pub what: String,
    /// Median wall time of `ssh NAME true`, ms.
    pub true_ms: Option<f64>,
    /// Median wall time of the bulk upload / download, s.
    pub up_s: Option<f64>,
    pub down_s: Option<f64>,
    pub errors: Vec<String>,
}

/// The machine the run happened on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub os: String,
    pub date: String,
    pub tools: Vec<String>,
}

impl Machine {
    pub fn detect() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
            .unwrap_or_else(|| "unknown".into());
        let mem_kib: u64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or(0);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            .unwrap_or_default();
        let cmd = |p: &str, a: &[&str]| {
            std::process::Command::new(p)
                .args(a)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            memory: format!("{:.1} GiB", mem_kib as f64 / (1 << 20) as f64),
            kernel: cmd("uname", &["-srm"]),
            os,
            date: cmd("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            tools: Vec::new(),
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub smoke: bool,
    pub sizes: Sizes,
    pub reps: usize,
    pub nofile: u64,
    pub rows: Vec<Row>,
    pub ssh_rows: Vec<SshRow>,
    pub notes: Vec<String>,
}

const DIRECT: &str = "direct TCP";
pub const OURS: &str = "ours";
/// Ours speaking tunnel protocol v1 (`SANDBOX_FORWARD_TUNNEL_PROTOCOL=v1`): not a peer.
pub const OURS_V1: &str = "ours (v1)";

/// What the v2 columns cost and why (measured once, by hand; see the stop notes of issue 13).
const V2_COST: &str = "Where v2's bulk cost went: every byte v2 sends is kept until acknowledged. \
Kept in the sender's own memory, each read landed in memory a window's worth of traffic old (cold \
in the caches), and a window small enough to stay warm (`wire::pace`: 512 KiB on loopback) made the \
sender wait for acknowledgements; this bench showed v2 at 0.86–0.97× of v1 whatever the window, \
and an experiment that kept nothing matched v1. Now, where the local side is a TCP socket on \
Linux — `proxy --port`'s connections and the agent's targets, every row of this table — the bytes \
stay in the socket's receive queue instead (`wire::local`): v2 peeks (`SO_PEEK_OFF`), reuses one \
read buffer as v1 does and drops what the peer acknowledges (`MSG_TRUNC`, no copy). Five runs of \
this bench at this code (three full with reps 5, 5 and 8; two `--only ours`, reps 5) gave v2 ÷ v1 \
upload 0.93–1.02× (mean 0.97), download 0.96–1.03× (1.00), 8× upload 0.94–1.00× (0.96), 8× \
download 0.90–0.98× (0.95), against 0.86–0.97× before; what still differs from v1 is the \
acknowledgements (about 700 a GiB each way), and run-to-run noise on this 2-core machine is ±5 %. \
Pipes (`proxy --ssh`, the ssh rows), macOS, Windows, kernels before 6.9 and a `net.core.rmem_max` \
below 4 MiB keep the bytes in memory as before.";
/// The reference contender: what two bare relays reach; never counted as a peer.
pub const REFERENCE: &str = "2 bare TCP relays";
/// The reference ssh path: ssh's pipes relayed straight to the SSH port.
pub const REFERENCE_SSH: &str = "bare relay";

/// Higher is better (`true`) or lower is better.
/// One figure of a row.
type Metric = fn(&Row) -> Option<f64>;

fn best_peer<F: Fn(&Row) -> Option<f64>>(rows: &[Row], f: F, higher: bool) -> Option<(f64, String)> {
    rows.iter()
        .filter(|r| r.name != DIRECT && r.name != OURS && r.name != OURS_V1 && r.name != REFERENCE)
        .filter_map(|r| f(r).map(|v| (v, r.name.clone())))
        .reduce(|a, b| if (b.0 > a.0) == higher { b } else { a })
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "—".into())
}

fn ratio(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "—".into(),
    }
}

impl Report {
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// One metric as a table: value, × direct, × best peer.
    fn metric_table(
        &self,
        out: &mut String,
        title: &str,
        unit: &str,
        higher: bool,
        f: &dyn Fn(&Row) -> Option<f64>,
    ) {
        let direct = self.row(DIRECT).and_then(f);
        let best = best_peer(&self.rows, f, higher);
        let _ = writeln!(out, "\n#### {title}\n");
        let best_name = best.as_ref().map(|b| b.1.as_str()).unwrap_or("none");
        let _ = writeln!(out, "| contender | {unit} | × direct TCP | × best peer ({best_name}) |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for r in &self.rows {
            let v = f(r);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.name,
                fmt_opt(v, 2),
                ratio(v, direct),
                ratio(v, best.as_ref().map(|b| b.0))
            );
        }
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let s = &self.sizes;
        let _ = writeln!(o, "# Benchmarks\n");
        let _ = writeln!(
            o,
            "Written by `scripts/bench.sh`{} — rerun it to reproduce. Every contender runs in the same run, \
             on loopback, measured by the same load generator (`bench/src/load.rs`, tokio); every byte \
             moved is checked against a pseudo-random pattern. Peers: websocat, websockify, ssh -L.\n",
            if self.smoke { " --smoke (tiny sizes: the figures mean nothing)" } else { "" }
        );
        let _ = writeln!(
            o,
            "**Machine:** {} × {} cores, {} RAM, {} ({}), {}.  ",
            m.cores, m.cpu, m.memory, m.os, m.kernel, m.date
        );
        let _ = writeln!(o, "**Tools:** {}.  ", m.tools.join("; "));
        let _ = writeln!(
            o,
            "**Work:** bulk {} MiB per direction on one connection and over {} parallel connections \
             (median of {}); ping-pong {} round trips per size; setup {} connections in a row; {} \
             connections held at once (a forward's cap; RLIMIT_NOFILE {}); `ssh true` × {}, ssh bulk {} MiB (median of {}).\n",
            s.bulk >> 20,
            s.streams,
            self.reps,
            s.latency_iters,
            s.setup_iters,
            s.hold,
            self.nofile,
            s.ssh_true_iters,
            s.ssh_bulk >> 20,
            self.reps
        );
        let _ = writeln!(o, "## Contenders\n");
        for r in &self.rows {
            let _ = writeln!(o, "- **{}**: {}", r.name, r.what);
        }
        let _ = writeln!(o, "\n## Summary (absolute)\n");
        let _ = writeln!(
            o,
            "| contender | up Gbit/s | down Gbit/s | 8× up Gbit/s | 8× down Gbit/s | 1 B RTT p50/p99 µs | 4 KiB RTT p50/p99 µs | setup p50/p99 µs | {} conns failed | RSS/conn client KiB | RSS/conn server KiB |",
            s.hold
        );
        let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let st =
            |v: Option<Stat>| v.map(|v| format!("{:.0} / {:.0}", v.p50, v.p99)).unwrap_or_else(|| "—".into());
        for r in &self.rows {
            let h = r.hold.as_ref();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                fmt_opt(r.up, 2),
                fmt_opt(r.down, 2),
                fmt_opt(r.par_up, 2),
                fmt_opt(r.par_down, 2),
                st(r.lat1),
                st(r.lat4k),
                st(r.setup),
                h.map(|h| h.failures.to_string()).unwrap_or_else(|| "—".into()),
                fmt_opt(h.and_then(|h| h.client_kib), 1),
                fmt_opt(h.and_then(|h| h.server_kib), 1),
            );
        }
        let _ = writeln!(o, "\n## Ratios\n");
        let _ = writeln!(
            o,
            "Ratios are value ÷ reference: above 1 is better for throughput, below 1 is better for times."
        );
        self.metric_table(&mut o, "Upload, one connection", "Gbit/s", true, &|r| r.up);
        self.metric_table(&mut o, "Download, one connection", "Gbit/s", true, &|r| r.down);
        self.metric_table(&mut o, "Upload, 8 connections", "Gbit/s", true, &|r| r.par_up);
        self.metric_table(&mut o, "Download, 8 connections", "Gbit/s", true, &|r| r.par_down);
        self.metric_table(&mut o, "1-byte round trip p50", "µs", false, &|r| r.lat1.map(|s| s.p50));
        self.metric_table(&mut o, "4 KiB round trip p50", "µs", false, &|r| r.lat4k.map(|s| s.p50));
        self.metric_table(
            &mut o,
            "Connection setup p50 (connect → first byte echoed)",
            "µs",
            false,
            &|r| r.setup.map(|s| s.p50),
        );
        self.metric_table(&mut o, "RSS per held connection, client side", "KiB", false, &|r| {
            r.hold.as_ref().and_then(|h| h.client_kib)
        });

        if let (Some(ours), Some(reference)) = (self.row(OURS), self.row(REFERENCE)) {
            let _ = writeln!(o, "\n## Against the ceiling\n");
            let _ = writeln!(
                o,
                "`{REFERENCE}` carries the bytes through the same two extra hops as ours with nothing \
                 else to do: what any relay of two user-space hops reaches on this machine.\n"
            );
            let _ = writeln!(o, "| metric | ours | {REFERENCE} | ours ÷ relays |");
            let _ = writeln!(o, "|---|---:|---:|---:|");
            let metrics: [(&str, Metric); 6] = [
                ("upload Gbit/s", |r| r.up),
                ("download Gbit/s", |r| r.down),
                ("8× upload Gbit/s", |r| r.par_up),
                ("8× download Gbit/s", |r| r.par_down),
                ("1 B RTT p50 µs", |r| r.lat1.map(|s| s.p50)),
                ("4 KiB RTT p50 µs", |r| r.lat4k.map(|s| s.p50)),
            ];
            for (label, f) in metrics {
                let (a, b) = (f(ours), f(reference));
                let _ = writeln!(o, "| {label} | {} | {} | {} |", fmt_opt(a, 2), fmt_opt(b, 2), ratio(a, b));
            }
        }

        self.protocols(&mut o);

        if !self.ssh_rows.is_empty() {
            let direct = self.ssh_rows.iter().find(|r| r.name.starts_with("ssh -p"));
            let _ = writeln!(o, "\n## OpenSSH to the agent's SSH server\n");
            let _ = writeln!(
                o,
                "The agent's SSH server is the same in every row; only the path to it differs.\n"
            );
            let _ = writeln!(
                o,
                "| path | `ssh NAME true` p50 ms | × direct | upload {} MiB s | × direct | download {} MiB s | × direct |",
                s.ssh_bulk >> 20,
                s.ssh_bulk >> 20
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
            for r in &self.ssh_rows {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    fmt_opt(r.true_ms, 1),
                    ratio(r.true_ms, direct.and_then(|d| d.true_ms)),
                    fmt_opt(r.up_s, 2),
                    ratio(r.up_s, direct.and_then(|d| d.up_s)),
                    fmt_opt(r.down_s, 2),
                    ratio(r.down_s, direct.and_then(|d| d.down_s)),
                );
            }
            let _ = writeln!(o);
            for r in &self.ssh_rows {
                let _ = writeln!(o, "- **{}**: {}", r.name, r.what);
            }
        }

        let _ = writeln!(o, "\n## Targets\n");
        for (ok, line) in self.targets() {
            let _ = writeln!(o, "- {} {line}", if ok { "✅" } else { "❌" });
        }
        let errors: Vec<_> = self
            .rows
            .iter()
            .flat_map(|r| r.errors.iter().map(move |e| format!("{}: {e}", r.name)))
            .chain(
                self.ssh_rows
                    .iter()
                    .flat_map(|r| r.errors.iter().map(move |e| format!("ssh via {}: {e}", r.name))),
            )
            .collect();
        if !errors.is_empty() || !self.notes.is_empty() {
            let _ = writeln!(o, "\n## Failures and notes\n");
            for e in errors.iter().chain(&self.notes) {
                let _ = writeln!(o, "- {e}");
            }
        }
        let _ = writeln!(
            o,
            "\n## How to read this\n\n\
             - RSS per connection: growth of VmRSS (`/proc/PID/status`, summed over the process and its \
             children — websockify forks one process per connection, so its shared pages are counted \
             once per child) while the connections are held, divided by their number, on processes started anew for \
             it (after the throughput runs freed buffers would be reused and hide the cost). Client side = the \
             local listener process; server side = the WebSocket server (for ours: a fresh \
             `sandbox-agent`, which also dials the target; for ssh -L the agent every contender shares).\n\
             - No `sshd` is involved: `ssh -L` and `ssh -p` talk to the agent's embedded SSH server, which \
             opens at most 64 channels per SSH connection (`MAX_CHANNELS`): `ssh -L` carries every held \
             connection as a channel of one, so the ones beyond fail.\n\
             - Every tunnelled byte crosses three TCP connections (load generator → local end → server \
             end → target) where direct TCP crosses one, on the same two cores: six socket copies and \
             three chains of wake-ups instead of two and one.\n\
             - `ssh NAME true` straight to the port is bimodal on this machine (about 20 ms or 60 ms a \
             run): OpenSSH sets TCP_NODELAY only for interactive sessions, so some non-interactive \
             logins wait out a 40 ms delayed ACK. Through a ProxyCommand ssh writes to a pipe and never \
             waits; what the tunnel adds is ssh starting the command through the user's shell, our \
             process start and two HTTP exchanges (about 6 ms here).\n\
             - ssh bulk transfer: the ssh client and the agent's SSH server already keep both cores busy \
             with crypto; the tunnel's hops (pipe, WebSocket TCP, unmasking) compete with them for the \
             same cores.\n\
             - All processes share the same cores as the load generator and the target server, as they \
             would on a laptop."
        );
        o
    }

    /// The two tunnel protocols side by side: ours (v2) and ours (v1).
    fn protocols(&self, o: &mut String) {
        let (Some(v2), Some(v1)) = (self.row(OURS), self.row(OURS_V1)) else { return };
        let s = &self.sizes;
        let _ = writeln!(o, "\n## Tunnel protocol v1 and v2\n");
        let _ = writeln!(
            o,
            "The same binaries, the same run: `{OURS}` speaks v2 (the default: a byte stream that \
             survives a dropped WebSocket), `{OURS_V1}` is forced to v1 with \
             `SANDBOX_FORWARD_TUNNEL_PROTOCOL=v1`; their transfers alternate (v2 v1, v1 v2, …) an \
             even number of times, so each goes first as often. Idle tunnel memory is the RSS per held connection \
             above ({} tunnels open and idle at once, a fresh CLI and a fresh agent for each protocol). Recovery: one echo connection through a relay \
             between the CLI and the agent that resets every connection ({} times, the network usable \
             again at once), then goes away for {} ms ({} times: connections reset, new ones refused) \
             and comes back; timed from the network being back to the first byte echoed.\n",
            s.hold,
            s.recovery_iters,
            s.outage.as_millis(),
            s.recovery_iters
        );
        let _ = writeln!(o, "| metric | v1 | v2 | v2 ÷ v1 |");
        let _ = writeln!(o, "|---|---:|---:|---:|");
        let metrics: [(&str, Metric, usize); 9] = [
            ("upload Gbit/s", |r| r.up, 2),
            ("download Gbit/s", |r| r.down, 2),
            ("8× upload Gbit/s", |r| r.par_up, 2),
            ("8× download Gbit/s", |r| r.par_down, 2),
            ("1 B RTT p50 µs", |r| r.lat1.map(|s| s.p50), 0),
            ("4 KiB RTT p50 µs", |r| r.lat4k.map(|s| s.p50), 0),
            ("setup p50 µs", |r| r.setup.map(|s| s.p50), 0),
            ("idle tunnel RSS, client KiB", |r| r.hold.as_ref().and_then(|h| h.client_kib), 1),
            ("idle tunnel RSS, agent KiB", |r| r.hold.as_ref().and_then(|h| h.server_kib), 1),
        ];
        for (label, f, digits) in metrics {
            let (a, b) = (f(v1), f(v2));
            let _ = writeln!(
                o,
                "| {label} | {} | {} | {} |",
                fmt_opt(a, digits),
                fmt_opt(b, digits),
                ratio(b, a)
            );
        }
        let rec = |r: &Row, f: fn(&Row) -> Option<Stat>| match (f(r), &r.recovery_broke) {
            (Some(st), _) => format!("{:.1} / {:.1}", st.p50 / 1000.0, st.p99 / 1000.0),
            (None, Some(_)) => "— (connection broken)".into(),
            (None, None) => "—".into(),
        };
        for (label, f) in [
            (
                "recovery after a reset, p50 / max ms",
                (|r: &Row| r.recovery_reset) as fn(&Row) -> Option<Stat>,
            ),
            ("recovery after an outage, p50 / max ms", |r: &Row| r.recovery_outage),
        ] {
            let _ = writeln!(o, "| {label} | {} | {} | |", rec(v1, f), rec(v2, f));
        }
        if let Some(why) = &v1.recovery_broke {
            let _ = writeln!(o, "\nv1 after a reset: {why}.");
        }
        let _ = writeln!(o, "\n{V2_COST}");
    }

    /// The targets for ours: `(met, description)`.
    pub fn targets(&self) -> Vec<(bool, String)> {
        let mut t = Vec::new();
        let Some(ours) = self.row(OURS) else { return t };
        let direct = self.row(DIRECT);
        for (label, f) in
            [("upload", (|r: &Row| r.up) as fn(&Row) -> Option<f64>), ("download", |r: &Row| r.down)]
        {
            if let (Some(v), Some((b, bn))) = (f(ours), best_peer(&self.rows, f, true)) {
                t.push((
                    v >= 1.2 * b,
                    format!("{label} ≥ 1.2× best peer: {v:.2} vs {bn} {b:.2} Gbit/s = {:.2}×", v / b),
                ));
            }
            if let (Some(v), Some(d)) = (f(ours), direct.and_then(f)) {
                let ceiling = match self.row(REFERENCE).and_then(f) {
                    Some(c) => format!(" (two bare relays: {:.2}×)", c / d),
                    None => String::new(),
                };
                t.push((
                    v >= 0.5 * d,
                    format!("{label} ≥ 0.5× direct TCP: {v:.2} vs {d:.2} Gbit/s = {:.2}×{ceiling}", v / d),
                ));
            }
        }
        for (label, f) in [
            ("1 B", (|r: &Row| r.lat1.map(|s| s.p50)) as fn(&Row) -> Option<f64>),
            ("4 KiB", |r: &Row| r.lat4k.map(|s| s.p50)),
        ] {
            if let (Some(v), Some((b, bn))) = (f(ours), best_peer(&self.rows, f, false)) {
                t.push((v <= b, format!("{label} round trip p50 ≤ best peer: {v:.0} µs vs {bn} {b:.0} µs")));
            }
        }
        if let Some(h) = &ours.hold {
            let kib = h.client_kib.unwrap_or(f64::INFINITY);
            t.push((
                h.failures == 0 && kib <= 64.0,
                format!(
                    "{} connections: {} failures, {:.1} KiB RSS each client side (agent: {} KiB) — want 0 and ≤ 64 KiB",
                    h.n,
                    h.failures,
                    kib,
                    fmt_opt(h.server_kib, 1)
                ),
            ));
        }
        if let Some(v1) = self.row(OURS_V1) {
            for (label, f) in [
                ("upload", (|r: &Row| r.up) as fn(&Row) -> Option<f64>),
                ("download", |r: &Row| r.down),
                ("8× upload", |r: &Row| r.par_up),
                ("8× download", |r: &Row| r.par_down),
            ] {
                if let (Some(a), Some(b)) = (f(v1), f(ours)) {
                    t.push((
                        b >= 0.95 * a,
                        format!("v2 {label} within 5 % of v1: {b:.2} vs {a:.2} Gbit/s = {:.2}×", b / a),
                    ));
                }
            }
            for (label, f) in [
                ("1 B", (|r: &Row| r.lat1.map(|s| s.p50)) as fn(&Row) -> Option<f64>),
                ("4 KiB", |r: &Row| r.lat4k.map(|s| s.p50)),
            ] {
                if let (Some(a), Some(b)) = (f(v1), f(ours)) {
                    t.push((
                        b <= 1.05 * a,
                        format!(
                            "v2 {label} round trip p50 within 5 % of v1: {b:.0} vs {a:.0} µs = {:.2}×",
                            b / a
                        ),
                    ));
                }
            }
        }
        if let Some(h) = &ours.hold {
            let (c, s) = (h.client_kib.unwrap_or(f64::INFINITY), h.server_kib.unwrap_or(f64::INFINITY));
            t.push((
                c <= 64.0 && s <= 64.0,
                format!("v2 idle tunnel ≤ 64 KiB per end: client {c:.1} KiB, agent {s:.1} KiB"),
            ));
        }
        for (label, st) in [("a reset", ours.recovery_reset), ("an outage", ours.recovery_outage)] {
            if let Some(st) = st {
                t.push((
                    st.p99 < 1e6,
                    format!(
                        "recovery after {label} < 1 s once the network is back: p50 {:.0} ms, max {:.0} ms",
                        st.p50 / 1000.0,
                        st.p99 / 1000.0
                    ),
                ));
            }
        }
        let direct_ssh = self.ssh_rows.iter().find(|r| r.name.starts_with("ssh -p"));
        let ours_ssh = self.ssh_rows.iter().find(|r| r.name == OURS);
        if let (Some(d), Some(o)) = (direct_ssh, ours_ssh) {
            for (label, dv, ov) in [("upload", d.up_s, o.up_s), ("download", d.down_s, o.down_s)] {
                if let (Some(dv), Some(ov)) = (dv, ov) {
                    let r = dv / ov;
                    t.push((
                        r >= 0.9,
                        format!(
                            "ssh bulk {label} ≥ 0.9× direct `ssh -p` speed: {r:.2}× ({ov:.2} s vs {dv:.2} s)"
                        ),
                    ));
                }
            }
            if let (Some(dv), Some(ov)) = (d.true_ms, o.true_ms) {
                let r = ov / dv;
                t.push((
                    r <= 1.15,
                    format!("`ssh NAME true` ≤ 1.15× direct: {r:.2}× ({ov:.1} ms vs {dv:.1} ms)"),
                ));
            }
        }
        t
    }
}
