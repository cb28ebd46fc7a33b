//! The one error type of the kit.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why the kit could not start, restart, wait for or administer a server.
///
/// Every variant carries what a failing test needs to explain itself: the
/// member, the command, and the tail of the server's log where there is one.
#[derive(Debug)]
#[non_exhaustive]
pub enum TestkitError {
    /// A program the kit runs is not installed. The kit never skips a test for
    /// this: a missing server is a broken test machine.
    NotInstalled {
        /// The program that was not found on `PATH`.
        program: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// A Java library the kit puts on a classpath (ZooKeeper, Curator and what
    /// they need) is not installed. Never a reason to skip either.
    MissingJar {
        /// The jar that does not exist.
        jar: PathBuf,
        /// The Debian package that installs it.
        package: &'static str,
    },
    /// The options cannot describe a cluster.
    InvalidOptions {
        /// The offending field.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A file or process operation of the kit failed.
    Io {
        /// What the kit was doing.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A helper command (`openssl`, `etcdctl`, `javac`) exited unsuccessfully.
    CommandFailed {
        /// The command line, without secrets.
        command: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A member's process exited while the kit was waiting for it to serve.
    MemberExited {
        /// The index of the member.
        member: usize,
        /// How it exited.
        status: ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// A process the kit started and was waiting on — a ZooKeeper server, a
    /// Curator participant — exited.
    Exited {
        /// Which process, e.g. `ZooKeeper server zk1` or `CuratorLatch "a"`.
        process: String,
        /// How it exited.
        status: ExitStatus,
        /// The end of its log.
        log_tail: String,
    },
    /// A bounded wait ran out.
    Timeout {
        /// What never happened.
        waiting_for: String,
        /// How long the kit waited.
        after: Duration,
        /// The end of the logs of the members concerned.
        log_tail: String,
    },
}

impl TestkitError {
    /// The error of a `spawn` that failed: a missing program gets its install hint.
    pub(crate) fn spawn(program: &'static str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            Self::NotInstalled {
                program,
                hint: install_hint(program),
            }
        } else {
            Self::io(format!("cannot start {program}"), source)
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

fn install_hint(program: &str) -> &'static str {
    match program {
        "etcd" => "install Debian's etcd-server package (apt-get install etcd-server etcd-client)",
        "etcdctl" => {
            "install Debian's etcd-client package (apt-get install etcd-server etcd-client)"
        }
        "openssl" => "install Debian's openssl package (apt-get install openssl)",
        "kill" => "install Debian's procps package (apt-get install procps)",
        // The servers need only a runtime, Curator participants a compiler too:
        // one package gives both.
        "java" | "javac" => {
            "install Debian's default-jdk-headless package (apt-get install default-jdk-headless)"
        }
        _ => "install it",
    }
}

impl fmt::Display for TestkitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInstalled { program, hint } => {
                write!(f, "{program} not found on PATH: {hint}")
            }
            Self::MissingJar { jar, package } => write!(
                f,
                "{} not found: install Debian's {package} package (apt-get install {package})",
                jar.display()
            ),
            Self::InvalidOptions { field, rule } => write!(f, "invalid option {field}: {rule}"),
            Self::Io { context, source } => write!(f, "{context}: {source}"),
            Self::CommandFailed {
                command,
                status,
                stderr,
            } => write!(f, "`{command}` failed ({status}): {}", stderr.trim()),
            Self::MemberExited {
                member,
                status,
                log_tail,
            } => write!(
                f,
                "etcd member m{member} exited ({status}); its log ends with:\n{log_tail}"
            ),
            Self::Exited {
                process,
                status,
                log_tail,
            } => write!(
                f,
                "{process} exited ({status}); its log ends with:\n{log_tail}"
            ),
            Self::Timeout {
                waiting_for,
                after,
                log_tail,
            } => write!(
                f,
                "timed out after {after:?} waiting for {waiting_for}; logs end with:\n{log_tail}"
            ),
        }
    }
}

impl std::error::Error for TestkitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_missing_etcd_names_the_package() {
        let source = Command::new("tenure-no-such-program").spawn().unwrap_err();
        let err = TestkitError::spawn("etcd", source);
        assert!(matches!(err, TestkitError::NotInstalled { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "etcd not found on PATH: install Debian's etcd-server package \
             (apt-get install etcd-server etcd-client)"
        );
    }

    #[test]
    fn a_missing_java_names_the_jdk_package() {
        let source = Command::new("tenure-no-such-program").spawn().unwrap_err();
        let err = TestkitError::spawn("javac", source);
        assert!(
            err.to_string()
                .contains("apt-get install default-jdk-headless"),
            "{err}"
        );
    }
}
