//! Sandbox benchmarks: warm start, metering overhead, SHA-256 in wasm vs native, cold
//! compile, and memory with 1,000 modules cached. Results and commands: BENCHMARKS.md.
//!
//! `cargo bench -p cairn-vm` (release). The example jobs come from
//! `scripts/build-jobs.sh`; benchmarks that need one that is absent are skipped.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn_vm::{Compiler, JobStatus, Vm, VmConfig, fixtures};
use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

/// The `sha256` example job's own SHA-256, compiled natively: the software baseline
/// (`sha2` above uses the CPU's SHA extensions where it has them).
#[path = "../../examples/jobs/sha256/src/sha256.rs"]
mod job_sha256;
mod support;

use support::{example, metering_cases, thread_cpu_ns, wat};

const FUEL: u64 = 10_000_000_000;

/// A module of about `size` bytes: many small, distinct functions, and `seed` in one of
/// them so that every seed is a distinct module.
fn sized_module(size: usize, seed: u32) -> Vec<u8> {
    let mut funcs = String::new();
    let mut i = 0;
    loop {
        funcs.push_str(&format!(
            "(func (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const {i})) (i32.xor (local.get 0) (i32.const {}))))",
            i * 7 + 1
        ));
        i += 1;
        if i % 64 == 0 && wat(&module_text(&funcs, seed)).len() >= size {
            return wat(&module_text(&funcs, seed));
        }
    }
}

fn module_text(funcs: &str, seed: u32) -> String {
    format!(
        r#"(module (memory (export "memory") 1) {funcs}
            (func (export "cairn_alloc") (param i32) (result i32) (i32.const {seed}))
            (func (export "cairn_run") (param i32 i32) (result i64) (i64.const 0)))"#
    )
}

/// Warm start with the memory pool (the default) and without it (a fresh 6 GiB
/// reservation per job, wasmer's own path), interleaved.
fn warm_start(c: &mut Criterion) {
    let pooled = Vm::new(VmConfig::default());
    let unpooled = Vm::new(VmConfig { memory_pool_regions: 0, ..VmConfig::default() });
    let wasm = fixtures::echo_wasm();
    let mut group = c.benchmark_group("warm_start");
    for (name, vm) in [("echo/pooled", &pooled), ("echo/unpooled", &unpooled)] {
        assert_eq!(vm.execute(&wasm, b"hi", FUEL).expect("no internal error").status, JobStatus::Ok);
        group.bench_function(name, |b| {
            b.iter(|| black_box(vm.execute(&wasm, black_box(b"hi"), FUEL).expect("no internal error")))
        });
    }
    group.finish();
}

/// The optimized code hot modules run ([`Tiering::Tiered`](cairn_vm::Tiering) recompiles
/// them with Cranelift), metered and not, and the single-pass code every module starts on.
fn metering(c: &mut Criterion) {
    let metered = Vm::with_compiler(VmConfig::default(), Compiler::Cranelift);
    let unmetered = Vm::unmetered_for_benchmarks(VmConfig::default(), Compiler::Cranelift);
    let singlepass = Vm::with_compiler(VmConfig::default(), Compiler::Singlepass);
    let mut group = c.benchmark_group("metering");
    group.sample_size(20).measurement_time(Duration::from_secs(6));
    let cases = metering_cases();
    for (name, wasm, input) in &cases {
        let m = metered.execute(wasm, input, FUEL).expect("no internal error");
        let u = unmetered.execute(wasm, input, FUEL).expect("no internal error");
        assert_eq!((m.status, &m.output), (JobStatus::Ok, &u.output), "{name}");
        println!("{name}: fuel {}", m.fuel_used);
        // Interleaved: noisy machines swing both alike.
        group.bench_function(format!("{name}/unmetered"), |b| {
            b.iter(|| black_box(unmetered.execute(wasm, input, FUEL).expect("no internal error")))
        });
        group.bench_function(format!("{name}/metered"), |b| {
            b.iter(|| black_box(metered.execute(wasm, input, FUEL).expect("no internal error")))
        });
        group.bench_function(format!("{name}/singlepass"), |b| {
            b.iter(|| black_box(singlepass.execute(wasm, input, FUEL).expect("no internal error")))
        });
    }
    group.finish();
}

/// The metering cases again, timed by the thread's CPU time instead of wall time.
fn metering_cpu(c: &mut Criterion) {
    let metered = Vm::with_compiler(VmConfig::default(), Compiler::Cranelift);
    let unmetered = Vm::unmetered_for_benchmarks(VmConfig::default(), Compiler::Cranelift);
    let singlepass = Vm::with_compiler(VmConfig::default(), Compiler::Singlepass);
    let mut group = c.benchmark_group("metering_cpu");
    group.sample_size(20).measurement_time(Duration::from_secs(6));
    let cases = metering_cases();
    for (name, wasm, input) in &cases {
        for (variant, vm) in [("unmetered", &unmetered), ("metered", &metered), ("singlepass", &singlepass)] {
            vm.execute(wasm, input, FUEL).expect("no internal error");
            group.bench_function(format!("{name}/{variant}"), |b| {
                b.iter_custom(|iters| {
                    let start = thread_cpu_ns();
                    for _ in 0..iters {
                        black_box(vm.execute(wasm, input, FUEL).expect("no internal error"));
                    }
                    Duration::from_nanos(thread_cpu_ns() - start)
                })
            });
        }
    }
    group.finish();
}

/// SHA-256 of 1 MiB: native `sha2` (SHA extensions when the CPU has them), the job's
/// own Rust code compiled natively (software), and the `sha256` job in wasm, unmetered
/// and metered, interleaved.
fn sha256(c: &mut Criterion) {
    let Some(wasm) = example("sha256") else {
        println!("sha256.wasm absent: run scripts/build-jobs.sh");
        return;
    };
    let vm = Vm::with_compiler(VmConfig::default(), Compiler::Cranelift);
    let unmetered = Vm::unmetered_for_benchmarks(VmConfig::default(), Compiler::Cranelift);
    let input: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let outcome = vm.execute(&wasm, &input, FUEL).expect("no internal error");
    assert_eq!(outcome.status, JobStatus::Ok);
    let native: String = Sha256::digest(&input).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(outcome.output, native.as_bytes());
    assert_eq!(unmetered.execute(&wasm, &input, FUEL).expect("no internal error").output, outcome.output);
    assert_eq!(job_sha256::sha256(&input)[..], Sha256::digest(&input)[..]);
    println!(
        "sha256 1 MiB: fuel {}; CPU SHA extensions: {}",
        outcome.fuel_used,
        std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.contains(" sha_ni"))
    );
    let mut group = c.benchmark_group("sha256_1mib");
    group.sample_size(20);
    group.bench_function("native", |b| b.iter(|| black_box(Sha256::digest(black_box(&input)))));
    group.bench_function("native_soft", |b| b.iter(|| black_box(job_sha256::sha256(black_box(&input)))));
    group.bench_function("wasm_unmetered", |b| {
        b.iter(|| black_box(unmetered.execute(&wasm, &input, FUEL).expect("no internal error")))
    });
    group.bench_function("wasm_metered", |b| {
        b.iter(|| black_box(vm.execute(&wasm, &input, FUEL).expect("no internal error")))
    });
    group.finish();
}

fn cold_compile(c: &mut Criterion) {
    let module = sized_module(100 * 1024, 0);
    println!("cold compile module: {} bytes", module.len());
    let vm = Vm::new(VmConfig { cache_modules_max: 0, ..VmConfig::default() });
    let mut group = c.benchmark_group("cold_compile");
    group.sample_size(10);
    group.bench_function("100KiB", |b| b.iter(|| black_box(vm.prepare(&module).expect("valid"))));
    group.finish();
}

fn rss_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Not a timing: resident memory before and after compiling 1,000 distinct small
/// modules into one Vm's cache (sized to hold them all), printed.
fn thousand_modules(_: &mut Criterion) {
    let modules: Vec<Vec<u8>> = (0..1000).map(|seed| sized_module(2 * 1024, seed)).collect();
    let vm = Vm::new(VmConfig { cache_modules_max: 1000, cache_bytes_max: usize::MAX, ..VmConfig::default() });
    let before = rss_kib("VmRSS:");
    let start = Instant::now();
    for wasm in &modules {
        vm.prepare(wasm).expect("valid");
    }
    let elapsed = start.elapsed();
    for wasm in modules.iter().take(10) {
        assert_eq!(vm.execute(wasm, b"", FUEL).expect("no internal error").status, JobStatus::Ok);
    }
    println!(
        "1000 modules of {} bytes cached: {} modules, {} KiB of artifacts, RSS {} KiB -> {} KiB (+{} KiB), \
         peak {} KiB, compiled in {:.2?}",
        modules[0].len(),
        vm.cached_modules(),
        vm.cached_bytes() / 1024,
        before,
        rss_kib("VmRSS:"),
        rss_kib("VmRSS:").saturating_sub(before),
        rss_kib("VmHWM:"),
        elapsed
    );
}

criterion_group!(benches, warm_start, metering, metering_cpu, sha256, cold_compile, thousand_modules);
criterion_main!(benches);
