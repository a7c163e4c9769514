//! What one plugin instance may allocate: its linear memories and tables
//! counted together, and small caps on how many it may create.
//!
//! wasmtime's `StoreLimits` caps each memory on its own, so a component
//! with twenty memories (or thirty core instances of one memory each)
//! could take twenty times `memory-mib`. [`InstanceLimiter`] sums every
//! memory of the store instead: a store holds exactly one plugin instance
//! (see `pool.rs`), and its memories live as long as it does (a memory
//! never shrinks), so the running total is what the instance holds.

use wasmtime::ResourceLimiter;

/// Core instances per plugin instance. A Python component (componentize-py
/// 0.25) instantiates 38 core modules, one per shared library and adapter;
/// 100 leaves room for bigger toolchains while bounding the per-instance
/// bookkeeping a component can make the host allocate.
pub(crate) const MAX_CORE_INSTANCES: usize = 100;

/// Linear memories per plugin instance. Toolchains use one (dynamically
/// linked ones share it); a few more allow for adapters. Their sizes are
/// capped together by `memory-mib` anyway.
pub(crate) const MAX_MEMORIES: usize = 8;

/// Tables per plugin instance: one function table per toolchain, a few more
/// for shims and adapters.
pub(crate) const MAX_TABLES: usize = 16;

/// Table elements per plugin instance, all tables together: enough for any
/// real guest's function tables (Python's is under 6,000), small enough
/// that a table-growth bomb stops early.
pub(crate) const MAX_TABLE_ELEMENTS: usize = 100_000;

/// A store's resource limiter: totals across all memories and tables.
pub(crate) struct InstanceLimiter {
    memory_cap: usize,
    memory_used: usize,
    table_elements_used: usize,
}

impl InstanceLimiter {
    /// Limits for one instance with `memory_cap` bytes of linear memory in
    /// all.
    pub(crate) fn new(memory_cap: usize) -> Self {
        InstanceLimiter {
            memory_cap,
            memory_used: 0,
            table_elements_used: 0,
        }
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = (self.memory_used - current.min(self.memory_used)).checked_add(desired);
        match total {
            Some(total) if total <= self.memory_cap => {
                if maximum.is_some_and(|max| desired > max) {
                    // Beyond the memory's own declared maximum: a plain
                    // failed grow, as the Wasm spec says, not our limit.
                    return Ok(false);
                }
                self.memory_used = total;
                Ok(true)
            }
            // An error, not `Ok(false)`: the guest traps here with this
            // message instead of seeing -1 and aborting obscurely, and
            // instantiation fails saying why.
            _ => wasmtime::bail!(
                "memory limit: growing a linear memory from {current} to {desired} bytes would bring the instance's memories to {} bytes in all, over its memory-mib of {} bytes",
                total.map_or_else(|| "more than usize::MAX".to_owned(), |t| t.to_string()),
                self.memory_cap
            ),
        }
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(wasmtime::format_err!(
            "memory limit: the host could not grow a linear memory: {error}"
        ))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total =
            (self.table_elements_used - current.min(self.table_elements_used)).checked_add(desired);
        match total {
            Some(total) if total <= MAX_TABLE_ELEMENTS => {
                if maximum.is_some_and(|max| desired > max) {
                    return Ok(false);
                }
                self.table_elements_used = total;
                Ok(true)
            }
            _ => wasmtime::bail!(
                "table limit: growing a table from {current} to {desired} elements would exceed the instance's {MAX_TABLE_ELEMENTS} table elements in all"
            ),
        }
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_are_capped_together() {
        let mib = 1 << 20;
        let mut l = InstanceLimiter::new(16 * mib);
        // Two memories of 8 MiB fit; a third byte-page does not.
        assert!(l.memory_growing(0, 8 * mib, None).unwrap());
        assert!(l.memory_growing(0, 8 * mib, None).unwrap());
        let e = l.memory_growing(0, 64 << 10, None).unwrap_err();
        assert!(e.to_string().contains("memory limit"), "{e}");
        // Growing an existing memory counts only the growth.
        let mut l = InstanceLimiter::new(16 * mib);
        assert!(l.memory_growing(0, 4 * mib, None).unwrap());
        assert!(l.memory_growing(4 * mib, 16 * mib, None).unwrap());
        assert!(l.memory_growing(16 * mib, 17 * mib, None).is_err());
        // usize overflow is refused, not wrapped.
        let mut l = InstanceLimiter::new(usize::MAX);
        assert!(l.memory_growing(0, usize::MAX, None).unwrap());
        assert!(l.memory_growing(0, 1, None).is_err());
    }

    #[test]
    fn a_memory_past_its_own_maximum_fails_plainly() {
        let mut l = InstanceLimiter::new(16 << 20);
        assert!(!l.memory_growing(0, 2 << 16, Some(1 << 16)).unwrap());
        // The refused growth is not counted.
        assert!(l.memory_growing(0, 16 << 20, None).unwrap());
    }

    #[test]
    fn table_elements_are_capped_together() {
        let mut l = InstanceLimiter::new(0);
        assert!(l.table_growing(0, MAX_TABLE_ELEMENTS - 1, None).unwrap());
        assert!(l.table_growing(0, 1, None).unwrap());
        assert!(l.table_growing(0, 1, None).is_err());
    }
}
