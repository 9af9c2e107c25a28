//! The sandbox's behaviour on well-behaved and hostile modules.

use std::path::Path;
use std::sync::Arc;

use crate::{Execution, JobStatus, Vm, VmConfig, VmError, fixtures, module_id};

/// Plenty for every fixture that terminates.
const FUEL: u64 = 10_000_000;

fn vm() -> Vm {
    Vm::new(VmConfig::default())
}

fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test WAT is valid")
}

#[track_caller]
fn assert_status(outcome: &Execution, status: JobStatus) {
    assert_eq!(outcome.status, status, "unexpected outcome: {outcome:?}");
    if status != JobStatus::Ok {
        assert!(!outcome.message.is_empty(), "a failure must say why");
        assert_eq!(outcome.output, outcome.message.as_bytes(), "a failed job's output is its reason");
        assert!(outcome.output.len() <= crate::REASON_BYTES_MAX);
    }
}

/// A job with the ABI's exports around a custom `cairn_run` body (and extra items).
fn job_with_run(items: &str, run_body: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
            {items}
            (memory (export "memory") 1)
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 1024))
            (func (export "cairn_run") (param $ptr i32) (param $len i32) (result i64)
                {run_body}))"#
    ))
}

// ---- jobs that work ----

#[test]
fn echo_returns_the_input() {
    let vm = vm();
    let outcome = vm.execute(&fixtures::echo_wasm(), b"hello, cairn", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.output, b"hello, cairn");
    assert!(outcome.fuel_used > 0 && outcome.fuel_used < FUEL);
    assert!(outcome.message.is_empty());
    assert!(outcome.log.is_empty());
}

#[test]
fn echo_handles_empty_and_large_inputs() {
    let vm = vm();
    let outcome = vm.execute(&fixtures::echo_wasm(), b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert!(outcome.output.is_empty());

    // Just under the output limit; the allocator grows memory for it.
    let input: Vec<u8> = (0..VmConfig::default().output_size_bytes_max).map(|i| (i % 251) as u8).collect();
    let outcome = vm.execute(&fixtures::echo_wasm(), &input, FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.output, input);
}

#[test]
fn uppercase_reads_the_output_it_wrote() {
    let outcome =
        vm().execute(&fixtures::uppercase_wasm(), "abc xyz, Zé!".as_bytes(), FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.output, "ABC XYZ, Zé!".as_bytes());
}

#[test]
fn validate_reports_the_module_id_and_size() {
    let wasm = fixtures::echo_wasm();
    let info = vm().validate(&wasm).expect("the echo fixture is valid");
    assert_eq!(info.module_id, module_id(&wasm));
    assert_eq!(info.size_bytes, wasm.len());
    for wasm in [
        fixtures::uppercase_wasm(),
        fixtures::infinite_loop_wasm(),
        fixtures::trap_wasm(),
        fixtures::grow_bomb_wasm(),
        fixtures::abort_wasm(),
        fixtures::log_wasm(),
        fixtures::float_wasm(),
    ] {
        vm().validate(&wasm).expect("every fixture is valid");
    }
}

// ---- failures of the guest ----

#[test]
fn unreachable_is_a_trap() {
    let outcome = vm().execute(&fixtures::trap_wasm(), b"x", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.contains("cairn_run"), "{}", outcome.message);
}

#[test]
fn infinite_loop_runs_out_of_fuel_at_exactly_the_limit() {
    let vm = vm();
    for limit in [0, 1, 1_000, 100_000] {
        let outcome = vm.execute(&fixtures::infinite_loop_wasm(), b"", limit).expect("no internal error");
        assert_status(&outcome, JobStatus::OutOfFuel);
        assert_eq!(outcome.fuel_used, limit);
    }
}

#[test]
fn fuel_limit_between_used_and_needed() {
    let vm = vm();
    let wasm = fixtures::uppercase_wasm();
    let needed = vm.execute(&wasm, b"some input", FUEL).expect("no internal error").fuel_used;
    let exact = vm.execute(&wasm, b"some input", needed).expect("no internal error");
    assert_status(&exact, JobStatus::Ok);
    assert_eq!(exact.fuel_used, needed);
    let short = vm.execute(&wasm, b"some input", needed - 1).expect("no internal error");
    assert_status(&short, JobStatus::OutOfFuel);
    assert_eq!(short.fuel_used, needed - 1);
}

#[test]
fn memory_grow_bomb_is_a_memory_limit() {
    let outcome = vm().execute(&fixtures::grow_bomb_wasm(), b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::MemoryLimit);
    assert!(outcome.fuel_used > 0);
}

#[test]
fn memory_grow_is_refused_past_the_limit_and_the_guest_may_carry_on() {
    // Grows by one page past the limit: refused (-1) without trapping, so the job is Ok
    // and reports what it saw: the result of the grow and the memory size after it.
    let config = VmConfig { memory_pages_max: 4, ..VmConfig::default() };
    let wasm = job_with_run(
        "",
        r#"(i32.store (i32.const 0) (memory.grow (i32.const 4)))
           (i32.store (i32.const 4) (memory.size))
           (i64.const 8)"#,
    );
    let outcome = Vm::new(config).execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.output[..4], (-1i32).to_le_bytes());
    assert_eq!(outcome.output[4..], 1i32.to_le_bytes());
}

#[test]
fn trap_without_refused_grow_stays_a_trap() {
    // A successful grow does not turn a later trap into MemoryLimit.
    let wasm = job_with_run("", "(drop (memory.grow (i32.const 1))) unreachable");
    assert_status(&vm().execute(&wasm, b"", FUEL).expect("no internal error"), JobStatus::Trap);
}

#[test]
fn memory_minimum_over_the_limit_is_rejected_at_validation() {
    let wasm = wat(r#"(module
        (memory (export "memory") 300)
        (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#);
    let vm = vm();
    assert_eq!(vm.validate(&wasm), Err(VmError::MemoryTooLarge { pages_min: 300, pages_max: 256 }));
    let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::InvalidModule);
    assert_eq!(outcome.fuel_used, 0);
}

#[test]
fn output_out_of_bounds_is_a_trap() {
    let wasm = job_with_run("", "(i64.const 0xFFFF000000000064)"); // ptr 0xFFFF0000, len 100
    let outcome = vm().execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.contains("outside"), "{}", outcome.message);
}

#[test]
fn output_over_the_limit_is_output_too_large() {
    // An input larger than the output limit, for the echo to return (inputs and outputs
    // share one limit by default).
    let output_max = VmConfig::default().output_size_bytes_max;
    let vm = Vm::new(VmConfig { input_size_bytes_max: output_max + 1, ..VmConfig::default() });
    let input = vec![b'x'; output_max + 1];
    let outcome = vm.execute(&fixtures::echo_wasm(), &input, FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::OutputTooLarge);
    assert!(outcome.fuel_used > 0);
}

#[test]
fn alloc_returning_a_pointer_outside_memory_is_a_trap() {
    let wasm = wat(r#"(module
        (memory (export "memory") 1)
        (func (export "cairn_alloc") (param i32) (result i32) (i32.const 65530))
        (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#);
    let outcome = vm().execute(&wasm, b"0123456789", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.contains("cairn_alloc"), "{}", outcome.message);
}

#[test]
fn input_over_the_limit_is_a_trap_before_running() {
    let config = VmConfig { input_size_bytes_max: 16, ..VmConfig::default() };
    let outcome = Vm::new(config).execute(&fixtures::echo_wasm(), &[0; 17], FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert_eq!(outcome.fuel_used, 0);
    assert!(outcome.message.contains("input too large"));
}

#[test]
fn deep_recursion_is_a_trap() {
    let wasm = job_with_run(
        r#"(func $down (param i64) (result i64)
              (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (i64.const 1)))"#,
        "(call $down (i64.const 0))",
    );
    let outcome = vm().execute(&wasm, b"", u64::MAX).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
}

#[test]
fn table_grow_is_refused_past_the_limit() {
    let config = VmConfig { table_elements_max: 10, ..VmConfig::default() };
    let wasm = job_with_run(
        "(table 5 funcref)",
        r#"(i32.store (i32.const 0) (table.grow (ref.null func) (i32.const 6)))
           (i32.store (i32.const 4) (table.grow (ref.null func) (i32.const 5)))
           (i64.const 8)"#,
    );
    let outcome = Vm::new(config.clone()).execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.output[..4], (-1i32).to_le_bytes());
    assert_eq!(outcome.output[4..], 5i32.to_le_bytes());

    let too_big = job_with_run("(table 11 funcref)", "(i64.const 0)");
    assert!(matches!(Vm::new(config).validate(&too_big), Err(VmError::TableTooLarge { elements_min: 11, .. })));
}

#[test]
fn out_of_bounds_data_segment_is_a_trap_at_instantiation() {
    let wasm = job_with_run(r#"(data (i32.const 65535) "ab")"#, "(i64.const 0)");
    let outcome = vm().execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert_eq!(outcome.fuel_used, 0);
}

// ---- invalid modules ----

#[test]
fn garbage_is_an_invalid_module() {
    let vm = vm();
    for garbage in [&b""[..], b"\0asm", b"definitely not wasm", b"(module)"] {
        assert!(matches!(vm.validate(garbage), Err(VmError::Malformed(_))), "{garbage:?}");
        let outcome = vm.execute(garbage, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::InvalidModule);
        assert_eq!(outcome.fuel_used, 0);
    }
}

#[test]
fn oversized_module_is_rejected() {
    let config = VmConfig { module_size_bytes_max: 64, ..VmConfig::default() };
    let wasm = fixtures::echo_wasm();
    assert!(wasm.len() > 64);
    assert!(matches!(Vm::new(config).validate(&wasm), Err(VmError::ModuleTooLarge { .. })));
}

#[test]
fn unknown_imports_are_invalid() {
    let vm = vm();
    for import in [
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
        r#"(import "cairn" "clock" (func (result i64)))"#,
        r#"(import "env" "g" (global i32))"#,
        r#"(import "cairn" "table" (table 1 funcref))"#,
        // The memory itself, imported (and re-exported) instead of defined.
        r#"(import "cairn" "memory" (memory 1))"#,
    ] {
        let memory = if import.contains("(memory") {
            r#"(export "memory" (memory 0))"#
        } else {
            r#"(memory (export "memory") 1)"#
        };
        let wasm = wat(&format!(
            r#"(module {import}
                {memory}
                (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
                (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#
        ));
        assert!(
            matches!(vm.validate(&wasm), Err(VmError::ForbiddenImport { .. })),
            "{import}: {:?}",
            vm.validate(&wasm)
        );
        let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::InvalidModule);
        assert_eq!(outcome.fuel_used, 0);
    }
}

#[test]
fn host_import_with_wrong_signature_is_invalid() {
    let wasm = job_with_run(r#"(import "cairn" "log" (func (param i32)))"#, "(i64.const 0)");
    assert!(matches!(vm().validate(&wasm), Err(VmError::ImportSignature { name: "log", .. })));
}

#[test]
fn missing_exports_and_wrong_signatures_are_invalid() {
    let vm = vm();
    let cases = [
        // No memory export.
        r#"(module (memory 1)
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
            (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#,
        // No cairn_run.
        r#"(module (memory (export "memory") 1)
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0)))"#,
        // No cairn_alloc.
        r#"(module (memory (export "memory") 1)
            (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#,
        // cairn_run returning i32.
        r#"(module (memory (export "memory") 1)
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
            (func (export "cairn_run") (param i32 i32) (result i32) (i32.const 0)))"#,
        // cairn_run with one parameter.
        r#"(module (memory (export "memory") 1)
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
            (func (export "cairn_run") (param i32) (result i64) (i64.const 0)))"#,
        // cairn_run exported as a global.
        r#"(module (memory (export "memory") 1)
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
            (global (export "cairn_run") i64 (i64.const 0)))"#,
        // memory exported as a function.
        r#"(module (memory 1)
            (func (export "memory"))
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
            (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#,
    ];
    for case in cases {
        let wasm = wat(case);
        let error = vm.validate(&wasm).expect_err(case);
        assert!(matches!(error, VmError::MissingExport { .. } | VmError::ExportSignature { .. }), "{case}: {error:?}");
        let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::InvalidModule);
        assert_eq!(outcome.fuel_used, 0);
    }
}

#[test]
fn start_function_is_invalid() {
    let wasm = job_with_run("(func $init) (start $init)", "(i64.const 0)");
    assert_eq!(vm().validate(&wasm), Err(VmError::StartFunction));
}

#[test]
fn nondeterministic_and_unneeded_features_are_invalid() {
    let vm = vm();
    for items in [
        // threads: shared memory and atomics
        r#"(memory $shared 1 1 shared)"#,
        // memory64
        r#"(memory $big i64 1)"#,
        // relaxed SIMD
        r#"(func (result v128) (f32x4.relaxed_madd (v128.const i64x2 0 0) (v128.const i64x2 0 0) (v128.const i64x2 0 0)))"#,
        // tail calls
        r#"(func $tail (result i64) (return_call $tail))"#,
        // exceptions
        r#"(tag $oops)"#,
    ] {
        // Replace the job's memory where the case declares one of its own.
        let module = if items.starts_with("(memory") {
            format!(
                r#"(module {items}
                    (export "memory" (memory 0))
                    (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
                    (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#
            )
        } else {
            format!(
                r#"(module {items}
                    (memory (export "memory") 1)
                    (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
                    (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#
            )
        };
        let wasm = wat(&module);
        assert!(matches!(vm.validate(&wasm), Err(VmError::Malformed(_))), "{items}: {:?}", vm.validate(&wasm));
    }
}

// ---- host functions ----

#[test]
fn log_is_kept_and_truncated_at_the_limit() {
    let vm = vm();
    let outcome = vm.execute(&fixtures::log_wasm(), b"hi ", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.log, b"hi hi hi ");

    let limit = vm.config().log_size_bytes_max;
    let input: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
    let outcome = vm.execute(&fixtures::log_wasm(), &input, FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.log.len(), limit);
    let expected: Vec<u8> = input.iter().chain(&input).chain(&input).copied().take(limit).collect();
    assert_eq!(outcome.log, expected);
}

#[test]
fn log_is_kept_when_the_job_fails() {
    let wasm = job_with_run(
        r#"(import "cairn" "log" (func $log (param i32 i32))) (data (i32.const 0) "before")"#,
        "(call $log (i32.const 0) (i32.const 6)) unreachable",
    );
    let outcome = vm().execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert_eq!(outcome.log, b"before");
}

#[test]
fn log_outside_memory_is_a_trap() {
    let wasm = job_with_run(
        r#"(import "cairn" "log" (func $log (param i32 i32)))"#,
        "(call $log (i32.const 65000) (i32.const 1000)) (i64.const 0)",
    );
    let outcome = vm().execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.contains("cairn.log"), "{}", outcome.message);
}

#[test]
fn abort_is_a_trap_with_the_guests_message() {
    let outcome = vm().execute(&fixtures::abort_wasm(), b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.ends_with("job aborted: bad input"), "{}", outcome.message);
}

#[test]
fn abort_after_a_refused_grow_is_a_memory_limit() {
    // What an allocator does when memory runs out: grow, fail, abort with a message.
    let wasm = job_with_run(
        r#"(import "cairn" "abort" (func $abort (param i32 i32))) (data (i32.const 0) "oom")"#,
        r#"(drop (memory.grow (i32.const 100000)))
           (call $abort (i32.const 0) (i32.const 3))
           unreachable"#,
    );
    let outcome = vm().execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::MemoryLimit);
    assert!(outcome.message.contains("oom"), "{}", outcome.message);
}

// ---- determinism ----

#[test]
fn same_job_same_outcome_across_runs_and_vms() {
    let cases = [
        (fixtures::uppercase_wasm(), b"determinism".to_vec()),
        (fixtures::float_wasm(), b"nan".to_vec()),
        (fixtures::echo_wasm(), vec![7; 5000]),
        (fixtures::grow_bomb_wasm(), Vec::new()),
    ];
    let first_vm = vm();
    let second_vm = vm();
    for (wasm, input) in &cases {
        let first = first_vm.execute(wasm, input, FUEL).expect("no internal error");
        assert_eq!(first, first_vm.execute(wasm, input, FUEL).expect("no internal error"), "same vm, cached");
        assert_eq!(first, second_vm.execute(wasm, input, FUEL).expect("no internal error"), "another vm");
    }
}

#[test]
fn nans_are_canonical() {
    for compiler in [crate::Compiler::Singlepass, crate::Compiler::Cranelift] {
        let vm = Vm::with_compiler(VmConfig::default(), compiler);
        let outcome = vm.execute(&fixtures::float_wasm(), b"nan", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::Ok);
        let f64_at = |at: usize| u64::from_le_bytes(outcome.output[at..at + 8].try_into().expect("8 bytes"));
        let f32_at = |at: usize| u32::from_le_bytes(outcome.output[at..at + 4].try_into().expect("4 bytes"));
        const F64_NAN: u64 = 0x7ff8_0000_0000_0000;
        const F32_NAN: u32 = 0x7fc0_0000;
        assert_eq!(outcome.output.len(), 56);
        for at in [0, 8, 16, 32, 40] {
            assert_eq!(f64_at(at), F64_NAN, "{compiler:?}: f64 at {at}");
        }
        for at in [24, 28, 48, 52] {
            assert_eq!(f32_at(at), F32_NAN, "{compiler:?}: f32 at {at}");
        }
    }
}

// ---- the cache and threads ----

#[test]
fn cache_is_bounded_and_results_do_not_depend_on_it() {
    let config = VmConfig { cache_modules_max: 2, ..VmConfig::default() };
    let vm = Vm::new(config);
    let modules = [fixtures::echo_wasm(), fixtures::uppercase_wasm(), fixtures::log_wasm()];
    let first: Vec<Execution> =
        modules.iter().map(|wasm| vm.execute(wasm, b"abc", FUEL).expect("no internal error")).collect();
    assert_eq!(vm.cached_modules(), 2);
    // The echo module was evicted; running it again compiles it again, same outcome.
    for (wasm, outcome) in modules.iter().zip(&first) {
        assert_eq!(&vm.execute(wasm, b"abc", FUEL).expect("no internal error"), outcome);
    }
    assert_eq!(vm.cached_modules(), 2);

    let uncached = Vm::new(VmConfig { cache_modules_max: 0, ..VmConfig::default() });
    assert_eq!(uncached.execute(&modules[1], b"abc", FUEL).expect("no internal error"), first[1]);
    assert_eq!(uncached.cached_modules(), 0);
}

#[test]
fn one_vm_serves_many_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vm>();

    let vm = Arc::new(vm());
    let wasm = Arc::new(fixtures::uppercase_wasm());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (vm, wasm) = (Arc::clone(&vm), Arc::clone(&wasm));
            std::thread::spawn(move || {
                let input = format!("thread {i}");
                let outcome = vm.execute(&wasm, input.as_bytes(), FUEL).expect("no internal error");
                (input.to_uppercase(), outcome)
            })
        })
        .collect();
    for handle in handles {
        let (expected, outcome) = handle.join().expect("job threads do not panic");
        assert_status(&outcome, JobStatus::Ok);
        assert_eq!(outcome.output, expected.as_bytes());
    }
}

#[test]
fn jobs_do_not_see_each_others_memory() {
    // The first run leaves a marker in memory; a second run of the same (cached) module
    // reads the same address and must find the module's initial contents (zero).
    let wasm = job_with_run(
        "",
        r#"(i32.store (i32.const 0) (i32.load (i32.const 100)))
           (i32.store (i32.const 100) (i32.const 0x5eed))
           (i64.const 4)"#,
    );
    let vm = vm();
    for _ in 0..2 {
        let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::Ok);
        assert_eq!(outcome.output, 0i32.to_le_bytes());
    }
}

// ---- the example jobs (built by scripts/build-jobs.sh) ----

/// The example job `name`, built: a test that needs one fails without it (scripts/test.sh
/// builds them), never skips.
pub(crate) fn example_job(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/jobs/wasm/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read {}: {e}; build the example jobs with scripts/build-jobs.sh", path.display())
    })
}

#[test]
fn example_jobs_run() {
    let cases: [(&str, &[u8], &[u8]); 6] = [
        ("uppercase", b"hello, Cairn!", b"HELLO, CAIRN!"),
        ("sha256", b"abc", b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("sha256", b"", b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("primes", b"100", b"25"),
        ("primes", b"1000000", b"78498"),
        (
            "json-transform",
            br#"{"b": "hello", "a": [1, "xy", {"d": true, "c": null}], "num": -1.5e3}"#,
            br#"{"a":[1,"yx",{"c":null,"d":true}],"b":"olleh","num":-1.5e3}"#,
        ),
    ];
    let vm = vm();
    for (name, input, expected) in cases {
        let wasm = example_job(name);
        vm.validate(&wasm).unwrap_or_else(|e| panic!("{name}.wasm is invalid: {e}"));
        let outcome = vm.execute(&wasm, input, 1_000_000_000).expect("no internal error");
        assert_eq!(outcome.status, JobStatus::Ok, "{name}: {}", outcome.message);
        assert_eq!(String::from_utf8_lossy(&outcome.output), String::from_utf8_lossy(expected), "{name}");
    }

    // Failures inside SDK-built jobs: bad input aborts with the job's message, a panic
    // traps with its location.
    {
        let wasm = example_job("primes");
        let outcome = vm.execute(&wasm, b"not a number", 1_000_000_000).expect("no internal error");
        assert_status(&outcome, JobStatus::Trap);
        assert!(outcome.message.contains("decimal number"), "{}", outcome.message);
        let outcome = vm.execute(&wasm, b"4000000000", 10_000).expect("no internal error");
        assert_status(&outcome, JobStatus::OutOfFuel);
        assert_eq!(outcome.fuel_used, 10_000);
    }
    // The SDK's allocator at the ABI's limits: a 4 MiB input, a 4 MiB output.
    let input_max = vm.config().input_size_bytes_max;
    let output_max = vm.config().output_size_bytes_max;
    {
        let wasm = example_job("sha256");
        let outcome = vm.execute(&wasm, &vec![b'a'; input_max], 1_000_000_000).expect("no internal error");
        assert_status(&outcome, JobStatus::Ok);
        assert_eq!(outcome.output, b"299285fc41a44cdb038b9fdaf494c76ca9d0c866672b2b266c1a0c17dda60a05");
    }
    {
        let wasm = example_job("uppercase");
        let outcome = vm.execute(&wasm, &vec![b'a'; output_max], 1_000_000_000).expect("no internal error");
        assert_status(&outcome, JobStatus::Ok);
        assert_eq!(outcome.output, vec![b'A'; output_max]);
        // Inputs and outputs share one limit by default: a sandbox that takes a larger input.
        let wide = Vm::new(VmConfig { input_size_bytes_max: output_max + 1, ..vm.config().clone() });
        let outcome = wide.execute(&wasm, &vec![b'a'; output_max + 1], 1_000_000_000).expect("no internal error");
        assert_status(&outcome, JobStatus::OutputTooLarge);
    }
    {
        let wasm = example_job("json-transform");
        let outcome = vm.execute(&wasm, b"[1, 2]", 1_000_000_000).expect("no internal error");
        assert_status(&outcome, JobStatus::Trap);
        assert!(outcome.message.contains("JSON object"), "{}", outcome.message);
    }
}

mod cache_disk;
mod determinism;
mod fuel;
mod hostile;
mod internal;
mod limits;
mod meter_random;
mod pool;
mod tiers;
mod worst_case;
