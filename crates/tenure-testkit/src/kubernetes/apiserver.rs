//! [`KubeApiserver`]: a real kube-apiserver 1.20 with an etcd of its own.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::auth::{self, Auth};
use super::build::kube_apiserver_binary;
use super::curl::{self, Request};
use crate::ports::free_port;
use crate::process::{self, Signal};
use crate::temp::TempDir;
use crate::{log, EtcdCluster, EtcdOptions, TestkitError, READY_TIMEOUT};

/// How often a readiness wait asks `/readyz`.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long one readiness probe may take: a frozen apiserver must not hang
/// the wait.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a test's request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A real `kube-apiserver` 1.20.2 on a free loopback port, serving HTTPS
/// only, with an etcd of its own, a fresh CA, two bearer tokens and RBAC.
///
/// Its serving certificate is valid for `127.0.0.1` and signed by the CA in
/// [`ca_file`](Self::ca_file) — the CA of its etcd, which serves TLS too, so
/// one CA covers both. [`admin_token`](Self::admin_token) is user `admin` in
/// group `system:masters`, allowed everything;
/// [`unprivileged_token`](Self::unprivileged_token) is a user with no role,
/// which RBAC forbids (403) nearly everything. The insecure port is off.
///
/// Dropping the value kills the apiserver and its etcd (SIGKILL) and removes
/// their directories; a watchdog does it if the test process dies first.
/// The first start builds the binary ([`kube_apiserver_binary`]).
///
/// ```
/// # fn main() -> Result<(), tenure_testkit::TestkitError> {
/// use tenure_testkit::KubeApiserver;
///
/// let api = KubeApiserver::start()?;
/// api.create_namespace("demo")?;
/// let (status, _) = api.request(api.unprivileged_token(), "GET", "/api/v1/namespaces", None)?;
/// assert_eq!(status, 403);
/// # Ok(())
/// # }
/// ```
pub struct KubeApiserver {
    binary: PathBuf,
    port: u16,
    auth: Auth,
    ca: PathBuf,
    /// The apiserver's own files; its path is on the command line, where
    /// the watchdog recognises the process.
    state: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// Dropped after `Drop` has killed the apiserver, which needs it.
    etcd: EtcdCluster,
    /// Dropped last, after the processes writing into it.
    dir: TempDir,
}

impl KubeApiserver {
    /// The user name of [`admin_token`](Self::admin_token).
    pub const ADMIN_USER: &'static str = auth::ADMIN_USER;
    /// The user name of [`unprivileged_token`](Self::unprivileged_token).
    pub const UNPRIVILEGED_USER: &'static str = auth::UNPRIVILEGED_USER;

    /// The apiserver of this test process, started on first use and shared by
    /// every test in it (isolate them by namespace). It lives until the
    /// process exits; then watchdogs stop it and its etcd by PID and remove
    /// their directories.
    ///
    /// # Panics
    /// If it cannot be built or started (the message says why and what to
    /// install): a test that needs it fails, it never skips.
    pub fn shared() -> &'static KubeApiserver {
        static SHARED: OnceLock<KubeApiserver> = OnceLock::new();
        SHARED.get_or_init(|| Self::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts an etcd and an apiserver on it, and waits (up to
    /// [`READY_TIMEOUT`]) until `/readyz` answers `ok`: about 3.5 s once
    /// the binary is built.
    ///
    /// # Errors
    /// The binary cannot be built; etcd, `openssl` or `curl` is missing; the
    /// apiserver exits or is not ready in time, with the end of its log.
    pub fn start() -> Result<Self, TestkitError> {
        let binary = kube_apiserver_binary()?;
        let etcd = EtcdCluster::start(EtcdOptions {
            tls: true,
            ..EtcdOptions::default()
        })?;
        let ca = etcd
            .tls()
            .expect("an etcd started with TLS has certificates")
            .ca
            .clone();
        let dir = TempDir::new("kube-apiserver")?;
        let state = dir.path().join("apiserver");
        std::fs::create_dir(&state)
            .map_err(|e| TestkitError::io(format!("cannot create {}", state.display()), e))?;
        let auth = Auth::generate(&state)?;
        let port = free_port()?;
        auth.write_kubeconfig(&format!("https://127.0.0.1:{port}"), &ca)?;
        let api = Self {
            binary,
            port,
            auth,
            ca,
            log: dir.path().join("apiserver.log"),
            state,
            child: Mutex::new(None),
            etcd,
            dir,
        };
        api.launch()?;
        api.wait_ready()?;
        Ok(api)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port it serves on, kept across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed its serving certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    /// A bearer token of user `admin` in group `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.auth.admin_token
    }

    /// A file holding [`admin_token`](Self::admin_token) and nothing else
    /// (no newline), for clients configured with a token file.
    pub fn admin_token_file(&self) -> &Path {
        &self.auth.admin_token_file
    }

    /// A bearer token of user `tenure-unprivileged`, who has no role.
    pub fn unprivileged_token(&self) -> &str {
        &self.auth.unprivileged_token
    }

    /// A kubeconfig whose current context is this apiserver as `admin`, for
    /// `kubectl --kubeconfig` or a client library.
    pub fn kubeconfig(&self) -> &Path {
        &self.auth.kubeconfig
    }

    /// The etcd that stores its objects (a single member, TLS).
    pub fn etcd(&self) -> &EtcdCluster {
        &self.etcd
    }

    /// The temporary directory holding its files and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log file (every run appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last few kilobytes of its log.
    pub fn log_tail(&self) -> String {
        log::tail(&self.log, "kube-apiserver")
    }

    /// Its process id, while it runs (paused counts as running).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    /// Kills it with SIGKILL and reaps it; its etcd keeps running. Killing
    /// it when it does not run does nothing.
    pub fn kill(&self) {
        if let Some(mut child) = self.lock().take() {
            // SIGKILL also ends a stopped process.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again — same port, certificates, tokens and etcd, so every
    /// object is still there — killing it first if it still runs, and waits
    /// until it is ready.
    pub fn restart(&self) -> Result<(), TestkitError> {
        self.kill();
        self.launch()?;
        self.wait_ready()
    }

    /// Freezes it with SIGSTOP and returns once the kernel shows it stopped.
    /// Its socket stays open: clients connect and get no answer. Its etcd
    /// keeps running (pause that through [`etcd`](Self::etcd)).
    ///
    /// # Panics
    /// If it is not running.
    pub fn pause(&self) {
        let child = self.lock();
        let pid = child
            .as_ref()
            .expect("cannot pause the kube-apiserver: it is not running")
            .id();
        process::signal(pid, Signal::Stop);
    }

    /// Lets it run again (SIGCONT); does nothing when it is not running.
    pub fn resume(&self) {
        if let Some(child) = self.lock().as_ref() {
            process::signal(child.id(), Signal::Cont);
        }
    }

    /// Waits (up to [`READY_TIMEOUT`]) until `GET /readyz` answers `ok`:
    /// etcd reachable, every post-start hook (the RBAC bootstrap roles
    /// among them) done. Fails at once if the process exits.
    pub fn wait_ready(&self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_exit()?;
            let last = match self.send("GET", "/readyz", self.admin_token(), None, PROBE_TIMEOUT) {
                Ok((200, body)) if body.trim() == "ok" => return Ok(()),
                Ok((status, body)) => format!("{status}: {}", body.trim()),
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(TestkitError::Timeout {
                    waiting_for: format!(
                        "kube-apiserver at {} to answer /readyz with ok (last: {last})",
                        self.url()
                    ),
                    after: READY_TIMEOUT,
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Sends `method path` (e.g. `"PUT"`,
    /// `"/apis/coordination.k8s.io/v1/namespaces/a/leases/b"`) with `token`
    /// as bearer token and `body` as JSON — as a JSON merge patch for
    /// `PATCH` — through `curl`, trusting [`ca_file`](Self::ca_file), and
    /// returns the HTTP status and body, whatever the status.
    ///
    /// # Errors
    /// No answer within 10 s (a paused or killed apiserver), or `curl` is
    /// missing.
    pub fn request(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), TestkitError> {
        self.send(method, path, token, body, REQUEST_TIMEOUT)
    }

    /// Creates the namespace `name` as admin.
    ///
    /// # Errors
    /// Any answer but 201 Created (409 if it exists), with the apiserver's
    /// message; no answer at all.
    pub fn create_namespace(&self, name: &str) -> Result<(), TestkitError> {
        let body =
            format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#);
        match self.request(
            self.admin_token(),
            "POST",
            "/api/v1/namespaces",
            Some(&body),
        )? {
            (201, _) => Ok(()),
            (status, answer) => Err(TestkitError::io(
                format!("cannot create namespace {name:?}"),
                std::io::Error::other(format!("the apiserver answered {status}: {answer}")),
            )),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> Result<(u16, String), TestkitError> {
        let url = format!("{}{path}", self.url());
        curl::send(
            &self.ca,
            Request {
                method,
                url: &url,
                token,
                body,
                timeout,
            },
        )
    }

    /// Starts the process, with its output appended to the log and a
    /// watchdog that kills it should the test process die first.
    fn launch(&self) -> Result<(), TestkitError> {
        let (log, stderr) = crate::log::appender(&self.log)?;
        let child = self
            .command()
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| TestkitError::io(format!("cannot start {}", self.binary.display()), e))?;
        // `--token-auth-file` names `state`: the watchdog checks it in the
        // PID's command line, and removes `state`'s parent, our directory.
        process::watchdog(child.id(), &self.state);
        *self.lock() = Some(child);
        Ok(())
    }

    /// The apiserver's command line: the flags measured to be enough for a
    /// loopback apiserver with token authentication and RBAC.
    fn command(&self) -> Command {
        let etcd = self
            .etcd
            .client_urls()
            .into_iter()
            .next()
            .expect("a single-member etcd has one URL");
        let tls = self.etcd.tls().expect("the etcd serves TLS");
        let mut command = Command::new(&self.binary);
        command
            .arg(format!("--etcd-servers={etcd}"))
            .arg(format!("--etcd-cafile={}", self.ca.display()))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", self.port))
            // 1.20 also serves unauthenticated HTTP on 127.0.0.1:8080 unless told not to.
            .arg("--insecure-port=0")
            // The etcd's server certificate is valid for 127.0.0.1 and
            // allows serving: the apiserver's too.
            .arg(format!("--tls-cert-file={}", tls.server_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                tls.server_key.display()
            ))
            .arg(format!(
                "--token-auth-file={}",
                self.auth.token_file.display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(format!(
                "--service-account-key-file={}",
                self.auth.service_account_key.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                self.auth.service_account_key.display()
            ));
        command
    }

    /// An error if the process has exited.
    fn check_exit(&self) -> Result<(), TestkitError> {
        let mut slot = self.lock();
        let Some(child) = slot.as_mut() else {
            return Err(TestkitError::io(
                "the kube-apiserver is not running",
                std::io::Error::from(std::io::ErrorKind::NotConnected),
            ));
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                *slot = None;
                Err(TestkitError::Exited {
                    process: format!("kube-apiserver on port {}", self.port),
                    status,
                    log_tail: self.log_tail(),
                })
            }
            Ok(None) => Ok(()),
            Err(e) => Err(TestkitError::io("cannot check on the kube-apiserver", e)),
        }
    }

    /// The process. A test that panicked while holding the lock must not
    /// stop `Drop` from killing the process, hence no poisoning.
    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for KubeApiserver {
    /// Kills the apiserver; its etcd and the directory go after (field drop).
    fn drop(&mut self) {
        self.kill();
    }
}

impl fmt::Debug for KubeApiserver {
    /// Everything but the tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeApiserver")
            .field("url", &self.url())
            .field("pid", &self.pid())
            .field("binary", &self.binary)
            .field("auth", &self.auth)
            .field("etcd", &self.etcd)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}
