//! Reading a file a user named — a plugin's component, `mender.toml`, a
//! scenario file, a token file: regular files only, opened without
//! blocking, and no larger than a cap.
//!
//! A path naming a FIFO used to block `mender check` forever (opening a
//! FIFO for reading waits for a writer), and a watching process's reload
//! thread with it, while it held the reload lock; `/dev/zero` was read until
//! memory ran out. So the file is opened with `O_NONBLOCK`, its type is
//! checked on the opened descriptor (not the path, which could be swapped in
//! between), and at most the cap plus one byte is read, whatever size the
//! file claims.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The largest text file (a config, a scenario, a token list) mender reads.
/// Real ones are a few KiB; 16 MiB bounds what a wrong path costs.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// The bytes of the regular file at `path`, at most `max` of them, or why
/// they cannot be read. `what` names what the file should be, for the
/// message ("a plugin component (.wasm)").
pub fn read_regular(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, String> {
    let file = open_nonblocking(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "is not a regular file ({}); expected {what}",
            kind(&meta)
        ));
    }
    if meta.len() > max {
        return Err(too_large(meta.len(), max, what));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    // The file may have grown since it was measured.
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64, max, what));
    }
    Ok(bytes)
}

/// [`read_regular`] for a UTF-8 text file of at most [`MAX_TEXT_BYTES`].
pub fn read_text(path: &Path, what: &str) -> Result<String, String> {
    let bytes = read_regular(path, MAX_TEXT_BYTES, what)?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "cannot read: not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

fn too_large(len: u64, max: u64, what: &str) -> String {
    format!(
        "is larger than the {max}-byte ({} MiB) limit for {what} (it is {len} bytes)",
        max >> 20
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
        let e = read_text(Path::new("/dev/zero"), "a config file").unwrap_err();
        assert!(e.contains("not a regular file (a character device)"), "{e}");
        let e = read_text(Path::new("/"), "a config file").unwrap_err();
        assert!(e.contains("a directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("mender.toml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let e = read_text(&fifo, "a config file").unwrap_err();
        assert!(
            e.contains("not a regular file (a FIFO); expected a config file"),
            "{e}"
        );
    }

    #[test]
    fn large_and_binary_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let f = File::create(&big).unwrap();
        f.set_len(MAX_TEXT_BYTES + 1).unwrap();
        let e = read_text(&big, "a config file").unwrap_err();
        assert!(
            e.contains("larger than the 16777216-byte (16 MiB) limit for a config file"),
            "{e}"
        );
        let bin = dir.path().join("bin.toml");
        std::fs::write(&bin, b"a = 1\n\xff").unwrap();
        let e = read_text(&bin, "a config file").unwrap_err();
        assert!(
            e.contains("not UTF-8 text (invalid byte at offset 6)"),
            "{e}"
        );
    }
}
