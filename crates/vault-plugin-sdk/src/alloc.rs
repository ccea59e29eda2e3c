//! [`CachingSystem`]: the system allocator with a small, bounded cache of
//! freed mid-sized blocks, for a plugin binary's `#[global_allocator]`.
//!
//! Why: musl's allocator (the one a static musl build ships with) hands a
//! group of blocks back to the kernel as soon as the group empties. A
//! plugin's request allocates and frees buffers of a few hundred bytes to a
//! few KiB (TLS records, HTTP/2 frames, message buffers), and with musl each
//! of those cost an `mmap`, page faults and a `munmap`: about 25 pairs of
//! system calls per issue and revoke, an eighth of the plugin's CPU.
//! Allocators that keep what is freed (dlmalloc, mimalloc) end that but also
//! keep their high-water mark, and a plugin's memory matters as much as its
//! CPU. This cache keeps at most [`CACHED_BYTES`] of freed blocks
//! ([`BLOCKS_PER_CLASS`] per size class) for the next request and passes
//! everything else to the system allocator unchanged.
//!
//! Blocks are allocated at the size asked for, as without the cache (a
//! long-lived allocation costs nothing more); a freed block is filed under
//! the largest class its usable size holds, and serves any later request of
//! that class.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: vault_plugin_sdk::alloc::CachingSystem =
//!     vault_plugin_sdk::alloc::CachingSystem::new();
//! # fn main() {}
//! ```
// A global allocator is unsafe by contract: each block says why it holds.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Free blocks kept per size class: the buffers of a request or two.
pub const BLOCKS_PER_CLASS: usize = 4;

/// What the cache keeps in all (counted by class size), whatever the
/// classes; under load the rest goes back to the system at once.
pub const CACHED_BYTES: usize = 256 * 1024;

/// Cached sizes: above 256 bytes (below, musl packs blocks into groups that
/// outlive a request anyway) up to 32 KiB (above, a buffer is rare enough
/// that its system calls do not matter), in four classes per doubling (320,
/// 384, 448, 512, 640, ...), so a cached block is at most a quarter larger
/// than the request it serves.
const SMALLEST_SHIFT: u32 = 8;
const LARGEST_SHIFT: u32 = 15;
const STEPS_PER_DOUBLING: usize = 4;
const CLASSES: usize = (LARGEST_SHIFT - SMALLEST_SHIFT) as usize * STEPS_PER_DOUBLING;

/// What malloc aligns to; a layout asking for more passes through.
const MALLOC_ALIGN: usize = 16;

/// The system allocator with a bounded cache of freed blocks of 257 bytes to
/// 32 KiB (see the module's documentation).
pub struct CachingSystem {
    free: Mutex<FreeBlocks>,
}

impl CachingSystem {
    /// An empty cache: usable in a `static`.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            free: Mutex::new(FreeBlocks {
                classes: [Class {
                    len: 0,
                    blocks: [None; BLOCKS_PER_CLASS],
                }; CLASSES],
                bytes: 0,
            }),
        }
    }

    fn free_blocks(&self) -> MutexGuard<'_, FreeBlocks> {
        // Nothing panics while the lock is held: a poisoned lock still
        // guards consistent lists.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for CachingSystem {
    fn default() -> Self {
        Self::new()
    }
}

struct FreeBlocks {
    classes: [Class; CLASSES],
    /// The cached blocks' class sizes added up: at most [`CACHED_BYTES`].
    bytes: usize,
}

#[derive(Clone, Copy)]
struct Class {
    len: usize,
    blocks: [Option<NonNull<u8>>; BLOCKS_PER_CLASS],
}

// SAFETY: the pointers are blocks their users have freed, owned by the cache
// alone and usable from any thread; the mutex serialises access to them.
unsafe impl Send for FreeBlocks {}

impl FreeBlocks {
    fn take(&mut self, class: usize) -> Option<NonNull<u8>> {
        let list = &mut self.classes[class];
        if list.len == 0 {
            return None;
        }
        list.len -= 1;
        self.bytes -= class_size(class);
        list.blocks[list.len].take()
    }

    /// Whether the block was kept (else it goes back to the system).
    fn keep(&mut self, class: usize, block: NonNull<u8>) -> bool {
        let list = &mut self.classes[class];
        if list.len == BLOCKS_PER_CLASS || self.bytes + class_size(class) > CACHED_BYTES {
            return false;
        }
        list.blocks[list.len] = Some(block);
        list.len += 1;
        self.bytes += class_size(class);
        true
    }
}

/// Whether the cache deals with blocks of this layout at all.
fn cacheable(layout: Layout) -> bool {
    layout.align() <= MALLOC_ALIGN
        && layout.size() > 1 << SMALLEST_SHIFT
        && layout.size() <= 1 << LARGEST_SHIFT
}

/// The smallest class that holds `size` bytes (257 ..= 32 KiB).
fn class_for(size: usize) -> usize {
    // 2^doubling < size <= 2^(doubling + 1)
    let doubling = (size - 1).ilog2();
    let step = 1usize << (doubling - STEPS_PER_DOUBLING.ilog2());
    let steps_above = (size - (1 << doubling)).div_ceil(step);
    (doubling - SMALLEST_SHIFT) as usize * STEPS_PER_DOUBLING + steps_above - 1
}

/// The largest class a block of `usable` bytes holds, if any.
fn class_held_by(usable: usize) -> Option<usize> {
    if usable >= class_size(CLASSES - 1) {
        return Some(CLASSES - 1);
    }
    let class = class_for(usable.max((1 << SMALLEST_SHIFT) + 1));
    if class_size(class) <= usable {
        Some(class)
    } else {
        class.checked_sub(1)
    }
}

fn class_size(class: usize) -> usize {
    let doubling = SMALLEST_SHIFT as usize + class / STEPS_PER_DOUBLING;
    let steps_above = class % STEPS_PER_DOUBLING + 1;
    (1 << doubling) + steps_above * (1 << doubling) / STEPS_PER_DOUBLING
}

/// How many bytes the system allocator's block at `ptr` really holds.
#[cfg(target_os = "linux")]
fn usable_size(ptr: *mut u8) -> usize {
    // SAFETY: `ptr` is a live block from the system's malloc (the cache
    // hands out nothing else).
    unsafe { libc::malloc_usable_size(ptr.cast()) }
}

/// Elsewhere nothing is cached.
#[cfg(not(target_os = "linux"))]
fn usable_size(_ptr: *mut u8) -> usize {
    0
}

// Each method is compiled once, not inlined into every allocation in the
// program: inlined, the lock and the class arithmetic made the binary 100 KB
// larger (and a plugin's memory bigger by more, as its code is locked in RAM).
// SAFETY: every block comes from `System` (malloc) and goes back to it with
// `free` (what `System.dealloc` is for an alignment malloc gives); a cached
// block serves only a request its usable size holds, and leaves the list
// under the lock, so one user has it at a time.
unsafe impl GlobalAlloc for CachingSystem {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if cacheable(layout) {
            if let Some(block) = self.free_blocks().take(class_for(layout.size())) {
                return block.as_ptr();
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if cacheable(layout) {
            if let Some(block) = self.free_blocks().take(class_for(layout.size())) {
                // SAFETY: the block holds at least `layout.size()` bytes.
                unsafe { block.as_ptr().write_bytes(0, layout.size()) };
                return block.as_ptr();
            }
        }
        // SAFETY: the caller's contract; calloc skips zeroing fresh pages.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if cacheable(layout) {
            if let (Some(class), Some(block)) = (class_held_by(usable_size(ptr)), NonNull::new(ptr))
            {
                if self.free_blocks().keep(class, block) {
                    return;
                }
            }
        }
        // SAFETY: a block from `System` (see `alloc`), freed once.
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract; every block is the system's, and
        // its realloc grows or shrinks it in place when it can.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize) -> Layout {
        Layout::from_size_align(size, 8).unwrap()
    }

    #[test]
    fn classes_step_by_a_quarter_of_a_doubling_from_320_bytes_to_32_kib() {
        assert!(!cacheable(layout(256)));
        assert!(
            !cacheable(Layout::from_size_align(1024, 64).unwrap()),
            "over-aligned"
        );
        assert!(!cacheable(layout(32 * 1024 + 1)));
        let sizes: Vec<usize> = (0..CLASSES).map(class_size).collect();
        assert_eq!(&sizes[..5], &[320, 384, 448, 512, 640]);
        assert_eq!(sizes[CLASSES - 1], 32 * 1024);
        for size in 257..=32 * 1024 {
            let class = class_for(size);
            assert!(
                class_size(class) >= size && class_size(class) * 4 < size * 5 + 4 * 64,
                "{size}"
            );
            assert!(
                class == 0 || class_size(class - 1) < size,
                "{size}: the smallest class"
            );
            let held = class_held_by(size).map(class_size);
            assert!(held.is_none_or(|held| held <= size), "{size}");
        }
        assert_eq!(class_held_by(319), None);
        assert_eq!(class_held_by(320), Some(0));
        assert_eq!(class_held_by(700).map(class_size), Some(640));
        assert_eq!(class_held_by(40_000), Some(CLASSES - 1));
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let cache = CachingSystem::new();
        unsafe {
            let first = cache.alloc(layout(3000));
            first.write_bytes(7, 3000);
            cache.dealloc(first, layout(3000));
            // Any request its class holds: the block may be a little larger.
            let class = class_size(class_held_by(usable_size(first)).unwrap());
            assert!(class > 3000 * 3 / 4);
            let again = cache.alloc(layout(class));
            assert_eq!(again, first, "the freed block comes back");
            again.write_bytes(7, class);
            cache.dealloc(again, layout(class));

            let zeroed = cache.alloc_zeroed(layout(class - 10));
            assert_eq!(zeroed, first, "a cached block, zeroed for its new user");
            assert!((0..class - 10).all(|i| zeroed.add(i).read() == 0));
            cache.dealloc(zeroed, layout(class - 10));
        }
    }

    #[test]
    fn the_cache_stays_within_its_counts_and_its_byte_budget() {
        let cache = CachingSystem::new();
        unsafe {
            let blocks: Vec<_> = (0..3 * CLASSES * BLOCKS_PER_CLASS)
                .map(|i| layout(257 + i * 1201 % (32 * 1024 - 257)))
                .map(|layout| (cache.alloc(layout), layout))
                .collect();
            for (block, layout) in blocks {
                cache.dealloc(block, layout);
                let free = cache.free_blocks();
                let counted: usize = (0..CLASSES)
                    .map(|class| free.classes[class].len * class_size(class))
                    .sum();
                assert_eq!(counted, free.bytes);
                assert!(free.bytes <= CACHED_BYTES);
                assert!(free
                    .classes
                    .iter()
                    .all(|class| class.len <= BLOCKS_PER_CLASS));
            }
            assert!(
                cache.free_blocks().bytes > CACHED_BYTES - 32 * 1024,
                "the budget is used"
            );
        }
    }

    #[test]
    fn realloc_keeps_the_bytes() {
        let cache = CachingSystem::new();
        unsafe {
            let block = cache.alloc(layout(300));
            for i in 0..300 {
                block.add(i).write(i as u8);
            }
            let grown = cache.realloc(block, layout(300), 100_000);
            let shrunk = cache.realloc(grown, layout(100_000), 64);
            assert!((0..64).all(|i| shrunk.add(i).read() == i as u8));
            cache.dealloc(shrunk, layout(64));
        }
    }
}
