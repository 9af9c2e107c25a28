//! What the sandbox benchmarks (`benches/vm.rs`) and the `meter_cycles` example share: the
//! metering cases, the example jobs, and the thread's CPU clock.

use std::path::Path;

/// An example job from `scripts/build-jobs.sh`, if it was built.
pub fn example(name: &str) -> Option<Vec<u8>> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/jobs/wasm/{name}.wasm"))).ok()
}

pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("benchmark WAT is valid")
}

/// The metering cases as (name, module, input): integer arithmetic in a tight loop (2
/// million rounds of xorshift), loads and stores (8 passes over 1 MiB, each word
/// incremented), and the `primes` job if it was built.
pub fn metering_cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let mut cases = vec![
        ("compute", wat(include_str!("../compute_heavy.wat")), Vec::new()),
        ("memory", wat(include_str!("../memory_heavy.wat")), Vec::new()),
    ];
    if let Some(primes) = example("primes") {
        cases.push(("primes", primes, b"300000".to_vec()));
    }
    cases
}

/// CPU time of the calling thread, in nanoseconds: on a shared machine it leaves out the
/// time this thread waited for a core, which wall time (criterion's default) counts.
pub fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the `timespec` passed by reference.
    #[allow(unsafe_code)]
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}
