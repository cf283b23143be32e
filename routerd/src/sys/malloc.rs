//! The C library's allocator, tuned for a small daemon.

/// Makes glibc's allocator keep one heap for all threads instead of one per thread that allocates (up to eight
/// per CPU): each heap holds on to what its thread freed, and with the DNS thread and the runtime's workers that
/// was 4-5 MB of a 28 MB resident set (measured with `bash scripts/bench-lan.sh dns`: 27.6-28.8 MB → 23.4 MB,
/// queries per CPU-second unchanged). Small allocations still come from each thread's own cache without a lock.
/// Call it before any thread is started. Elsewhere than glibc this does nothing.
pub fn use_one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator; it takes plain integers and is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
