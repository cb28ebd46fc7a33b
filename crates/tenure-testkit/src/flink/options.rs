//! Which Flink cluster a JobManager (or a probe) belongs to.

use crate::TestkitError;

/// The ZooKeeper HA settings of a Flink cluster: JobManagers started with the
/// same options (and ZooKeeper) compete for its leadership, and a
/// [`FlinkRetrievalProbe`](crate::FlinkRetrievalProbe) started with them
/// finds its leader.
///
/// Flink keeps the cluster's nodes under `<path_root>/<cluster_id>`.
///
/// ```
/// use tenure_testkit::FlinkOptions;
///
/// let options = FlinkOptions { cluster_id: "orders".into(), ..FlinkOptions::default() };
/// assert_eq!(options.cluster_path(), "/flink/orders");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlinkOptions {
    /// `high-availability.cluster-id`: one path segment, no `/`.
    pub cluster_id: String,
    /// `high-availability.zookeeper.path.root`: an absolute ZooKeeper path.
    pub path_root: String,
    /// `high-availability.zookeeper.client.session-timeout`, in milliseconds:
    /// how long a killed leader's session (and so its leadership) outlives
    /// it. The server clamps it to its limits; a
    /// [`ZkCluster`](crate::ZkCluster) grants 1 s to 60 s.
    pub session_timeout_ms: u32,
}

impl Default for FlinkOptions {
    /// Cluster `tenure` under `/flink` (Flink's default root), 4 s sessions:
    /// short enough for a quick failover, long enough that a JobManager
    /// busy starting on two cores does not miss its heartbeats.
    fn default() -> Self {
        Self {
            cluster_id: "tenure".to_owned(),
            path_root: "/flink".to_owned(),
            session_timeout_ms: 4_000,
        }
    }
}

impl FlinkOptions {
    /// The ZooKeeper path under which Flink keeps the cluster:
    /// `<path_root>/<cluster_id>`.
    pub fn cluster_path(&self) -> String {
        format!(
            "{}/{}",
            self.path_root.trim_end_matches('/'),
            self.cluster_id
        )
    }

    /// Refuses what Flink would refuse or read differently.
    pub(crate) fn validate(&self) -> Result<(), TestkitError> {
        let invalid = |field, rule| Err(TestkitError::InvalidOptions { field, rule });
        if self.cluster_id.is_empty() || self.cluster_id.contains('/') {
            return invalid(
                "cluster_id",
                "one non-empty ZooKeeper path segment, without /",
            );
        }
        // Both are written into config.yaml unquoted: only characters that
        // YAML reads as a plain string.
        let plain = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
        };
        if !plain(&self.cluster_id) {
            return invalid("cluster_id", "ASCII letters, digits, '-', '_' and '.' only");
        }
        if !self.path_root.starts_with('/') || !plain(&self.path_root) {
            return invalid(
                "path_root",
                "an absolute ZooKeeper path of ASCII letters, digits, '/', '-', '_' and '.'",
            );
        }
        if self.session_timeout_ms == 0 {
            return invalid("session_timeout_ms", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        FlinkOptions::default().validate().unwrap();
    }

    #[test]
    fn a_cluster_id_with_a_slash_is_refused() {
        let options = FlinkOptions {
            cluster_id: "a/b".into(),
            ..FlinkOptions::default()
        };
        let err = options.validate().unwrap_err();
        assert!(
            matches!(
                err,
                TestkitError::InvalidOptions {
                    field: "cluster_id",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_relative_root_is_refused() {
        let options = FlinkOptions {
            path_root: "flink".into(),
            ..FlinkOptions::default()
        };
        let err = options.validate().unwrap_err();
        assert!(
            matches!(
                err,
                TestkitError::InvalidOptions {
                    field: "path_root",
                    ..
                }
            ),
            "{err}"
        );
    }
}
