//! A lean HTTPS client for the kube-apiserver: pooled HTTP/1.1 connections
//! over rustls verified against the configured CA, a bearer token, JSON
//! bodies, a timeout on every request, and watches as streams of events.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::RootCertStore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tenure_core::{Error, Secret};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::api::{List, WatchEvent};
use crate::config::KubeConfig;
use crate::error::ApiError;
use crate::kubeconfig::read_token;

/// The result of a request: the apiserver's refusals stay typed
/// ([`ApiError::is_conflict`]) until the caller maps them into tenure's.
pub(crate) type Result<T, E = ApiError> = std::result::Result<T, E>;

/// How long the apiserver keeps a watch open (it ends it cleanly then; the
/// caller watches again from the last resource version seen). Client-go
/// picks 5 to 10 minutes.
const WATCH_TIMEOUT: Duration = Duration::from_secs(290);

/// How often a token read from a file is read again: the kubelet rotates
/// projected service-account tokens well before they expire, and client-go
/// re-reads them every minute too.
const TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// The longest watch line accepted: a Lease or small ConfigMap is a few KiB,
/// and the apiserver caps objects at about 1.5 MiB.
const MAX_LINE: usize = 4 << 20;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The path of Lease `name` in `namespace`.
pub(crate) fn lease_path(namespace: &str, name: &str) -> String {
    format!("{}/{name}", leases_path(namespace))
}

/// The Leases of `namespace`.
pub(crate) fn leases_path(namespace: &str) -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases")
}

/// The path of ConfigMap `name` in `namespace`.
pub(crate) fn configmap_path(namespace: &str, name: &str) -> String {
    format!("{}/{name}", configmaps_path(namespace))
}

/// The ConfigMaps of `namespace`.
pub(crate) fn configmaps_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/configmaps")
}

/// A client for one apiserver; cheap to clone, clones share the connection
/// pool.
#[derive(Clone)]
pub(crate) struct Client {
    http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    /// `https://host:port[/base path]`, what request paths are appended to.
    base: Arc<str>,
    token: Arc<Token>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The bearer token, and the file to read it again from.
struct Token {
    file: Option<PathBuf>,
    /// The token and when it was read.
    current: Mutex<(Secret, Instant)>,
}

impl Token {
    /// `Bearer <token>`, marked sensitive so that hyper never logs it.
    fn header(&self) -> Result<HeaderValue> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = &self.file {
            if current.1.elapsed() >= TOKEN_REFRESH {
                // A failed read keeps the old token: a rotation in progress
                // must not fail requests that it would still authenticate.
                if let Ok(token) = read_token(file) {
                    *current = (token, Instant::now());
                }
            }
        }
        let mut value = HeaderValue::try_from(format!("Bearer {}", current.0.expose()))
            .map_err(|_| ApiError::Unauthorized("the token is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl Client {
    /// A client for the apiserver `config` names. Connects lazily, on the
    /// first request.
    pub(crate) fn new(config: &KubeConfig) -> tenure_core::Result<Client> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&config.ca) {
            let cert = cert.map_err(|e| Error::invalid("ca", "<PEM>", e))?;
            roots.add(cert).map_err(|e| {
                Error::invalid("ca", "<PEM>", format!("is not a CA certificate: {e}"))
            })?;
        }
        // The provider is named rather than taken from the process default,
        // which is ambiguous when another crate enables aws-lc-rs too.
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Backend {
            message: format!("kubernetes: TLS setup failed: {e}"),
            source: None,
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(config.host.clone())
            .map_err(|e| Error::invalid("server", &config.host, e))?;
        let connector = Connector {
            host: config.host.as_str().into(),
            port: config.port,
            server_name,
            tls: TlsConnector::from(Arc::new(tls)),
        };
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Ok(Client {
            http,
            base: config.server().into(),
            token: Arc::new(Token {
                file: config.token_file.clone(),
                current: Mutex::new((config.token.clone(), Instant::now())),
            }),
            timeout: config.request_timeout,
        })
    }

    /// The object at `path`, or `None` if there is none (404).
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>> {
        let (status, body) = self.send(Method::GET, path, None).await?;
        match status {
            StatusCode::OK => decode(path, &body).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(ApiError::from_answer(status.as_u16(), &body)),
        }
    }

    /// Creates `body` in `collection` (POST) and returns it as stored; a
    /// taken name is [`ApiError::Conflict`].
    pub(crate) async fn create<T: Serialize + DeserializeOwned + Sync>(
        &self,
        collection: &str,
        body: &T,
    ) -> Result<T> {
        self.write(Method::POST, collection, body).await
    }

    /// Replaces the object at `path` with `body` (PUT). Conditional on the
    /// `metadata.resourceVersion` in `body` when it has one: a different
    /// stored version is [`ApiError::Conflict`], and nothing changes.
    pub(crate) async fn replace<T: Serialize + DeserializeOwned + Sync>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<T> {
        self.write(Method::PUT, path, body).await
    }

    /// Deletes the object at `path`, if it is at `resource_version` when one
    /// is given ([`ApiError::Conflict`] if not). `false` if there was none.
    pub(crate) async fn delete(&self, path: &str, resource_version: Option<&str>) -> Result<bool> {
        let options = serde_json::json!({
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "preconditions": { "resourceVersion": resource_version },
        });
        let body = serde_json::to_vec(&options).expect("JSON values serialize");
        let (status, body) = self.send(Method::DELETE, path, Some(body)).await?;
        match status {
            StatusCode::OK | StatusCode::ACCEPTED => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(ApiError::from_answer(status.as_u16(), &body)),
        }
    }

    /// The objects of `collection`, those matching `label_selector` if given
    /// (`app=x,tier!=db`), with the resource version to watch from.
    pub(crate) async fn list<T: DeserializeOwned>(
        &self,
        collection: &str,
        label_selector: Option<&str>,
    ) -> Result<List<T>> {
        let path = match label_selector {
            Some(selector) => format!("{collection}?labelSelector={}", encode(selector)),
            None => collection.to_owned(),
        };
        let (status, body) = self.send(Method::GET, &path, None).await?;
        match status {
            StatusCode::OK => decode(&path, &body),
            _ => Err(ApiError::from_answer(status.as_u16(), &body)),
        }
    }

    /// The changes to `collection` after `resource_version`, those matching
    /// `field_selector` if given (`metadata.name=leader`), bookmarks
    /// included.
    ///
    /// The stream ends after a few minutes, when the apiserver closes the
    /// watch; the caller watches again from the last version it saw. A
    /// resource version too old to watch from is [`ApiError::Gone`], from
    /// this call or as the stream's last item: the caller lists again. The
    /// stream never yields [`WatchEvent::Error`]: an `ERROR` event becomes
    /// its last item, an `Err`. A connection that stays silent past the
    /// watch's end is [`ApiError::Unavailable`].
    pub(crate) async fn watch<T: DeserializeOwned + Send + 'static>(
        &self,
        collection: &str,
        field_selector: Option<&str>,
        resource_version: &str,
    ) -> Result<BoxStream<'static, Result<WatchEvent<T>>>> {
        let mut path = format!(
            "{collection}?watch=1&allowWatchBookmarks=true&resourceVersion={}&timeoutSeconds={}",
            encode(resource_version),
            WATCH_TIMEOUT.as_secs()
        );
        if let Some(selector) = field_selector {
            path.push_str("&fieldSelector=");
            path.push_str(&encode(selector));
        }
        let request = self.request(Method::GET, &path, None)?;
        let answer = tokio::time::timeout(self.timeout, self.http.request(request))
            .await
            .map_err(|_| self.timed_out(&path))?
            .map_err(|e| self.unreachable(&e))?;
        if answer.status() != StatusCode::OK {
            let status = answer.status().as_u16();
            let body = tokio::time::timeout(self.timeout, answer.into_body().collect())
                .await
                .map_err(|_| self.timed_out(&path))?
                .map_err(|e| self.unreachable(&e))?
                .to_bytes();
            return Err(ApiError::from_answer(status, &body));
        }
        let state = Lines {
            body: answer.into_body(),
            buffer: Vec::new(),
            deadline: tokio::time::Instant::now() + WATCH_TIMEOUT + self.timeout,
            path,
            done: false,
        };
        Ok(stream::unfold(state, Lines::next::<T>).boxed())
    }

    async fn write<T: Serialize + DeserializeOwned + Sync>(
        &self,
        method: Method,
        path: &str,
        body: &T,
    ) -> Result<T> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ApiError::Other(0, format!("cannot encode the object for {path}: {e}")))?;
        let (status, body) = self.send(method, path, Some(body)).await?;
        match status {
            StatusCode::OK | StatusCode::CREATED | StatusCode::ACCEPTED => decode(path, &body),
            _ => Err(ApiError::from_answer(status.as_u16(), &body)),
        }
    }

    /// Sends a request and reads the whole answer, within the timeout.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let request = self.request(method, path, body)?;
        let exchange = async {
            let answer = self
                .http
                .request(request)
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = answer.status();
            let body = answer
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(&e))?;
            Ok((status, body.to_bytes()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.timed_out(path))?
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Request<Full<Bytes>>> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|e| ApiError::Other(0, format!("invalid request path {path:?}: {e}")))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, self.token.header()?);
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        request
            .body(Full::new(body.map(Bytes::from).unwrap_or_default()))
            .map_err(|e| ApiError::Other(0, format!("invalid request for {path:?}: {e}")))
    }

    /// The apiserver could not be reached: retryable, unless TLS refused
    /// its certificate, which retrying will not change.
    fn unreachable(&self, e: &(dyn std::error::Error + 'static)) -> ApiError {
        // hyper-util's errors say "client error (Connect)"; the causes say why.
        let mut message = format!("{}: {e}", self.base);
        let mut refused = false;
        let mut cause = e.source();
        while let Some(e) = cause {
            message.push_str(&format!(": {e}"));
            // tokio-rustls wraps rustls' errors in io::Error, whose
            // `source` skips them.
            let tls = e
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            refused |= matches!(
                tls,
                Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
            );
            cause = e.source();
        }
        if refused {
            ApiError::Other(
                0,
                format!("TLS refused the apiserver's certificate (is the CA right?): {message}"),
            )
        } else {
            ApiError::Unavailable(message)
        }
    }

    fn timed_out(&self, path: &str) -> ApiError {
        ApiError::Unavailable(format!(
            "{}{path} did not answer within {:?}",
            self.base, self.timeout
        ))
    }
}

/// `body` decoded as a `T`.
fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Other(200, format!("cannot decode the answer for {path}: {e}")))
}

/// `value` percent-encoded for a query string.
fn encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    encoded
}

/// A watch answer being cut into lines, one JSON event each.
struct Lines {
    body: Incoming,
    buffer: Vec<u8>,
    deadline: tokio::time::Instant,
    path: String,
    done: bool,
}

impl Lines {
    /// The next event, or the error that ends the stream, or `None` when the
    /// apiserver ended the watch.
    async fn next<T: DeserializeOwned>(mut self) -> Option<(Result<WatchEvent<T>>, Self)> {
        if self.done {
            return None;
        }
        let item = loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match decode::<WatchEvent<T>>(&self.path, &line) {
                    Ok(WatchEvent::Error(status)) => break Err(ApiError::from_status(&status)),
                    other => break other,
                }
            }
            if self.buffer.len() > MAX_LINE {
                break Err(ApiError::Other(
                    200,
                    format!("a line of the watch {} exceeds {MAX_LINE} bytes", self.path),
                ));
            }
            match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => {
                    break Err(ApiError::Unavailable(format!(
                        "the watch {} stayed silent past its end",
                        self.path
                    )))
                }
                // The apiserver ends every event with a newline: what is
                // left is a line cut off with the connection.
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    break Err(ApiError::Unavailable(format!(
                        "the watch {} broke: {e}",
                        self.path
                    )))
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        };
        self.done = item.is_err();
        Some((item, self))
    }
}

/// Opens TLS connections to the apiserver for hyper-util's pool.
#[derive(Clone)]
struct Connector {
    host: Arc<str>,
    port: u16,
    server_name: ServerName<'static>,
    tls: TlsConnector,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TlsConnection;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsConnection>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Every request goes to the one configured apiserver, so the URI's
    /// authority (the same) is not looked at.
    fn call(&mut self, _: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let tcp = TcpStream::connect((&*this.host, this.port)).await?;
            // Requests are small and latency-bound (lease renewals).
            tcp.set_nodelay(true)?;
            let tls = this.tls.connect(this.server_name, tcp).await?;
            Ok(TlsConnection(TokioIo::new(tls)))
        })
    }
}

/// A TLS connection as hyper reads and writes it.
struct TlsConnection(TokioIo<TlsStream<TcpStream>>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_query_values() {
        assert_eq!(
            lease_path("team-a", "leader"),
            "/apis/coordination.k8s.io/v1/namespaces/team-a/leases/leader"
        );
        assert_eq!(
            configmap_path("a", "b"),
            "/api/v1/namespaces/a/configmaps/b"
        );
        assert_eq!(
            encode("app=x,tier in (a, b)"),
            "app%3Dx%2Ctier%20in%20%28a%2C%20b%29"
        );
        assert_eq!(encode("metadata.name=l-1"), "metadata.name%3Dl-1");
    }
}
