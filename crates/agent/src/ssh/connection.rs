//! Per-connection russh handler: authentication, and routing of channel
//! opens and session requests to sessions, SFTP and forwarding.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use russh::keys::{HashAlg, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet, Pty};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::env::{accept_client_var, MAX_CLIENT_VARS};
use super::forward::{self, RemoteForward};
use super::inbox::Window;
use super::pty::{PtyRequest, WinSize};
use super::session::{self, SessionSpec};
use super::sftp;
use super::ServerContext;
use crate::access::Untrusted;

/// Session channels a client may hold open before starting them.
const MAX_PENDING_SESSIONS: usize = 64;
/// Channels of any kind open at once on one connection (OpenSSH multiplexing or an IDE uses a
/// handful to a few dozen). Each may hold up to one window of unconsumed input
/// (`inbox::WINDOW`), so this bounds a connection's buffers at 128 MiB.
pub(crate) const MAX_CHANNELS: usize = 64;
/// Concurrent `tcpip-forward` listeners per connection.
const MAX_REMOTE_FORWARDS: usize = 64;

/// A session channel that has not started a shell, command or subsystem yet.
struct PendingSession {
    channel: Channel<Msg>,
    window: Window,
    /// The channel's place under `MAX_CHANNELS`, held until its task ends.
    slot: OwnedSemaphorePermit,
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
}

impl PendingSession {
    /// Discards the messages russh mirrored into the channel for requests
    /// we already handled through callbacks. Without this, a client sending
    /// many requests before `exec` would fill the channel's buffer and stall
    /// the connection. Only data sent before the session starts (which has
    /// nowhere to go) can be lost.
    fn discard_backlog(&mut self) {
        while let Some(Some(msg)) = self.channel.wait().now_or_never() {
            self.window.consumed_msg(&msg);
        }
    }
}

/// Handler for one client connection.
pub(crate) struct Connection {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    authenticated: Arc<AtomicBool>,
    subject: Option<String>,
    pending: HashMap<ChannelId, PendingSession>,
    /// `MAX_CHANNELS` places; each open channel's task holds one.
    channel_slots: Arc<Semaphore>,
    /// `ssh -R` listeners, stopped when removed or when the connection ends.
    remote_forwards: HashMap<(String, u32), RemoteForward>,
}

impl Connection {
    pub(crate) fn new(
        ctx: Arc<ServerContext>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        authenticated: Arc<AtomicBool>,
    ) -> Self {
        Self {
            ctx,
            peer,
            local,
            authenticated,
            subject: None,
            pending: HashMap::new(),
            channel_slots: Arc::new(Semaphore::new(MAX_CHANNELS)),
            remote_forwards: HashMap::new(),
        }
    }

    fn publickey_only() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    /// `SSH_CONNECTION` / `SSH_CLIENT` as sshd sets them (some tools and IDE bootstrap scripts
    /// use them to detect an SSH session), and the original server's `SANDBOX_USER`: the
    /// subject whose key opened the connection.
    fn connection_env(&self) -> Vec<(OsString, OsString)> {
        let (pip, pport) = (self.peer.ip(), self.peer.port());
        let mut vars = Vec::new();
        if let Some(subject) = &self.subject {
            vars.push((super::env::SANDBOX_USER.into(), subject.into()));
        }
        if let Some(local) = self.local {
            let (lip, lport) = (local.ip(), local.port());
            vars.push(("SSH_CONNECTION".into(), format!("{pip} {pport} {lip} {lport}").into()));
            vars.push(("SSH_CLIENT".into(), format!("{pip} {pport} {lport}").into()));
        }
        vars
    }

    /// Starts a shell (`command == None`) or command on a pending session.
    fn start_session(
        &mut self,
        id: ChannelId,
        command: Option<OsString>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(mut pending) = self.pending.remove(&id) else {
            // Unknown channel, or already started: one program per channel.
            return session.channel_failure(id);
        };
        pending.discard_backlog();
        let kind = if command.is_some() { "exec" } else { "shell" };
        let spec = SessionSpec {
            base_env: &self.ctx.base_env,
            workspace: &self.ctx.workspace,
            command,
            pty: pending.pty.take(),
            connection_env: self.connection_env(),
            client_env: std::mem::take(&mut pending.env),
        };
        let with_pty = spec.pty.is_some();
        match session::spawn(spec) {
            Ok(running) => {
                let subject = self.subject.as_deref().unwrap_or_default();
                tracing::debug!(channel = %id, subject, kind, with_pty, "session started");
                session.channel_success(id)?;
                let handle = session.handle();
                let PendingSession { channel, window, slot, .. } = pending;
                tokio::spawn(async move {
                    running.drive(channel, window, handle).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(channel = %id, kind, error = %e, "could not start session process");
                session.channel_failure(id)?;
            }
        }
        Ok(())
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::publickey_only())
    }

    async fn auth_password(&mut self, _user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(Self::publickey_only())
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Answer probes for unknown keys without making the client sign.
        if self.ctx.keys.subject_for(offer.public_key).is_some() {
            Ok(Auth::Accept)
        } else {
            tracing::debug!(
                peer = %self.peer,
                fingerprint = %fingerprint(offer.public_key),
                "offered SSH key is not registered"
            );
            Ok(Self::publickey_only())
        }
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        // The username is ignored: the registered key is the identity.
        let fingerprint = fingerprint(key.public_key);
        match self.ctx.keys.subject_for(key.public_key) {
            Some(subject) => {
                tracing::info!(
                    peer = %self.peer,
                    subject = %Untrusted(&subject),
                    %fingerprint,
                    user,
                    "SSH login accepted"
                );
                self.subject = Some(subject);
                self.authenticated.store(true, Ordering::Release);
                Ok(Auth::Accept)
            }
            None => {
                tracing::info!(peer = %self.peer, %fingerprint, "SSH login rejected: key not registered");
                Ok(Self::publickey_only())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let slot = match Arc::clone(&self.channel_slots).try_acquire_owned() {
            Ok(slot) if self.pending.len() < MAX_PENDING_SESSIONS => slot,
            _ => {
                tracing::debug!(peer = %self.peer, "session channel refused: too many channels");
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return Ok(());
            }
        };
        let window = Window::new(session.handle(), channel.id());
        self.pending
            .insert(channel.id(), PendingSession { channel, window, slot, pty: None, env: Vec::new() });
        reply.accept().await;
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::debug!(host = host_to_connect, port = port_to_connect, "direct-tcpip requested");
        let Ok(slot) = Arc::clone(&self.channel_slots).try_acquire_owned() else {
            tracing::debug!(peer = %self.peer, "direct-tcpip refused: too many channels");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        };
        // Connecting may take a while; never block the connection's event loop.
        let open = forward::direct_tcpip(
            channel,
            session.handle(),
            reply,
            host_to_connect.to_owned(),
            port_to_connect,
        );
        tokio::spawn(async move {
            open.await;
            drop(slot);
        });
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        // Started sessions notice the close through their channel.
        self.pending.remove(&channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.pending.get_mut(&channel) {
            Some(pending) if pending.pty.is_none() => {
                pending.discard_backlog();
                pending.pty = Some(PtyRequest {
                    term: term.to_owned(),
                    size: WinSize {
                        cols: col_width,
                        rows: row_height,
                        px_width: pix_width,
                        px_height: pix_height,
                    },
                });
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.pending.get_mut(&channel) {
            Some(pending)
                if pending.env.len() < MAX_CLIENT_VARS
                    && accept_client_var(variable_name, variable_value) =>
            {
                pending.discard_backlog();
                pending.env.retain(|(name, _)| name != variable_name);
                pending.env.push((variable_name.to_owned(), variable_value.to_owned()));
                session.channel_success(channel)
            }
            _ => {
                tracing::debug!(name = variable_name, "client env variable refused");
                session.channel_failure(channel)
            }
        }
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.start_session(channel, None, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Commands are bytes, not necessarily UTF-8.
        self.start_session(channel, Some(OsString::from_vec(data.to_vec())), session)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != "sftp" {
            tracing::debug!(name, "unknown subsystem requested");
            return session.channel_failure(channel);
        }
        let Some(mut pending) = self.pending.remove(&channel) else {
            return session.channel_failure(channel);
        };
        pending.discard_backlog();
        session.channel_success(channel)?;
        tracing::debug!(channel = %channel, "sftp subsystem started");
        let PendingSession { channel, window, slot, .. } = pending;
        sftp::serve(channel, window, slot, self.ctx.workspace.clone()).await;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Running sessions resize from the mirrored channel message; here we
        // only keep the size of a PTY that is requested but not started yet.
        if let Some(pty) = self.pending.get_mut(&channel).and_then(|p| p.pty.as_mut()) {
            pty.size =
                WinSize { cols: col_width, rows: row_height, px_width: pix_width, px_height: pix_height };
        }
        session.channel_success(channel)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.remote_forwards.len() >= MAX_REMOTE_FORWARDS {
            return Ok(false);
        }
        match forward::listen(session.handle(), address.to_owned(), *port).await {
            Ok((bound, listener)) => {
                tracing::debug!(address, port = bound, "tcpip-forward listening");
                *port = bound;
                self.remote_forwards.insert((address.to_owned(), bound), listener);
                Ok(true)
            }
            Err(e) => {
                tracing::debug!(address, port = *port, error = %e, "tcpip-forward bind failed");
                Ok(false)
            }
        }
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.remote_forwards.remove(&(address.to_owned(), port)).is_some())
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}
