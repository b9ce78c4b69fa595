//! What one plugin may use: memory, table sizes and instances, enforced by wasmtime through
//! [`wasmtime::ResourceLimiter`]; a refused growth is remembered so the stop can say why.

use wasmtime::ResourceLimiter;

/// Linear memory per plugin, all its memories together.
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
    /// Bytes of linear memory the plugin's memories hold, together.
    memory: usize,
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
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called with `current` 0 when a memory is made, so the sum covers every memory.
        let total = self.memory - current.min(self.memory) + desired;
        let why = || format!("it wanted more than {} MiB of memory", MAX_MEMORY >> 20);
        let ok = self.allow(total, MAX_MEMORY, why);
        // A growth past the memory's own maximum fails after this; it is not counted.
        if ok && maximum.is_none_or(|max| desired <= max) {
            self.memory = total;
        }
        Ok(ok)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Four memories of 40 MiB would be 160 MiB: the limit is on all of them together.
    #[test]
    fn memories_share_one_limit() {
        let mut limits = Limits::default();
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap(), "a first memory is made");
        assert!(limits.memory_growing(1 << 20, 40 << 20, None).unwrap());
        assert!(limits.memory_growing(0, 1 << 20, None).unwrap(), "a second memory is made");
        assert!(!limits.memory_growing(1 << 20, 40 << 20, None).unwrap(), "together over 64 MiB");
        assert!(limits.refused.as_deref().is_some_and(|why| why.contains("64 MiB")));
        assert!(limits.memory_growing(1 << 20, 20 << 20, None).unwrap(), "together 60 MiB");
        assert!(!limits.memory_growing(0, 8 << 20, None).unwrap(), "a third would pass 64 MiB");
    }
}
