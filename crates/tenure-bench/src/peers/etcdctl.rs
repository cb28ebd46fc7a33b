//! `etcdctl elect` as a contender: one `etcdctl elect` process per campaign,
//! under a driver in this binary, SIGINT to resign.

use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::proc::nanos;

use super::*;

/// `etcdctl elect` under this binary's driver (`tenure-bench etcdctl-contender`).
pub(crate) fn etcdctl_command(endpoints: &str, election: &str) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where is tenure-bench? {e}"))?;
    let mut command = Command::new(exe);
    command.args(["etcdctl-contender", endpoints, election]);
    Ok(command)
}

/// `etcdctl` (API v3) at `endpoints`.
pub(super) fn etcdctl(endpoints: &str) -> Command {
    let mut command = Command::from(etcdctl_sync());
    command.arg(format!("--endpoints={endpoints}"));
    command
}

/// `etcdctl` (API v3) with no `ETCDCTL_*` variables of the caller's: etcdctl
/// 3.4 exits when one shadows a flag it is given.
pub(super) fn etcdctl_sync() -> std::process::Command {
    let mut command = std::process::Command::new("etcdctl");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCDCTL_") {
            command.env_remove(key);
        }
    }
    command.env("ETCDCTL_API", "3");
    command
}

/// The driver's side: runs `etcdctl elect` on `campaign`, SIGINT on `resign`.
///
/// etcdctl 3.4's `elect NAME PROPOSAL` creates `NAME/<lease hex>` on a session
/// of its own (60 s lease), waits to be first, then prints the key and the
/// proposal on two lines and leads until SIGINT or SIGTERM, on which it
/// deletes its key (resigns) and exits. The first line is the grant.
pub(crate) async fn etcdctl_contender(endpoints: &str, election: &str) -> Result<(), String> {
    // READY promises a reachable server.
    count_keys(endpoints, election).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut running: Option<Child> = None;
    let mut campaigns = 0u32;
    println!("READY");
    loop {
        tokio::select! {
            status = exit_of(&mut running) => {
                running = None;
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                println!("ERROR etcdctl elect exited on its own: {status}");
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                let command = line.split(' ').next().unwrap_or_default();
                match command {
                    "campaign" if running.is_some() => println!("ERROR already campaigning"),
                    "campaign" => {
                        campaigns += 1;
                        let proposal = format!("etcdctl-{}-{campaigns}", std::process::id());
                        match campaign(endpoints, election, &proposal) {
                            Ok(child) => running = Some(child),
                            Err(e) => println!("ERROR {e}"),
                        }
                    }
                    "resign" => {
                        println!("RESIGNING {}", nanos());
                        if let Some(child) = running.take() {
                            if let Err(e) = interrupt(child).await {
                                println!("ERROR {e}");
                            }
                        }
                    }
                    "count" => match count_keys(endpoints, election).await {
                        Ok(n) => println!("COUNT {n}"),
                        Err(e) => println!("ERROR {e}"),
                    },
                    // One `etcdctl elect` process is one election.
                    "many" | "release" => println!("ERROR not applicable"),
                    "" => {}
                    _ => println!("ERROR unknown command {line}"),
                }
            }
        }
    }
    // End of stdin: resign as on `resign`, so the next run finds no key.
    if let Some(child) = running.take() {
        interrupt(child).await?;
    }
    Ok(())
}

/// Starts `etcdctl elect` (in this process's group, so killing the group
/// kills it too) and prints `GRANT` when it prints its key.
pub(super) fn campaign(endpoints: &str, election: &str, proposal: &str) -> Result<Child, String> {
    let mut child = etcdctl(endpoints)
        .args(["elect", election, proposal])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // etcdctl's complaints go where ours go: the contender's log.
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start etcdctl (apt-get install etcd-client): {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        if let Ok(Some(_key)) = lines.next_line().await {
            println!("GRANT {}", nanos());
        }
        // The proposal line, and nothing more until it exits.
        while let Ok(Some(_)) = lines.next_line().await {}
    });
    Ok(child)
}

/// How `running` ends; never, if there is none.
pub(super) async fn exit_of(running: &mut Option<Child>) -> std::io::Result<ExitStatus> {
    match running {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

/// SIGINT — etcdctl resigns (deletes its key) and exits — and waits for it.
/// A campaign not yet granted is cancelled the same way (etcdctl deletes its
/// key and exits with an error status, which is fine here).
pub(super) async fn interrupt(mut child: Child) -> Result<(), String> {
    // By pid while the child is not reaped, so the pid is still ours.
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as i32, libc::SIGINT);
        }
    }
    match tokio::time::timeout(RESIGN_TIMEOUT, child.wait()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("cannot wait for etcdctl: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!(
                "etcdctl elect did not exit within {RESIGN_TIMEOUT:?} of SIGINT"
            ))
        }
    }
}

/// Keys under `election/`: the candidates of `etcdctl elect election`.
pub(super) async fn count_keys(endpoints: &str, election: &str) -> Result<usize, String> {
    let output = etcdctl(endpoints)
        .args(["get", "--prefix", "--keys-only", &format!("{election}/")])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(COMMAND_TIMEOUT, output)
        .await
        .map_err(|_| format!("etcdctl get took over {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("cannot run etcdctl (apt-get install etcd-client): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "etcdctl get {election}/: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    // `--keys-only` prints each key followed by an empty line.
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count())
}
