// A Curator LeaderLatch participant driven over stdin/stdout, for tenure's
// interoperability tests (see tenure-testkit's `CuratorLatch`).
//
// Usage: java CuratorLatch <connect string> <latch path> <participant id>
//                          <session timeout ms> <connection timeout ms>
//
// stdout, one line each:
//   READY              the client is connected and the latch's node exists
//   LEADER             the latch gained leadership (LeaderLatchListener.isLeader)
//   NOT_LEADER         the latch lost it (notLeader; also on close while leading)
//   STATUS LEADER      the answer to `status` when hasLeadership() is true
//   STATUS NOT_LEADER  the answer to `status` otherwise
// stdin, one command a line:
//   status             print the STATUS line
//   close              latch.close() (NOTIFY_LEADER), close the client, exit 0
// End of stdin (the test process is gone) halts at once, like a crash.
//
// Diagnostics (connection state changes, Curator's warnings) go to stderr.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.RetryNTimes;

public final class CuratorLatch {
    /** Guards stdout and `ready`, so that READY comes before any LEADER line. */
    private static final Object OUT = new Object();
    private static boolean ready = false;
    private static final List<String> early = new ArrayList<>();

    private static void print(String line) {
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    /** A state change: held back until READY is out, so the order is fixed. */
    private static void event(String line) {
        synchronized (OUT) {
            if (ready) {
                print(line);
            } else {
                early.add(line);
            }
        }
    }

    private static void markReady() {
        synchronized (OUT) {
            print("READY");
            ready = true;
            for (String line : early) {
                print(line);
            }
            early.clear();
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: CuratorLatch <connect> <path> <id> <session ms> <connection ms>");
            System.exit(2);
        }
        String connect = args[0];
        String path = args[1];
        String id = args[2];
        int sessionTimeoutMs = Integer.parseInt(args[3]);
        int connectionTimeoutMs = Integer.parseInt(args[4]);

        // Retries forever, 100 ms apart: a test that stops the ensemble wants the
        // participant to come back when it does, not to give up.
        CuratorFramework client = CuratorFrameworkFactory.newClient(
                connect, sessionTimeoutMs, connectionTimeoutMs,
                new RetryNTimes(Integer.MAX_VALUE, 100));
        client.getConnectionStateListenable().addListener(
                (c, state) -> System.err.println("CuratorLatch " + id + ": connection " + state));
        client.start();

        LeaderLatch latch = new LeaderLatch(client, path, id, LeaderLatch.CloseMode.NOTIFY_LEADER);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                event("LEADER");
            }

            @Override
            public void notLeader() {
                event("NOT_LEADER");
            }
        });
        latch.start();
        // start() returns before the node is created; READY promises it exists,
        // so a participant started after this one queues behind it.
        while (latch.getOurPath() == null) {
            TimeUnit.MILLISECONDS.sleep(5);
        }
        markReady();

        BufferedReader stdin = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String command;
        while ((command = stdin.readLine()) != null) {
            switch (command.trim()) {
                case "status":
                    print(latch.hasLeadership() ? "STATUS LEADER" : "STATUS NOT_LEADER");
                    break;
                case "close":
                    latch.close();
                    client.close();
                    System.out.flush();
                    System.exit(0);
                    break;
                case "":
                    break;
                default:
                    System.err.println("CuratorLatch " + id + ": unknown command " + command);
            }
        }
        Runtime.getRuntime().halt(0);
    }
}
