//! Random structured programs under the three meters: the fast meter (the pre-compilation
//! rewrite) must give exactly the outcomes of the checked middleware at every fuel limit,
//! and charge exactly what the per-operator reference charges on runs that complete.
//! Seeded: a failure names its seed and program, and replays.

use super::{FUEL, assert_status, job_with_run};
use crate::{Compiler, Execution, JobStatus, MeterMode, Vm, VmConfig};

/// How many programs each run checks.
const PROGRAMS: u64 = 60;
/// How deep statements nest.
const DEPTH_MAX: u32 = 3;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A program generator: labels are numbered so nested blocks and loops can name them.
struct Gen {
    rng: Rng,
    labels: u32,
}

impl Gen {
    /// A few statements at nesting `depth`.
    fn block(&mut self, depth: u32) -> String {
        let n = if depth == 0 { 4 + self.rng.below(8) } else { 1 + self.rng.below(4) };
        (0..n).map(|_| self.statement(depth)).collect::<Vec<_>>().join("\n")
    }

    fn label(&mut self) -> u32 {
        self.labels += 1;
        self.labels
    }

    fn statement(&mut self, depth: u32) -> String {
        let nested = depth < DEPTH_MAX;
        let choice = self.rng.below(if nested { 17 } else { 10 });
        let k = self.rng.below(1 << 16);
        match choice {
            0 => format!("(local.set $x (i32.add (local.get $x) (i32.const {k})))"),
            1 => "(local.set $x (i32.mul (local.get $x) (i32.const 31)))".to_owned(),
            2 => "(i32.store (i32.and (local.get $x) (i32.const 0xfffc)) (local.get $x))".to_owned(),
            3 => format!(
                "(local.set $x (i32.xor (local.get $x) (i32.load offset={} (i32.and (local.get $x) (i32.const 0x7ffc)))))",
                k % 64 * 4
            ),
            // May trap (division by zero) in the middle of a segment.
            4 => "(local.set $x (i32.add (local.get $x) (i32.div_u (i32.const 1000) (local.get $j))))".to_owned(),
            5 => "(local.set $j (i32.and (local.get $x) (i32.const 3)))".to_owned(),
            6 => {
                format!("(memory.fill (i32.const 16) (local.get $x) (i32.and (local.get $x) (i32.const {})))", k % 3000)
            }
            7 => "(local.set $x (call $f (local.get $x)))".to_owned(),
            8 => "(drop (memory.grow (i32.and (local.get $x) (i32.const 1))))".to_owned(),
            9 => {
                if self.rng.below(8) == 0 {
                    "(if (i32.eq (i32.and (local.get $x) (i32.const 255)) (i32.const 7)) (then unreachable))".to_owned()
                } else {
                    "(local.set $x (i32.rotl (local.get $x) (i32.const 5)))".to_owned()
                }
            }
            10 => format!(
                "(if (i32.and (local.get $x) (i32.const {})) (then {}) (else {}))",
                1 << (k % 8),
                self.block(depth + 1),
                self.block(depth + 1)
            ),
            11 => {
                // A bounded loop: its own counter, a backward br_if.
                let l = self.label();
                let n = 1 + k % 6;
                format!(
                    "(local.set $c{depth} (i32.const {n}))
                     (loop $l{l} {}
                       (local.set $c{depth} (i32.sub (local.get $c{depth}) (i32.const 1)))
                       (br_if $l{l} (local.get $c{depth})))",
                    self.block(depth + 1)
                )
            }
            12 => {
                // A forward br_if to a block without results (charged only when taken).
                let l = self.label();
                format!(
                    "(block $b{l} {} (br_if $b{l} (i32.and (local.get $x) (i32.const {}))) {})",
                    self.block(depth + 1),
                    1 << (k % 8),
                    self.block(depth + 1)
                )
            }
            13 => {
                // br_table over two nested blocks.
                let (a, b) = (self.label(), self.label());
                format!(
                    "(block $b{a} (block $b{b} (br_table $b{b} $b{a} (i32.and (local.get $x) (i32.const 1)))) {})",
                    self.block(depth + 1)
                )
            }
            14 => {
                // A br_if carrying a value (a charge point either way).
                let l = self.label();
                format!(
                    "(local.set $x (block $b{l} (result i32) (drop (br_if $b{l} (local.get $x) (i32.and (local.get $x) (i32.const 2)))) {} (i32.const {k})))",
                    self.block(depth + 1)
                )
            }
            15 => {
                // A loop left by a forward branch from inside.
                let (b, l) = (self.label(), self.label());
                format!(
                    "(local.set $c{depth} (i32.const {}))
                     (block $b{b} (loop $l{l}
                       (br_if $b{b} (i32.eqz (local.get $c{depth})))
                       {}
                       (local.set $c{depth} (i32.sub (local.get $c{depth}) (i32.const 1)))
                       (br $l{l})))",
                    k % 5,
                    self.block(depth + 1)
                )
            }
            _ => format!(
                "(if (i32.eq (i32.and (local.get $x) (i32.const 63)) (i32.const {})) (then (return (i64.const 0))))",
                k % 64
            ),
        }
    }

    /// The body of `cairn_run` and the module around it.
    fn program(&mut self) -> (String, Vec<u8>) {
        let body = self.block(0);
        let wasm = job_with_run(
            r#"(func $f (param i32) (result i32)
                 (if (result i32) (i32.and (local.get 0) (i32.const 1))
                   (then (i32.add (local.get 0) (i32.const 3)))
                   (else (i32.shr_u (local.get 0) (i32.const 1)))))"#,
            &format!(
                "(local $x i32) (local $j i32) (local $c0 i32) (local $c1 i32) (local $c2 i32) (local $c3 i32)
                 (local.set $x (local.get $len)) (local.set $j (i32.const 1))
                 {body}
                 (i32.store (i32.const 0) (local.get $x))
                 (i64.const 4)"
            ),
        );
        (body, wasm)
    }
}

fn run(vm: &Vm, wasm: &[u8], fuel: u64) -> Execution {
    vm.execute(wasm, b"random", fuel).expect("no internal error")
}

#[test]
fn random_programs_cost_the_same_under_every_meter() {
    // The production meter with both compilers; the reference meters alternate them.
    let fast = Vm::with_meter_mode(VmConfig::default(), MeterMode::Fast, Compiler::Singlepass);
    let optimized = Vm::with_meter_mode(VmConfig::default(), MeterMode::Fast, Compiler::Cranelift);
    let checked = Vm::with_meter_mode(VmConfig::default(), MeterMode::Checked, Compiler::Cranelift);
    let reference = Vm::with_meter_mode(VmConfig::default(), MeterMode::PerOperator, Compiler::Singlepass);
    let mut completed = 0;
    for seed in 1..=PROGRAMS {
        let mut generator = Gen { rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1), labels: 0 };
        let (body, wasm) = generator.program();
        let why = || format!("seed {seed}, cairn_run body:\n{body}\n");
        let outcome = run(&fast, &wasm, FUEL);
        assert_eq!(outcome, run(&optimized, &wasm, FUEL), "{}", why());
        assert_eq!(outcome, run(&checked, &wasm, FUEL), "{}", why());
        if outcome.status == JobStatus::Ok {
            completed += 1;
            assert_eq!(outcome, run(&reference, &wasm, FUEL), "{}", why());
        } else {
            assert_eq!(outcome.status, run(&reference, &wasm, FUEL).status, "{}", why());
        }
        let used = outcome.fuel_used;
        for fuel in [0, 1, used / 3, used / 2, used.saturating_sub(1), used, used + 1] {
            let short = run(&fast, &wasm, fuel);
            assert_eq!(short, run(&optimized, &wasm, fuel), "{} with fuel {fuel}", why());
            assert_eq!(short, run(&checked, &wasm, fuel), "{} with fuel {fuel}", why());
            if fuel < used {
                assert_status(&short, JobStatus::OutOfFuel);
            }
        }
    }
    // The generator must not only produce traps.
    assert!(completed >= PROGRAMS / 4, "only {completed} of {PROGRAMS} programs completed");
}
