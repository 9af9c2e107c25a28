//! The binary's allocator: jemalloc, with the settings `src/main.rs` gives it.

use std::process::Command;

/// jemalloc reads `_rjem_malloc_conf` at its first allocation: the settings are the ones the
/// binary defines, and none is refused (jemalloc warns on stderr about a setting it does not
/// take, and keeps its default).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_runs_on_jemalloc_with_its_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .arg("--version")
        // Adds to the binary's settings: print them (and the statistics) at exit.
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("cairn --version");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(!stats.contains("<jemalloc>"), "a setting was refused: {stats}");
    for line in ["opt.narenas: 1", "opt.dirty_decay_ms: 300", "opt.muzzy_decay_ms: 0"] {
        assert!(stats.contains(line), "{line:?} not in jemalloc's statistics: {stats}");
    }
}
