//! Calls into the C library that the server needs, each isolated in one small
//! function (the crate is otherwise free of `unsafe`). All are best effort: a failure leaves
//! the process as it was, only less tuned.

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
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn disable_malloc_fastbins() {
    // SAFETY: mallopt only changes glibc's allocator parameters; M_MXFAST = 0 is a documented
    // value. Called before the server starts its threads.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn disable_malloc_fastbins() {}

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
