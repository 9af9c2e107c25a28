//! The fuel table, size-dependent charges, and the fast meter against the reference meters.

use super::{FUEL, assert_status, job_with_run, vm};
use crate::{
    Compiler, Execution, FUEL_BYTES_PER_UNIT, FUEL_PER_PAGE_GROWN, FUEL_PER_TABLE_ELEMENT, JobStatus, MeterMode, Vm,
    VmConfig, fixtures,
};

fn fuel_of(wasm: &[u8]) -> u64 {
    let outcome = vm().execute(wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    outcome.fuel_used
}

#[test]
fn fuel_is_the_sum_of_the_operator_table() {
    // cairn_alloc: i32.const, end = 2.
    // cairn_run: i32.const, i32.const, i32.div_u (3), i64.extend_i32_u, end = 7.
    let wasm = job_with_run("", "(i64.extend_i32_u (i32.div_u (i32.const 7) (i32.const 1)))");
    assert_eq!(fuel_of(&wasm), 9);
    // A call costs 2, plus the callee's own operators (i32.const, end).
    let wasm =
        job_with_run("(func $one (result i32) (i32.const 1))", "(i64.extend_i32_u (i32.add (call $one) (call $one)))");
    assert_eq!(fuel_of(&wasm), 2 + (2 + 2) * 2 + 1 + 1 + 1);
}

fn bulk(op: &str, n: u32) -> Vec<u8> {
    job_with_run(
        "(table 4 funcref) (elem $e funcref (ref.null func) (ref.null func)) (data $d \"0123456789\")",
        &format!("({op} (i32.const 0) (i32.const 0) (i32.const {n})) (i64.const 0)"),
    )
}

#[test]
fn bulk_memory_is_charged_by_size() {
    for op in ["memory.fill", "memory.copy"] {
        let base = fuel_of(&bulk(op, 0));
        for n in [1u32, 63, 64, 65, 4096, 65_536] {
            let expected = u64::from(n).div_ceil(FUEL_BYTES_PER_UNIT);
            assert_eq!(fuel_of(&bulk(op, n)) - base, expected, "{op} of {n} bytes");
        }
    }
    let base = fuel_of(&bulk("memory.init $d", 0));
    assert_eq!(fuel_of(&bulk("memory.init $d", 10)) - base, 1);
    let base = fuel_of(&bulk("table.init $e", 0));
    assert_eq!(fuel_of(&bulk("table.init $e", 2)) - base, 2 * FUEL_PER_TABLE_ELEMENT);
    let base = fuel_of(&bulk("table.copy", 0));
    assert_eq!(fuel_of(&bulk("table.copy", 3)) - base, 3 * FUEL_PER_TABLE_ELEMENT);
}

#[test]
fn a_trapping_bulk_operation_is_charged_and_an_unaffordable_one_never_runs() {
    // Out of bounds: charged, then traps.
    let outcome = vm().execute(&bulk("memory.fill", 70_000), b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    // 16 MiB of fill with too little fuel: out of fuel before it runs.
    let wasm = job_with_run(
        "",
        "(drop (memory.grow (i32.const 255))) (memory.fill (i32.const 0) (i32.const 1) (i32.const 0x1000000)) (i64.const 0)",
    );
    let outcome = vm().execute(&wasm, b"", 300_000).expect("no internal error");
    assert_status(&outcome, JobStatus::OutOfFuel);
    assert_eq!(outcome.fuel_used, 300_000);
}

#[test]
fn memory_grow_is_charged_per_page_granted() {
    let grow = |pages: i32| job_with_run("", &format!("(drop (memory.grow (i32.const {pages}))) (i64.const 0)"));
    let base = fuel_of(&grow(0));
    assert_eq!(fuel_of(&grow(1)) - base, FUEL_PER_PAGE_GROWN);
    assert_eq!(fuel_of(&grow(10)) - base, 10 * FUEL_PER_PAGE_GROWN);
    // Refused: nothing granted, nothing charged beyond the operator.
    assert_eq!(fuel_of(&grow(100_000)), base);
    assert_eq!(fuel_of(&grow(-1)), base);

    let table_grow = |n: i32| {
        job_with_run("(table 1 funcref)", &format!("(drop (table.grow (ref.null func) (i32.const {n}))) (i64.const 0)"))
    };
    let base = fuel_of(&table_grow(0));
    assert_eq!(fuel_of(&table_grow(5)) - base, 5 * FUEL_PER_TABLE_ELEMENT);
    assert_eq!(fuel_of(&table_grow(1_000_000)), base);
}

/// Modules with loops, forward and backward branches, calls, bulk operations, traps.
fn meter_corpus() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut corpus = vec![
        ("uppercase".to_owned(), fixtures::uppercase_wasm(), b"Hello, meter!".to_vec()),
        ("echo".to_owned(), fixtures::echo_wasm(), vec![9; 70_000]),
        ("float_heavy".to_owned(), fixtures::float_heavy_wasm(), (0..=255).collect()),
        ("float".to_owned(), fixtures::float_wasm(), b"x".to_vec()),
        ("log".to_owned(), fixtures::log_wasm(), b"log me ".to_vec()),
        ("grow_bomb".to_owned(), fixtures::grow_bomb_wasm(), Vec::new()),
        ("trap".to_owned(), fixtures::trap_wasm(), Vec::new()),
        (
            "fib".to_owned(),
            job_with_run(
                r#"(func $fib (param i32) (result i32)
                     (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
                       (then (local.get 0))
                       (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                                      (call $fib (i32.sub (local.get 0) (i32.const 2)))))))"#,
                "(i32.store (i32.const 0) (call $fib (i32.const 18))) (i64.const 4)",
            ),
            Vec::new(),
        ),
        (
            // Forward br_if (charged when taken) inside a loop, br_table, a nested block.
            "branches".to_owned(),
            job_with_run(
                "",
                r#"(local $i i32) (local $sum i32)
                   (block $done
                     (loop $next
                       (br_if $done (i32.ge_u (local.get $i) (i32.const 500)))
                       (block $odd
                         (block $even
                           (br_table $even $odd (i32.and (local.get $i) (i32.const 1))))
                         (local.set $sum (i32.add (local.get $sum) (local.get $i)))
                         (br_if $odd (i32.gt_u (local.get $i) (i32.const 100)))
                         (local.set $sum (i32.add (local.get $sum) (i32.const 1))))
                       (memory.fill (i32.const 100) (local.get $i) (local.get $i))
                       (local.set $i (i32.add (local.get $i) (i32.const 1)))
                       (br $next)))
                   (i32.store (i32.const 0) (local.get $sum))
                   (i64.const 4)"#,
            ),
            Vec::new(),
        ),
        (
            // Traps in the middle of a segment, after a forward br_if was not taken.
            "trap_mid_segment".to_owned(),
            job_with_run(
                "",
                r#"(block $skip
                     (br_if $skip (i32.eqz (local.get $len)))
                     (drop (i32.div_u (i32.const 1) (i32.const 0))))
                   (i64.const 0)"#,
            ),
            b"x".to_vec(),
        ),
    ];
    for (name, input) in [
        ("sha256", b"abc".repeat(1000)),
        ("primes", b"20000".to_vec()),
        ("json-transform", br#"{"a":[1,2,{"b":"cd"}]}"#.to_vec()),
    ] {
        corpus.push((name.to_owned(), super::example_job(name), input));
    }
    corpus
}

/// Runs under `mode`; the reference meters alternate the compilers so both are covered.
fn run_in(mode: MeterMode, wasm: &[u8], input: &[u8], fuel: u64) -> Execution {
    let compiler = match mode {
        MeterMode::Fast | MeterMode::PerOperator => Compiler::Singlepass,
        MeterMode::Checked => Compiler::Cranelift,
    };
    run_with(mode, compiler, wasm, input, fuel)
}

fn run_with(mode: MeterMode, compiler: Compiler, wasm: &[u8], input: &[u8], fuel: u64) -> Execution {
    Vm::with_meter_mode(VmConfig::default(), mode, compiler).execute(wasm, input, fuel).expect("no internal error")
}

#[test]
fn both_compilers_give_identical_outcomes() {
    for (name, wasm, input) in meter_corpus() {
        let singlepass = run_with(MeterMode::Fast, Compiler::Singlepass, &wasm, &input, FUEL);
        assert_eq!(singlepass, run_with(MeterMode::Fast, Compiler::Cranelift, &wasm, &input, FUEL), "{name}");
        for fuel in [0, 1, singlepass.fuel_used / 2, singlepass.fuel_used.saturating_sub(1)] {
            let short = run_with(MeterMode::Fast, Compiler::Singlepass, &wasm, &input, fuel);
            assert_eq!(short, run_with(MeterMode::Fast, Compiler::Cranelift, &wasm, &input, fuel), "{name} {fuel}");
        }
    }
}

#[test]
fn fast_and_checked_meters_give_identical_outcomes() {
    for (name, wasm, input) in meter_corpus() {
        let fast = run_in(MeterMode::Fast, &wasm, &input, FUEL);
        assert_eq!(fast, run_in(MeterMode::Checked, &wasm, &input, FUEL), "{name}");
        // And with every limit around what the job needs.
        for fuel in [0, 1, fast.fuel_used / 2, fast.fuel_used.saturating_sub(1), fast.fuel_used, fast.fuel_used + 1] {
            let fast = run_in(MeterMode::Fast, &wasm, &input, fuel);
            assert_eq!(fast, run_in(MeterMode::Checked, &wasm, &input, fuel), "{name} with fuel {fuel}");
        }
    }
}

#[test]
fn the_fast_meter_charges_what_the_per_operator_reference_charges() {
    for (name, wasm, input) in meter_corpus() {
        let fast = run_in(MeterMode::Fast, &wasm, &input, FUEL);
        let reference = run_in(MeterMode::PerOperator, &wasm, &input, FUEL);
        if fast.status == JobStatus::Ok {
            assert_eq!(fast, reference, "{name}");
            // Exactly enough fuel suffices, one less does not, under both.
            let needed = fast.fuel_used;
            for mode in [MeterMode::Fast, MeterMode::PerOperator] {
                assert_eq!(run_in(mode, &wasm, &input, needed), fast, "{name} {mode:?}");
                let short = run_in(mode, &wasm, &input, needed - 1);
                assert_status(&short, JobStatus::OutOfFuel);
                assert_eq!(short.fuel_used, needed - 1);
            }
        } else {
            // A trap in the middle of a segment leaves the segment uncharged under the
            // segment meters; the per-operator meter charges up to the trapping operator.
            assert_eq!(fast.status, reference.status, "{name}");
            assert!(reference.fuel_used >= fast.fuel_used, "{name}");
        }
    }
}

#[test]
fn out_of_fuel_reports_the_limit_in_every_mode() {
    for mode in [MeterMode::Fast, MeterMode::Checked, MeterMode::PerOperator] {
        for limit in [0, 1, 7, 1_000, 123_457] {
            let outcome = run_in(mode, &fixtures::infinite_loop_wasm(), b"", limit);
            assert_status(&outcome, JobStatus::OutOfFuel);
            assert_eq!(outcome.fuel_used, limit, "{mode:?}");
        }
    }
}

#[test]
fn the_rewrite_keeps_the_modules_own_globals_and_replaces_exports_named_like_the_meters() {
    // Own globals (ours are numbered after them), one used in a loop; and a guest export
    // that takes the name of the fuel global, which every meter replaces with its own.
    let wasm = job_with_run(
        r#"(global $g (mut i32) (i32.const 5))
           (global $k i64 (i64.const 7))
           (func (export "cairn_vm_fuel_remaining") (result i32) (global.get $g))"#,
        r#"(loop $l
             (global.set $g (i32.add (global.get $g) (i32.const 1)))
             (br_if $l (i32.lt_u (global.get $g) (i32.const 50))))
           (i64.store (i32.const 0) (i64.add (global.get $k) (i64.extend_i32_u (global.get $g))))
           (i64.const 8)"#,
    );
    let fast = run_in(MeterMode::Fast, &wasm, b"", FUEL);
    assert_status(&fast, JobStatus::Ok);
    assert_eq!(fast.output, 57u64.to_le_bytes());
    assert_eq!(fast, run_in(MeterMode::Checked, &wasm, b"", FUEL));
    assert_eq!(fast, run_in(MeterMode::PerOperator, &wasm, b"", FUEL));
}

#[test]
fn the_fuel_global_is_exact_when_a_host_function_reads_it_after_calls() {
    // The fast meter keeps the fuel in a local and reloads it after each call; `cairn.log`
    // refuses to run once the global is negative, so a stale global would change the log.
    let wasm = job_with_run(
        r#"(import "cairn" "log" (func $log (param i32 i32)))
           (func $burn (local $i i32)
             (loop $l
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 100)))))"#,
        r#"(call $burn) (call $log (local.get $ptr) (local.get $len))
           (call $burn) (call $log (local.get $ptr) (local.get $len))
           (i64.const 0)"#,
    );
    let full = run_in(MeterMode::Fast, &wasm, b"ab", FUEL);
    assert_status(&full, JobStatus::Ok);
    assert_eq!(full.log, b"abab");
    for fuel in (0..full.fuel_used + 2).step_by(7) {
        let fast = run_in(MeterMode::Fast, &wasm, b"ab", fuel);
        assert_eq!(fast, run_in(MeterMode::Checked, &wasm, b"ab", fuel), "fuel {fuel}");
    }
}
