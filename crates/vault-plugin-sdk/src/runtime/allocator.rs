//! The memory allocator for a plugin's static musl build: small blocks from
//! dlmalloc, large ones from musl.
//!
//! musl's allocator (mallocng) gives a group of small blocks back to the
//! kernel as soon as the group empties, so serving one request mapped and
//! unmapped pages (and faulted them in) several times: about a fifth of the
//! plugin's CPU per issued key. dlmalloc (a pure-Rust port of Doug Lea's
//! malloc, the allocator of Rust's own wasm32 standard library) keeps freed
//! blocks for reuse, but carves every block, however large, from its own
//! heap and gives memory back only from the heap's top: megabyte buffers (a
//! page of a thousand keys) left the RSS megabytes higher. So blocks up to
//! [`SMALL_BLOCK`] come from dlmalloc and larger ones from musl, which maps
//! each on its own and unmaps it when freed.
//!
//! dlmalloc assumes 4 KiB pages, which only x86_64 guarantees (arm64 kernels
//! may use 16 or 64 KiB), so elsewhere [`PluginAllocator`] is the system
//! allocator. The glibc build has no need of it either way.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest block taken from the small-block allocator.
pub const SMALL_BLOCK: usize = 64 * 1024;

/// The global allocator a plugin's `main.rs` should declare:
/// `#[global_allocator] static ALLOCATOR: PluginAllocator = PluginAllocator::new();`
pub struct PluginAllocator(Split<SmallBlocks, System>);

#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
type SmallBlocks = dlmalloc::GlobalDlmalloc;
#[cfg(not(all(target_env = "musl", target_arch = "x86_64")))]
type SmallBlocks = System;

impl PluginAllocator {
    /// The allocator (a constant, for a `static`).
    #[cfg(all(target_env = "musl", target_arch = "x86_64"))]
    pub const fn new() -> Self {
        Self(Split {
            small: dlmalloc::GlobalDlmalloc,
            large: System,
        })
    }

    /// The allocator (a constant, for a `static`).
    #[cfg(not(all(target_env = "musl", target_arch = "x86_64")))]
    pub const fn new() -> Self {
        Self(Split {
            small: System,
            large: System,
        })
    }
}

impl Default for PluginAllocator {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every call goes to `Split`, which upholds GlobalAlloc's contract.
unsafe impl GlobalAlloc for PluginAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees, passed on.
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        unsafe { self.0.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

/// Blocks of at most [`SMALL_BLOCK`] bytes from `small`, larger ones from
/// `large`. A block is always freed by the allocator that made it: the
/// caller gives `dealloc` and `realloc` the layout the block was made with,
/// and its size alone picks the allocator.
struct Split<S, L> {
    small: S,
    large: L,
}

fn is_small(size: usize) -> bool {
    size <= SMALL_BLOCK
}

// SAFETY: each method hands the block to exactly one of two allocators that
// uphold GlobalAlloc's contract, chosen by the block's size, the same way
// for its allocation and its release.
unsafe impl<S: GlobalAlloc, L: GlobalAlloc> GlobalAlloc for Split<S, L> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees about `layout`, passed on.
        unsafe {
            if is_small(layout.size()) {
                self.small.alloc(layout)
            } else {
                self.large.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if is_small(layout.size()) {
                self.small.alloc_zeroed(layout)
            } else {
                self.large.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated with `layout` (the caller's promise),
        // so by the allocator its size picks here too.
        unsafe {
            if is_small(layout.size()) {
                self.small.dealloc(ptr, layout)
            } else {
                self.large.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (is_small(layout.size()), is_small(new_size)) {
            // SAFETY: the block stays with the allocator that made it.
            (true, true) => unsafe { self.small.realloc(ptr, layout, new_size) },
            // SAFETY: as above.
            (false, false) => unsafe { self.large.realloc(ptr, layout, new_size) },
            // Across the line: a new block from the other allocator, the
            // bytes copied over, the old block freed by its own.
            _ => {
                // SAFETY: realloc's caller guarantees that `new_size`, rounded
                // up to `layout.align()`, does not overflow isize.
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: `new_layout` has a non-zero size (`new_size` is).
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller size and
                    // distinct; `ptr` was made with `layout`.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicIsize, Ordering};

    /// The system allocator, counting the blocks it has out.
    #[derive(Default)]
    struct Counted(AtomicIsize);

    unsafe impl GlobalAlloc for Counted {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.0.fetch_add(1, Ordering::SeqCst);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            self.0.fetch_sub(1, Ordering::SeqCst);
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[test]
    fn blocks_cross_the_line_with_their_bytes_and_go_back_where_they_came_from() {
        let split = Split {
            small: Counted::default(),
            large: Counted::default(),
        };
        let out = |s: &Split<Counted, Counted>| {
            (
                s.small.0.load(Ordering::SeqCst),
                s.large.0.load(Ordering::SeqCst),
            )
        };
        let small = Layout::from_size_align(100, 8).unwrap();
        unsafe {
            let p = split.alloc(small);
            std::ptr::write_bytes(p, 7, 100);
            assert_eq!(out(&split), (1, 0));
            // Grows past the line: now the large allocator's, bytes kept.
            let p = split.realloc(p, small, SMALL_BLOCK + 1);
            assert_eq!(out(&split), (0, 1));
            assert!((0..100).all(|i| *p.add(i) == 7));
            // And back.
            let large = Layout::from_size_align(SMALL_BLOCK + 1, 8).unwrap();
            let p = split.realloc(p, large, 50);
            assert_eq!(out(&split), (1, 0));
            assert!((0..50).all(|i| *p.add(i) == 7));
            split.dealloc(p, Layout::from_size_align(50, 8).unwrap());
            assert_eq!(out(&split), (0, 0));
            // The line itself is small.
            let edge = Layout::from_size_align(SMALL_BLOCK, 16).unwrap();
            let p = split.alloc_zeroed(edge);
            assert_eq!(out(&split), (1, 0));
            assert!((0..SMALL_BLOCK).all(|i| *p.add(i) == 0));
            split.dealloc(p, edge);
        }
        assert_eq!(out(&split), (0, 0));
    }
}
