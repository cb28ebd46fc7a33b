//! `tenure status`: who leads which election, and which HA components.

use std::io::Write;

use serde::{Deserialize, Serialize};
use tenure::{DynBackend, Error, Path, Result};

use crate::holder;
use crate::time::rfc3339;
use crate::{common, StatusArgs};

/// The long help of `tenure status`.
pub(crate) const HELP: &str = "\
A backend cannot list its elections, so name them: `tenure status ELECTION...`.
With --cluster ID, every HA component of that cluster that has published a
leader (the keys ID/leader/COMPONENT/connection_info) is listed too.

Columns: KIND (election or component), NAME, LEADER (the candidate id; for a
component, its leader session id), TERM, SINCE (when the leadership began, known
for leaders started by `tenure run` or `tenure campaign`), CANDIDATES (leader
included), ADDRESS. A component whose published leader no longer leads shows no
leader. SINCE and ADDRESS come from the holder's record, which `tenure run` and
`tenure campaign` publish just after they act on a grant: for a few
milliseconds after a handover they may still be missing.

Example:
  tenure status --backend local:///var/lib/tenure nightly reports --cluster prod";

/// One line of the table.
#[derive(Debug, Serialize)]
struct Row {
    kind: &'static str,
    name: String,
    leader: Option<String>,
    term: Option<u64>,
    since: Option<String>,
    candidates: usize,
    address: Option<String>,
}

/// The leader information an HA component publishes (tenure-core's layout).
#[derive(Debug, Deserialize)]
struct Published {
    address: String,
    session_id: uuid::Uuid,
    term: u64,
    election: String,
}

/// Runs `tenure status`.
pub(crate) async fn run(args: StatusArgs) -> Result<u8> {
    let backend = common::connect(&args.backend.backend, None).await?;
    let rows = rows(&backend, &args).await;
    let _ = backend.close().await;
    let rows = rows?;
    let text = if args.json {
        serde_json::to_string_pretty(&rows).expect("rows always serialize")
    } else {
        table(&rows)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    Ok(0)
}

async fn rows(backend: &DynBackend, args: &StatusArgs) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for name in &args.elections {
        rows.push(election_row(backend, name).await?);
    }
    if let Some(cluster) = &args.cluster {
        rows.extend(component_rows(backend, cluster).await?);
    }
    Ok(rows)
}

async fn election_row(backend: &DynBackend, name: &str) -> Result<Row> {
    let election = Path::parse("election", name)?;
    let leader = backend.leader(&election).await?;
    let candidates = backend.candidates(&election).await?.len();
    let holder = match holder::read(backend, name).await {
        Ok(holder) => holder,
        Err(e) => {
            tracing::warn!(error = %e, "reading the holder record");
            None
        }
    };
    let holder = holder.filter(|h| leader.as_ref().is_some_and(|l| l.term == h.term));
    Ok(Row {
        kind: "election",
        name: name.to_owned(),
        leader: leader
            .as_ref()
            .map(|l| String::from_utf8_lossy(&l.value).into_owned()),
        term: leader.as_ref().map(|l| l.term),
        since: holder.as_ref().map(|h| rfc3339(h.since_ms)),
        candidates,
        address: holder.and_then(|h| h.address),
    })
}

async fn component_rows(backend: &DynBackend, cluster: &str) -> Result<Vec<Row>> {
    let prefix = Path::root("cluster_id", cluster)?.child("key", "leader")?;
    let mut rows = Vec::new();
    for (key, stored) in backend.list(&prefix).await? {
        let rest = key.strip_prefix(prefix.as_str()).unwrap_or("");
        let Some(component) = rest
            .strip_prefix('/')
            .and_then(|r| r.strip_suffix("/connection_info"))
            .filter(|c| !c.contains('/'))
        else {
            continue;
        };
        if stored.value.starts_with(&tenure::flink::MAGIC) {
            rows.push(flink_row(backend, cluster, component).await?);
            continue;
        }
        let published: Published =
            serde_json::from_slice(&stored.value).map_err(|e| Error::Corrupted {
                key: key.clone(),
                reason: format!("not a leader information record: {e}"),
            })?;
        let election = Path::parse("election", &published.election)?;
        let leader = backend.leader(&election).await?;
        let candidates = backend.candidates(&election).await?.len();
        let current = leader.is_some_and(|l| l.term == published.term);
        rows.push(Row {
            kind: "component",
            name: format!("{cluster}/{component}"),
            leader: current.then(|| published.session_id.to_string()),
            term: current.then_some(published.term),
            since: None,
            candidates,
            address: current.then_some(published.address),
        });
    }
    Ok(rows)
}

/// A component published by Apache Flink (or by tenure in Flink's layout):
/// what leader retrieval reports, and the candidates of Flink's one latch.
async fn flink_row(backend: &DynBackend, cluster: &str, component: &str) -> Result<Row> {
    let retrieval = tenure::LeaderRetrieval::new(backend.clone(), cluster, component)?;
    let current = retrieval.current().await?;
    let latch = Path::root("cluster_id", cluster)?
        .child("key", "leader")?
        .child("key", "latch")?;
    let candidates = backend.candidates(&latch).await?.len();
    Ok(Row {
        kind: "component",
        name: format!("{cluster}/{component}"),
        leader: current.as_ref().map(|c| c.session_id.to_string()),
        term: current.as_ref().map(|c| c.term),
        since: None,
        candidates,
        address: current.map(|c| c.address),
    })
}

fn table(rows: &[Row]) -> String {
    let header = [
        "KIND",
        "NAME",
        "LEADER",
        "TERM",
        "SINCE",
        "CANDIDATES",
        "ADDRESS",
    ];
    let dash = || "-".to_owned();
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.kind.to_owned(),
                r.name.clone(),
                r.leader.clone().unwrap_or_else(dash),
                r.term.map_or_else(dash, |t| t.to_string()),
                r.since.clone().unwrap_or_else(dash),
                r.candidates.to_string(),
                r.address.clone().unwrap_or_else(dash),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(&header.map(str::to_owned))];
    out.extend(cells.iter().map(|row| line(row)));
    out.join("\n")
}
