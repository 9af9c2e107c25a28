//! Runs one metering benchmark case N times and prints the fastest and the median run by
//! the thread's CPU time: on a shared machine the fastest run is the least disturbed one,
//! which wall-clock medians are not. Interleave processes (metered, unmetered, another
//! build) to compare them: `meter_cycles <compute|memory|primes|sha256>
//! <metered|singlepass|unmetered|native> <runs>` (`metered`: Cranelift, the optimized tier;
//! `singlepass`: the first tier; `native`: only `sha256`, the job's code compiled natively).

#![allow(missing_docs)]

use cairn_vm::{Compiler, JobStatus, Vm, VmConfig};

/// The `sha256` job's own code, compiled natively (the `native` variant of `sha256`).
#[path = "../../examples/jobs/sha256/src/sha256.rs"]
mod job_sha256;
#[path = "../benches/support/mod.rs"]
mod support;

use support::{example, metering_cases, thread_cpu_ns};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, case, variant, runs] = &args[..] else {
        panic!("usage: meter_cycles <compute|memory|primes|sha256> <metered|singlepass|unmetered|native> <runs>");
    };
    let runs: u32 = runs.parse().expect("runs is a number");
    let (wasm, input) = match case.as_str() {
        "sha256" => {
            (example("sha256").expect("run scripts/build-jobs.sh first"), (0..1 << 20).map(|i: u32| i as u8).collect())
        }
        other => metering_cases()
            .into_iter()
            .find_map(|(name, wasm, input)| (name == other).then_some((wasm, input)))
            .unwrap_or_else(|| panic!("unknown case {other} (primes needs scripts/build-jobs.sh)")),
    };
    if variant == "native" {
        assert_eq!(case, "sha256", "only sha256 has a native variant");
        let mut times_ns: Vec<u64> = (0..runs.max(1))
            .map(|_| {
                let start = thread_cpu_ns();
                std::hint::black_box(job_sha256::sha256(std::hint::black_box(&input)));
                thread_cpu_ns() - start
            })
            .collect();
        times_ns.sort_unstable();
        println!("{case} {variant}: min {} ns, median {} ns", times_ns[0], times_ns[times_ns.len() / 2]);
        return;
    }
    let vm = match variant.as_str() {
        "metered" => Vm::with_compiler(VmConfig::default(), Compiler::Cranelift),
        "singlepass" => Vm::with_compiler(VmConfig::default(), Compiler::Singlepass),
        "unmetered" => Vm::unmetered_for_benchmarks(VmConfig::default(), Compiler::Cranelift),
        other => panic!("unknown variant {other}"),
    };
    // Compiled and warm before timing.
    vm.execute(&wasm, &input, 10_000_000_000).expect("no internal error");
    let mut times_ns: Vec<u64> = (0..runs.max(1))
        .map(|_| {
            let start = thread_cpu_ns();
            let outcome = vm.execute(&wasm, &input, 10_000_000_000).expect("no internal error");
            let elapsed = thread_cpu_ns() - start;
            assert_eq!(outcome.status, JobStatus::Ok);
            elapsed
        })
        .collect();
    times_ns.sort_unstable();
    println!("{case} {variant}: min {} ns, median {} ns", times_ns[0], times_ns[times_ns.len() / 2]);
}
