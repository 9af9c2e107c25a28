//! The disk cache, the byte-bounded memory cache, re-execution, and isolation between jobs.

use sha2::{Digest, Sha256};

use super::{FUEL, assert_status, job_with_run, vm};
use crate::{CacheStats, Compiler, JobStatus, Vm, VmConfig, fixtures};

/// One compiler, so that no module is recompiled in the background while the counters are
/// read (the tiers have tests of their own).
fn disk_vm(dir: &std::path::Path) -> Vm {
    Vm::with_compiler(VmConfig { cache_dir: Some(dir.to_owned()), ..VmConfig::default() }, Compiler::Singlepass)
}

fn modules() -> Vec<(Vec<u8>, Vec<u8>, u64)> {
    vec![
        (fixtures::uppercase_wasm(), b"disk cache".to_vec(), FUEL),
        (fixtures::float_heavy_wasm(), (0..=255).collect(), FUEL),
        (fixtures::grow_bomb_wasm(), Vec::new(), FUEL),
        (fixtures::infinite_loop_wasm(), Vec::new(), 12_345),
        (fixtures::log_wasm(), b"log".to_vec(), FUEL),
    ]
}

#[test]
fn a_disk_cache_load_gives_the_same_outcomes_as_a_fresh_compile() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let fresh = disk_vm(dir.path());
    let expected: Vec<_> = modules()
        .iter()
        .map(|(wasm, input, fuel)| fresh.execute(wasm, input, *fuel).expect("no internal error"))
        .collect();
    assert_eq!(
        fresh.cache_stats(),
        CacheStats { compiled: 5, memory_hits: 0, disk_loads: 0, disk_rejected: 0, tiered_up: 0 }
    );

    // A restarted node: a new Vm on the same folder loads every module from disk, on a
    // headless engine, and gets the same outputs and exactly the same fuel.
    let restarted = disk_vm(dir.path());
    for ((wasm, input, fuel), expected) in modules().iter().zip(&expected) {
        assert_eq!(&restarted.execute(wasm, input, *fuel).expect("no internal error"), expected);
    }
    assert_eq!(
        restarted.cache_stats(),
        CacheStats { compiled: 0, memory_hits: 0, disk_loads: 5, disk_rejected: 0, tiered_up: 0 }
    );
    // A second run finds its module in memory.
    let (wasm, input, fuel) = &modules()[0];
    fresh.execute(wasm, input, *fuel).expect("no internal error");
    assert_eq!((fresh.cache_stats().memory_hits, fresh.cache_stats().compiled), (1, 5));
    // A loaded module weighs what it weighed when compiled: its artifact's size.
    assert_eq!(restarted.cached_bytes(), fresh.cached_bytes());
    // And the same as a Vm without any disk cache.
    let memory_only = vm();
    for ((wasm, input, fuel), expected) in modules().iter().zip(&expected) {
        assert_eq!(&memory_only.execute(wasm, input, *fuel).expect("no internal error"), expected);
    }
}

#[test]
fn corrupted_or_truncated_cache_files_are_detected_and_recompiled() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let wasm = fixtures::uppercase_wasm();
    let expected = disk_vm(dir.path()).execute(&wasm, b"abc", FUEL).expect("no internal error");
    let path = disk_vm(dir.path()).disk_cache_path(&wasm).expect("a cache folder is set");
    let good = std::fs::read(&path).expect("the artifact was written");

    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last / 2] ^= 0x40; // inside the artifact
    let mut wrong_header = good.clone();
    wrong_header[50] ^= 1; // the module id
    let damaged: [(&str, Vec<u8>); 5] = [
        ("a flipped bit", flipped),
        ("a truncated file", good[..good.len() / 3].to_vec()),
        ("a truncated header", good[..20].to_vec()),
        ("another module's header", wrong_header),
        ("garbage", b"#!/bin/sh\necho pwned\n".to_vec()),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).expect("write the damaged file");
        let vm = disk_vm(dir.path());
        assert_eq!(vm.execute(&wasm, b"abc", FUEL).expect("no internal error"), expected, "{what}");
        assert_eq!(
            vm.cache_stats(),
            CacheStats { compiled: 1, memory_hits: 0, disk_loads: 0, disk_rejected: 1, tiered_up: 0 },
            "{what}"
        );
        // Rewritten, good again.
        assert_eq!(std::fs::read(&path).expect("rewritten"), good, "{what}");
    }
}

#[test]
fn the_cache_key_includes_the_engine_configuration() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let wasm = fixtures::echo_wasm();
    let a = disk_vm(dir.path());
    let b = Vm::new(VmConfig { cache_dir: Some(dir.path().to_owned()), memory_pages_max: 17, ..VmConfig::default() });
    assert_ne!(a.disk_cache_path(&wasm), b.disk_cache_path(&wasm));
    a.execute(&wasm, b"x", FUEL).expect("no internal error");
    b.execute(&wasm, b"x", FUEL).expect("no internal error");
    assert_eq!(b.cache_stats().compiled, 1, "another configuration's artifact is never loaded");
}

#[test]
fn the_cache_key_includes_the_meter_and_how_it_instruments() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let wasm = fixtures::echo_wasm();
    let config = VmConfig { cache_dir: Some(dir.path().to_owned()), ..VmConfig::default() };
    let fast = Vm::new(config.clone());
    let checked = Vm::with_meter_mode(config.clone(), crate::MeterMode::Checked, Compiler::Singlepass);
    assert_ne!(fast.disk_cache_path(&wasm), checked.disk_cache_path(&wasm));
    // And the compiler.
    let optimized = Vm::with_compiler(config.clone(), Compiler::Cranelift);
    assert_ne!(fast.disk_cache_path(&wasm), optimized.disk_cache_path(&wasm));
    // Version 4 counts stack units; artifacts instrumented by version 3 (call depth) are
    // under another key, so never loaded.
    assert_eq!(crate::engine::INSTRUMENTATION_VERSION, 4);
    for compiler in [Compiler::Singlepass, Compiler::Cranelift] {
        assert_ne!(
            crate::engine::engine_config_hash(&config, compiler),
            crate::engine::engine_config_hash_for(&config, compiler, 3)
        );
    }
}

#[test]
fn the_memory_cache_is_bounded_in_bytes() {
    let probe = vm();
    probe.execute(&fixtures::echo_wasm(), b"", FUEL).expect("no internal error");
    let one = probe.cached_bytes();
    assert!(one > 0);
    // Room for about two modules of that size.
    let vm = Vm::new(VmConfig { cache_bytes_max: one * 5 / 2, ..VmConfig::default() });
    for wasm in [fixtures::echo_wasm(), fixtures::trap_wasm(), fixtures::infinite_loop_wasm(), fixtures::abort_wasm()] {
        vm.execute(&wasm, b"", 1000).expect("no internal error");
        assert!(vm.cached_bytes() <= one * 5 / 2);
    }
    assert!(vm.cached_modules() <= 3);
}

#[test]
fn each_module_loaded_from_disk_has_an_engine_of_its_own() {
    // A wasmer engine keeps the code of every artifact loaded into it until it is dropped: a
    // shared one would keep every module ever reloaded after an eviction.
    let dir = tempfile::tempdir().expect("a temporary folder");
    let wasms = [fixtures::uppercase_wasm(), fixtures::echo_wasm()];
    let fresh = disk_vm(dir.path());
    for wasm in &wasms {
        fresh.prepare(wasm).expect("compiles");
    }
    let restarted = disk_vm(dir.path());
    let engines: Vec<_> = wasms
        .iter()
        .map(|wasm| restarted.compiled(&crate::module_id(wasm), wasm).expect("loads").engine.id())
        .collect();
    assert_eq!(restarted.cache_stats().disk_loads, 2);
    assert_ne!(engines[0], engines[1]);
}

#[test]
fn threads_wanting_one_module_at_once_compile_it_once() {
    // A node preparing a module while its first job arrives: one compilation, both served.
    let vm = std::sync::Arc::new(vm());
    let wasm = fixtures::float_heavy_wasm();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (vm, wasm, barrier) = (vm.clone(), wasm.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                if i % 2 == 0 {
                    vm.prepare(&wasm).expect("prepares");
                } else {
                    let out = vm.execute(&wasm, &[1, 2, 3], FUEL).expect("no internal error");
                    assert_status(&out, JobStatus::Ok);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(vm.cache_stats().compiled, 1, "one compilation for four threads");
    assert!(vm.loading.lock().expect("lock").is_empty(), "no loading slot left behind");
}

/// Running a job again gives the same outcome: on the same sandbox (its module now cached)
/// and on a fresh sandbox with the default limits every node shares.
#[test]
fn a_second_run_gives_the_same_outcome() {
    let vm = vm();
    let fresh = Vm::new(VmConfig::default());
    for (wasm, input, fuel) in modules() {
        let outcome = vm.execute(&wasm, &input, fuel).expect("no internal error");
        let again = vm.execute(&wasm, &input, fuel).expect("no internal error").outcome();
        assert_eq!(again.status, outcome.status);
        assert_eq!(again.fuel_used, outcome.fuel_used);
        assert_eq!(again.output_hash.0, <[u8; 32]>::from(Sha256::digest(&outcome.output)));
        assert_eq!(
            fresh.execute(&wasm, &input, fuel).expect("no internal error").outcome(),
            again,
            "a fresh default sandbox"
        );
    }
    let invalid = fresh.execute(b"not wasm", b"", FUEL).expect("no internal error").outcome();
    assert_eq!((invalid.status, invalid.fuel_used), (JobStatus::InvalidModule, 0));
}

// ---- isolation between jobs ----

#[test]
fn no_global_of_one_job_is_visible_to_the_next() {
    // Returns a mutable global's value, then bumps it: a leak would show as 1, 2, ...
    let wasm = job_with_run(
        "(global $g (mut i32) (i32.const 0)) (global $h (mut i64) (i64.const 7))",
        r#"(i32.store (i32.const 0) (global.get $g))
           (i64.store (i32.const 4) (global.get $h))
           (global.set $g (i32.add (global.get $g) (i32.const 1)))
           (global.set $h (i64.const -1))
           (i64.const 12)"#,
    );
    let vm = vm();
    let first = vm.execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&first, JobStatus::Ok);
    for _ in 0..3 {
        assert_eq!(vm.execute(&wasm, b"", FUEL).expect("no internal error"), first);
    }
}

#[test]
fn no_byte_of_one_job_is_visible_to_the_next_even_after_a_grow() {
    // Grows to 3 pages, sums the grown pages' bytes, then fills everything with 0xff.
    let wasm = job_with_run(
        "",
        r#"(local $i i32) (local $sum i32)
           (drop (memory.grow (i32.const 2)))
           (block $done (loop $next
             (br_if $done (i32.ge_u (local.get $i) (i32.const 0x30000)))
             (local.set $sum (i32.add (local.get $sum) (i32.load8_u (local.get $i))))
             (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br $next)))
           (memory.fill (i32.const 0) (i32.const 0xff) (i32.const 0x30000))
           (i32.store (i32.const 0) (local.get $sum))
           (i32.store (i32.const 4) (memory.size))
           (i64.const 8)"#,
    );
    let vm = vm();
    for _ in 0..3 {
        let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::Ok);
        assert_eq!(outcome.output[..4], 0u32.to_le_bytes(), "a previous job's bytes leaked");
        assert_eq!(outcome.output[4..], 3u32.to_le_bytes(), "the memory starts at its declared size");
    }
}

#[test]
fn memory_beyond_the_allowed_size_is_inaccessible_and_out_of_bounds_traps_after_a_grow() {
    let vm = Vm::new(VmConfig { memory_pages_max: 3, ..VmConfig::default() });
    // In bounds after a grow: fine. Past the grown size (but inside what a later job
    // could have): a trap. Past the limit: a trap.
    let after_grow = |address: u32| {
        job_with_run(
            "",
            &format!("(drop (memory.grow (i32.const 1))) (drop (i32.load8_u (i32.const {address}))) (i64.const 0)"),
        )
    };
    assert_status(&vm.execute(&after_grow(0x1ffff), b"", FUEL).expect("no internal error"), JobStatus::Ok);
    assert_status(&vm.execute(&after_grow(0x20000), b"", FUEL).expect("no internal error"), JobStatus::Trap);
    assert_status(&vm.execute(&after_grow(0x30000), b"", FUEL).expect("no internal error"), JobStatus::Trap);
    // A first job grows to the limit; the next job's memory is back to one page.
    let grow_all = job_with_run("", "(drop (memory.grow (i32.const 2))) (i64.const 0)");
    assert_status(&vm.execute(&grow_all, b"", FUEL).expect("no internal error"), JobStatus::Ok);
    let read_high = job_with_run("", "(drop (i32.load8_u (i32.const 0x10000))) (i64.const 0)");
    assert_status(&vm.execute(&read_high, b"", FUEL).expect("no internal error"), JobStatus::Trap);
}
