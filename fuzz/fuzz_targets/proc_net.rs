//! The kernel's TCP tables as a pod's ssh session printed them (the client's fallback for
//! `ports NAME`): whatever arrives is parsed or refused, and the ports picked from it are
//! sorted, one per port, each a listener a tunnel may reach.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandbox_wire::proc_net::{self, ByteOrder};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else { return };
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let Ok(rows) = proc_net::parse(text, order) else { continue };
        let ports = proc_net::listening_ports(&rows, &[2222], |inode| Some(inode.to_string()));
        assert!(ports.windows(2).all(|w| w[0].port < w[1].port), "not sorted, one per port");
        for p in &ports {
            assert!(p.port >= 1024 && p.port != 2222, "{p:?}");
            assert!(
                rows.iter().any(|r| r.port == p.port && r.is_reachable_listener()),
                "{p:?} from no listener"
            );
        }
    }
});
