//! Probing a sandbox: is its server reachable with our credentials, are we signed in, is `ssh
//! NAME` set up. One function, no state.

use std::sync::Arc;

use sandbox_core::api::{ApiClient, ApiError, BearerSource};
use sandbox_core::known_hosts;
use sandbox_core::name::SandboxName;
use sandbox_core::oidc::token_store::now_secs;
use sandbox_core::setup::Installation;

use crate::protocol::{Health, SandboxStatus};

/// The status of one sandbox right now (one `GET /api/ssh-port` at most).
pub async fn probe(install: &Installation, name: &SandboxName) -> SandboxStatus {
    let key_registered = sandbox_core::keys::exists(&install.paths, name)
        && install.ssh_config().hosts().is_ok_and(|hosts| hosts.iter().any(|h| &h.name == name));
    let status = |health, detail: String, signed_in| SandboxStatus {
        health,
        detail,
        key_registered,
        signed_in,
        checked_at: Some(now_secs()),
    };
    let profile = match install.profiles().load(name) {
        Ok(p) => p,
        Err(e) => return status(Health::Unreachable, e.to_string(), None),
    };
    // The session opened once serves both the sign-in check and the probe's bearer token.
    let session = install.session(name, &profile).await;
    let signed_in = session.as_ref().map(|s| s.signed_in());
    if signed_in == Some(false) {
        return status(Health::NeedsSignIn, format!("Sign in to {name} to use it."), signed_in);
    }
    let api = profile.endpoint().map_err(|e| e.to_string()).and_then(|mut endpoint| {
        endpoint.bearer = session.map(|s| Arc::new(s) as Arc<dyn BearerSource>);
        ApiClient::new(endpoint).map_err(|e| e.to_string())
    });
    let api = match api {
        Ok(api) => api,
        Err(e) => return status(Health::Unreachable, e, signed_in),
    };
    match api.ssh_port().await {
        Err(e @ (ApiError::Unauthorized { .. } | ApiError::SignIn(_))) => {
            status(Health::NeedsSignIn, e.to_string(), signed_in.map(|_| false))
        }
        Err(e) => status(Health::Unreachable, e.to_string(), signed_in),
        Ok(_) if !key_registered => status(
            Health::NotConnected,
            format!("Reachable. Connect to register a key and set up `ssh {name}`."),
            signed_in,
        ),
        Ok(info) => {
            let pinned = known_hosts::pinned(&install.paths.known_hosts(name), name);
            let offered = info.host_key.as_deref().and_then(|k| known_hosts::normalise(k).ok());
            // A restarted pod forgot our key and has a new host key; the ProxyCommand that our
            // Host block names heals that on the next connection (re-registers the key, re-pins
            // the host key) before ssh sees a byte, and forwards need neither. Nothing for the
            // user to do, so no amber: ready, with the restart mentioned.
            let restarted = matches!((pinned, offered), (Some(p), Some(o)) if p != o);
            let detail = if restarted {
                format!("`ssh {name}` works; the pod restarted, and the next connection registers your key again.")
            } else {
                format!("`ssh {name}` works.")
            };
            status(Health::Ready, detail, signed_in)
        }
    }
}
