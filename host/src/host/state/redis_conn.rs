//! What the Redis backend talks to: one server, or a Redis Cluster (seed
//! nodes from a `redis+cluster://` URL, see `config/redis_url.rs`).
//!
//! Both are blocking connections with the operation timeout on connect,
//! read and write (see `redis.rs` for why blocking). A cluster connection
//! follows `MOVED`/`ASK` redirections and learns the slot map from the
//! seeds; every script's keys share one hash tag (`redis.rs` `key_names`),
//! so each runs on one node, atomically, as on a single server.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::{Client, Connection, ConnectionLike, RedisResult};

use crate::config::RedisSettings;
use crate::config::state::shown_url;

/// A configured Redis: one server or a cluster.
pub(super) enum Target {
    Single(Client),
    Cluster(ClusterClient),
}

/// One open connection to a [`Target`].
pub(super) enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    /// The connection, for commands and scripts.
    pub(super) fn get(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => c.as_mut(),
        }
    }
}

impl Target {
    /// The client for `settings`: TLS (`rediss://`, `rediss+cluster://`)
    /// over rustls, trusting the system's roots, or only `ca-file` when it
    /// is given.
    pub(super) fn new(settings: &RedisSettings) -> Result<Target, String> {
        let shown = shown_url(&settings.url);
        if settings.url.starts_with("rediss") {
            // redis leaves the crypto provider to the application; an error
            // means one is installed already (the CLI's HTTP client), fine too.
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        }
        let certificates = match &settings.ca_file {
            None => None,
            Some(path) => {
                let pem = crate::file::read_text(path, "PEM certificates")
                    .map_err(|e| format!("redis ca-file {}: {e}", path.display()))?;
                // redis reads no certificate at all from a file without
                // one, silently.
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(format!(
                        "redis ca-file {}: no PEM certificate in it",
                        path.display()
                    ));
                }
                Some(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.into_bytes()),
                })
            }
        };
        let with_ca = |e: redis::RedisError| match &settings.ca_file {
            Some(path) => format!("redis url {shown} with ca-file {}: {e}", path.display()),
            None => format!("redis url {shown}: {e}"),
        };
        if let Some(seeds) = crate::config::redis_url::cluster_seeds(&settings.url) {
            let seeds = seeds.map_err(|e| format!("redis url {shown}: {e}"))?;
            let mut builder = ClusterClientBuilder::new(seeds)
                .connection_timeout(settings.timeout)
                .response_timeout(settings.timeout);
            if let Some(certificates) = certificates {
                builder = builder.certs(certificates);
            }
            return builder.build().map(Target::Cluster).map_err(with_ca);
        }
        match certificates {
            None => Client::open(settings.url.as_str()).map_err(with_ca),
            Some(c) => Client::build_with_tls(settings.url.as_str(), c).map_err(with_ca),
        }
        .map(Target::Single)
    }

    /// Whether keys must carry hash tags (a cluster).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// A new connection, every wait bounded by `timeout`.
    pub(super) fn open(&self, timeout: Duration) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                let c = client.get_connection_with_timeout(timeout)?;
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))?;
                Ok(Conn::Single(c))
            }
            Target::Cluster(client) => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(timeout))?;
                c.set_write_timeout(Some(timeout))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
        }
    }
}
