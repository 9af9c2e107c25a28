//! Measures compile times of worst-case modules (`cairn_vm::worst_case`) with both
//! compilers, metered as the sandbox compiles them.
//!
//! ```text
//! cargo run --release -p cairn-vm --example compile_bound                 # every family at its limit
//! cargo run --release -p cairn-vm --example compile_bound -- sweep FAMILY SIZE P1 P2 …
//! ```

use std::time::Instant;

use cairn_vm::worst_case::{self, Edge, Family};
use cairn_vm::{Compiler, Vm, VmConfig};

fn family(name: &str) -> Family {
    *Family::ALL.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("unknown family {name}"))
}

fn measure(vm: &Vm, label: &str, wasm: &[u8], compilers: &[Compiler]) {
    let started = Instant::now();
    let valid = vm.validate(wasm);
    let validate_ms = started.elapsed().as_secs_f64() * 1e3;
    let verdict = match &valid {
        Ok(_) => "valid".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    let mut line = format!("{label:<40} {:>8} KiB  validate {validate_ms:>8.1} ms  {verdict}", wasm.len() / 1024);
    for &compiler in compilers {
        match vm.compile_for_benchmarks(wasm, compiler) {
            Ok((t, metered)) => {
                line += &format!("  metered {:>6} KiB  {compiler:?} {:>9.1} ms", metered / 1024, t.as_secs_f64() * 1e3)
            }
            Err(e) => line += &format!("  {compiler:?} error: {e}"),
        }
    }
    println!("{line}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let vm = Vm::new(VmConfig::default());
    let both = [Compiler::Singlepass, Compiler::Cranelift];
    if args.first().map(String::as_str) == Some("sweep") {
        let f = family(&args[1]);
        let size: usize = args[2].parse().expect("size in bytes");
        let compilers: Vec<Compiler> = match std::env::var("COMPILER").as_deref() {
            Ok("singlepass") => vec![Compiler::Singlepass],
            Ok("cranelift") => vec![Compiler::Cranelift],
            _ => both.to_vec(),
        };
        for p in &args[3..] {
            let param: u32 = p.parse().expect("parameter");
            let wasm = worst_case::with_param(f, param, size);
            measure(&vm, &format!("{} param {param}", f.name()), &wasm, &compilers);
        }
        return;
    }
    for f in Family::ALL {
        for edge in [Edge::At, Edge::Past] {
            let wasm = worst_case::module(f, edge);
            measure(&vm, &format!("{} {edge:?}", f.name()), &wasm, &both);
        }
    }
}
