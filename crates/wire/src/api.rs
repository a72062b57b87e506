//! JSON bodies and paths of the sandbox HTTP API (the contract: `crates/agent/openapi.yaml`,
//! which the agent also serves at `/api/openapi.yaml`).

use serde::{Deserialize, Serialize};

/// `GET` — the embedded SSH server's loopback port.
pub const SSH_PORT_PATH: &str = "/api/ssh-port";
/// `POST` — register an OpenSSH public key for the caller's subject.
pub const AUTHORIZED_KEYS_PATH: &str = "/api/ssh-authorized-keys";
/// `GET` + WebSocket upgrade — raw TCP to `127.0.0.1:port` inside the pod.
pub const PORT_FORWARD_PATH: &str = "/api/port-forward";
/// `GET` — the TCP ports listening inside the pod that a tunnel can reach (ours; the original
/// server answers 404).
pub const LISTENING_PORTS_PATH: &str = "/api/listening-ports";

/// Identity header set by the routing service in front of the pod.
pub const FORWARDED_SUB: &str = "x-forwarded-sub";
/// Optional display name of the subject, for audit logs.
pub const FORWARDED_USER: &str = "x-forwarded-user";
/// Optional comma-separated groups of the subject, for audit logs.
pub const FORWARDED_GROUPS: &str = "x-forwarded-groups";

/// Largest body the authorized-keys endpoint accepts.
pub const MAX_KEY_BODY: usize = 64 * 1024;

/// Ports a client may forward to: non-privileged only.
pub const FORWARDABLE_PORTS: std::ops::RangeInclusive<u16> = 1024..=65535;

/// Body of `GET /api/ssh-port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshPortResponse {
    /// Port of the embedded SSH server on the pod's loopback.
    pub port: u16,
    /// The SSH server's host public key in OpenSSH form (`ssh-ed25519 AAAA…`).
    ///
    /// An extension of ours: the original server omits it and the original clients ignore it.
    /// Delivered over the authenticated TLS channel, it lets clients pin the pod's ephemeral
    /// host key instead of turning host-key checking off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
}

/// Body of `POST /api/ssh-authorized-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizedKeyRequest {
    /// OpenSSH public key line: `ssh-ed25519 AAAA… optional-comment`.
    pub public_key: String,
}

/// Body of `GET /api/listening-ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningPortsResponse {
    /// Sorted by port, one entry per port.
    pub ports: Vec<ListeningPort>,
}

/// A TCP port listening in the pod on loopback or every address, in [`FORWARDABLE_PORTS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListeningPort {
    /// The port.
    pub port: u16,
    /// The listening process's name (`/proc/PID/comm`: at most 15 bytes, chosen by that
    /// process); `null` where the agent cannot see the owner (another user's process).
    #[serde(default)]
    pub process: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_port_without_host_key_matches_the_original_server() {
        let r: SshPortResponse = serde_json::from_str(r#"{"port": 2222}"#).unwrap();
        assert_eq!(r, SshPortResponse { port: 2222, host_key: None });
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"port":2222}"#);
    }

    #[test]
    fn ssh_port_with_host_key_round_trips() {
        let r = SshPortResponse { port: 1, host_key: Some("ssh-ed25519 AAAA".into()) };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SshPortResponse>(&s).unwrap(), r);
    }

    #[test]
    fn listening_ports_have_the_documented_shape() {
        let body = ListeningPortsResponse {
            ports: vec![
                ListeningPort { port: 5173, process: Some("node".into()) },
                ListeningPort { port: 8000, process: None },
            ],
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text, r#"{"ports":[{"port":5173,"process":"node"},{"port":8000,"process":null}]}"#);
        let without: ListeningPortsResponse = serde_json::from_str(r#"{"ports":[{"port":8000}]}"#).unwrap();
        assert_eq!(without.ports, [ListeningPort { port: 8000, process: None }]);
    }
}
