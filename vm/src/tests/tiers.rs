//! Tiers: every module starts on single-pass code; one whose jobs used enough fuel is
//! recompiled by Cranelift in the background, and its jobs' outcomes do not change.

use std::time::{Duration, Instant};

use super::FUEL;
use crate::{Compiler, TIER_UP_FUEL_PER_WASM_BYTE, Vm, VmConfig, fixtures};

#[test]
fn a_module_whose_jobs_used_enough_fuel_gets_optimized_code_with_the_same_outcomes() {
    let vm = Vm::new(VmConfig::default());
    let wasm = fixtures::float_heavy_wasm();
    let input: Vec<u8> = (0..=255).collect();
    let first = vm.execute(&wasm, &input, FUEL).expect("no internal error");
    assert_eq!(vm.cached_compiler(&wasm), Some(Compiler::Singlepass), "single-pass first");
    // Below the threshold nothing is recompiled; jobs keep coming until it is passed.
    let threshold = TIER_UP_FUEL_PER_WASM_BYTE * wasm.len() as u64;
    assert!(first.fuel_used < threshold, "the test needs several jobs to reach the threshold");
    let mut spent = first.fuel_used;
    while spent < threshold {
        let outcome = vm.execute(&wasm, &input, FUEL).expect("no internal error");
        assert_eq!(outcome, first);
        spent += outcome.fuel_used;
    }
    // The background compiler swaps the optimized code in when it is ready.
    let deadline = Instant::now() + Duration::from_secs(120);
    while vm.cached_compiler(&wasm) != Some(Compiler::Cranelift) {
        assert!(Instant::now() < deadline, "no tier-up within the deadline: {:?}", vm.cache_stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(vm.cache_stats().tiered_up, 1);
    assert_eq!(vm.execute(&wasm, &input, FUEL).expect("no internal error"), first, "the same outcome");
}

#[test]
fn a_module_below_the_threshold_and_a_fixed_compiler_are_never_recompiled() {
    let wasm = fixtures::echo_wasm();
    let tiered = Vm::new(VmConfig::default());
    tiered.execute(&wasm, b"hi", FUEL).expect("no internal error");
    let fixed = Vm::with_compiler(VmConfig::default(), Compiler::Singlepass);
    let threshold = TIER_UP_FUEL_PER_WASM_BYTE * wasm.len() as u64;
    let mut spent = 0;
    while spent < 2 * threshold {
        spent += fixed.execute(&wasm, &[7; 4096], FUEL).expect("no internal error").fuel_used;
    }
    assert_eq!(tiered.cached_compiler(&wasm), Some(Compiler::Singlepass));
    assert_eq!(fixed.cached_compiler(&wasm), Some(Compiler::Singlepass));
    assert_eq!((tiered.cache_stats().tiered_up, fixed.cache_stats().tiered_up), (0, 0));
}
