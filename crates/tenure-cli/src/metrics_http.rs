//! `--metrics-addr`: tenure's metrics in Prometheus text format, served over a
//! minimal HTTP/1.1 responder (one request per connection, `GET` only).

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tenure::{Error, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request head read, in bytes.
const MAX_REQUEST: usize = 8 * 1024;

/// Installs the Prometheus recorder as the process's metrics recorder and
/// serves it at `http://addr/metrics` from a background task. Returns the
/// address bound.
pub(crate) async fn serve(addr: SocketAddr) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Error::invalid(
            "--metrics-addr",
            &addr.to_string(),
            format!("cannot listen there: {e}"),
        )
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| Error::Backend {
        message: "cannot install the metrics recorder".into(),
        source: Some(Box::new(e)),
    })?;
    tenure::observe::describe();
    tracing::info!(%bound, "serving metrics at http://{bound}/metrics");
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(respond(stream, handle.clone()));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

async fn respond(mut stream: TcpStream, handle: PrometheusHandle) {
    let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut stream)).await;
    let Ok(Some(head)) = head else { return };
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body, kind) = match (method, path.split('?').next().unwrap_or("")) {
        ("GET", "/metrics" | "/") => (
            "200 OK",
            handle.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        ("GET", _) => ("404 Not Found", "try /metrics\n".into(), "text/plain"),
        _ => ("405 Method Not Allowed", "GET only\n".into(), "text/plain"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads up to the end of the request head; `None` if it is too long or the
/// peer goes away first.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}
