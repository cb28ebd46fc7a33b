//! The leaders Flink publishes, as its retrieval reports them.

/// A component whose leader a Flink cluster publishes in ZooKeeper, at
/// `<root>/<cluster id>/leader/<node>/connection_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlinkComponent {
    /// The dispatcher: `pekko.tcp://flink@127.0.0.1:<rpc port>/user/rpc/dispatcher_<n>`.
    Dispatcher,
    /// The resource manager: `pekko.tcp://flink@…/user/rpc/resourcemanager_<n>`.
    ResourceManager,
    /// The REST endpoint: `http://127.0.0.1:<rest port>`.
    RestServer,
}

impl FlinkComponent {
    /// The component's node name: `dispatcher`, `resource_manager`,
    /// `rest_server`.
    pub fn node(self) -> &'static str {
        match self {
            Self::Dispatcher => "dispatcher",
            Self::ResourceManager => "resource_manager",
            Self::RestServer => "rest_server",
        }
    }
}

/// A leader as Flink's retrieval reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinkLeader {
    /// The component's address, e.g. `http://127.0.0.1:8081`.
    pub address: String,
    /// The leader session id, a UUID: the same for every component of one
    /// JobManager's term.
    pub session: String,
}
