//! glibc's allocator, held to a few arenas.
//!
//! glibc's `malloc` gives a thread that meets contention an arena of its own, up to eight per
//! core, and memory freed into an arena is reused only by the threads that allocate from it.
//! A node has many threads that allocate and free in turn (the async workers, the blocking
//! pool, the executor, rocksdb's, the sandbox's), so its resident memory crept up under steady
//! load while what it held stayed flat: +10 to +19 MiB per node over 200,000 jobs, none of it
//! in the store's budgets. With at most [`MALLOC_ARENAS_MAX`] arenas the same run is flat once
//! warm, with the same throughput (BENCHMARKS.md, "Allocator arenas").
#![allow(unsafe_code)] // mallopt(3): one allocator setting, made before any other thread exists.

/// The most arenas glibc's `malloc` may use.
pub const MALLOC_ARENAS_MAX: i32 = 2;

/// Holds glibc's `malloc` to [`MALLOC_ARENAS_MAX`] arenas, unless the operator set the arena
/// count with `GLIBC_TUNABLES` (which then wins); nothing on other C libraries. Call it first
/// thing in `main`, before any thread starts: a thread keeps the arena it was given.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var_os("GLIBC_TUNABLES").is_some_and(|t| t.to_string_lossy().contains("arena_max"));
        if !tuned {
            // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX);
            }
        }
    }
}
