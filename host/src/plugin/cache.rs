//! Compiled plugins kept on disk, so a restart or the reload of an
//! unchanged plugin does not compile again.
//!
//! Compiling a component is the slow part of loading one: milliseconds for
//! a Rust plugin, seconds for a Python or JavaScript one. An entry is keyed
//! by the SHA-256 of the component's bytes, inside a directory named after
//! the wasmtime version and a hash of the engine's settings, so a different
//! engine never even sees another's entries.
//!
//! Loading compiled code skips wasmtime's validation, so an entry must be
//! exactly what this host wrote. Each entry therefore carries its own
//! SHA-256; an entry that does not match (a torn write, a flipped bit, a
//! hand edit) is reported, deleted and rebuilt, never loaded. The directory
//! is created private to the user, like wasmtime's own cache: anyone who
//! can write to it can run code in the host.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// First bytes of every entry: names the format, so a future layout change
/// is a miss rather than a misread.
const MAGIC: &[u8; 8] = b"MNDRC001";
/// Environment variable naming the cache directory (overrides the default,
/// not an explicit config).
pub const CACHE_DIR_ENV: &str = "MENDER_CACHE_DIR";

/// The SHA-256 of some bytes, as 64 hex digits.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where compiled plugins are kept, and what happened so far.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    /// The directory for this engine's entries, or `None` when caching is
    /// off.
    dir: Option<PathBuf>,
    stats: CacheCounters,
}

#[derive(Debug, Default)]
struct CacheCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    corrupt: AtomicU64,
    write_errors: AtomicU64,
}

/// What the compiled-artefact cache did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Components loaded from the cache, no compile.
    pub hits: u64,
    /// Components compiled (not in the cache, or caching off).
    pub misses: u64,
    /// Entries found damaged: deleted and rebuilt, never loaded.
    pub corrupt: u64,
    /// Entries that could not be written (the plugin still loaded).
    pub write_errors: u64,
}

impl ArtifactCache {
    /// A cache in `root` for this engine, or a disabled one for `None`.
    pub(crate) fn new(root: Option<&Path>, engine: &Engine) -> ArtifactCache {
        let dir = root.map(|root| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            root.join(format!(
                "wasmtime-{}-{:016x}",
                wasmtime_version(),
                h.finish()
            ))
        });
        ArtifactCache {
            dir,
            stats: CacheCounters::default(),
        }
    }

    /// The default root: `$MENDER_CACHE_DIR`, else the user's cache
    /// directory (`~/.cache/mender` on Linux), else none.
    pub(crate) fn default_root() -> Option<PathBuf> {
        std::env::var_os(CACHE_DIR_ENV)
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("mender")))
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.stats.hits.load(Relaxed),
            misses: self.stats.misses.load(Relaxed),
            corrupt: self.stats.corrupt.load(Relaxed),
            write_errors: self.stats.write_errors.load(Relaxed),
        }
    }

    /// The compiled component for the bytes whose SHA-256 is `sha256`,
    /// from the cache when a sound entry exists, else compiled by `compile`
    /// and stored.
    pub(crate) fn get_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        compile: impl FnOnce() -> Result<Component, String>,
    ) -> Result<Component, String> {
        let Some(dir) = &self.dir else {
            self.stats.misses.fetch_add(1, Relaxed);
            return compile();
        };
        let entry = dir.join(format!("{sha256}.cwasm"));
        if let Some(component) = self.read(engine, &entry) {
            self.stats.hits.fetch_add(1, Relaxed);
            return Ok(component);
        }
        self.stats.misses.fetch_add(1, Relaxed);
        let component = compile()?;
        if let Err(e) = write_entry(dir, &entry, &component) {
            self.stats.write_errors.fetch_add(1, Relaxed);
            tracing::warn!(entry = %entry.display(), "could not write the compiled-plugin cache: {e:#}");
        }
        Ok(component)
    }

    /// A sound entry's component; a damaged one is counted and deleted.
    fn read(&self, engine: &Engine, entry: &Path) -> Option<Component> {
        let data = std::fs::read(entry).ok()?;
        let payload = match verified_payload(&data) {
            Some(p) => p,
            None => {
                self.stats.corrupt.fetch_add(1, Relaxed);
                tracing::warn!(entry = %entry.display(), "compiled-plugin cache entry is damaged; rebuilding it");
                let _ = std::fs::remove_file(entry);
                return None;
            }
        };
        // SAFETY: the payload is byte-for-byte what `Component::serialize`
        // produced in this host (its SHA-256 matches), in a directory keyed
        // by this wasmtime version and engine configuration, and wasmtime
        // checks both again before loading.
        match unsafe { Component::deserialize(engine, payload) } {
            Ok(c) => Some(c),
            Err(e) => {
                self.stats.corrupt.fetch_add(1, Relaxed);
                tracing::warn!(entry = %entry.display(), "compiled-plugin cache entry is unusable ({e:#}); rebuilding it");
                let _ = std::fs::remove_file(entry);
                None
            }
        }
    }
}

/// The wasmtime version the host was built with.
fn wasmtime_version() -> &'static str {
    // Kept in step with the exact pin in the workspace Cargo.toml; the
    // engine hash in the directory name covers everything else.
    "48.0.8"
}

/// The payload of an entry whose header and checksum are sound.
fn verified_payload(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (sum, payload) = rest.split_at(32);
    (Sha256::digest(payload).as_slice() == sum).then_some(payload)
}

/// Writes an entry whole or not at all: to a temporary file in the same
/// directory, then renamed over the entry.
fn write_entry(dir: &Path, entry: &Path, component: &Component) -> anyhow::Result<()> {
    create_private_dir(dir)?;
    let payload = component.serialize()?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(MAGIC)?;
    tmp.write_all(&Sha256::digest(&payload))?;
    tmp.write_all(&payload)?;
    tmp.as_file().sync_data()?;
    tmp.persist(entry)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_verified() {
        let payload = b"compiled code".to_vec();
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&Sha256::digest(&payload));
        entry.extend_from_slice(&payload);
        assert_eq!(verified_payload(&entry), Some(payload.as_slice()));

        let mut flipped = entry.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(verified_payload(&flipped), None);
        assert_eq!(verified_payload(&entry[..entry.len() - 1]), None);
        assert_eq!(verified_payload(b"MNDRC001short"), None);
        assert_eq!(verified_payload(&payload), None);
    }

    #[test]
    fn wasmtime_version_matches_the_pin() {
        let manifest = include_str!("../../../Cargo.toml");
        let pin = format!("wasmtime = {{ version = \"={}\"", wasmtime_version());
        assert!(
            manifest.contains(&pin),
            "update wasmtime_version() to the pin in Cargo.toml"
        );
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
