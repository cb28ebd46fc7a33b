// Apache Flink's own ZooKeeper leader retrieval for one component of a Flink
// cluster, for tenure's interoperability tests (see tenure-testkit's
// `FlinkRetrievalProbe`). It runs exactly what a Flink TaskManager or client
// runs to find a leader: ZooKeeperUtils.createLeaderRetrievalService on
// <root>/<cluster id>/leader/<component>/connection_info.
//
// Usage: java FlinkRetrievalProbe <connect string> <path root> <cluster id>
//                                 <component> <session timeout ms>
// where <component> is dispatcher, resource_manager or rest_server.
//
// stdout, one line each, flushed:
//   READY                        connected, the retrieval service started
//   LEADER <address> <session>   a notification naming the leader
//   LEADER - -                   a notification that there is no leader
//   ERROR <message>              Flink reported a fatal error; exits 1
// End of stdin (the test process is gone) halts at once.
//
// Diagnostics (Flink's and Curator's log) go to stderr.

import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.highavailability.zookeeper.CuratorFrameworkWithUnhandledErrorListener;
import org.apache.flink.runtime.leaderretrieval.LeaderRetrievalListener;
import org.apache.flink.runtime.leaderretrieval.LeaderRetrievalService;
import org.apache.flink.runtime.util.ZooKeeperUtils;

public final class FlinkRetrievalProbe {
    private static synchronized void print(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static void fail(String what, Throwable error) {
        print("ERROR " + what + ": " + String.valueOf(error).replace('\n', ' '));
        error.printStackTrace();
        Runtime.getRuntime().halt(1);
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println(
                    "usage: FlinkRetrievalProbe <connect> <root> <cluster id> <component> <session ms>");
            System.exit(2);
        }
        int sessionTimeoutMs = Integer.parseInt(args[4]);
        // The keys a JobManager of the cluster is configured with, so that the
        // probe's paths are computed by Flink itself, not by this program.
        Map<String, String> keys = new HashMap<>();
        keys.put("high-availability.type", "zookeeper");
        keys.put("high-availability.zookeeper.quorum", args[0]);
        keys.put("high-availability.zookeeper.path.root", args[1]);
        keys.put("high-availability.cluster-id", args[2]);
        keys.put("high-availability.zookeeper.client.session-timeout", sessionTimeoutMs + " ms");
        Configuration conf = Configuration.fromMap(keys);

        CuratorFrameworkWithUnhandledErrorListener curator =
                ZooKeeperUtils.startCuratorFramework(conf, error -> fail("curator", error));
        if (!curator.asCuratorFramework().blockUntilConnected(60, TimeUnit.SECONDS)) {
            print("ERROR not connected to " + args[0] + " within 60 s");
            Runtime.getRuntime().halt(1);
        }
        LeaderRetrievalService service =
                ZooKeeperUtils.createLeaderRetrievalService(
                        curator.asCuratorFramework(), ZooKeeperUtils.getLeaderPath(args[3]), conf);
        service.start(
                new LeaderRetrievalListener() {
                    @Override
                    public void notifyLeaderAddress(String address, UUID session) {
                        boolean none = address == null || address.isEmpty() || session == null;
                        print(none ? "LEADER - -" : "LEADER " + address + " " + session);
                    }

                    @Override
                    public void handleError(Exception error) {
                        fail("retrieval", error);
                    }
                });
        print("READY");

        // Halts when the test process closes stdin (or dies).
        InputStream in = System.in;
        try {
            while (in.read() >= 0) {
                // Nothing to read: stdin only tells that the test is alive.
            }
        } catch (IOException e) {
            // Treated like end of input.
        }
        Runtime.getRuntime().halt(0);
    }
}
