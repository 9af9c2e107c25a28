//! The hostile-module corpus, `vm/tests/hostile/*.wat`: one test per file, each with its
//! own status or validation error, the node's memory bounded throughout.

use super::{FUEL, assert_status, vm};
use crate::{Execution, JobStatus, Vm, VmConfig, VmError};

fn hostile(name: &str, text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap_or_else(|e| panic!("tests/hostile/{name}.wat is not valid WAT: {e}"))
}

macro_rules! hostile {
    ($name:literal) => {
        hostile($name, include_str!(concat!("../../tests/hostile/", $name, ".wat")))
    };
}

/// Runs a module that passes validation and returns the outcome.
fn run_valid(wasm: &[u8], fuel: u64) -> Execution {
    let vm = vm();
    vm.validate(wasm).expect("this hostile module passes validation");
    vm.execute(wasm, b"input", fuel).expect("no internal error")
}

/// Checks that validation fails with `expected` and that executing is `InvalidModule`
/// with no fuel.
#[track_caller]
fn assert_invalid(wasm: &[u8], expected: impl Fn(&VmError) -> bool) {
    let vm = vm();
    let error = vm.validate(wasm).expect_err("this hostile module is invalid");
    assert!(expected(&error), "unexpected error: {error:?}");
    let outcome = vm.execute(wasm, b"input", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::InvalidModule);
    assert_eq!(outcome.fuel_used, 0);
    assert_eq!(outcome.message, error.to_string());
}

#[test]
fn infinite_loop() {
    let outcome = run_valid(&hostile!("infinite_loop"), 1_000_000);
    assert_status(&outcome, JobStatus::OutOfFuel);
    assert_eq!(outcome.fuel_used, 1_000_000);
}

#[test]
fn unbounded_recursion() {
    let outcome = run_valid(&hostile!("unbounded_recursion"), u64::MAX);
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.contains("stack units"), "{}", outcome.message);
    // Deterministic, unlike a stack overflow: the same fuel every time.
    assert_eq!(outcome, run_valid(&hostile!("unbounded_recursion"), u64::MAX));
}

#[test]
fn memory_grow_bomb() {
    let outcome = run_valid(&hostile!("memory_grow_bomb"), FUEL);
    assert_status(&outcome, JobStatus::MemoryLimit);
    // Granted pages are charged: 255 of them (1 to the limit of 256).
    let pages_granted = u64::from(VmConfig::default().memory_pages_max - 1);
    assert!(outcome.fuel_used > pages_granted * crate::FUEL_PER_PAGE_GROWN, "{}", outcome.fuel_used);
}

#[test]
fn memory_grow_bomb_stays_within_the_limit() {
    // The same bomb, but returning the memory size it reached instead of trapping.
    let wasm = super::job_with_run(
        "",
        r#"(drop (memory.grow (i32.const 65536)))
           (block $full (loop $more
             (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
             (br $more)))
           (i32.store (i32.const 0) (memory.size))
           (i64.const 4)"#,
    );
    for pages_max in [1, 17, 256] {
        let vm = Vm::new(VmConfig { memory_pages_max: pages_max, ..VmConfig::default() });
        let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::Ok);
        assert_eq!(outcome.output, pages_max.to_le_bytes());
    }
}

#[test]
fn huge_data_segment() {
    let outcome = run_valid(&hostile!("huge_data_segment"), FUEL);
    assert_status(&outcome, JobStatus::Trap);
    assert_eq!(outcome.fuel_used, 0);
}

#[test]
fn huge_table() {
    assert_invalid(&hostile!("huge_table"), |e| matches!(e, VmError::TableTooLarge { elements_min: 100_000_000, .. }));
}

#[test]
fn thousands_of_functions() {
    assert_invalid(&hostile!("thousands_of_functions"), |e| {
        matches!(e, VmError::TooMany { what: "functions", count: 10_050, max: 10_000 })
    });
}

#[test]
fn start_never_ends() {
    assert_invalid(&hostile!("start_never_ends"), |e| *e == VmError::StartFunction);
}

#[test]
fn unknown_import() {
    assert_invalid(
        &hostile!("unknown_import"),
        |e| matches!(e, VmError::ForbiddenImport { module, name } if module == "wasi_snapshot_preview1" && name == "fd_write"),
    );
}

#[test]
fn wrong_run_signature() {
    assert_invalid(&hostile!("wrong_run_signature"), |e| {
        matches!(e, VmError::ExportSignature { name: "cairn_run", .. })
    });
}

#[test]
fn missing_exports() {
    assert_invalid(&hostile!("missing_exports"), |e| matches!(e, VmError::MissingExport { .. }));
}

#[test]
fn output_out_of_bounds() {
    let outcome = run_valid(&hostile!("output_out_of_bounds"), FUEL);
    assert_status(&outcome, JobStatus::Trap);
    assert!(outcome.message.contains("outside the job's memory"), "{}", outcome.message);
}

#[test]
fn output_too_large() {
    let outcome = run_valid(&hostile!("output_too_large"), FUEL);
    assert_status(&outcome, JobStatus::OutputTooLarge);
    assert!(outcome.fuel_used > 0);
}

#[test]
fn invalid_bytes() {
    assert_invalid(&hostile!("invalid_bytes"), |e| matches!(e, VmError::Malformed(_)));
}

#[test]
fn threads() {
    assert_invalid(&hostile!("threads"), |e| matches!(e, VmError::Malformed(_)));
}

#[test]
fn relaxed_simd() {
    assert_invalid(&hostile!("relaxed_simd"), |e| matches!(e, VmError::Malformed(_)));
}

#[test]
fn the_vm_keeps_working_after_the_whole_corpus() {
    // One Vm through every hostile module, then a normal job: nothing leaked into it.
    let vm = vm();
    for wasm in [
        hostile!("infinite_loop"),
        hostile!("unbounded_recursion"),
        hostile!("memory_grow_bomb"),
        hostile!("huge_data_segment"),
        hostile!("huge_table"),
        hostile!("thousands_of_functions"),
        hostile!("start_never_ends"),
        hostile!("unknown_import"),
        hostile!("wrong_run_signature"),
        hostile!("missing_exports"),
        hostile!("output_out_of_bounds"),
        hostile!("output_too_large"),
        hostile!("invalid_bytes"),
        hostile!("threads"),
        hostile!("relaxed_simd"),
    ] {
        let outcome = vm.execute(&wasm, b"input", 1_000_000).expect("no internal error");
        assert_ne!(outcome.status, JobStatus::Ok);
    }
    let outcome = vm.execute(&crate::fixtures::uppercase_wasm(), b"still here", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.output, b"STILL HERE");
}
