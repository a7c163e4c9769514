//! What a plugin may reach beyond the mender interfaces, as configured:
//! directory grants (`dirs = [...]`). The WASI context that enforces them
//! is `plugin/capability.rs`.

use std::path::PathBuf;

/// Access to a host directory a plugin is granted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DirMode {
    /// Read files and list the directory.
    ReadOnly,
    /// Also create, write and remove.
    ReadWrite,
}

/// One directory grant: `{ host = "cache", guest = "/cache", mode = "read-only" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// The directory on the host (relative paths resolve against the
    /// config file's directory).
    pub host: PathBuf,
    /// Where the plugin sees it.
    pub guest: String,
    /// What the plugin may do there.
    pub mode: DirMode,
}
