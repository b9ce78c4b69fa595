//! What one plugin may use: memory, table sizes and instances, enforced by wasmtime through
//! [`wasmtime::ResourceLimiter`]; a refused growth is remembered so the stop can say why.

use wasmtime::ResourceLimiter;

/// Linear memory per plugin.
pub(crate) const MAX_MEMORY: usize = 64 << 20;
const MAX_TABLE_ELEMENTS: usize = 20_000;
/// A component made by the Rust toolchain holds a few core instances, tables and memories.
const MAX_INSTANCES: usize = 16;
const MAX_TABLES: usize = 16;
const MAX_MEMORIES: usize = 4;

#[derive(Default)]
pub(crate) struct Limits {
    /// Set when a growth was refused.
    pub(crate) refused: Option<String>,
}

impl Limits {
    /// Whether growing to `desired` stays within `max`; if not, remembers why.
    fn allow(&mut self, desired: usize, max: usize, why: impl FnOnce() -> String) -> bool {
        let ok = desired <= max;
        if !ok {
            self.refused = Some(why());
        }
        ok
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self
            .allow(desired, MAX_MEMORY, || format!("it wanted more than {} MiB of memory", MAX_MEMORY >> 20)))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let what = || format!("it wanted a table of more than {MAX_TABLE_ELEMENTS} elements");
        Ok(self.allow(desired, MAX_TABLE_ELEMENTS, what))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
