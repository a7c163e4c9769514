//! Plugins compiled into the binary by `build.rs`, so `mender demo` and a
//! config that says `bundled = "..."` need no files on disk.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The bytes of the bundled plugin `name`.
pub(crate) fn find(name: &str) -> Option<&'static [u8]> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The names of every bundled plugin.
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, _)| *n)
}
