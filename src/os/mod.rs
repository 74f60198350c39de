//! Calls into the C library that the server needs, each isolated in one small
//! function (the crate is otherwise free of `unsafe`). All are best effort: a failure leaves
//! the process as it was, only less tuned.

mod prefault;

pub(crate) use prefault::Prefault;

/// Turns off glibc malloc's fastbins for the whole process.
///
/// Why: a background save ends by dropping its snapshot, which frees at once every tree node
/// and value that writes replaced while it ran (hundreds of thousands of small chunks). glibc
/// parks freed small chunks in its fastbins without merging them; the next larger allocation
/// in that arena — made by a client thread, under the engine lock — then merges them all in
/// one `malloc_consolidate`, stalling every client for 50–250 ms (measured with `perf` on 500k
/// and 5M keys). Without fastbins each free merges its own chunk, so the cost is paid by the
/// freeing thread, a chunk at a time. Small allocations still go through the per-thread
/// cache (tcache), which is where the fast path lives.
pub(crate) fn disable_malloc_fastbins() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    mallopt(libc::M_MXFAST, 0);
}

/// Has every thread allocate from glibc malloc's main arena (`M_ARENA_MAX` = 1).
///
/// Why: with `malloc-huge-pages` (glibc's `glibc.malloc.hugetlb=1`, set by the `keeper
/// server` binary), glibc backs only its main arena, the `brk` heap, with huge pages; the
/// arenas it makes for other threads stay on small pages. The keyspace is allocated by the
/// I/O thread, so without this it would never see a huge page after the startup load. Small
/// allocations still go through each thread's cache (tcache) without taking the arena's
/// lock. Measured (`tools/ab-set`, 1M pipelined SETs at `-P 16` over a prefilled keyspace,
/// no persistence): 524k SETs/s against 443k, 1.9 µs of server CPU per SET against 2.2.
pub(crate) fn use_one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    mallopt(libc::M_ARENA_MAX, 1);
}

/// Sets one of glibc malloc's parameters (`mallopt`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mallopt(param: libc::c_int, value: libc::c_int) {
    // SAFETY: mallopt only changes glibc's allocator parameters (under the allocator's own
    // lock); the callers pass documented parameters and values.
    unsafe {
        libc::mallopt(param, value);
    }
}

/// Hints the CPU to start loading the cache line at `ptr` (for reading), so that a traversal
/// that will touch it a few steps later does not wait for memory then. A hint only: any
/// address is allowed, nothing is dereferenced, and it does nothing off x86-64.
#[inline(always)]
pub(crate) fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // The prefetch instruction does not access memory architecturally: it cannot fault,
        // whatever the address.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// An allocator for large, randomly probed tables (a startup load's staged keys,
/// `store::Staged`): blocks of [`HUGE_PAGE_BLOCK`] bytes and more are aligned to 2 MiB and
/// marked for transparent huge pages (`madvise(MADV_HUGEPAGE)`); smaller ones are plain
/// global allocations.
///
/// Why: every probe of a table of millions of keys lands on a random 4 KiB page, so most
/// miss the TLB as well as the cache, and the first touch of each page faults. With 2 MiB
/// pages a 200 MB table spans 100 TLB entries, and faults 512 times less. Most Linux
/// systems enable huge pages only where a program asks (`enabled` = `madvise`); a failed
/// hint only leaves the block on small pages. keeper never forks, so a huge page is never
/// copied on write (the reason Redis turns them off).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HugePageHint;

/// Blocks at least this large get the hint: glibc serves them with their own `mmap` (its
/// mmap threshold never exceeds 32 MiB on 64-bit), so the hint marks no heap shared with
/// other allocations.
const HUGE_PAGE_BLOCK: usize = 32 << 20;

const HUGE_PAGE: usize = 2 << 20;

impl HugePageHint {
    /// The layout actually allocated for `layout`: huge-page aligned when large.
    fn adjusted(layout: std::alloc::Layout) -> std::alloc::Layout {
        if layout.size() < HUGE_PAGE_BLOCK {
            return layout;
        }
        layout.align_to(HUGE_PAGE).unwrap_or(layout)
    }
}

// SAFETY: every block comes from `Global` with the adjusted layout and returns to it with the
// same adjusted layout (`adjusted` is a pure function of the caller's layout); the hint
// changes only how the kernel backs the pages, never their contents or validity.
#[allow(unsafe_code)]
unsafe impl allocator_api2::alloc::Allocator for HugePageHint {
    fn allocate(
        &self,
        layout: std::alloc::Layout,
    ) -> Result<std::ptr::NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let adjusted = Self::adjusted(layout);
        let block = allocator_api2::alloc::Global.allocate(adjusted)?;
        if adjusted.align() >= HUGE_PAGE {
            advise_huge_pages(block.cast::<u8>().as_ptr(), adjusted.size());
            prefault::fault_in_later(block.cast::<u8>().as_ptr(), adjusted.size());
        }
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: std::ptr::NonNull<u8>, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `allocate` with this `layout`, hence from `Global` with
        // the adjusted one.
        unsafe { allocator_api2::alloc::Global.deallocate(ptr, Self::adjusted(layout)) }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge_pages(start: *mut u8, len: usize) {
    // SAFETY: madvise only changes how the kernel backs pages of this process's own block
    // (2 MiB aligned, `len` bytes from `start`); MADV_HUGEPAGE never changes their contents.
    // A failure (THP compiled out, or `never`) is ignored: the block stays on small pages.
    unsafe {
        libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_api2::alloc::Allocator;
    use std::alloc::Layout;

    #[test]
    fn huge_page_hint_aligns_large_blocks_only_and_serves_a_growing_table() {
        let small = Layout::from_size_align(4096, 8).unwrap();
        assert_eq!(
            HugePageHint::adjusted(small),
            small,
            "small blocks are plain"
        );
        let large = Layout::from_size_align(HUGE_PAGE_BLOCK, 16).unwrap();
        let block = HugePageHint.allocate(large).unwrap();
        let start = block.cast::<u8>().as_ptr();
        assert_eq!(
            start as usize % HUGE_PAGE,
            0,
            "a large block starts on a huge page"
        );
        assert!(block.len() >= HUGE_PAGE_BLOCK);
        #[allow(unsafe_code)]
        // SAFETY: the block is ours, `HUGE_PAGE_BLOCK` bytes long, and freed with its layout.
        unsafe {
            start.write(1);
            start.add(HUGE_PAGE_BLOCK - 1).write(2);
            assert_eq!(start.read() + start.add(HUGE_PAGE_BLOCK - 1).read(), 3);
            HugePageHint.deallocate(block.cast(), large);
        }
        // A table growing through the threshold keeps every entry across each move.
        let mut table = hashbrown::HashTable::new_in(HugePageHint);
        let entries = 2 * HUGE_PAGE_BLOCK / std::mem::size_of::<(u64, u64)>();
        for i in 0..entries as u64 {
            table.insert_unique(i, (i, !i), |e: &(u64, u64)| e.0);
        }
        assert_eq!(table.len(), entries);
        for i in (0..entries as u64).step_by(997) {
            assert_eq!(table.find(i, |e| e.0 == i), Some(&(i, !i)));
        }
    }
}
