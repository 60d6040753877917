//! A counting global allocator: the bytes the core has allocated and not yet freed.
//!
//! A WebAssembly memory only grows, so its size is the allocator's high-water mark and cannot
//! tell a leak from fragmentation or from one larger batch. This counter can: the soak command
//! (`scripts/soak.mjs`) reads it between rounds, and a leak shows as live bytes that climb from
//! round to round while the memory's size may stay flat, or the other way round.
//!
//! The cost is two relaxed atomic adds per allocation (plain adds on single-threaded wasm).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Wraps the system allocator (dlmalloc on wasm32) and counts what passes through it.
pub struct CountingAllocator {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl CountingAllocator {
    pub const fn new() -> Self {
        Self { live: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    fn grew(&self, bytes: usize) {
        let live = self.live.fetch_add(bytes, Relaxed) + bytes;
        self.peak.fetch_max(live, Relaxed);
    }

    fn shrank(&self, bytes: usize) {
        self.live.fetch_sub(bytes, Relaxed);
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_ptr = unsafe { System.realloc(ptr, layout, new_size) };
        if !new_ptr.is_null() {
            // The old block is gone and the new one is live (the pointer may be the same).
            self.shrank(layout.size());
            self.grew(new_size);
        }
        new_ptr
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator::new();

/// What the heap holds now and the most it has held since the process (or page) started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HeapUsage {
    pub live_bytes: usize,
    pub peak_bytes: usize,
}

pub fn usage() -> HeapUsage {
    HeapUsage { live_bytes: ALLOCATOR.live.load(Relaxed), peak_bytes: ALLOCATOR.peak.load(Relaxed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_counts_while_it_lives_and_not_after() {
        // Other test threads allocate too, so compare with slack far below the buffer's size.
        const SIZE: usize = 64 << 20;
        let before = usage().live_bytes;
        let buffer = vec![1u8; SIZE];
        let during = usage();
        assert!(during.live_bytes >= before + SIZE - (8 << 20), "live {} after a {SIZE}-byte buffer (was {before})", during.live_bytes);
        assert!(during.peak_bytes >= during.live_bytes);
        drop(std::hint::black_box(buffer));
        let after = usage().live_bytes;
        assert!(after + SIZE - (8 << 20) <= during.live_bytes, "live {after} after the buffer was freed (was {})", during.live_bytes);
    }

    #[test]
    fn growing_a_vector_in_place_counts_its_new_size() {
        let before = usage().live_bytes;
        let mut v: Vec<u8> = Vec::with_capacity(1 << 20);
        v.reserve_exact(32 << 20);
        let grown = usage().live_bytes;
        assert!(grown + (8 << 20) >= before + (33 << 20), "live {grown} after reserving 33 MiB (was {before})");
        drop(v);
    }
}
