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
//! A request the cache deals with gets a block of its class's size (at most
//! a quarter larger), so that any block of a class serves any request of it.
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
pub const CACHED_BYTES: usize = 64 * 1024;

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

/// A cache that is not a `static` (tests) gives its blocks back.
impl Drop for CachingSystem {
    fn drop(&mut self) {
        let free = self.free.get_mut().unwrap_or_else(PoisonError::into_inner);
        for class in 0..CLASSES {
            while let Some(block) = free.take(class) {
                // SAFETY: a block from `System` with the class's layout
                // (see `alloc`), owned by the cache alone.
                unsafe { System.dealloc(block.as_ptr(), class_layout(class)) };
            }
        }
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

/// The class of a layout the cache deals with; `None` for the rest.
fn class_of(layout: Layout) -> Option<usize> {
    let cached = layout.align() <= MALLOC_ALIGN
        && layout.size() > 1 << SMALLEST_SHIFT
        && layout.size() <= 1 << LARGEST_SHIFT;
    cached.then(|| class_for(layout.size()))
}

/// The smallest class that holds `size` bytes (257 ..= 32 KiB).
fn class_for(size: usize) -> usize {
    // 2^doubling < size <= 2^(doubling + 1)
    let doubling = (size - 1).ilog2();
    let step = 1usize << (doubling - STEPS_PER_DOUBLING.ilog2());
    let steps_above = (size - (1 << doubling)).div_ceil(step);
    (doubling - SMALLEST_SHIFT) as usize * STEPS_PER_DOUBLING + steps_above - 1
}

/// The layout a block of a class is allocated with.
fn class_layout(class: usize) -> Layout {
    // Cannot fail: at most 32 KiB, aligned as malloc aligns.
    Layout::from_size_align(class_size(class), MALLOC_ALIGN).unwrap_or_else(|_| unreachable!())
}

fn class_size(class: usize) -> usize {
    let doubling = SMALLEST_SHIFT as usize + class / STEPS_PER_DOUBLING;
    let steps_above = class % STEPS_PER_DOUBLING + 1;
    (1 << doubling) + steps_above * (1 << doubling) / STEPS_PER_DOUBLING
}

// SAFETY: every block comes from `System` (malloc) and goes back to it with
// `free` (what `System.dealloc` is for an alignment malloc gives). A block
// for a layout the cache deals with holds its class's size, whether fresh,
// cached or reallocated, so it serves any layout of that class; it leaves
// the list under the lock, so one user has it at a time.
unsafe impl GlobalAlloc for CachingSystem {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { System.alloc(layout) };
        };
        match self.free_blocks().take(class) {
            Some(block) => block.as_ptr(),
            // SAFETY: a non-zero size.
            None => unsafe { System.alloc(class_layout(class)) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract; calloc skips zeroing fresh pages.
            return unsafe { System.alloc_zeroed(layout) };
        };
        match self.free_blocks().take(class) {
            Some(block) => {
                // SAFETY: the block holds the class's size, at least the layout's.
                unsafe { block.as_ptr().write_bytes(0, layout.size()) };
                block.as_ptr()
            }
            // SAFETY: a non-zero size.
            None => unsafe { System.alloc_zeroed(class_layout(class)) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let (Some(class), Some(block)) = (class_of(layout), NonNull::new(ptr)) {
            if self.free_blocks().keep(class, block) {
                return;
            }
        }
        // SAFETY: a block from `System` (see `alloc`), freed once.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (both blocks): the caller's contract; a layout of
        // `new_size` with the old alignment is valid by it.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let Some(class) = class_of(new_layout) else {
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if class_of(layout) == Some(class) {
            // The block already holds the class's size.
            return ptr;
        }
        // SAFETY: every block is malloc's, whatever its layout; realloc
        // keeps the bytes and grows or shrinks in place when it can.
        unsafe { System.realloc(ptr, layout, class_size(class)) }
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
        assert_eq!(class_of(layout(256)), None);
        assert_eq!(
            class_of(Layout::from_size_align(1024, 64).unwrap()),
            None,
            "over-aligned"
        );
        assert_eq!(class_of(layout(32 * 1024 + 1)), None);
        assert_eq!(class_of(layout(257)), Some(0));
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
        }
    }

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_class() {
        let cache = CachingSystem::new();
        unsafe {
            let first = cache.alloc(layout(2900));
            first.write_bytes(7, class_size(class_for(2900)));
            cache.dealloc(first, layout(2900));
            let again = cache.alloc(layout(3072));
            assert_eq!(again, first, "2900 and 3072 bytes share a class");
            again.write_bytes(7, 3072);
            cache.dealloc(again, layout(3072));

            let zeroed = cache.alloc_zeroed(layout(2600));
            assert_eq!(zeroed, first, "a cached block, zeroed for its new user");
            assert!((0..2600).all(|i| zeroed.add(i).read() == 0));
            cache.dealloc(zeroed, layout(2600));
            let other_class = cache.alloc(layout(2000));
            assert_ne!(other_class, first);
            cache.dealloc(other_class, layout(2000));
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
    fn realloc_keeps_the_bytes_and_the_class_size() {
        let cache = CachingSystem::new();
        unsafe {
            let block = cache.alloc(layout(100));
            for i in 0..100 {
                block.add(i).write(i as u8);
            }
            let into_band = cache.realloc(block, layout(100), 300);
            let same = cache.realloc(into_band, layout(300), 320);
            assert_eq!(same, into_band, "300 and 320 bytes share a class");
            let grown = cache.realloc(same, layout(320), 5000);
            let large = cache.realloc(grown, layout(5000), 100_000);
            let shrunk = cache.realloc(large, layout(100_000), 1000);
            assert!((0..100).all(|i| shrunk.add(i).read() == i as u8));
            // Reallocated into a class, the block holds all of it.
            shrunk.write_bytes(1, class_size(class_for(1000)));
            cache.dealloc(shrunk, layout(1000));
            let reused = cache.alloc(layout(class_size(class_for(1000))));
            assert_eq!(reused, shrunk);
            cache.dealloc(reused, layout(class_size(class_for(1000))));
        }
    }
}
