//! `tenure campaign` and `tenure resign`: an election from a shell script.

use std::io::Write;
use std::time::Duration;

use futures_util::StreamExt;
use tenure::{DynBackend, Path, Result};
use tokio::io::AsyncReadExt;

use crate::common::{self, signal_name, Signals};
use crate::fence::Fence;
use crate::{exit, holder, CampaignArgs, ResignArgs};

/// The long help of `tenure campaign`.
pub(crate) const CAMPAIGN_HELP: &str = "\
Blocks until this process leads, prints the term (one line, the number alone;
with --fence a second line holds the fence token for `tenure put --fence`) and holds leadership until SIGTERM or SIGINT, until standard input closes (when
it is a pipe, socket or terminal; /dev/null and files are not watched), or until
`tenure resign` asks; then resigns and exits 0. If leadership is lost meanwhile,
it says why on standard error and exits 75. The term is printed as soon as the
grant is known; the holder record (`tenure status`) and the watch for resign
requests are set up right after, and a resign request made in between is
still honoured.

Example:
  coproc tenure campaign --backend local:///tmp/t --election jobs
  read -r term <&\"${COPROC[0]}\"   # now leading with this term
  ...
  exec {COPROC[1]}>&-              # close its stdin: resign

Exit codes: 0 resigned; 75 leadership lost; 128+S stopped by signal S before
leading; 64 bad input; 69 backend unavailable.";

/// The long help of `tenure resign`.
pub(crate) const RESIGN_HELP: &str = "\
Leadership belongs to the process that holds it, so tenure resign cannot take it
away: it asks the holder, by writing a request that `tenure run` and `tenure
campaign` watch for (key tenure/resign/ELECTION), and waits until the election's
term changes. `tenure run` then stops its command (SIGTERM, SIGKILL after its
--grace) before resigning. Any other holder ignores the request.

Exit codes: 0 resigned (or nobody led); 1 --id does not lead; 75 the holder did
not resign within --timeout; 64 bad input; 69 backend unavailable.";

/// Runs `tenure campaign`.
pub(crate) async fn campaign(args: CampaignArgs) -> Result<u8> {
    let mut signals = Signals::new()?;
    let candidate = &args.candidate;
    let (backend, id, election) = candidate.join().await?;
    let name = candidate.election.as_str();
    let mut stdin_closed = std::pin::pin!(stdin_closed());
    let outcome = async {
        let leadership = tokio::select! {
            r = election.campaign() => r?,
            signal = signals.stop() => return Ok(exit::of_signal(signal)),
            () = &mut stdin_closed => return Ok(exit::LEADERSHIP_LOST),
        };
        let term = leadership.term();
        let fence = match args.fence {
            true => Some(Fence::new(&candidate.backend.backend, leadership.grant())?.encode()),
            false => None,
        };
        // Act first: the caller learns of the grant before any bookkeeping.
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{term}")
                .and_then(|()| fence.map_or(Ok(()), |fence| writeln!(out, "{fence}")))
                .and_then(|()| out.flush());
        }
        // Then the holder record and the resign-request watch, together and
        // beside the loss and signal handling below.
        let resign_requested = holder::bookkeeping(
            &leadership,
            &backend,
            name,
            &id,
            candidate.address.as_deref(),
        );
        tokio::select! {
            reason = leadership.lost() => {
                eprintln!("tenure: leadership of {name} (term {term}) lost: {reason}");
                return Ok(exit::LEADERSHIP_LOST);
            }
            signal = signals.stop() => {
                tracing::info!(signal = signal_name(signal), term, "resigning");
            }
            () = &mut stdin_closed => tracing::info!(term, "standard input closed: resigning"),
            () = resign_requested => tracing::info!(term, "resign requested: resigning"),
        }
        leadership.resign().await?;
        Ok(0)
    }
    .await;
    election.close().await;
    let _ = backend.close().await;
    outcome
}

/// Resolves when standard input reaches end of file — if it is a pipe, a
/// socket or a terminal; never for /dev/null or a regular file, which would
/// otherwise end every campaign started in the background at once.
async fn stdin_closed() {
    use std::os::unix::fs::FileTypeExt;
    let watched = std::fs::metadata("/proc/self/fd/0")
        .map(|m| {
            let kind = m.file_type();
            kind.is_fifo() || kind.is_socket()
        })
        .unwrap_or(false)
        || std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !watched {
        return std::future::pending().await;
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Runs `tenure resign`.
pub(crate) async fn resign(args: ResignArgs) -> Result<u8> {
    let backend = common::connect(&args.backend.backend, None).await?;
    let outcome = ask(&backend, &args).await;
    let _ = backend.close().await;
    outcome
}

async fn ask(backend: &DynBackend, args: &ResignArgs) -> Result<u8> {
    let name = args.election.as_str();
    let election = Path::parse("election", name)?;
    // Watch first, so the change cannot slip between reading and waiting.
    let mut leaders = tenure::follow_election(backend.clone(), election.clone());
    let Some(leader) = backend.leader(&election).await? else {
        println!("nobody leads {name}");
        return Ok(0);
    };
    let holder = String::from_utf8_lossy(&leader.value).into_owned();
    if let Some(id) = &args.id {
        if *id != holder {
            eprintln!(
                "tenure: {id} does not lead {name}: {holder} does (term {})",
                leader.term
            );
            return Ok(1);
        }
    }
    holder::request_resign(backend, name, leader.term).await?;
    let waited = tokio::time::timeout(args.timeout, async {
        while let Some(item) = leaders.next().await {
            match item {
                Ok(Some(l)) if l.term == leader.term => {}
                Ok(_) => return true,
                Err(e) => tracing::debug!(error = %e, "following the leader"),
            }
        }
        false
    })
    .await;
    if waited == Ok(true) {
        println!("{holder} resigned {name} (term {})", leader.term);
        return Ok(0);
    }
    eprintln!(
        "tenure: {holder} (term {}) did not resign {name} within {}; only `tenure run` and `tenure campaign` answer resign requests",
        leader.term,
        humanize(args.timeout)
    );
    Ok(exit::LEADERSHIP_LOST)
}

fn humanize(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
