//! The worst-case corpus (`crate::worst_case`): every family at its limit validates, compiles
//! with the single-pass compiler and runs; one step past, validation refuses it with the
//! rule it breaks. (How long they take to compile is measured by the `compile_bound`
//! example, recorded in BENCHMARKS.md; tests do not time anything.)

use super::{FUEL, assert_status};
use crate::worst_case::{self, Edge, Family};
use crate::{Compiler, JobStatus, METERED_MODULE_BYTES_MAX, Vm, VmConfig, VmError};

#[test]
fn every_family_at_its_limit_validates_compiles_and_runs() {
    let vm = Vm::with_compiler(VmConfig::default(), Compiler::Singlepass);
    for family in Family::ALL {
        let wasm = worst_case::module(family, Edge::At);
        vm.validate(&wasm).unwrap_or_else(|e| panic!("{}: {e}", family.name()));
        let outcome = vm.execute(&wasm, b"", FUEL).unwrap_or_else(|e| panic!("{}: {e}", family.name()));
        assert_status(&outcome, JobStatus::Ok);
    }
}

#[test]
fn every_family_past_its_limit_is_refused_with_the_rule_it_breaks() {
    let vm = Vm::new(VmConfig::default());
    for family in Family::ALL {
        let wasm = worst_case::module(family, Edge::Past);
        let error = vm.validate(&wasm).expect_err(family.name());
        let rule = match &error {
            VmError::FunctionLimit { what, .. } | VmError::TooMany { what, .. } => *what,
            other => panic!("{}: refused for another reason: {other}", family.name()),
        };
        let expected = match family {
            Family::NestedBlocks | Family::NestedLoops | Family::NestedIfs => "levels of nested blocks, loops and ifs",
            Family::BrTable => "targets in one br_table",
            Family::LocalsAcrossLoops => "locals in one function",
            Family::OperandStack => "operands on its stack at once",
            Family::StraightLine => "bytes of code once metered",
            Family::ManyFunctions => "functions",
        };
        assert_eq!(rule, expected, "{}", family.name());
        // A job on it ends `InvalidModule`, its reason the same rule.
        let outcome = vm.execute(&wasm, b"", FUEL).expect("no internal error");
        assert_status(&outcome, JobStatus::InvalidModule);
        assert!(outcome.message.contains(expected), "{}", outcome.message);
    }
}

#[test]
fn a_module_whose_metered_form_is_too_large_is_refused() {
    // Nested loops grow the most when metered (a fuel check at every loop header).
    let at = worst_case::module(Family::NestedLoops, Edge::At);
    let wasm = worst_case::with_param(Family::NestedLoops, worst_case::limit(Family::NestedLoops), at.len() * 11 / 10);
    match Vm::new(VmConfig::default()).validate(&wasm) {
        Err(VmError::MeteredTooLarge { size_bytes, size_bytes_max }) => {
            assert_eq!(size_bytes_max, METERED_MODULE_BYTES_MAX);
            assert!(size_bytes > size_bytes_max);
        }
        other => panic!("expected MeteredTooLarge, got {other:?}"),
    }
}
