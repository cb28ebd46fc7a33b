//! A fault proxy on 127.0.0.1 in front of one server, for one client: it
//! passes traffic, holds it (a partition: connections stay open, nothing
//! arrives), delays it, or resets every connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Forwards it.
    Pass,
    /// Holds it, both ways, until the mode changes: a network partition.
    Blackhole,
    /// Forwards each chunk after this long.
    Delay(Duration),
}

/// One proxy; dropping it closes the port and every connection.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    mode: watch::Sender<Mode>,
    resets: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<free port>` to `server`.
    pub(crate) async fn start(server: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::Pass);
        let (resets, _) = watch::channel(0);
        let (mode_rx, resets_rx) = (mode.subscribe(), resets.subscribe());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (mode, mut resets) = (mode_rx.clone(), resets_rx.clone());
                tokio::spawn(async move {
                    resets.borrow_and_update();
                    let Ok(outbound) = TcpStream::connect(server).await else {
                        return;
                    };
                    // No Nagle: small requests must not wait.
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::select! {
                        _ = pump(in_read, out_write, mode.clone()) => {}
                        _ = pump(out_read, in_write, mode) => {}
                        // A reset drops both sockets: the peers see the
                        // connection close.
                        _ = resets.changed() => {}
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            mode,
            resets,
            task,
        })
    }

    /// Sets what happens to traffic from now on (held chunks move on when
    /// the blackhole ends).
    pub(crate) fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Closes every connection open now; new ones are accepted.
    pub(crate) fn reset(&self) {
        self.resets.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset();
    }
}

/// Copies `from` to `to`, chunk by chunk, as the mode says.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let current = *mode.borrow_and_update();
            match current {
                Mode::Pass => break,
                Mode::Delay(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Mode::Blackhole => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
