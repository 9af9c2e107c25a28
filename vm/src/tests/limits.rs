//! Every structural and runtime limit, each refused or enforced as documented.

use super::{FUEL, assert_status, job_with_run, vm, wat};
use crate::config::{
    DATA_SEGMENTS_MAX, ELEMENT_SEGMENTS_MAX, EXPORTS_MAX, FUNCTIONS_MAX, GLOBALS_MAX, IMPORTS_MAX,
    LOCALS_PER_FUNCTION_MAX, TABLES_MAX, TYPES_MAX,
};
use crate::{Compiler, JobStatus, Vm, VmConfig, VmError};

/// A valid job with `count` copies of `item` (and `extra` once).
fn job_with_items(item: &str, count: usize, extra: &str) -> Vec<u8> {
    job_with_run(&format!("{extra} {}", item.repeat(count)), "(i64.const 0)")
}

#[track_caller]
fn assert_limit(item: &str, max: usize, what: &str, extra: &str) {
    let vm = vm();
    vm.validate(&job_with_items(item, max, extra)).unwrap_or_else(|e| panic!("{max} {what} are allowed: {e}"));
    let error = vm.validate(&job_with_items(item, max + 1, extra)).expect_err("one more is refused");
    assert!(matches!(&error, VmError::TooMany { what: w, .. } if *w == what), "{error:?}");
    let outcome = vm.execute(&job_with_items(item, max + 1, extra), b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::InvalidModule);
}

#[test]
fn functions_are_limited() {
    // The job itself defines two.
    assert_limit("(func)", FUNCTIONS_MAX - 2, "functions", "");
}

#[test]
fn globals_are_limited() {
    assert_limit("(global i32 (i32.const 0))", GLOBALS_MAX, "globals", "");
}

#[test]
fn imports_are_limited() {
    // Only the host functions may be imported, but as many times as one likes: bounded.
    assert_limit(r#"(import "cairn" "log" (func (param i32 i32)))"#, IMPORTS_MAX, "imports", "");
}

#[test]
fn exports_are_limited() {
    // The job exports three items itself; the rest are numbered globals.
    let vm = vm();
    let exports = |n: usize| {
        let items: String = (0..n).map(|i| format!(r#"(global (export "g{i}") i32 (i32.const 0))"#)).collect();
        job_with_run(&items, "(i64.const 0)")
    };
    vm.validate(&exports(EXPORTS_MAX - 3)).expect("at the limit");
    assert!(matches!(vm.validate(&exports(EXPORTS_MAX - 2)), Err(VmError::TooMany { what: "exports", .. })));
}

#[test]
fn data_segments_are_limited() {
    assert_limit(r#"(data "x")"#, DATA_SEGMENTS_MAX, "data segments", "");
}

#[test]
fn element_segments_are_limited() {
    assert_limit("(elem funcref (ref.null func))", ELEMENT_SEGMENTS_MAX, "element segments", "");
}

#[test]
fn types_are_limited() {
    // The job's two function types come first; the text format adds no duplicates for
    // explicit (type) declarations.
    let vm = vm();
    let types = |n: usize| {
        let items: String = (0..n).map(|i| format!("(type $t{i} (func (param i32) (result i32)))")).collect();
        job_with_run(&items, "(i64.const 0)")
    };
    vm.validate(&types(TYPES_MAX - 2)).expect("at the limit");
    assert!(matches!(vm.validate(&types(TYPES_MAX)), Err(VmError::TooMany { what: "types", .. })));
}

#[test]
fn tables_are_limited() {
    assert_limit("(table 0 funcref)", TABLES_MAX, "tables", "");
}

#[test]
fn locals_per_function_are_limited() {
    let vm = vm();
    let locals = |n: u64| job_with_run(&format!("(func (local {}))", "i64 ".repeat(n as usize)), "(i64.const 0)");
    vm.validate(&locals(LOCALS_PER_FUNCTION_MAX)).expect("at the limit");
    assert!(matches!(
        vm.validate(&locals(LOCALS_PER_FUNCTION_MAX + 1)),
        Err(VmError::TooMany { what: "locals in one function", .. })
    ));
}

#[test]
fn module_size_is_limited() {
    // A module of 5 MiB, almost all of it one data segment.
    let data = "\\00".repeat(5 * 1024 * 1024);
    let wasm = job_with_run(&format!("(data \"{data}\")"), "(i64.const 0)");
    assert!(matches!(vm().validate(&wasm), Err(VmError::ModuleTooLarge { .. })));
    let outcome = vm().execute(&wasm, b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::InvalidModule);
}

#[test]
fn stack_units_are_limited_exactly_with_both_compilers() {
    // Recurses as deep as the input's first byte says.
    let wasm = job_with_run(
        r#"(func $down (param i32)
             (if (local.get 0) (then (call $down (i32.sub (local.get 0) (i32.const 1))))))"#,
        "(call $down (i32.load8_u (local.get $ptr))) (i64.const 0)",
    );
    let units = crate::validate::check(&VmConfig::default(), &wasm).expect("valid").frame_units;
    // $down: the base, one parameter, at most two operands.
    assert_eq!(units[0], crate::FRAME_UNITS_BASE + 1 + 2);
    // cairn_run's frame, then one frame of $down per level: input n is n + 1 of them.
    let stack_units_max = units[2] + 100 * units[0];
    for compiler in [Compiler::Singlepass, Compiler::Cranelift] {
        let vm = Vm::with_compiler(VmConfig { stack_units_max, ..VmConfig::default() }, compiler);
        assert_status(&vm.execute(&wasm, &[99], FUEL).expect("no internal error"), JobStatus::Ok);
        let outcome = vm.execute(&wasm, &[100], FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::Trap);
        assert!(outcome.message.contains(&format!("more than {stack_units_max} stack units")), "{}", outcome.message);
        assert_eq!(outcome.output, outcome.message.as_bytes(), "a failed job's output is its reason");
    }
}

/// A job recursing without end through functions of `frame` (locals and operands), directly
/// or through a table.
fn endless_recursion(frame: &str, indirect: bool) -> Vec<u8> {
    let call = if indirect { "(call_indirect (type $t) (i32.const 0))" } else { "(call $deep)" };
    job_with_run(
        &format!(
            r#"(type $t (func))
               (table 1 funcref) (elem (i32.const 0) $deep)
               (func $deep (type $t) {frame} {call})"#
        ),
        "(call $deep) (i64.const 0)",
    )
}

#[test]
fn recursion_always_meets_the_stack_units_before_the_native_stack() {
    let locals = format!("(local {})", "i64 ".repeat(10_000));
    let operands = format!("{} {}", "(i32.const 1)".repeat(5_000), "(drop)".repeat(5_000));
    let frames = [("small", String::new()), ("10,000 locals", locals), ("5,000 operands", operands)];
    for compiler in [Compiler::Singlepass, Compiler::Cranelift] {
        let vm = Vm::with_compiler(VmConfig::default(), compiler);
        for (what, frame) in &frames {
            for indirect in [false, true] {
                let wasm = endless_recursion(frame, indirect);
                // An InternalError here would be a native stack overflow: the units must come first.
                let outcome = vm.execute(&wasm, b"", FUEL).unwrap_or_else(|e| panic!("{compiler:?} {what}: {e}"));
                assert_status(&outcome, JobStatus::Trap);
                assert!(outcome.message.contains("stack units"), "{compiler:?} {what}: {}", outcome.message);
            }
        }
    }
}

#[test]
fn memory_pages_are_limited() {
    let vm = Vm::new(VmConfig { memory_pages_max: 2, ..VmConfig::default() });
    let wasm = |pages: u32| {
        wat(&format!(
            r#"(module (memory (export "memory") {pages})
                (func (export "cairn_alloc") (param i32) (result i32) (i32.const 0))
                (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#
        ))
    };
    vm.validate(&wasm(2)).expect("at the limit");
    assert!(matches!(vm.validate(&wasm(3)), Err(VmError::MemoryTooLarge { pages_min: 3, pages_max: 2 })));
}

#[test]
fn input_output_and_log_sizes_are_limited() {
    let config = VmConfig {
        input_size_bytes_max: 100,
        output_size_bytes_max: 50,
        log_size_bytes_max: 10,
        ..VmConfig::default()
    };
    let vm = Vm::new(config);
    let echo = crate::fixtures::echo_wasm();
    assert_status(&vm.execute(&echo, &[1; 50], FUEL).expect("no internal error"), JobStatus::Ok);
    assert_status(&vm.execute(&echo, &[1; 51], FUEL).expect("no internal error"), JobStatus::OutputTooLarge);
    let outcome = vm.execute(&echo, &[1; 101], FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Trap);
    assert_eq!(outcome.fuel_used, 0);
    let outcome = vm.execute(&crate::fixtures::log_wasm(), b"0123456", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
    assert_eq!(outcome.log, b"0123456012");
}
