//! Small job modules for tests, in this crate and in others (`cairn_vm::fixtures::echo_wasm()`).
//!
//! Each is a WAT file under `vm/tests/fixtures/`, compiled to wasm bytes on each call. All
//! follow the job ABI (docs/JOB-ABI.md) and pass [`Vm::validate`](crate::Vm::validate).

/// Returns its input unchanged (`echo.wat`).
pub fn echo_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/echo.wat"), "echo")
}

/// Returns its input with ASCII letters uppercased (`uppercase.wat`).
pub fn uppercase_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/uppercase.wat"), "uppercase")
}

/// Loops forever: always `OutOfFuel`, with `fuel_used` equal to the limit (`loop.wat`).
pub fn infinite_loop_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/loop.wat"), "loop")
}

/// Traps with `unreachable`: always `Trap` (`trap.wat`).
pub fn trap_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/trap.wat"), "trap")
}

/// Grows memory until refused, then traps: always `MemoryLimit` (`grow_bomb.wat`).
pub fn grow_bomb_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/grow_bomb.wat"), "grow_bomb")
}

/// Calls `cairn.abort("bad input")`: always `Trap`, message ending in "bad input"
/// (`abort.wat`).
pub fn abort_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/abort.wat"), "abort")
}

/// Logs its input three times with `cairn.log`, returns an empty output (`log.wat`).
pub fn log_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/log.wat"), "log")
}

/// Produces NaNs by float arithmetic and returns their bits, 56 bytes
/// (`float.wat`): tests NaN canonicalization.
pub fn float_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/float.wat"), "float")
}

/// Float-heavy arithmetic over the input (divisions, square roots, min/max, conversions,
/// NaNs); returns the results' raw bits, 32 bytes (`float_heavy.wat`): tests that
/// floating point is deterministic.
pub fn float_heavy_wasm() -> Vec<u8> {
    compile(include_str!("../tests/fixtures/float_heavy.wat"), "float_heavy")
}

fn compile(wat: &str, name: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|e| panic!("fixture {name}.wat is not valid WAT: {e}"))
}
