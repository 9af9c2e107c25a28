//! The memory pool (`VmConfig::memory_pool_regions`): regions are reused, the pool stays
//! bounded, and no job sees anything of another, with many jobs on many threads.

use std::sync::Arc;

use super::{FUEL, assert_status, wat};
use crate::{Execution, JobStatus, Vm, VmConfig, fixtures};

fn pooled_vm(regions: usize) -> Vm {
    Vm::new(VmConfig { memory_pool_regions: regions, memory_pages_max: 16, ..VmConfig::default() })
}

/// A job whose memory starts at `initial` pages. Input: `[grow, fill, probe]`.
///
/// It grows by `grow` pages, counts the nonzero bytes of its whole memory (the input
/// excepted: `cairn_alloc` puts it at 0), reads its mutable global, then fills the whole
/// memory with `fill` and sets the global to `fill` (what would leak into a later job).
/// With `probe` 1 it then loads the first byte past its (grown) size, which must trap.
/// Output: nonzero bytes (u32), memory pages (u32), the global's value at start (u32).
fn isolation_job(initial: u32) -> Vec<u8> {
    wat(&format!(
        r#"(module
            (global $g (mut i32) (i32.const 0))
            (memory (export "memory") {initial})
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
            (func (export "cairn_run") (param $ptr i32) (param $len i32) (result i64)
              (local $i i32) (local $end i32) (local $dirty i32) (local $fill i32) (local $global i32)
              (drop (memory.grow (i32.load8_u (i32.const 0))))
              (local.set $fill (i32.load8_u (i32.const 1)))
              (local.set $end (i32.mul (memory.size) (i32.const 65536)))
              (local.set $i (i32.const 8))
              (block $done (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
                (if (i64.ne (i64.load (local.get $i)) (i64.const 0))
                  (then (local.set $dirty (i32.add (local.get $dirty) (i32.const 1)))))
                (local.set $i (i32.add (local.get $i) (i32.const 8)))
                (br $next)))
              (local.set $global (global.get $g))
              (global.set $g (local.get $fill))
              (if (i32.eq (i32.load8_u (i32.const 2)) (i32.const 1))
                (then (drop (i32.load8_u (local.get $end)))))
              (memory.fill (i32.const 0) (local.get $fill) (local.get $end))
              (i32.store (i32.const 0) (local.get $dirty))
              (i32.store (i32.const 4) (memory.size))
              (i32.store (i32.const 8) (local.get $global))
              (i64.const 12)))"#
    ))
}

/// Xorshift: reproducible "random" sizes without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[track_caller]
fn assert_clean(outcome: &Execution, pages: u32) {
    assert_status(outcome, JobStatus::Ok);
    let word = |i: usize| u32::from_le_bytes([0, 1, 2, 3].map(|j| outcome.output[i * 4 + j]));
    assert_eq!(word(0), 0, "a previous job's bytes leaked into this one");
    assert_eq!(word(1), pages, "the memory has its declared size plus the grow");
    assert_eq!(word(2), 0, "a previous job's global leaked into this one");
}

#[test]
fn the_pool_reuses_regions_and_keeps_at_most_its_bound_idle() {
    let vm = pooled_vm(2);
    let wasm = isolation_job(1);
    for _ in 0..10 {
        assert_clean(&vm.execute(&wasm, &[1, 0xab, 0], FUEL).expect("no internal error"), 2);
    }
    let stats = vm.memory_pool_stats().expect("a pool");
    assert_eq!((stats.reserved, stats.reused, stats.idle), (1, 9, 1), "{stats:?}");

    // Many at once: fresh regions when the pool is empty, never more than 2 kept.
    let vm = Arc::new(pooled_vm(2));
    std::thread::scope(|scope| {
        for _ in 0..6 {
            let (vm, wasm) = (Arc::clone(&vm), wasm.clone());
            scope.spawn(move || {
                for _ in 0..20 {
                    assert_clean(&vm.execute(&wasm, &[0, 0x5a, 0], FUEL).expect("no internal error"), 1);
                }
            });
        }
    });
    let stats = vm.memory_pool_stats().expect("a pool");
    assert!(stats.idle <= 2 && stats.idle >= 1, "{stats:?}");
    assert!(stats.reused > 0, "{stats:?}");
    assert_eq!(stats.reserved + stats.reused, 120, "one memory per job: {stats:?}");
}

#[test]
fn pooled_jobs_on_many_threads_with_random_sizes_never_see_each_other() {
    // A small pool, so regions keep moving between jobs of different sizes and threads.
    let vm = Arc::new(pooled_vm(3));
    let modules: Arc<Vec<Vec<u8>>> = Arc::new((1..=4).map(isolation_job).collect());
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let (vm, modules) = (Arc::clone(&vm), Arc::clone(&modules));
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (thread + 1));
                for _ in 0..100 {
                    let initial = 1 + rng.below(4) as u32;
                    let grow = rng.below(5) as u8;
                    let fill = 1 + rng.below(255) as u8;
                    let probe = rng.below(4) == 0;
                    let wasm = &modules[initial as usize - 1];
                    let outcome = vm.execute(wasm, &[grow, fill, u8::from(probe)], FUEL).expect("no internal error");
                    if probe {
                        // One byte past the grown size: inaccessible, though the region
                        // had more accessible for an earlier, larger job.
                        assert_status(&outcome, JobStatus::Trap);
                    } else {
                        assert_clean(&outcome, initial + u32::from(grow));
                    }
                }
            });
        }
    });
    let stats = vm.memory_pool_stats().expect("a pool");
    assert!(stats.idle <= 3, "{stats:?}");
    assert!(stats.reused > 0, "{stats:?}");
}

#[test]
fn a_grow_refused_at_the_limit_and_a_grow_bomb_leave_the_pool_clean() {
    let vm = pooled_vm(1);
    let bomb = fixtures::grow_bomb_wasm();
    let clean = isolation_job(1);
    for _ in 0..3 {
        assert_status(&vm.execute(&bomb, b"", FUEL).expect("no internal error"), JobStatus::MemoryLimit);
        // The region the bomb grew to the limit: zeroed, and back to one page.
        assert_clean(&vm.execute(&clean, &[0, 0xff, 0], FUEL).expect("no internal error"), 1);
        assert_status(&vm.execute(&clean, &[0, 0xff, 1], FUEL).expect("no internal error"), JobStatus::Trap);
        // Grow to the limit (16 pages) and past it (refused: -1, size unchanged).
        assert_clean(&vm.execute(&clean, &[15, 0xff, 0], FUEL).expect("no internal error"), 16);
        assert_clean(&vm.execute(&clean, &[16, 0xff, 0], FUEL).expect("no internal error"), 1);
    }
}

#[test]
fn pooled_and_unpooled_vms_give_identical_outcomes() {
    let pooled = pooled_vm(2);
    let unpooled = Vm::new(VmConfig { memory_pool_regions: 0, memory_pages_max: 16, ..VmConfig::default() });
    assert!(unpooled.memory_pool_stats().is_none());
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (fixtures::echo_wasm(), b"hello".to_vec()),
        (fixtures::uppercase_wasm(), b"hello, cairn".to_vec()),
        (fixtures::float_heavy_wasm(), Vec::new()),
        (fixtures::grow_bomb_wasm(), Vec::new()),
        (fixtures::trap_wasm(), Vec::new()),
        (fixtures::infinite_loop_wasm(), Vec::new()),
        (isolation_job(2), vec![3, 7, 0]),
        (isolation_job(2), vec![3, 7, 1]),
    ];
    for _ in 0..2 {
        for (wasm, input) in &cases {
            let fuel = 2_000_000;
            assert_eq!(
                pooled.execute(wasm, input, fuel).expect("no internal error"),
                unpooled.execute(wasm, input, fuel).expect("no internal error")
            );
        }
    }
}
