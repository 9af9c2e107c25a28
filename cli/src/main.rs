//! `cairn`: run a node, submit jobs, verify receipts, run a local testnet.

/// The binary's allocator: jemalloc, for everything Rust allocates (rocksdb's C++ keeps
/// glibc's `malloc`, held by `cairn_node::malloc`). glibc's arenas were about a sixth of a busy
/// node's CPU samples; with jemalloc the local testnet finalizes about 15 % more jobs a second
/// past its peak, for 0–15 MiB more resident memory per node (BENCHMARKS.md, "jemalloc for the
/// node's own allocations").
#[cfg(all(unix, not(target_env = "musl")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its first allocation (`_RJEM_MALLOC_CONF` in the environment
/// adds to them): one arena, since a node's threads hand memory to each other, and free pages
/// handed back to the system after 300 ms instead of 10 s, so resident memory follows what the
/// node holds. With jemalloc's defaults (four arenas per core, 10 s) each node held 20–25 MiB
/// more at the peak than with these, for the same throughput.
#[cfg(all(unix, not(target_env = "musl")))]
#[allow(unsafe_code, non_upper_case_globals)] // jemalloc reads this C string, by this name.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 46] = b"narenas:1,dirty_decay_ms:300,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    cairn::main()
}
