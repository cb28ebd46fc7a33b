//! The Java side: which jars ZooKeeper servers and Curator participants need,
//! and the `java` command line they share.
//!
//! Public so that other Curator programs (the benchmark's) compile and run
//! exactly like [`CuratorLatch`](crate::CuratorLatch): against Debian's jars in
//! `/usr/share/java`, in a JVM tuned for a small machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;

/// Where Debian installs Java libraries.
const JAVA_DIR: &str = "/usr/share/java";

/// A jar and the Debian package that installs it.
type Jar = (&'static str, &'static str);

/// What `org.apache.zookeeper.server.quorum.QuorumPeerMain` 3.8 loads, standalone
/// and in a quorum, with the AdminServer off. Debian's `zookeeper.jar` names its
/// dependencies in its manifest's `Class-Path`, so the first four would do; the
/// list is explicit so a missing jar fails here with its package, not as a
/// `NoClassDefFoundError` in a log. Measured with the manifests stripped:
/// `metrics-core` (ServerMetrics) and `snappy-java` (snapshot streams) are
/// loaded at every start; netty, jackson, jetty and commons-cli/io are not.
const SERVER_JARS: &[Jar] = &[
    ("zookeeper.jar", "zookeeper"),
    ("zookeeper-jute.jar", "zookeeper"),
    ("slf4j-api.jar", "libslf4j-java"),
    ("slf4j-simple.jar", "libslf4j-java"),
    ("metrics-core.jar", "libdropwizard-metrics-java"),
    ("snappy-java.jar", "libsnappy-java"),
];

/// What the Curator LeaderLatch program compiles against and runs with
/// (measured the same way): Curator 5.4, the ZooKeeper client and guava.
const CURATOR_JARS: &[Jar] = &[
    ("curator-framework.jar", "libcurator-framework-java"),
    ("curator-client.jar", "libcurator-client-java"),
    ("curator-recipes.jar", "libcurator-recipes-java"),
    ("zookeeper.jar", "zookeeper"),
    ("zookeeper-jute.jar", "zookeeper"),
    ("guava.jar", "libguava-java"),
    ("slf4j-api.jar", "libslf4j-java"),
    ("slf4j-simple.jar", "libslf4j-java"),
];

/// The classpath of a ZooKeeper server.
pub(crate) fn server_classpath() -> Result<String, TestkitError> {
    classpath(Path::new(JAVA_DIR), SERVER_JARS, None)
}

/// The classpath of a Curator 5.4 program — Curator, the ZooKeeper client,
/// guava and slf4j — with its compiled classes in `classes` first (or without
/// them, to compile it with [`javac`]).
///
/// # Errors
/// [`TestkitError::MissingJar`], naming the Debian package to install, when a
/// jar is not in `/usr/share/java`.
pub fn curator_classpath(classes: Option<&Path>) -> Result<String, TestkitError> {
    classpath(Path::new(JAVA_DIR), CURATOR_JARS, classes)
}

fn classpath(dir: &Path, jars: &[Jar], first: Option<&Path>) -> Result<String, TestkitError> {
    let mut entries: Vec<PathBuf> = first.map(Path::to_owned).into_iter().collect();
    for &(jar, package) in jars {
        let path = dir.join(jar);
        if !path.is_file() {
            return Err(TestkitError::MissingJar { jar: path, package });
        }
        entries.push(path);
    }
    let entries: Vec<String> = entries
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    Ok(entries.join(":"))
}

/// `java` with the kit's JVM options: a small serial-GC heap and the C1
/// compiler only, because on a 2-core machine a JVM that starts in 0.4 s
/// matters more than its peak speed. Logs at WARN, with times, to stderr.
/// `max_heap` is `-Xmx`'s value, e.g. `128m`. Add the main class and its
/// arguments.
///
/// `JAVA_TOOL_OPTIONS` and the like are removed from its environment, so the
/// caller's environment cannot change the JVM.
pub fn java(classpath: &str, max_heap: &str) -> Command {
    let mut command = Command::new("java");
    scrub(&mut command);
    command
        .arg(format!("-Xmx{max_heap}"))
        .args([
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
        ])
        .arg("-cp")
        .arg(classpath);
    command
}

/// `javac`, for Curator programs, with the same scrubbed environment as
/// [`java`]. Add `-d`, `-cp` ([`curator_classpath`]) and the sources.
pub fn javac() -> Command {
    let mut command = Command::new("javac");
    scrub(&mut command);
    command
}

/// The JVM reads options from these variables; the test's environment must not
/// change the servers (a stray `-Dzookeeper.skipACL=yes` would turn ACLs off).
fn scrub(command: &mut Command) {
    for key in [
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "CLASSPATH",
    ] {
        command.env_remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_jar_names_its_package() {
        let err = classpath(
            Path::new("/nonexistent"),
            &[("zookeeper.jar", "zookeeper")],
            None,
        )
        .unwrap_err();
        assert!(matches!(err, TestkitError::MissingJar { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "/nonexistent/zookeeper.jar not found: install Debian's zookeeper package \
             (apt-get install zookeeper)"
        );
    }

    #[test]
    fn the_installed_jars_make_both_classpaths() {
        let server = server_classpath().unwrap();
        assert!(
            server.starts_with("/usr/share/java/zookeeper.jar:"),
            "{server}"
        );
        let curator = curator_classpath(Some(Path::new("/tmp/classes"))).unwrap();
        assert!(curator.starts_with("/tmp/classes:"), "{curator}");
        assert!(curator.contains("/curator-recipes.jar"), "{curator}");
    }
}
