//! `/proc/net/tcp` and `/proc/net/tcp6`, the Linux kernel's tables of TCP sockets: which ports
//! listen in a pod.
//!
//! Our agent reads the files itself (`GET /api/listening-ports`); against a server without that
//! endpoint the client reads them over `ssh NAME cat /proc/net/tcp /proc/net/tcp6`. Both parse
//! with this one implementation and pick ports with [`listening_ports`], so both list the same.
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::api::{ListeningPort, FORWARDABLE_PORTS};

/// `st` of a listening socket (`TCP_LISTEN` in the kernel).
pub const TCP_LISTEN: u8 = 0x0A;

/// How the kernel printed addresses: each 32-bit word of an address as a number in the byte
/// order of the machine that wrote the file (ports are always big-endian numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// x86-64, aarch64: every pod in practice.
    Little,
    /// s390x and other big-endian machines.
    Big,
}

impl ByteOrder {
    /// This machine's order: right for a file read on the machine that wrote it.
    pub const NATIVE: ByteOrder =
        if cfg!(target_endian = "big") { ByteOrder::Big } else { ByteOrder::Little };

    fn bytes(self, word: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => word.to_le_bytes(),
            ByteOrder::Big => word.to_be_bytes(),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpSocket {
    /// Local address.
    pub address: IpAddr,
    /// Local port.
    pub port: u16,
    /// TCP state (`st`); [`TCP_LISTEN`] for a listener.
    pub state: u8,
    /// Owner's user id.
    pub uid: u32,
    /// Socket inode: `/proc/PID/fd/*` of its owners link to `socket:[inode]`.
    pub inode: u64,
}

impl TcpSocket {
    /// Whether a tunnel's dial to loopback can reach it: a loopback address (127/8, `::1`,
    /// `::ffff:127.x`) or every address (`0.0.0.0`, `::`).
    pub fn on_loopback_or_wildcard(&self) -> bool {
        let ip = match self.address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        ip.is_loopback() || ip.is_unspecified()
    }

    /// A listener a tunnel may reach: listening, in [`FORWARDABLE_PORTS`], on loopback or
    /// every address.
    pub fn is_reachable_listener(&self) -> bool {
        self.state == TCP_LISTEN && FORWARDABLE_PORTS.contains(&self.port) && self.on_loopback_or_wildcard()
    }
}

/// Text that is not the kernel's TCP table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcNetError {
    /// No `sl  local_address …` header line at all.
    #[error("not a /proc/net/tcp table (no \"sl  local_address\" header)")]
    NoHeader,
    /// A row below a header that does not read as one.
    #[error("line {line} of the /proc/net/tcp text is not a socket row")]
    BadRow {
        /// 1-based line number in the text given.
        line: usize,
    },
}

/// Parses one or more tables (`tcp` and `tcp6` concatenated, as `cat` prints them), each
/// starting with its header line. Blank lines are skipped; any other line must be a row.
pub fn parse(text: &str, order: ByteOrder) -> Result<Vec<TcpSocket>, ProcNetError> {
    let mut rows = Vec::new();
    let mut seen_header = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with("sl ") {
            seen_header = true;
            continue;
        }
        if !seen_header {
            return Err(ProcNetError::NoHeader);
        }
        rows.push(parse_row(trimmed, order).ok_or(ProcNetError::BadRow { line: i + 1 })?);
    }
    if seen_header {
        Ok(rows)
    } else {
        Err(ProcNetError::NoHeader)
    }
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`
fn parse_row(row: &str, order: ByteOrder) -> Option<TcpSocket> {
    let mut fields = row.split_whitespace();
    fields.next()?.strip_suffix(':')?;
    let (address, port) = fields.next()?.split_once(':')?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let (_queues, _timer, _retransmits) = (fields.next()?, fields.next()?, fields.next()?);
    let uid = fields.next()?.parse().ok()?;
    let _timeout = fields.next()?;
    let inode = fields.next()?.parse().ok()?;
    Some(TcpSocket {
        address: parse_address(address, order)?,
        port: parse_hex_port(port)?,
        state,
        uid,
        inode,
    })
}

fn parse_hex_port(hex: &str) -> Option<u16> {
    (hex.len() == 4).then(|| u16::from_str_radix(hex, 16).ok()).flatten()
}

/// 8 hex digits (IPv4) or 32 (IPv6: four words), each word in `order`.
fn parse_address(hex: &str, order: ByteOrder) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let word = |i: usize| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok().map(|w| order.bytes(w));
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// The ports a tunnel can reach ([`TcpSocket::is_reachable_listener`]), none of `exclude`; sorted by port, one entry per port (IPv4 and IPv6
/// listeners of one port are one entry). `process` names a socket's owner by inode, where known.
pub fn listening_ports(
    sockets: &[TcpSocket],
    exclude: &[u16],
    mut process: impl FnMut(u64) -> Option<String>,
) -> Vec<ListeningPort> {
    let mut by_port: BTreeMap<u16, Option<String>> = BTreeMap::new();
    for s in sockets {
        if !s.is_reachable_listener() || exclude.contains(&s.port) {
            continue;
        }
        let name = by_port.entry(s.port).or_default();
        if name.is_none() {
            *name = process(s.inode);
        }
    }
    by_port.into_iter().map(|(port, process)| ListeningPort { port, process }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on an x86-64 Linux 6.x host; row 4 (a pod address, 10.0.0.5:8080) and row 5
    /// (port 631, privileged) added by hand.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 44 1 000000005df4c9cb 100 0 0 10 0                        
   1: 0100007F:B289 0100007F:8388 06 00000000:00000000 03:00001525 00000000     0        0 0 3 00000000ca64b5ed                                      
   2: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1020001 1 000000003825cdbd 100 0 0 10 0
   3: 0100007F:1F40 0100007F:D5B4 01 00000000:00000000 00:00000000 00000000  1000        0 1020002 1 000000003825cdbd 20 4 30 10 -1
   4: 0500000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1020003 1 000000003825cdbd 100 0 0 10 0
   5: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1020004 1 000000003825cdbd 100 0 0 10 0
";

    /// Captured on the same host: a `::1` listener (IPV6_V6ONLY), one on `::ffff:127.0.0.1`, one
    /// on `::`, and an established connection.
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:87A3 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1020573 1 000000003825cdbd 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:9E23 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1020575 1 0000000021d2ac8b 100 0 0 10 0
   2: 00000000000000000000000000000000:D38F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1020574 1 00000000df291bb4 100 0 0 10 0
   3: 0000000000000000FFFF00000100007F:8593 0000000000000000FFFF00000100007F:D5B4 06 00000000:00000000 03:00000898 00000000     0        0 0 3 00000000ed8f6044
   4: 00000000000000000000000001000000:1435 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1020576 1 000000003825cdbd 100 0 0 10 0
";

    #[test]
    fn rows_of_both_tables_read_with_addresses_ports_states_and_inodes() {
        let rows = parse(&format!("{TCP}{TCP6}"), ByteOrder::Little).unwrap();
        assert_eq!(rows.len(), 11);
        assert_eq!(
            rows[0],
            TcpSocket {
                address: "0.0.0.0".parse().unwrap(),
                port: 2024,
                state: TCP_LISTEN,
                uid: 0,
                inode: 44
            }
        );
        assert_eq!((rows[1].address, rows[1].port, rows[1].state), ("127.0.0.1".parse().unwrap(), 45705, 6));
        assert_eq!((rows[2].uid, rows[2].inode), (1000, 1020001));
        assert_eq!(rows[4].address, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!((rows[6].address, rows[6].port), ("::1".parse().unwrap(), 34723));
        assert_eq!(rows[7].address, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!((rows[8].address, rows[8].inode), ("::".parse().unwrap(), 1020574));
    }

    #[test]
    fn only_loopback_and_wildcard_listeners_from_1024_up_one_per_port_sorted() {
        let rows = parse(&format!("{TCP}{TCP6}"), ByteOrder::Little).unwrap();
        let names = |inode: u64| (inode == 1020576).then(|| "node".to_owned());
        let ports = listening_ports(&rows, &[], names);
        let got: Vec<_> = ports.iter().map(|p| (p.port, p.process.as_deref())).collect();
        assert_eq!(
            got,
            [
                (2024, None),         // 0.0.0.0
                (5173, Some("node")), // 127.0.0.1 and ::1: one entry, the name from the one known
                (34723, None),        // ::1
                (40483, None),        // ::ffff:127.0.0.1
                (54159, None),        // ::
            ],
            "not 10.0.0.5:8080 (a dial to loopback misses it), not :631 (privileged), no connections"
        );
        let without: Vec<_> =
            listening_ports(&rows, &[2024, 34723], |_| None).iter().map(|p| p.port).collect();
        assert_eq!(without, [5173, 40483, 54159]);
    }

    #[test]
    fn a_big_endian_hosts_table_reads_the_same_addresses() {
        let big = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 7F000001:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 7 1 0 100 0 0 10 0
   1: 00000000000000000000000000000001:1436 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 8 1 0 100 0 0 10 0
";
        let rows = parse(big, ByteOrder::Big).unwrap();
        assert_eq!(rows[0].address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(rows[1].address, "::1".parse::<IpAddr>().unwrap());
    }

    /// Text from a pod (over ssh) is a peer's: any cut of it, any byte changed, parses or is
    /// refused, never panics.
    #[test]
    fn any_cut_or_damaged_table_is_an_answer_not_a_panic() {
        let text = format!("{TCP}{TCP6}");
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i], ByteOrder::Little);
            for junk in ["\u{0}", "Z", ":", " ", "é", "FFFFFFFFF"] {
                let damaged = format!("{}{junk}{}", &text[..i], &text[i..]);
                if let Ok(rows) = parse(&damaged, ByteOrder::Big) {
                    let _ = listening_ports(&rows, &[], |_| None);
                }
            }
        }
        let wildcard_mapped =
            "  sl  local_address\n 0: 0000000000000000FFFF000000000000:1435 0:0 0A 0:0 0:0 0 0 0 5 1\n";
        let rows = parse(wildcard_mapped, ByteOrder::Little).unwrap();
        assert_eq!(rows[0].address, "::ffff:0.0.0.0".parse::<IpAddr>().unwrap());
        assert!(rows[0].is_reachable_listener(), "an IPv4-mapped wildcard is a wildcard");
    }

    #[test]
    fn text_that_is_not_the_table_is_refused() {
        assert_eq!(parse("", ByteOrder::Little), Err(ProcNetError::NoHeader));
        assert_eq!(parse("Welcome to the pod!\n", ByteOrder::Little), Err(ProcNetError::NoHeader));
        let cut = format!("{TCP}   6: 0100007F:1F4");
        assert_eq!(parse(&cut, ByteOrder::Little), Err(ProcNetError::BadRow { line: 8 }));
        let junk = format!("{TCP}   6: 0100007G:1435 00000000:0000 0A 0:0 0:0 0 0 0 9 1\n");
        assert!(matches!(parse(&junk, ByteOrder::Little), Err(ProcNetError::BadRow { .. })));
        // A header alone (no sockets of that family) is an empty table.
        assert_eq!(parse(TCP6.lines().next().unwrap(), ByteOrder::Little), Ok(vec![]));
    }
}
