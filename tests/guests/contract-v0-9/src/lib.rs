//! Test fixture: a strategy built against a future contract,
//! `mender:plugin@0.9.0`, so host tests can check that the host refuses it
//! with a message that names the version it found.
//!
//! Its WIT (inline below) has the shape of 0.1.0's `strategy` interface with
//! one change no host version satisfies: `init` takes a second parameter.
//! It imports nothing. If a host did instantiate it, it would behave: init
//! succeeds asking for both hooks, admit allows, on-error passes.
//!
//! `host/build.rs` lets this one fixture export
//! `mender:plugin/strategy@0.9.0` (see `OTHER_CONTRACT_FIXTURES` there).

wit_bindgen::generate!({
    inline: r#"
        package mender:plugin@0.9.0;

        interface strategy {
            /// The 0.1.0 `init`, plus the host's contract version.
            init: func(config: string, host-contract: string) -> result<u32, string>;
            /// 0 = allow.
            admit: func(call: string) -> u32;
            /// 0 = pass.
            on-error: func(event: string) -> u32;
        }

        world strategy-plugin {
            export strategy;
        }
    "#,
    world: "strategy-plugin",
});

struct FutureStrategy;

/// The hooks bits of 0.1.0's `hooks` flags: admit | on-error.
const BOTH_HOOKS: u32 = 0b11;

impl exports::mender::plugin::strategy::Guest for FutureStrategy {
    fn init(_config: String, _host_contract: String) -> Result<u32, String> {
        Ok(BOTH_HOOKS)
    }

    fn admit(_call: String) -> u32 {
        0
    }

    fn on_error(_event: String) -> u32 {
        0
    }
}

// Only wasm gets the exported symbols (as in mender-guest): their names are
// not valid in a native linker's version script.
#[cfg(target_arch = "wasm32")]
export!(FutureStrategy);
