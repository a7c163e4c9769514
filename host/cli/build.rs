//! Passes the core crate's guest directory (the bundled plugins and test
//! fixtures its build script made) on to this package's integration tests,
//! which load the same fixtures as the core's.

fn main() {
    // Set by cargo from the core's `cargo:dir=` (its `links = "mender-guests"`).
    if let Ok(dir) = std::env::var("DEP_MENDER_GUESTS_DIR") {
        println!("cargo:rustc-env=MENDER_GUEST_DIR={dir}");
    }
}
