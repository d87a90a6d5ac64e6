//! The global allocator: mimalloc, called the way a C program calls it.
//!
//! The `mimalloc` crate sends every Rust allocation through `mi_malloc_aligned`, even
//! at alignment 8. mimalloc 3 serves those from its fast path only when the block is
//! small and happens to be aligned; any other size (a hyper read buffer, a 2.4 KB body,
//! a header map's table) goes to the generic aligned path and is over-allocated to
//! guarantee the alignment. That was about 1,000 instructions per request
//! (docs/performance.md). `mi_malloc` already guarantees word alignment for every size, so
//! the usual case calls it directly; only larger alignments take the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// How often an IO thread lets mimalloc give freed memory back (see [`collect`]).
pub const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Give memory nothing uses any more back to the system.
///
/// mimalloc returns the pages that emptied at least `purge_delay` (1 s) ago, but only when
/// it is next called: a server that goes quiet after a spike of connections (or whose idle
/// connections just parked their buffers, docs/memory.md) would keep it all until the next
/// burst. The IO runtime calls this every [`COLLECT_EVERY`]; with nothing to give back it
/// costs a few microseconds.
pub fn collect() {
    // SAFETY: mi_collect only walks mimalloc's own structures; any thread may call it.
    #[cfg(not(feature = "system-allocator"))]
    unsafe {
        mi::mi_collect(false)
    }
}

/// The alignment every `mi_malloc` block has, whatever its size.
const WORD_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc, with the plain entry points whenever the alignment allows them.
pub struct Mimalloc;

// SAFETY: every path returns memory from mimalloc aligned to at least `layout.align()`
// (`mi_malloc` guarantees word alignment; otherwise the aligned entry points are used),
// and every block is released with `mi_free`, which accepts blocks from all of them.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            mi::mi_malloc(layout.size()) as *mut u8
        } else {
            mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            mi::mi_zalloc(layout.size()) as *mut u8
        } else {
            mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr as *mut c_void);
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= WORD_ALIGN {
            mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
        } else {
            mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment mix the core uses comes back aligned, writable and
    /// resizable, zeroed where asked.
    #[test]
    fn blocks_are_aligned_zeroed_and_resizable() {
        for &align in &[1usize, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for &size in &[1usize, 7, 8, 24, 100, 1000, 2450, 8192, 70_000, 5 << 20] {
                let size = size.max(align);
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let p = Mimalloc.alloc_zeroed(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                    p.write_bytes(0xAB, size);
                    let q = Mimalloc.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
                    assert_eq!(*q.add(size - 1), 0xAB);
                    Mimalloc.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let r = Mimalloc.alloc(layout);
                    assert_eq!(r as usize % align, 0);
                    Mimalloc.dealloc(r, layout);
                }
            }
        }
    }
}
