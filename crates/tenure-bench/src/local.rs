//! The local backend, with real processes sharing one directory.

use std::time::Duration;

use tenure::{DynBackend, Guard, Path};

use crate::plan::{in_process, Plan};
use crate::proc::{nanos, since, tenure_command, Proc};
use crate::report::{Report, Row, Stat};
use crate::scenarios::{self, Lease, Subject};

pub(crate) async fn run(report: &mut Report, plan: &Plan) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tenure-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let url = format!("local://{}", dir.display());
    let outcome = scenarios_on(report, plan, &url).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn scenarios_on(report: &mut Report, plan: &Plan, url: &str) -> Result<(), String> {
    let subject = Subject {
        implementation: "tenure".into(),
        backend: "local".into(),
        short: Duration::ZERO,
        default: Duration::ZERO,
        targeted: true,
        spawn: {
            let url = url.to_owned();
            Box::new(move |_lease, scope| tenure_command(&url, scope))
        },
    };
    scenarios::handover(report, &subject, plan.handovers).await?;
    scenarios::crash(report, &subject, Lease::Short, plan.crashes * 4).await?;
    scenarios::paused_without_session(report, &subject, Duration::from_secs(1)).await?;
    scenarios::many(report, &subject, 1_000, None, plan.settle, Duration::ZERO).await?;

    // A change made by this process, seen by a watcher in another.
    let observer: DynBackend = tenure::connect(url).await.map_err(|e| e.to_string())?;
    let mut watcher = Proc::spawn("tenure watcher on local", tenure_command(url, "watch")?).await?;
    watcher.send("watch").await?;
    watcher.expect("WATCHING").await?;
    let key = Path::parse("key", "w/k").map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    for i in 0..plan.watches {
        let written = nanos();
        observer
            .put(&key, i.to_string().as_bytes(), Guard::ANY)
            .await
            .map_err(|e| e.to_string())?;
        let seen = watcher.expect("EVENT").await?;
        samples.push(since(written, seen).as_secs_f64() * 1000.0);
    }
    report.add(
        Row::new(
            "watch",
            "tenure",
            "local",
            "put → event in another process",
            "ms",
            samples,
        )
        .below(Stat::P99, 50.0)
        .note("includes the fsynced write; other processes poll the state file every 5 ms"),
    );
    drop(watcher);
    let _ = observer.close().await;
    in_process(report, plan, "local", url).await
}
