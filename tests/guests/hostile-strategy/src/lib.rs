//! Test fixture: a strategy that attacks the host from inside the sandbox,
//! so host tests can check that every attack is contained.
//!
//! Config: `{ "attack": <name>, "in": "init" | "admit" | "on-error" }`,
//! `"in"` defaulting to `"on-error"`. Hooks: admit and on-error. The attack
//! runs in the hook `"in"` names; the other hooks behave (admit allows with
//! no lease, on-error passes). The attacks, and what the host must do about
//! each, are in [`attack`]:
//!
//! | `attack`        | does                                              |
//! |-----------------|---------------------------------------------------|
//! | `loop`          | spins forever                                     |
//! | `memory`        | allocates and fills 1 MiB blocks forever          |
//! | `recursion`     | recurses without bound (stack overflow)           |
//! | `panic`         | `panic!("hostile panic")`                         |
//! | `huge-fallback` | answers with a 16 MiB body / reason               |
//! | `absurd-delay`  | answers `retry(u64::MAX)` / `wait(u64::MAX)`      |
//! | `log-flood`     | 100 000 log lines of 10 KiB, then behaves         |
//! | `state-flood`   | 100 000 `state::set` of 100 KiB, then behaves     |
//! | `read-file`     | reads `/etc/passwd`, answers what happened        |
//! | `read-env`      | reads `HOME` and counts the env, answers the same |
//! | `socket`        | connects to `127.0.0.1:9`, answers the same       |
//! | `wall-clock`    | `SystemTime::now()`, `Instant::now()` (traps)     |
//! | `log-injection` | logs and fails with `\n` and ANSI escapes        |
//! | `state-growth`  | 255 new 64 KiB state keys per call, then behaves  |
//!
//! An attack that returns answers through the hook it ran in: on-error
//! `fail(text)` (`fallback(body)` for huge-fallback, `retry(u64::MAX)` for
//! absurd-delay); admit `reject(text)` (`wait(u64::MAX)` for absurd-delay);
//! init fails with the text. `absurd-delay` has no delay to give in init,
//! so `"in": "init"` with it is refused as an invalid config.

mod attack;

use mender_guest::prelude::*;
use serde::Deserialize;

use crate::attack::{Answer, Attack};

/// The hook that attacks.
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
    attack: Attack,
    #[serde(default, rename = "in")]
    hook: Hook,
}

struct HostileStrategy {
    attack: Attack,
    hook: Hook,
}

impl Strategy for HostileStrategy {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        if config.hook == Hook::Init {
            match attack::run(config.attack) {
                Answer::Behave => {}
                Answer::Report(text) | Answer::Huge(text) => return Err(text),
                Answer::EndlessDelay => {
                    return Err("invalid config: absurd-delay cannot run in init, \
                                which answers no delay"
                        .to_owned());
                }
            }
        }
        Ok(HostileStrategy {
            attack: config.attack,
            hook: config.hook,
        })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ADMIT | Hooks::ON_ERROR
    }

    fn admit(&self, _call: &CallInfo, _recent: &Outcomes) -> Admission {
        if self.hook != Hook::Admit {
            return Admission::allow();
        }
        match attack::run(self.attack) {
            Answer::Behave => Admission::allow(),
            Answer::Report(text) | Answer::Huge(text) => Admission::reject(text, None),
            Answer::EndlessDelay => Admission::Wait(u64::MAX),
        }
    }

    fn on_error(&self, _event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        if self.hook != Hook::OnError {
            return Decision::Pass;
        }
        match attack::run(self.attack) {
            Answer::Behave => Decision::Pass,
            Answer::Report(text) => Decision::Fail(text),
            Answer::Huge(body) => Decision::Fallback(FallbackAnswer::fresh(body)),
            Answer::EndlessDelay => Decision::Retry(u64::MAX),
        }
    }
}

mender_guest::export_strategy!(HostileStrategy);
