//! `mcp-proxy` 0.6.0 as its binary runs it (`mcp-proxy --config FILE`),
//! minus the config-check and `.mcp.json` modes and the log subscriber:
//! with no subscriber nothing is logged per call, the peer's cheapest
//! configuration, so the comparison does not flatter mender.

use std::path::PathBuf;

use mcp_proxy::Proxy;
use mcp_proxy::config::ProxyConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = match std::env::args().nth(1).as_deref() {
        Some("--config") => std::env::args().nth(2).map(PathBuf::from),
        _ => None,
    };
    let Some(path) = path else {
        anyhow::bail!("usage: mcp-proxy-peer --config FILE");
    };
    let mut config = ProxyConfig::load(&path)?;
    config.resolve_env_vars();
    Proxy::from_config(config).await?.serve().await
}
