//! Test fixture: a strategy that panics (a Wasm trap) in the hook its config
//! names, so host tests can check that a trapping plugin is contained.
//!
//! Config: `{ "trap-in": "init" | "admit" | "on-error" }`, default
//! `"on-error"`. Hooks: admit and on-error. The hooks that do not trap allow
//! (no lease) and pass.

use mender_guest::prelude::*;
use serde::Deserialize;

/// The hook that traps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Hook {
    Init,
    Admit,
    // The default, because on-error runs only after a failure: a host test
    // can first check that the plugin loads and admits normally.
    #[default]
    OnError,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Config {
    #[serde(default)]
    trap_in: Hook,
}

struct TrapStrategy {
    trap_in: Hook,
}

impl Strategy for TrapStrategy {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        if config.trap_in == Hook::Init {
            panic!("trap-strategy: trapping in init, as configured");
        }
        Ok(TrapStrategy {
            trap_in: config.trap_in,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }

    fn admit(&self, _call: &CallInfo, _recent: &Outcomes) -> Admission {
        if self.trap_in == Hook::Admit {
            panic!("trap-strategy: trapping in admit, as configured");
        }
        Admission::allow()
    }

    fn on_error(&self, _event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        if self.trap_in == Hook::OnError {
            panic!("trap-strategy: trapping in on-error, as configured");
        }
        Decision::Pass
    }
}

mender_guest::export_strategy!(TrapStrategy);
