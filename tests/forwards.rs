//! The core's forward set (what the tray app's toggles drive) against a real `sandbox-agent`:
//! toggling a forward on makes bytes flow through `127.0.0.1:LOCAL`, the status counts them,
//! toggling it off closes the port and the connections through it.
//!
//! Unix only: these drive the pod side (`sandbox-agent`, Unix by design) and Unix peers.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use sandbox_core::forwards::{Forwards, PortForward};
use sandbox_core::name::SandboxName;
use sandbox_tests::{api_client, echo_server, Agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toggling_a_forward_carries_bytes_counts_them_and_closes_cleanly() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let pod_port = echo_server();
    let forwards = Forwards::new();
    let name = SandboxName::new("box").unwrap();
    let spec = PortForward { remote_port: pod_port, local_port: 0, label: "echo".into(), auto_start: false };

    let local = forwards.start(&name, api_client(&agent.url()), &spec).await.unwrap();
    let mut conn = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(("127.0.0.1", local)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(&[42u8; 100_000]).unwrap();
        let mut back = vec![0u8; 100_000];
        c.read_exact(&mut back).unwrap();
        assert!(back.iter().all(|&b| b == 42));
        c
    })
    .await
    .unwrap();

    let status = forwards.status();
    assert_eq!(status.len(), 1);
    let s = &status[0];
    assert_eq!((s.sandbox.as_str(), s.remote_port, s.local_port), ("box", pod_port, local));
    assert_eq!((s.active, s.total, s.bytes_sent, s.bytes_received), (1, 1, 100_000, 100_000));
    assert!(forwards.is_running(&name, pod_port));

    // Off: the port closes and so does the open connection.
    assert!(forwards.stop(&name, pod_port).await);
    assert!(forwards.status().is_empty());
    assert!(TcpStream::connect(("127.0.0.1", local)).is_err(), "port still open");
    let closed = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 1];
        matches!(conn.read(&mut buf), Ok(0) | Err(_))
    })
    .await
    .unwrap();
    assert!(closed, "connection survived the toggle");
}

#[tokio::test]
async fn a_busy_local_port_and_a_disabled_feature_are_reported_at_start() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let forwards = Forwards::new();
    let name = SandboxName::new("box").unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let spec = PortForward {
        remote_port: 5173,
        local_port: busy.local_addr().unwrap().port(),
        label: String::new(),
        auto_start: false,
    };
    let err = forwards.start(&name, api_client(&agent.url()), &spec).await.unwrap_err().to_string();
    assert!(err.contains("is already in use"), "{err}");

    let off = Agent::start(workspace.path(), 0, &["--dev-mode", "--no-port-forward"]);
    let spec = PortForward { local_port: 0, ..spec };
    let err = forwards.start(&name, api_client(&off.url()), &spec).await.unwrap_err().to_string();
    assert!(err.contains("404") && err.contains("port forwarding is not enabled"), "{err}");
    assert!(forwards.status().is_empty());
}

#[tokio::test]
async fn the_client_lists_the_pods_listeners_with_their_process_and_not_the_agents_own() {
    let workspace = tempfile::tempdir().unwrap();
    let agent = Agent::start(workspace.path(), 0, &["--dev-mode"]);
    let api = api_client(&agent.url());
    // A listener "in the pod": this test process, so its name is this process's comm.
    let pod = TcpListener::bind("127.0.0.1:0").unwrap();
    let pod_port = pod.local_addr().unwrap().port();
    let ssh_port = api.ssh_port().await.unwrap().port;
    let ports = api.listening_ports().await.unwrap();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let ours = ports.iter().find(|p| p.port == pod_port).unwrap_or_else(|| panic!("{pod_port}: {ports:?}"));
    assert_eq!(ours.process.as_deref(), Some(comm.trim_end()));
    assert!(!ports.iter().any(|p| p.port == agent.port || p.port == ssh_port), "the agent's own: {ports:?}");

    // Our agent without port forwarding answers 404, as the original server does: NotFound,
    // which `ports::detect` turns into the SSH fallback.
    let off = Agent::start(workspace.path(), 0, &["--dev-mode", "--no-port-forward"]);
    let err = api_client(&off.url()).listening_ports().await.unwrap_err();
    assert!(matches!(err, sandbox_core::api::ApiError::NotFound { .. }), "{err}");
}
