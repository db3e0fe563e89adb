//! Keeps freed memory in the process for the next training step.
//!
//! candle allocates a fresh buffer for every operation's output, forward and
//! backward: a vision step at batch 64 allocates and frees a few hundred
//! buffers of 1-7 MB. glibc serves blocks above its mmap threshold (128 KiB
//! at first, adapting upwards only as such blocks are freed) with `mmap` and
//! gives them back with `munmap` on free, and trims the heap top past 128
//! KiB: every step then faults its memory in page by page again (measured:
//! ~150,000 page faults per vision step, about a fifth of its time).
//! [`keep_freed_memory`] raises the mmap threshold to 32 MiB (glibc's
//! ceiling on 64-bit) and the trim threshold to 1 GiB, so the buffers come
//! from the heap and go back to it: the same run took 104k instead of 760k
//! page faults and 1.15-1.30 s instead of 1.54-1.61 s per step (5 steps, 1
//! thread; `edgebind-train bench`). The cost is that the process keeps its
//! peak heap: a trainer's working set is its peak anyway.

/// Tunes glibc's allocator for candle's allocate-per-operation pattern (see
/// the module doc). A no-op on other C libraries; idempotent.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is thread-safe
    // and called before the training threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
