//! The network of the recovery measurement: a loopback TCP relay between our CLI and the agent
//! that can reset every connection it carries (an RST both ways, `SO_LINGER 0`) and go down
//! (listener closed, so new connections are refused) and up again on the same port. The tests
//! have a richer one (`tests/support/fault.rs`); this is the part a measurement needs.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy)]
struct State {
    /// Bumped by every reset: connections of an older epoch are reset.
    epoch: u64,
    /// Not listening (new connections refused).
    down: bool,
}

/// A running relay on the caller's runtime; its tasks end when it is dropped.
pub struct Resettable {
    port: u16,
    state: watch::Sender<State>,
}

impl Resettable {
    /// Listens on a free loopback port (on `rt`) and relays every connection to `target`.
    pub fn start(rt: &tokio::runtime::Runtime, target: u16) -> io::Result<Resettable> {
        let listener = rt.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
        let port = listener.local_addr()?.port();
        let (state, watcher) = watch::channel(State { epoch: 0, down: false });
        rt.spawn(listen(listener, port, target, watcher));
        Ok(Resettable { port, state })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resets every connection; new ones are accepted as before.
    pub fn reset_all(&self) {
        self.state.send_modify(|s| s.epoch += 1);
    }

    /// The network goes away: every connection reset, new ones refused.
    pub fn down(&self) {
        self.state.send_modify(|s| {
            s.epoch += 1;
            s.down = true;
        });
    }

    /// The network is back: listening again on the same port.
    pub fn up(&self) {
        self.state.send_modify(|s| s.down = false);
    }
}

async fn listen(listener: TcpListener, port: u16, target: u16, mut state: watch::Receiver<State>) {
    let mut listener = Some(listener);
    loop {
        let now = *state.borrow_and_update();
        if now.down {
            listener = None;
            if state.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match &listener {
            Some(l) => l,
            None => match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
                Ok(l) => listener.insert(l),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            conn = l.accept() => if let Ok((client, _)) = conn {
                tokio::spawn(carry(client, target, state.clone()));
            },
        }
    }
}

async fn carry(mut client: TcpStream, target: u16, mut state: watch::Receiver<State>) {
    let epoch = state.borrow().epoch;
    let Ok(mut server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target)).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let reset = tokio::select! {
        _ = state.wait_for(|s| s.epoch != epoch) => true,
        r = tokio::io::copy_bidirectional(&mut client, &mut server) => r.is_err(),
    };
    if reset {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
}
