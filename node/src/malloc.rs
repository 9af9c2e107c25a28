//! glibc's allocator, held to a few arenas.
//!
//! The `cairn` binary allocates Rust's memory with jemalloc (its `main.rs`); glibc's `malloc`
//! still serves what C and C++ libraries allocate, rocksdb's memtables and caches above all,
//! and everything when the node runs inside another program (the tests). What follows holds
//! for that part.
//!
//! glibc's `malloc` gives a thread that meets contention an arena of its own, up to eight per
//! core, and memory freed into an arena is reused only by the threads that allocate from it.
//! A node has many threads that allocate and free in turn (the async workers, the blocking
//! pool, the executor, rocksdb's, the sandbox's), so its resident memory crept up under steady
//! load while what it held stayed flat: +10 to +19 MiB per node over 200,000 jobs, none of it
//! in the store's budgets. With at most [`MALLOC_ARENAS_MAX`] arenas the same run is flat once
//! warm, with the same throughput (BENCHMARKS.md, "Allocator arenas").
//!
//! Memory freed in the middle of an arena's heap still stays resident until that arena reuses
//! it, so the node also hands free pages back to the system every [`MALLOC_TRIM_EVERY`]
//! ([`spawn_trimmer`]): under the same load its resident memory then ends 20–30 MiB lower and
//! no longer drifts up.
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

/// How often the pages glibc's `malloc` holds free are handed back to the system.
pub const MALLOC_TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands the pages glibc's `malloc` holds free, in every arena, back to the system
/// (`malloc_trim(0)`); whether any were. Nothing on other C libraries.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes each arena's lock itself; it frees nothing in use.
        unsafe { libc::malloc_trim(0) != 0 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Trims every [`MALLOC_TRIM_EVERY`] on the blocking pool, until the task is aborted. Freed
/// memory in the middle of an arena's heap otherwise stays resident until the same arena
/// reuses it, so a node's resident memory drifts up under steady load while what it holds does
/// not.
pub fn spawn_trimmer() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut every = tokio::time::interval(MALLOC_TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if tokio::task::spawn_blocking(trim).await.is_err() {
                return;
            }
        }
    })
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Resident memory of this process, in bytes (`/proc/self/statm`).
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("resident pages");
        pages * 4096
    }

    #[test]
    fn trimming_hands_freed_heap_pages_back_to_the_system() {
        // 48 MiB in small blocks (from the heap, not mmap), each touched; then all freed but
        // the last, which pins the heap's top so that only a trim can return the pages below.
        let mut blocks: Vec<Vec<u8>> = (0..48 * 1024).map(|i| vec![i as u8 | 1; 1024]).collect();
        let last = blocks.pop();
        drop(blocks);
        let before = resident_bytes();
        trim();
        let after = resident_bytes();
        assert!(
            before.saturating_sub(after) >= 24 << 20,
            "trimming returned {} KiB of the 48 MiB freed",
            before.saturating_sub(after) >> 10
        );
        drop(last);
    }
}
