//! A JobManager's configuration directory and `java` command line: what
//! Flink's `jobmanager.sh` would produce, without its scripts.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use super::install;
use super::FlinkOptions;
use crate::process;
use crate::zookeeper::java;
use crate::TestkitError;

/// The JobManager's entry point in a standalone session cluster.
pub(crate) const MAIN_CLASS: &str =
    "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint";

/// `jobmanager.memory.process.size`: enough for an idle JobManager.
const PROCESS_MEMORY: &str = "1024m";

/// `env.java.opts.all` of the `config.yaml` that ships in Flink 2.3's
/// `flink-dist` jar: the JDK internals Flink (Pekko, Kryo, its netty) reaches
/// into on Java 17.
const JAVA_OPTS: &[&str] = &[
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
];

/// Log4j 2 for a JobManager: INFO and up into the file `-Dlog.file` names,
/// as Flink's own `log4j.properties` does, minus rolling.
const JM_LOG4J: &str = "\
monitorInterval = 0
rootLogger.level = INFO
rootLogger.appenderRef.main.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.append = true
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{HH:mm:ss,SSS} %-5p %c{1} [%t] - %m%n
";

/// Log4j 2 for a helper program: INFO and up to stderr, keeping stdout for
/// the program's own lines.
pub(crate) const STDERR_LOG4J: &str = "\
monitorInterval = 0
rootLogger.level = INFO
rootLogger.appenderRef.err.ref = Err
appender.err.name = Err
appender.err.type = Console
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %d{HH:mm:ss,SSS} %-5p %c{1} [%t] - %m%n
";

/// The ports a JobManager listens on, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) rpc: u16,
    pub(crate) rest: u16,
    pub(crate) blob: u16,
}

/// Writes `<dir>/conf/config.yaml` and `<dir>/conf/log4j2.properties`, and
/// creates the directories they name under `dir`.
pub(crate) fn write_conf(
    dir: &Path,
    zk_connect: &str,
    options: &FlinkOptions,
    ports: Ports,
) -> Result<(), TestkitError> {
    for sub in ["conf", "ha", "tmp", "web"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path)
            .map_err(|e| TestkitError::io(format!("cannot create {}", path.display()), e))?;
    }
    let path = |sub: &str| dir.join(sub).display().to_string();
    // Flat keys (Flink reads `a.b: v` like nested maps), every value a
    // double-quoted string, which Flink converts to the option's type.
    let entries = [
        ("high-availability.type", "zookeeper".to_owned()),
        (
            "high-availability.storageDir",
            format!("file://{}", path("ha")),
        ),
        ("high-availability.cluster-id", options.cluster_id.clone()),
        ("high-availability.zookeeper.quorum", zk_connect.to_owned()),
        (
            "high-availability.zookeeper.path.root",
            options.path_root.clone(),
        ),
        (
            "high-availability.zookeeper.client.session-timeout",
            format!("{} ms", options.session_timeout_ms),
        ),
        // In HA mode the RPC port is this one, not jobmanager.rpc.port.
        ("high-availability.jobmanager.port", ports.rpc.to_string()),
        ("jobmanager.bind-host", "127.0.0.1".to_owned()),
        ("jobmanager.rpc.address", "127.0.0.1".to_owned()),
        ("jobmanager.memory.process.size", PROCESS_MEMORY.to_owned()),
        ("rest.address", "127.0.0.1".to_owned()),
        ("rest.bind-address", "127.0.0.1".to_owned()),
        ("rest.port", ports.rest.to_string()),
        ("blob.server.port", ports.blob.to_string()),
        // The metrics actor system: any free port, it is never dialled here.
        ("metrics.internal.query-service.port", "0".to_owned()),
        ("io.tmp.dirs", path("tmp")),
        ("web.tmpdir", path("web")),
    ];
    let mut yaml = String::new();
    for (key, value) in entries {
        yaml.push_str(&format!("{key}: {value:?}\n"));
    }
    write(&dir.join("conf").join("config.yaml"), &yaml)?;
    write(&dir.join("conf").join("log4j2.properties"), JM_LOG4J)
}

/// Writes `contents` to `path`.
pub(crate) fn write(path: &Path, contents: &str) -> Result<(), TestkitError> {
    fs::write(path, contents)
        .map_err(|e| TestkitError::io(format!("cannot write {}", path.display()), e))
}

/// The `java` command of a JobManager whose directory `dir` was written by
/// [`write_conf`], logging to `log`: the memory flags Flink computes, the
/// module flags, the classpath, the main class and its arguments.
pub(crate) fn jobmanager_command(
    lib: &Path,
    dir: &Path,
    log: &Path,
) -> Result<Command, TestkitError> {
    let conf = dir.join("conf");
    let resources = resource_params(lib, &conf)?;
    let classpath = install::classpath(lib, None)?;
    // The kit's JVM (serial GC, C1 only: quick to start on two cores); the
    // heap flags after it from Flink's computation, which win being last.
    let mut command = java::java(&classpath, &resources.heap);
    command
        .args(&resources.jvm)
        .args(JAVA_OPTS)
        .arg(format!("-Dlog.file={}", log.display()))
        .arg(format!(
            "-Dlog4j.configurationFile=file:{}",
            conf.join("log4j2.properties").display()
        ))
        .arg(MAIN_CLASS)
        .arg("--configDir")
        .arg(&conf)
        .args(&resources.dynamic)
        .current_dir(dir);
    Ok(command)
}

/// What `BashJavaUtils GET_JM_RESOURCE_PARAMS` computes.
#[derive(Debug, Clone)]
struct ResourceParams {
    /// `-Xmx`'s value.
    heap: String,
    /// The other JVM flags (`-Xms`, `-XX:MaxMetaspaceSize`).
    jvm: Vec<String>,
    /// `-D key=value` pairs for the entry point, as separate arguments.
    dynamic: Vec<String>,
}

/// Runs `BashJavaUtils GET_JM_RESOURCE_PARAMS` on `conf`, as `jobmanager.sh`
/// does: its two `BASH_JAVA_UTILS_EXEC_RESULT:` lines are the JVM flags and
/// the dynamic parameters.
///
/// The answer depends only on the memory keys, which are the same in every
/// configuration the kit writes, so a process computes it once (the JVM
/// takes most of a second).
fn resource_params(lib: &Path, conf: &Path) -> Result<ResourceParams, TestkitError> {
    static CACHED: Mutex<Option<ResourceParams>> = Mutex::new(None);
    let mut cached = CACHED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(params) = cached.as_ref() {
        return Ok(params.clone());
    }
    let classpath = format!(
        "{}:{}",
        install::bash_java_utils(lib).display(),
        install::flink_dist(lib).display()
    );
    let output = process::run(
        java::java(&classpath, "128m")
            .arg("org.apache.flink.runtime.util.bash.BashJavaUtils")
            .arg("GET_JM_RESOURCE_PARAMS")
            .arg("--configDir")
            .arg(conf),
        "java",
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let params = parse_resource_params(&stdout).ok_or_else(|| {
        TestkitError::io(
            "cannot compute the JobManager's memory flags",
            std::io::Error::other(format!(
                "BashJavaUtils printed no usable BASH_JAVA_UTILS_EXEC_RESULT lines:\n{stdout}"
            )),
        )
    })?;
    *cached = Some(params.clone());
    Ok(params)
}

fn parse_resource_params(stdout: &str) -> Option<ResourceParams> {
    let mut results = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("BASH_JAVA_UTILS_EXEC_RESULT:"));
    let (jvm, dynamic) = (results.next()?, results.next()?);
    let mut heap = None;
    let mut others = Vec::new();
    for flag in jvm.split_whitespace() {
        match flag.strip_prefix("-Xmx") {
            Some(size) => heap = Some(size.to_owned()),
            None => others.push(flag.to_owned()),
        }
    }
    Some(ResourceParams {
        heap: heap?,
        jvm: others,
        dynamic: dynamic.split_whitespace().map(str::to_owned).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_java_utils_output_is_split_into_flags() {
        let stdout = "INFO  [] - Final Master Memory configuration:\n\
            BASH_JAVA_UTILS_EXEC_RESULT:-Xmx469762048 -Xms469762048 -XX:MaxMetaspaceSize=268435456\n\
            BASH_JAVA_UTILS_EXEC_RESULT:-D jobmanager.memory.heap.size=469762048b \
            -D jobmanager.memory.off-heap.size=134217728b\n";
        let params = parse_resource_params(stdout).unwrap();
        assert_eq!(params.heap, "469762048");
        assert_eq!(
            params.jvm,
            ["-Xms469762048", "-XX:MaxMetaspaceSize=268435456"]
        );
        assert_eq!(
            params.dynamic,
            [
                "-D",
                "jobmanager.memory.heap.size=469762048b",
                "-D",
                "jobmanager.memory.off-heap.size=134217728b"
            ]
        );
        assert!(parse_resource_params("BASH_JAVA_UTILS_EXEC_RESULT:-Xms1\n").is_none());
    }
}
