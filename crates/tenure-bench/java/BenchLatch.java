// Curator's LeaderLatch as a tenure-bench contender: the protocol of
// crates/tenure-bench/src/proc.rs over stdin/stdout.
//
// Usage: java BenchLatch <connect string> <latch path> <session timeout ms>
//
// stdout  READY | GRANT <unix ns> | RESIGNING <unix ns> | COUNT <n>
//         | ACQUIRED <ms> | RELEASED | LOST <unix ns> | ERROR <message>
// stdin   campaign | resign | count | many <n> [<set>] | release ; end of stdin → exit
//
// Every campaign is a new LeaderLatch (a latch cannot be restarted once
// closed), closed with CloseMode.SILENT on resign: giving leadership up is
// what the bench measures, not the listener call. Diagnostics go to stderr.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.KeeperException;

public final class BenchLatch {
    /** Connection timeout: how long an operation waits for a connection. */
    private static final int CONNECTION_TIMEOUT_MS = 5_000;
    /** Bound on every wait of the program's own. */
    private static final long PATIENCE_MS = 60_000;

    private static CuratorFramework client;
    private static String path;
    private static LeaderLatch latch;
    private static final List<LeaderLatch> many = new ArrayList<>();
    private static int campaigns = 0;

    /** Lines come from the main thread and Curator's event threads. */
    private static synchronized void print(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** The host's clock in nanoseconds since the epoch. */
    private static long nanos() {
        Instant now = Instant.now();
        return now.getEpochSecond() * 1_000_000_000L + now.getNano();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: BenchLatch <connect> <path> <session timeout ms>");
            System.exit(2);
        }
        path = args[1];
        int sessionTimeoutMs = Integer.parseInt(args[2]);
        // Retries forever, 100 ms apart, like the test kit's latch: a scenario
        // that stops the server wants the contender back when it returns.
        client = CuratorFrameworkFactory.newClient(args[0], sessionTimeoutMs,
                CONNECTION_TIMEOUT_MS, new RetryNTimes(Integer.MAX_VALUE, 100));
        client.getConnectionStateListenable().addListener(
                (c, state) -> System.err.println("BenchLatch: connection " + state));
        client.start();
        if (!client.blockUntilConnected((int) PATIENCE_MS, TimeUnit.MILLISECONDS)) {
            print("ERROR not connected to " + args[0]);
            Runtime.getRuntime().halt(1);
        }
        print("READY");

        BufferedReader stdin = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = stdin.readLine()) != null) {
            String[] words = line.trim().split(" ");
            try {
                switch (words[0]) {
                    case "campaign" -> campaign();
                    case "resign" -> resign();
                    case "count" -> print("COUNT " + count(path));
                    case "many" -> many(Integer.parseInt(words[1]), words.length > 2 ? words[2] : "many");
                    case "release" -> release();
                    case "" -> { }
                    default -> print("ERROR unknown command " + line);
                }
            } catch (Exception e) {
                e.printStackTrace();
                print("ERROR " + e);
            }
        }
        // End of stdin: closing the client ends the session, which removes
        // every node of ours. Bounded, then halt whatever still runs.
        Thread closer = new Thread(client::close);
        closer.setDaemon(true);
        closer.start();
        closer.join(5_000);
        Runtime.getRuntime().halt(0);
    }

    private static void campaign() throws Exception {
        if (latch != null) {
            print("ERROR already campaigning");
            return;
        }
        campaigns++;
        latch = new LeaderLatch(client, path,
                "bench-" + ProcessHandle.current().pid() + "-" + campaigns,
                LeaderLatch.CloseMode.SILENT);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                print("GRANT " + nanos());
            }

            @Override
            public void notLeader() {
                // Only without a resign (SILENT close does not call this): the
                // connection was lost.
                print("LOST " + nanos());
            }
        });
        latch.start();
    }

    private static void resign() throws Exception {
        print("RESIGNING " + nanos());
        if (latch == null) {
            return;
        }
        String ours = latch.getOurPath();
        latch.close();
        latch = null;
        // close() deletes the node in the background; the next campaign must
        // not start before it is gone, or it would queue behind itself.
        if (ours != null) {
            gone(ours);
        }
    }

    /** Children of `parent`: the candidates queued, 0 if there is none yet. */
    private static int count(String parent) throws Exception {
        try {
            return client.getChildren().forPath(parent).size();
        } catch (KeeperException.NoNodeException e) {
            return 0;
        }
    }

    /**
     * n elections on `<path>-<set>/e<i>` on this one client: all started at
     * once (Curator creates the nodes in the background), then awaited.
     */
    private static void many(int n, String set) throws Exception {
        if (!many.isEmpty()) {
            print("ERROR already holding many");
            return;
        }
        CountDownLatch acquired = new CountDownLatch(n);
        long started = System.nanoTime();
        for (int i = 0; i < n; i++) {
            LeaderLatch l = new LeaderLatch(client, path + "-" + set + "/e" + i,
                    "bench-" + ProcessHandle.current().pid() + "-" + set + "-" + i,
                    LeaderLatch.CloseMode.SILENT);
            l.addListener(new LeaderLatchListener() {
                @Override
                public void isLeader() {
                    acquired.countDown();
                }

                @Override
                public void notLeader() {
                }
            });
            many.add(l);
            l.start();
        }
        if (!acquired.await(PATIENCE_MS, TimeUnit.MILLISECONDS)) {
            print("ERROR only " + (n - acquired.getCount()) + " of " + n + " acquired");
            return;
        }
        double ms = (System.nanoTime() - started) / 1e6;
        print(String.format("ACQUIRED %.3f", ms));
    }

    private static void release() throws Exception {
        List<String> nodes = new ArrayList<>();
        for (LeaderLatch l : many) {
            String ours = l.getOurPath();
            if (ours != null) {
                nodes.add(ours);
            }
            l.close();
        }
        many.clear();
        // As in resign: a later `many` must find the elections empty.
        for (String node : nodes) {
            gone(node);
        }
        print("RELEASED");
    }

    /** Waits until `node` no longer exists. */
    private static void gone(String node) throws Exception {
        long deadline = System.nanoTime() + PATIENCE_MS * 1_000_000L;
        while (client.checkExists().forPath(node) != null) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(node + " still exists");
            }
            TimeUnit.MILLISECONDS.sleep(1);
        }
    }
}
