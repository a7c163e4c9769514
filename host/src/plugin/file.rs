//! Reading a plugin's component from a path: a regular file, opened
//! without blocking, no larger than [`MAX_COMPONENT_BYTES`] (see
//! `crate::file` for why each).

use std::path::Path;

/// The largest component mender loads. Real plugins are far smaller: a
/// Rust strategy is ~100 KiB, a Python one (interpreter and standard
/// library inside) ~18 MiB; 64 MiB leaves room for bigger runtimes while
/// bounding what a wrong path can make the host read and compile.
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;

/// The bytes of the component at `path`, or why they cannot be read.
pub fn read_component(path: &Path) -> Result<Vec<u8>, String> {
    crate::file::read_regular(path, MAX_COMPONENT_BYTES, "a plugin component (.wasm)")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::fs::File;

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
            e.contains(
                "larger than the 67108864-byte (64 MiB) limit for a plugin component (.wasm)"
            ),
            "{e}"
        );
        f.set_len(8).unwrap();
        assert_eq!(read_component(&big).unwrap().len(), 8);
    }
}
