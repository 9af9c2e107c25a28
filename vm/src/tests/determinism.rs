//! Same (module, input, fuel limit) ⇒ same output bytes, status and fuel: across runs,
//! separately built engines, meter modes, the disk cache, and separate processes.

use std::process::Command;

use sha2::{Digest, Sha256};

use super::FUEL;
use crate::{Compiler, Execution, MeterMode, Vm, VmConfig, fixtures};

/// The cases: float-heavy and NaN-producing modules, and a few others, with fuel limits
/// that let them finish and that stop them midway.
fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>, u64)> {
    let bytes: Vec<u8> = (0..=255).chain(0..=255).collect();
    vec![
        ("float_heavy", fixtures::float_heavy_wasm(), bytes.clone(), FUEL),
        ("float_heavy_short", fixtures::float_heavy_wasm(), bytes, 5_000),
        ("float", fixtures::float_wasm(), b"nan".to_vec(), FUEL),
        ("uppercase", fixtures::uppercase_wasm(), b"determinism".to_vec(), FUEL),
        ("grow_bomb", fixtures::grow_bomb_wasm(), Vec::new(), FUEL),
        ("loop", fixtures::infinite_loop_wasm(), Vec::new(), 77_777),
    ]
}

/// One line per case: name, status byte, fuel, hex of the output.
fn fingerprint(vm: &Vm) -> String {
    cases()
        .into_iter()
        .map(|(name, wasm, input, fuel)| line(name, &vm.execute(&wasm, &input, fuel).expect("no internal error")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn line(name: &str, outcome: &Execution) -> String {
    let output: String = outcome.output.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name} {:?} {} output={output}", outcome.status, outcome.fuel_used)
}

const CHILD_ENV: &str = "CAIRN_VM_DETERMINISM_CHILD";
const BEGIN: &str = "--- cairn-vm fingerprint begin ---";
const END: &str = "--- cairn-vm fingerprint end ---";

/// Prints the fingerprint when run as the child of [`same_outcomes_in_another_process`];
/// does nothing otherwise.
#[test]
fn determinism_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        println!("{BEGIN}\n{}\n{END}", fingerprint(&Vm::new(VmConfig::default())));
    }
}

#[test]
fn same_outcomes_in_another_process() {
    let here = fingerprint(&Vm::new(VmConfig::default()));
    // This test binary again, running only the child test, in a fresh process: its own
    // engines, its own compilation, its own address space.
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args(["tests::determinism::determinism_child_process", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("the test binary runs again");
    assert!(output.status.success(), "child failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let there = stdout
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(fingerprint, _)| fingerprint.trim().to_owned())
        .unwrap_or_else(|| panic!("no fingerprint in the child's output: {stdout}"));
    assert_eq!(here, there);
}

#[test]
fn same_outcomes_in_separately_built_engines_and_every_meter_mode() {
    let reference = fingerprint(&Vm::new(VmConfig::default()));
    // Each Vm compiles each module again, in an engine of its own.
    assert_eq!(reference, fingerprint(&Vm::new(VmConfig::default())));
    assert_eq!(reference, fingerprint(&Vm::with_compiler(VmConfig::default(), Compiler::Singlepass)));
    assert_eq!(reference, fingerprint(&Vm::with_compiler(VmConfig::default(), Compiler::Cranelift)));
    for compiler in [Compiler::Singlepass, Compiler::Cranelift] {
        assert_eq!(reference, fingerprint(&Vm::with_meter_mode(VmConfig::default(), MeterMode::Checked, compiler)));
    }
    // Uncached: compiled afresh for every job.
    let uncached = Vm::new(VmConfig { cache_modules_max: 0, ..VmConfig::default() });
    assert_eq!(reference, fingerprint(&uncached));
    // Repeated on the same Vm, from its cache.
    let vm = Vm::new(VmConfig::default());
    assert_eq!(fingerprint(&vm), fingerprint(&vm));
    // Pinned: any change here changes outcomes on the network (a new ABI version).
    let digest: String = Sha256::digest(reference.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    println!("fingerprint {digest}:\n{reference}");
}

#[test]
fn same_outcomes_from_many_threads_at_once() {
    let vm = std::sync::Arc::new(Vm::new(VmConfig::default()));
    let reference = fingerprint(&vm);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let vm = std::sync::Arc::clone(&vm);
            std::thread::spawn(move || fingerprint(&vm))
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("no panic"), reference);
    }
}
