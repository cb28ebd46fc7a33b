"""kazoo's Election as a tenure-bench contender: the protocol of
crates/tenure-bench/src/proc.rs over stdin/stdout.

Usage: python3 kazoo_contender.py <connect string> <election path> <session timeout s>

stdout  READY | GRANT <unix ns> | RESIGNING <unix ns> | COUNT <n>
        | ACQUIRED <ms> | RELEASED | ERROR <message>
stdin   campaign | resign | count | many <n> [<set>] | release ; end of stdin -> exit

kazoo's idiom is a thread per election blocked in `Election.run(func)`, which
holds leadership while `func` runs; every campaign here is such a thread, with
a new Election (its Lock is not meant to be reused once cancelled). Diagnostics
go to stderr.
"""

import logging
import os
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

PATIENCE = 60.0
"""Bound, in seconds, on every wait of the script's own."""

_out = threading.Lock()


def emit(line):
    # Lines come from the main thread and the election threads.
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Contender:
    """One Election.run thread: holds leadership until `stop`."""

    def __init__(self, client, path, identifier, on_grant):
        self.election = client.Election(path, identifier)
        self.on_grant = on_grant
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _lead(self):
        self.on_grant()
        self.release.wait()

    def _run(self):
        try:
            self.election.run(self._lead)
        except Exception as e:  # noqa: BLE001 - reported, the bench stops
            logging.exception("election failed")
            emit("ERROR %s" % e)

    def stop(self):
        """Gives leadership (or the place in the queue) up; returns once the
        node is deleted: run() deletes it before returning."""
        self.release.set()
        self.election.cancel()
        self.thread.join(PATIENCE)
        if self.thread.is_alive():
            raise RuntimeError("the election thread did not end")


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: kazoo_contender.py <connect> <path> <session timeout s>\n")
        sys.exit(2)
    connect, path, session_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    client = KazooClient(hosts=connect, timeout=session_timeout)
    client.add_listener(lambda state: logging.warning("connection %s", state))
    client.start(timeout=PATIENCE)
    emit("READY")

    pid = os.getpid()
    campaigns = 0
    current = None
    many = []

    while True:
        line = sys.stdin.readline()
        if not line:
            break
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "campaign":
                if current is not None:
                    emit("ERROR already campaigning")
                    continue
                campaigns += 1
                current = Contender(client, path, "bench-%d-%d" % (pid, campaigns),
                                    lambda: emit("GRANT %d" % time.time_ns()))
            elif words[0] == "resign":
                emit("RESIGNING %d" % time.time_ns())
                if current is not None:
                    current.stop()
                    current = None
            elif words[0] == "count":
                try:
                    n = len(client.get_children(path))
                except NoNodeError:
                    n = 0
                emit("COUNT %d" % n)
            elif words[0] == "many":
                if many:
                    emit("ERROR already holding many")
                    continue
                n = int(words[1])
                label = words[2] if len(words) > 2 else "many"
                # Election.run on a thread each, as kazoo users hold several
                # elections, all on this one client: the acquisitions run
                # concurrently, like Curator's latches and tenure's campaigns.
                acquired = threading.Semaphore(0)
                started = time.monotonic()
                many = [Contender(client, "%s-%s/e%d" % (path, label, i),
                                  "bench-%d-%s-%d" % (pid, label, i), acquired.release)
                        for i in range(n)]
                deadline = started + PATIENCE
                got = 0
                while got < n and acquired.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    got += 1
                if got < n:
                    emit("ERROR only %d of %d acquired" % (got, n))
                    continue
                emit("ACQUIRED %.3f" % ((time.monotonic() - started) * 1000.0))
            elif words[0] == "release":
                for contender in many:
                    contender.release.set()
                for contender in many:
                    contender.stop()
                many = []
                emit("RELEASED")
            else:
                emit("ERROR unknown command %s" % line.strip())
        except Exception as e:  # noqa: BLE001 - reported, the bench stops
            logging.exception("command %s failed", line.strip())
            emit("ERROR %s" % e)

    # End of stdin: closing the session removes every node of ours.
    try:
        client.stop()
        client.close()
    finally:
        os._exit(0)


if __name__ == "__main__":
    main()
