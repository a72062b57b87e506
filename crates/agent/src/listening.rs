//! The TCP ports listening in the pod (`GET /api/listening-ports`): the kernel's tables
//! (`/proc/net/tcp`, `/proc/net/tcp6`, parsed by `sandbox_wire::proc_net`), each listener's
//! process found through `/proc/PID/fd/*` → `socket:[inode]`, named by `/proc/PID/comm`.
//!
//! Linux only: other Unixes have no `/proc/net` (the endpoint answers 501 there). Blocking file
//! reads: run it on the blocking pool.

use sandbox_wire::api::ListeningPort;

/// What the pod cannot tell us.
#[derive(Debug, thiserror::Error)]
pub enum ListeningError {
    /// Neither table could be read.
    #[error("cannot read {path}: {source}; the agent needs a Linux /proc")]
    Unreadable {
        /// The file.
        path: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The kernel's text did not parse.
    #[error(transparent)]
    Format(#[from] sandbox_wire::proc_net::ProcNetError),
    /// Not Linux: no `/proc/net/tcp`.
    #[error("listing listening ports needs Linux's /proc/net/tcp, which this system lacks")]
    Unsupported,
}

/// The listeners a tunnel can reach (see `sandbox_wire::proc_net::listening_ports`), less
/// `exclude` (the agent's own ports), with process names where `/proc` shows them.
#[cfg(target_os = "linux")]
pub fn listening_ports(exclude: &[u16]) -> Result<Vec<ListeningPort>, ListeningError> {
    use sandbox_wire::proc_net::{self, ByteOrder};
    let mut text = String::new();
    let mut readable = 0;
    let mut first_error = None;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // tcp6 is absent where IPv6 is off; only both missing is an error.
        match std::fs::read_to_string(path) {
            Ok(t) => {
                text.push_str(&t);
                readable += 1;
            }
            Err(source) => {
                first_error.get_or_insert(ListeningError::Unreadable { path, source });
            }
        }
    }
    if readable == 0 {
        return Err(first_error.expect("an error for every unreadable file"));
    }
    let sockets = proc_net::parse(&text, ByteOrder::NATIVE)?;
    let mut wanted: Vec<u64> = sockets
        .iter()
        .filter(|s| s.is_reachable_listener() && !exclude.contains(&s.port))
        .map(|s| s.inode)
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let owners = socket_owners(&wanted);
    Ok(proc_net::listening_ports(&sockets, exclude, |inode| owners.get(&inode).cloned()))
}

/// Never on other Unixes: no `/proc/net/tcp` to read.
#[cfg(not(target_os = "linux"))]
pub fn listening_ports(_exclude: &[u16]) -> Result<Vec<ListeningPort>, ListeningError> {
    Err(ListeningError::Unsupported)
}

/// Process names of the sockets `inodes`, from every `/proc/PID/fd` this process may read
/// (its user's processes; all of them as root). Stops once every inode has a name.
#[cfg(target_os = "linux")]
fn socket_owners(inodes: &[u64]) -> std::collections::HashMap<u64, String> {
    let mut owners = std::collections::HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else { return owners };
    for entry in procs.flatten() {
        if owners.len() == inodes.len() {
            break;
        }
        let pid = entry.file_name();
        if !pid.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        // Another user's process: EACCES, and its sockets stay nameless.
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else { continue };
        let mut comm = None;
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else { continue };
            let Some(inode) = socket_inode(link.as_os_str().as_encoded_bytes()) else { continue };
            if !inodes.contains(&inode) || owners.contains_key(&inode) {
                continue;
            }
            let name = comm.get_or_insert_with(|| {
                std::fs::read_to_string(entry.path().join("comm"))
                    .map(|c| c.trim_end_matches('\n').to_owned())
            });
            if let Ok(name) = name {
                owners.insert(inode, name.clone());
            }
        }
    }
    owners
}

/// `socket:[12345]` → 12345.
#[cfg(any(target_os = "linux", test))]
fn socket_inode(link: &[u8]) -> Option<u64> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links_name_their_inode() {
        assert_eq!(socket_inode(b"socket:[1020573]"), Some(1020573));
        assert_eq!(socket_inode(b"pipe:[1020573]"), None);
        assert_eq!(socket_inode(b"/dev/null"), None);
        assert_eq!(socket_inode(b"socket:[]"), None);
    }

    /// Our own listeners, as the kernel lists them: a loopback one named after this test
    /// process, a wildcard IPv6 one, and none that is excluded or bound to another address.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_listeners_are_seen_with_its_name() {
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::]:0").ok();
        let excluded = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        let skip = excluded.local_addr().unwrap().port();
        let ports = listening_ports(&[skip]).unwrap();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let ours =
            ports.iter().find(|p| p.port == port).unwrap_or_else(|| panic!("{port} missing: {ports:?}"));
        assert_eq!(ours.process.as_deref(), Some(comm.trim_end()));
        if let Some(v6) = v6 {
            let port6 = v6.local_addr().unwrap().port();
            assert!(ports.iter().any(|p| p.port == port6), "[::]:{port6} missing: {ports:?}");
        }
        assert!(!ports.iter().any(|p| p.port == skip), "excluded {skip} listed: {ports:?}");
        assert!(ports.windows(2).all(|w| w[0].port < w[1].port), "sorted, one per port: {ports:?}");
    }
}
