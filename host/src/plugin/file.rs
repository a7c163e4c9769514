//! Reading a plugin's component from a path: regular files only, opened
//! without blocking, and no larger than [`MAX_COMPONENT_BYTES`].
//!
//! `path = "p.wasm"` naming a FIFO used to block `mender check` forever,
//! and a watching process's reload thread with it, while it held the reload
//! lock; `/dev/zero` was read until memory ran out. So the file is opened
//! with `O_NONBLOCK` (opening a FIFO for reading otherwise waits for a
//! writer), its type is checked on the opened descriptor (not the path,
//! which could be swapped in between), and at most the cap plus one byte is
//! read, whatever the size the file claims.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The largest component mender loads. Real plugins are far smaller: a
/// Rust strategy is ~100 KiB, a Python one (interpreter and standard
/// library inside) ~18 MiB; 64 MiB leaves room for bigger runtimes while
/// bounding what a wrong path can make the host read and compile.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The bytes of the component at `path`, or why they cannot be read.
pub fn read_component(path: &Path) -> Result<Vec<u8>, String> {
    let file = open_nonblocking(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "is not a regular file ({}); a plugin path must name a .wasm file",
            kind(&meta)
        ));
    }
    if meta.len() > MAX_COMPONENT_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    // The file may have grown since it was measured.
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_large(len: u64) -> String {
    format!(
        "is larger than the {MAX_COMPONENT_BYTES}-byte ({} MiB) limit for a plugin component (it is {len} bytes)",
        MAX_COMPONENT_BYTES >> 20
    )
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// What kind of file `meta` describes, for people.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "a special file"
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_without_blocking() {
        let e = read_component(Path::new("/dev/zero")).unwrap_err();
        assert!(e.contains("not a regular file (a character device)"), "{e}");
        let e = read_component(Path::new("/")).unwrap_err();
        assert!(e.contains("a directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p.wasm");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = read_component(&fifo).unwrap_err();
        assert!(e.contains("not a regular file (a FIFO)"), "{e}");
    }

    #[test]
    fn large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.wasm");
        let f = File::create(&big).unwrap();
        f.set_len(MAX_COMPONENT_BYTES + 1).unwrap();
        let e = read_component(&big).unwrap_err();
        assert!(
            e.contains("larger than the 67108864-byte (64 MiB) limit"),
            "{e}"
        );
        f.set_len(8).unwrap();
        assert_eq!(read_component(&big).unwrap().len(), 8);
    }
}
