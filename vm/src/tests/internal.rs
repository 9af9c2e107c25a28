//! Failures of the node, not of the job, are never job statuses: a panic in the sandbox and
//! memory the host cannot reserve are [`InternalError`]s, while a job's own `memory.grow`
//! refused at the limit stays the deterministic `MemoryLimit`.

use std::process::Command;

use super::{FUEL, assert_status, vm};
use crate::host::test_hooks;
use crate::{InternalError, JobStatus, Vm, VmConfig, fixtures};

#[test]
fn a_panic_in_the_sandbox_is_an_internal_error_not_a_status() {
    let vm = vm();
    let wasm = fixtures::log_wasm();
    test_hooks::panic_in_log(true);
    let executed = vm.execute(&wasm, b"x", FUEL);
    let again = vm.execute(&wasm, b"x", FUEL);
    test_hooks::panic_in_log(false);
    let error = executed.expect_err("a panic is not an outcome");
    assert!(error.reason.contains("panicked") && error.reason.contains("test hook"), "{error}");
    assert!(again.expect_err("a second run gets no verdict either").reason.contains("panicked"));
    // The sandbox is still usable, and the job itself is fine.
    let outcome = vm.execute(&wasm, b"x", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::Ok);
}

const CHILD_ENV: &str = "CAIRN_VM_RESERVATION_CHILD";
const CHILD_DONE: &str = "--- cairn-vm reservation child done ---";

/// The process's address space in bytes (`VmSize`).
fn address_space_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize in /proc/self/status");
    kib * 1024
}

/// Sets the soft limit of the address space (the hard limit is kept, so it can be raised
/// again).
fn set_address_space_limit(bytes: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the `rlimit` passed by reference.
    #[allow(unsafe_code)]
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0, "getrlimit");
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0, "setrlimit");
    }
}

/// Runs `echo` once with the address space capped 1 GiB above what the process uses, so
/// the job memory's reservation (several GiB of address space) fails, then once uncapped.
fn run_with_reservation_failing(vm: &Vm) -> (Result<crate::Execution, InternalError>, crate::Execution) {
    let wasm = fixtures::echo_wasm();
    vm.prepare(&wasm).expect("echo compiles");
    set_address_space_limit(address_space_bytes() + (1 << 30));
    let starved = vm.execute(&wasm, b"x", FUEL);
    set_address_space_limit(u64::MAX);
    let fed = vm.execute(&wasm, b"x", FUEL).expect("no internal error once the limit is lifted");
    (starved, fed)
}

/// The child of [`a_memory_reservation_failure_is_an_internal_error_not_memory_limit`]: it
/// caps its own address space, which must not happen in a process running other tests.
#[test]
fn reservation_child_process() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    for regions in [0, 2] {
        let vm = Vm::new(VmConfig { memory_pool_regions: regions, ..VmConfig::default() });
        let (starved, fed) = run_with_reservation_failing(&vm);
        let error = starved.expect_err("a failed reservation is not an outcome");
        assert!(error.reason.contains("could not be reserved"), "pool of {regions}: {error}");
        assert_status(&fed, JobStatus::Ok);
        assert_eq!(fed.output, b"x");
    }
    println!("{CHILD_DONE}");
}

#[test]
fn a_memory_reservation_failure_is_an_internal_error_not_memory_limit() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args(["tests::internal::reservation_child_process", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(CHILD_DONE),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The job's own grow refused at the limit is still a deterministic status.
    let outcome = vm().execute(&fixtures::grow_bomb_wasm(), b"", FUEL).expect("no internal error");
    assert_status(&outcome, JobStatus::MemoryLimit);
}
