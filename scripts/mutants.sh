#!/usr/bin/env bash
# Plants one bug at a time in a scratch copy of HEAD and runs each backend's
# tests: a checker counts only once it has been shown to catch a planted bug.
# Each mutant must make at least one test fail on every backend it applies to.
#
#   scripts/mutants.sh            every mutant, every backend (about 30 minutes)
#   scripts/mutants.sh --short    one mutant (the leadership's fence dropped) on
#                                 memory and local: the form CI runs
#   scripts/mutants.sh NAME…      the named mutants only
#
# Prints one line per mutant and backend: "killed" (a test failed), or
# "SURVIVED" (every test passed: the suite misses that bug). Exits 1 if any
# mutant survived or no longer applies (the code it patches changed: update
# the mutant), 0 otherwise.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# One mutant per line, fields separated by tabs: name, file, the text to
# replace, its replacement, the backends it applies to.
T=$'\t'
MUTANTS=(
  "ha-fence${T}crates/tenure-core/src/ha/context.rs${T}fence.fenced_put(store, key, value, condition).await${T}{ let _ = store; self.backend.put(key, value, crate::backend::Guard::when(condition)).await }${T}memory local etcd zookeeper"
  "leadership-fence${T}crates/tenure-core/src/leadership.rs${T}let mut guard = Guard::new(condition, Some(&self.inner.grant));${T}let mut guard = Guard::new(condition, None);${T}memory local etcd zookeeper"
  "renew-deadline${T}crates/tenure-core/src/election.rs${T}if s.renew_deadline.is_some_and(|deadline| deadline <= now) {${T}if false && s.renew_deadline.is_some_and(|deadline| deadline <= now) {${T}memory etcd zookeeper"
  "zk-owner-check${T}crates/tenure-zookeeper/src/campaign.rs${T}if stat.ephemeral_owner as u64 != session.0 {${T}if false {${T}zookeeper"
  "queue-fence${T}crates/tenure-core/src/backend.rs${T}if current && live(grant.session.0) {${T}if true {${T}memory local"
  # etcd reuses a lease's candidate key: the backend refuses to take over a
  # candidate it granted before. (The election's own wait for a lost
  # candidate's removal is a second line behind it; a mutant of that wait
  # alone survives, since this one still holds.)
  "stale-grant${T}crates/tenure-core/src/election.rs${T}Ok(grant) if !session_sound(&status, &grant) => {${T}Ok(grant) if false => {${T}memory"
  "granted-reuse${T}crates/tenure-etcd/src/campaign.rs${T}if self.was_granted(&key, lease, term) {${T}if false {${T}etcd"
  # Only memory: on a durable backend terms never go back, so no black-box
  # test there can show an older term to the retrieval; core's unit test
  # drives its view directly.
  # Ephemeral values end with their session (conformance case
  # ephemeral_values_end_with_their_session), on every backend.
  "ephemeral-memory${T}crates/tenure-core/src/memory/server.rs${T}.filter(|(_, v)| v.owner == Some(SessionId(session)))${T}.filter(|_| false)${T}memory"
  "ephemeral-local${T}crates/tenure-local/src/state.rs${T}.filter(|(_, v)| v.owner == Some(session))${T}.filter(|_| false)${T}local"
  "ephemeral-etcd${T}crates/tenure-etcd/src/kv.rs${T}.then(|| PutOptions::new().with_lease(self.inner.status.borrow().id.0 as i64));${T}.then(PutOptions::new);${T}etcd"
  "ephemeral-zk${T}crates/tenure-zookeeper/src/kv.rs${T}(_, None) => Op::Create(&node, &data, eph),${T}(_, None) => Op::Create(&node, &data, false),${T}zookeeper"
  # A Flink record counts only while the latch leader's session owns it:
  # without the check, a record of another session is taken for the leader's
  # (ZooKeeper only: Flink's records live there).
  "flink-owner${T}crates/tenure-core/src/retrieval.rs${T}(owner.is_some() && *owner == leader.session)${T}(true)${T}zookeeper"
  "retrieval-order${T}crates/tenure-core/src/retrieval.rs${T}if view.as_ref().is_some_and(|v| v.term < self.highest_term) {${T}if false {${T}memory"
)

package_of() {
  case "$1" in
    memory) echo tenure-core ;;
    local) echo tenure-local ;;
    etcd) echo tenure-etcd ;;
    zookeeper) echo tenure-zookeeper ;;
  esac
}

selected=()
only_backends=""
if [ "${1:-}" = "--short" ]; then
  selected=(leadership-fence)
  only_backends="memory local"
elif [ $# -gt 0 ]; then
  selected=("$@")
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/tenure-mutants.XXXXXX")
cleanup() {
  git -C "$top" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT
# A build directory of its own: cargo names a workspace crate's artifacts
# after its path relative to the workspace, so a mutant built in the main
# target directory would replace the real crate's artifacts there.
export CARGO_TARGET_DIR="$top/target/mutants"

failed=0
for entry in "${MUTANTS[@]}"; do
  IFS=$'\t' read -r name file from to backends <<<"$entry"
  if [ ${#selected[@]} -gt 0 ] && ! printf '%s\n' "${selected[@]}" | grep -qx "$name"; then
    continue
  fi
  [ -n "$only_backends" ] && backends="$only_backends"
  git -C "$top" worktree remove --force "$scratch/tree" >/dev/null 2>&1 || true
  git -C "$top" worktree add --detach --quiet "$scratch/tree" HEAD
  if ! python3 - "$scratch/tree/$file" "$from" "$to" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
if old not in text:
    sys.exit(1)
open(path, "w").write(text.replace(old, new))
EOF
  then
    echo "$name: no longer applies to $file — update the mutant"
    failed=1
    continue
  fi
  for backend in $backends; do
    package=$(package_of "$backend")
    log="$scratch/$name-$backend.log"
    # Build first, so that a mutant that does not compile is not taken for
    # one a test killed.
    if ! (cd "$scratch/tree" && cargo test -p "$package" --all-features --no-run) >"$log" 2>&1; then
      echo "$name on $backend: does not compile — fix the mutant (log: tail of $log below)"
      tail -n 20 "$log"
      failed=1
      continue
    fi
    if (cd "$scratch/tree" && cargo test -p "$package" --all-features) >>"$log" 2>&1; then
      echo "$name on $backend: SURVIVED (every test of $package passed)"
      failed=1
    else
      killed=$(grep -E '^test .* FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' | head -n 3 | tr '\n' ' ')
      echo "$name on $backend: killed by ${killed:-a failing test}"
    fi
  done
done
exit $failed
