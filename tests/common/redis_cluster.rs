//! A real Redis Cluster for tests: three `redis-server` masters in cluster
//! mode on free loopback ports (each its own bus port), the slots assigned
//! by `redis-cli --cluster create`, killed on drop. No replicas: the tests
//! need slots spread over several nodes, not failover.
//!
//! Without `redis-server` (and `redis-cli`, in the same Debian package) the
//! tests print a clear skip line, unless `MENDER_REQUIRE_REDIS=1`.
//! Included with `#[path]`; the includer also includes `redis_server.rs`
//! as `redis_server` and provides `tools` at its crate root.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::redis_server::{RedisServer, free_port};

/// How long the nodes may take to agree on the slot map.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// Three masters sharing the 16384 slots.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts and forms the cluster, or `None` when Redis is not installed
    /// and not required.
    pub fn start_or_skip(test: &str) -> Option<RedisCluster> {
        let dir = std::env::temp_dir().join(format!(
            "mender-redis-cluster-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &dir.join(format!("nodes-{i}.conf")).display().to_string(),
                "--cluster-port",
                &free_port().to_string(),
                "--dir",
                &dir.display().to_string(),
            ]
            .map(str::to_owned)
            .to_vec();
            nodes.push(RedisServer::start_with_or_skip(test, extra)?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, dir };
        cluster.wait_formed();
        Some(cluster)
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// A cluster connection, to look at what the host stored.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        let seeds: Vec<String> = self.nodes.iter().map(RedisServer::url).collect();
        redis::cluster::ClusterClient::new(seeds)
            .and_then(|c| c.get_connection())
            .expect("connect to the test cluster")
    }

    /// Waits until every node says `cluster_state:ok`.
    fn wait_formed(&self) {
        let began = Instant::now();
        loop {
            let ok = self.nodes.iter().all(|n| {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut n.client())
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
            if ok {
                return;
            }
            assert!(
                began.elapsed() < FORM_TIMEOUT,
                "the test cluster did not form within {FORM_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
