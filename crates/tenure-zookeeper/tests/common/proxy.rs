//! A loopback TCP proxy in front of one ZooKeeper server, for one test client.
//! Held, it accepts connections but does not forward them yet: a client that
//! lost its connection cannot reach the server until released.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    held: watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<free port> to `server`.
    pub(crate) async fn start(server: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a proxy port");
        let addr = listener.local_addr().expect("the proxy's port");
        let (held, _) = watch::channel(false);
        let held_rx = Arc::new(held.subscribe());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut held = (*held_rx).clone();
                tokio::spawn(async move {
                    // Wait while held, then connect through.
                    while *held.borrow_and_update() {
                        if held.changed().await.is_err() {
                            return;
                        }
                    }
                    let Ok(mut outbound) = TcpStream::connect(server).await else {
                        return;
                    };
                    // No Nagle: ZooKeeper's small packets must not wait.
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Proxy {
            addr,
            held,
            _task: task,
        }
    }

    /// Holds new connections (established ones go on).
    pub(crate) fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Lets held and new connections through.
    pub(crate) fn release(&self) {
        self.held.send_replace(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self._task.abort();
    }
}
