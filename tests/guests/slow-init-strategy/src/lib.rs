//! Test fixture: a strategy whose first instance starts at once but whose
//! every later instance spends 5 s in `init`, so a host test can check
//! that making a new instance for a call stays within the call's deadline
//! and off the async runtime's threads.
//!
//! The first instance (loaded with the runtime) traps in its first
//! `on-error` (a trapped instance is never reused), so the next call that
//! needs the plugin must make a new instance: that one is slow.
//!
//! Config: none (`{}`). Hooks: on-error, which passes (later instances).

use mender_guest::prelude::*;

/// How long every instance after the first spends in `init`, in host ms.
const SLOW_INIT_MS: u64 = 5_000;

struct SlowInit {
    first: bool,
}

impl Strategy for SlowInit {
    type Config = NoConfig;

    fn init(_config: NoConfig) -> Result<Self, String> {
        // State outlives instances: it tells the first from the rest.
        let first = state::increment("inits", 1, None) == 1;
        if !first {
            let until = clock::now() + SLOW_INIT_MS;
            while clock::now() < until {
                std::hint::spin_loop();
            }
        }
        Ok(SlowInit { first })
    }

    fn hooks(&self) -> Hooks {
        Hooks::ON_ERROR
    }

    fn on_error(&self, _event: &ErrorEvent, _recent: &Outcomes) -> Decision {
        if self.first {
            panic!("the first instance retires, so the next call makes a new one");
        }
        Decision::Pass
    }
}

mender_guest::export_strategy!(SlowInit);
