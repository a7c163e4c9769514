//! What a plugin may reach beyond the mender interfaces: the WASI context
//! each instance gets, which grants nothing unless the config says so.
//!
//! Guests built with WASI toolchains (Python, JavaScript, `wasm32-wasip2`)
//! import WASI interfaces even when they use none of them. They link, but
//! against a context with no environment, no arguments, no stdin, stdout
//! and stderr that go nowhere, no network (TCP, UDP and name lookup off),
//! clocks and random numbers that are the host's own (virtual in tests,
//! seeded), and only the directories the plugin's `dirs` grant, each
//! read-only or read-write, confined by cap-std (no `..` or symlink
//! escape).

use std::time::Duration;

use rand_wasi::SeedableRng;
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

use std::sync::Arc;

use super::host_api::CallClock;
use crate::config::{DirGrant, DirMode};
use crate::host::HostShared;

/// The WASI context of one instance.
pub(crate) fn wasi_ctx(
    dirs: &[DirGrant],
    shared: &HostShared,
    clock: &Arc<CallClock>,
) -> anyhow::Result<WasiCtx> {
    let mut b = WasiCtxBuilder::new();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .wall_clock(HostClock::new(shared, clock))
        .monotonic_clock(HostClock::new(shared, clock))
        .secure_random(rand_wasi::rngs::StdRng::seed_from_u64(
            shared.random.next_u64(),
        ))
        .insecure_random(rand_wasi::rngs::StdRng::seed_from_u64(
            shared.random.next_u64(),
        ))
        .insecure_random_seed(u128::from(shared.random.next_u64()));
    for dir in dirs {
        let perms = match dir.mode {
            DirMode::ReadOnly => FsPerms::ReadOnly,
            DirMode::ReadWrite => FsPerms::ReadWrite,
        };
        b.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
            anyhow::anyhow!("granting {} as {}: {e:#}", dir.host.display(), dir.guest)
        })?;
    }
    Ok(b.build())
}

/// WASI's clocks, answered from the host clock: monotonic time is the
/// host's, and wall time is the real time the runtime started plus the
/// host clock, so a virtual clock stays virtual inside WASI too.
struct HostClock {
    clock: Arc<CallClock>,
    wall_at_epoch: Duration,
}

impl HostClock {
    fn new(shared: &HostShared, clock: &Arc<CallClock>) -> Self {
        HostClock {
            clock: clock.clone(),
            wall_at_epoch: shared.wall_at_epoch,
        }
    }

    fn elapsed(&self) -> Duration {
        Duration::from_millis(self.clock.now_ms())
    }
}

impl HostWallClock for HostClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.wall_at_epoch + self.elapsed()
    }
}

impl HostMonotonicClock for HostClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        u64::try_from(self.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
