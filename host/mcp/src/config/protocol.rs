//! Which era of MCP the gateway speaks to a server (`protocol = …`):
//! the 2025-11-25 handshake (`initialize`, sessions), the 2026-07-28
//! stateless protocol (`server/discover`, version and capabilities in each
//! request's `_meta`), or whichever the server answers to.

use rmcp::model::ProtocolVersion;
use rmcp::service::ClientLifecycleMode;
use serde::Deserialize;

/// The `protocol` of an `[mcp.servers.*]` table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum UpstreamProtocol {
    /// `initialize` and a session (every server today speaks it): the
    /// default, so a server is started exactly as it always was.
    #[default]
    #[serde(rename = "2025-11-25")]
    Handshake,
    /// `server/discover`, no handshake, no `ping`.
    #[serde(rename = "2026-07-28")]
    Stateless,
    /// `server/discover` first; a server that says it does not know it
    /// (or does not answer within 10 s) gets the handshake.
    #[serde(rename = "auto")]
    Auto,
}

impl UpstreamProtocol {
    /// How rmcp's client starts the connection.
    pub(crate) fn lifecycle(self) -> ClientLifecycleMode {
        match self {
            UpstreamProtocol::Handshake => ClientLifecycleMode::Initialize,
            UpstreamProtocol::Stateless => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
            UpstreamProtocol::Auto => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                legacy_version: Some(ProtocolVersion::V_2025_11_25),
            },
        }
    }
}

/// Whether a server that negotiated `version` has no `ping` (2026-07-28 on).
pub(crate) fn is_stateless(version: &ProtocolVersion) -> bool {
    version.as_str() >= ProtocolVersion::V_2026_07_28.as_str()
}
