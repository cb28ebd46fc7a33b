//! A contender process for tenure-local's multi-process tests and benchmarks.
//!
//! `tenure-local-contender DIR ID N` opens the local backend at DIR and
//! campaigns for elections `e0` … `e{N-1}`, again after every loss. It reports
//! on stdout, one line per event:
//!
//! ```text
//! READY <session>
//! GRANT <election> <term> <unix-nanos>
//! WROTE <election> <term>          its fenced write of holders/<election> landed
//! FENCED <election> <term>         ... or was rejected
//! LOST <election> <term> <reason> <unix-nanos>
//! ACK <key> <version>              answer to `put`
//! ERR <message>
//! ```
//!
//! and reads commands on stdin: `put KEY VALUE`, `resign ELECTION`, `exit`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tenure_core::{Backend, DynBackend, ElectionFactory, ElectionOptions, Error, Leadership, Path};
use tenure_local::LocalBackend;
use tokio::io::{AsyncBufReadExt, BufReader};

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, id, n] = &args[..] else {
        eprintln!("usage: tenure-local-contender DIR ID N");
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("N must be a number");
        std::process::exit(2);
    };
    let backend = match LocalBackend::open(dir).await {
        Ok(b) => b,
        Err(e) => {
            say(format!("ERR {e}"));
            std::process::exit(1);
        }
    };
    let dynamic: DynBackend = Arc::new(backend.clone());
    say(format!("READY {}", backend.session().borrow().id.0));
    let factory = ElectionFactory::with_options(
        dynamic.clone(),
        ElectionOptions {
            candidate_id: Some(id.clone()),
            ..ElectionOptions::default()
        },
    );
    let held: Arc<Mutex<HashMap<String, Leadership>>> = Arc::default();
    for i in 0..n {
        let name = format!("e{i}");
        let election = factory.new_election(&name).expect("valid name");
        let (id, held) = (id.clone(), held.clone());
        tokio::spawn(async move {
            let mut leaderships = election.leaderships();
            while let Some(next) = leaderships.next().await {
                let leadership = match next {
                    Ok(l) => l,
                    Err(e) => {
                        say(format!("ERR {name}: {e}"));
                        return;
                    }
                };
                let term = leadership.term();
                say(format!("GRANT {name} {term} {}", nanos()));
                held.lock()
                    .unwrap()
                    .insert(name.clone(), leadership.clone());
                let key = Path::parse("key", &format!("holders/{name}")).expect("valid key");
                match leadership
                    .put(&key, format!("{id} {term}").as_bytes())
                    .await
                {
                    Ok(_) => say(format!("WROTE {name} {term}")),
                    Err(Error::Fenced { .. } | Error::LeadershipLost { .. }) => {
                        say(format!("FENCED {name} {term}"))
                    }
                    Err(e) => say(format!("ERR {name}: {e}")),
                }
                let reason = leadership.lost().await;
                say(format!("LOST {name} {term} {reason:?} {}", nanos()));
            }
        });
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["put", key, value] => {
                let outcome = match Path::parse("key", key) {
                    Ok(key) => {
                        dynamic
                            .put(&key, value.as_bytes(), tenure_core::Guard::ANY)
                            .await
                    }
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(version) => say(format!("ACK {key} {version}")),
                    Err(e) => say(format!("ERR {e}")),
                }
            }
            ["resign", name] => {
                let leadership = held.lock().unwrap().remove(name);
                if let Some(l) = leadership {
                    if let Err(e) = l.resign().await {
                        say(format!("ERR {e}"));
                    }
                }
            }
            ["exit"] => break,
            _ => say(format!("ERR unknown command {line:?}")),
        }
    }
    let _ = dynamic.close().await;
}
