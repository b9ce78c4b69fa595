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

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= MAX_MEMORY;
        if !ok {
            self.refused = Some(format!("it wanted more than {} MiB of memory", MAX_MEMORY >> 20));
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= MAX_TABLE_ELEMENTS;
        if !ok {
            self.refused = Some(format!("it wanted a table of more than {MAX_TABLE_ELEMENTS} elements"));
        }
        Ok(ok)
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
