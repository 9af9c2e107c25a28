//! Generators of worst-case modules for the compiler: one family per shape that makes
//! compilers slow (deep nesting, huge `br_table`s, many locals live across many blocks, deep
//! operand stacks, long straight-line code, many functions), each built *at* a structural
//! limit of [`crate::validate`] or just past it.
//!
//! They are the test corpus behind the compile bound of `docs/JOB-ABI.md` §5: every family
//! at its limit must validate and compile within the documented time, and one step past it
//! must be refused by validation with the rule it breaks. The vm's tests, its `compile_bound`
//! example (which measures the bound on a machine) and the node's end-to-end tests use them.
//!
//! Every module is a valid job (it exports `memory`, `cairn_alloc` and `cairn_run`); the
//! pathological code sits in functions `cairn_run` calls once with an argument that makes
//! them return at once, so the modules also run.

use wasm_encoder::{
    BlockType, CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction as I, MemorySection,
    MemoryType, Module, TypeSection, ValType,
};

use crate::config::{
    BR_TABLE_TARGETS_MAX, CONTROL_DEPTH_MAX, FUNCTION_BODY_BYTES_MAX, FUNCTIONS_MAX, LOCALS_PER_FUNCTION_MAX,
    LOCALS_TOTAL_MAX, METERED_MODULE_BYTES_MAX, MODULE_SIZE_BYTES_MAX_DEFAULT, OPERAND_STACK_MAX,
};

/// A family of worst-case modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Blocks nested as deep as allowed, over and over.
    NestedBlocks,
    /// Loops nested as deep as allowed (each loop header is a fuel check), over and over.
    NestedLoops,
    /// `if`s nested as deep as allowed.
    NestedIfs,
    /// `br_table`s with as many targets as allowed, spread over nested blocks.
    BrTable,
    /// Functions with as many locals as allowed, each local read and written inside nested
    /// loops (the product of locals and blocks is what costs an SSA compiler).
    LocalsAcrossLoops,
    /// Operand stacks as deep as allowed: values pushed, then consumed.
    OperandStack,
    /// One function of straight-line arithmetic as long as allowed.
    StraightLine,
    /// As many small functions as allowed, each calling the next.
    ManyFunctions,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 8] = [
        Family::NestedBlocks,
        Family::NestedLoops,
        Family::NestedIfs,
        Family::BrTable,
        Family::LocalsAcrossLoops,
        Family::OperandStack,
        Family::StraightLine,
        Family::ManyFunctions,
    ];

    /// A short name (for reports).
    pub fn name(self) -> &'static str {
        match self {
            Family::NestedBlocks => "nested-blocks",
            Family::NestedLoops => "nested-loops",
            Family::NestedIfs => "nested-ifs",
            Family::BrTable => "br-table",
            Family::LocalsAcrossLoops => "locals-across-loops",
            Family::OperandStack => "operand-stack",
            Family::StraightLine => "straight-line",
            Family::ManyFunctions => "many-functions",
        }
    }
}

/// How close to the limits a generated module goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Exactly at the family's structural limit: valid.
    At,
    /// One step past it: refused by validation.
    Past,
}

/// Type indexes of the generated modules.
const TYPE_ALLOC: u32 = 0; // (i32) -> i32
const TYPE_RUN: u32 = 1; // (i32, i32) -> i64
const TYPE_BOMB: u32 = 2; // (i32) -> i32

/// A module of `family` at (or just past) its structural limit, as large as the size
/// limits allow: the module's own ([`MODULE_SIZE_BYTES_MAX_DEFAULT`]) and its metered
/// form's ([`METERED_MODULE_BYTES_MAX`]), whichever binds first for the family.
pub fn module(family: Family, edge: Edge) -> Vec<u8> {
    let past = u32::from(edge == Edge::Past);
    largest(family, limit(family) + past)
}

/// The largest module of `family` with `param` that stays within both size limits (each
/// family's functions are repeated to fill it).
fn largest(family: Family, param: u32) -> Vec<u8> {
    let mut size = MODULE_SIZE_BYTES_MAX_DEFAULT;
    let mut wasm = with_param(family, param, size);
    for _ in 0..8 {
        let metered = metered_module_bytes(&wasm);
        if wasm.len() <= MODULE_SIZE_BYTES_MAX_DEFAULT && metered <= METERED_MODULE_BYTES_MAX {
            break;
        }
        // Shrink in proportion to whichever limit is exceeded, with a little room.
        let ratio = (METERED_MODULE_BYTES_MAX as f64 / metered as f64)
            .min(MODULE_SIZE_BYTES_MAX_DEFAULT as f64 / wasm.len() as f64);
        size = (size as f64 * ratio * 0.99) as usize;
        wasm = with_param(family, param, size);
    }
    wasm
}

/// The structural limit that bounds `family` (the parameter of [`with_param`] at the limit).
pub fn limit(family: Family) -> u32 {
    match family {
        // The function's own label counts as one level of the control stack.
        Family::NestedBlocks | Family::NestedLoops | Family::NestedIfs => CONTROL_DEPTH_MAX - 1,
        Family::BrTable => BR_TABLE_TARGETS_MAX,
        Family::LocalsAcrossLoops => LOCALS_PER_FUNCTION_MAX as u32,
        Family::OperandStack => OPERAND_STACK_MAX,
        // The limit is on the metered body, which is the function plus its metering.
        Family::StraightLine => FUNCTION_BODY_BYTES_MAX as u32,
        // Three functions are the job's own (alloc, run, and the first bomb).
        Family::ManyFunctions => FUNCTIONS_MAX as u32 - 2,
    }
}

/// A module of `family` whose pathological functions have `param` of the family's
/// dimension (nesting depth, `br_table` targets, locals per function, operand stack
/// height, body bytes, functions), filling about `size_bytes`.
pub fn with_param(family: Family, param: u32, size_bytes: usize) -> Vec<u8> {
    let bombs: Vec<Function> = match family {
        Family::NestedBlocks => repeat(size_bytes, || nested(param, Nest::Block)),
        Family::NestedLoops => repeat(size_bytes, || nested(param, Nest::Loop)),
        Family::NestedIfs => repeat(size_bytes, || nested(param, Nest::If)),
        Family::BrTable => repeat(size_bytes, || br_table(param)),
        Family::LocalsAcrossLoops => {
            // As many functions as the module-wide limit allows at the per-function limit.
            let functions = (LOCALS_TOTAL_MAX / LOCALS_PER_FUNCTION_MAX).max(1) as usize;
            let each = size_bytes.saturating_sub(MODULE_OVERHEAD_BYTES) / functions;
            (0..functions).map(|_| locals_across_loops(param, each)).collect()
        }
        Family::OperandStack => repeat(size_bytes, || operand_stack(param)),
        Family::StraightLine => vec![straight_line_metered(param as usize)],
        Family::ManyFunctions => (0..param).map(|i| call_next(i + 3, i + 1 < param)).collect(),
    };
    assemble(bombs)
}

/// Room a module keeps for its other sections and the functions' headers.
const MODULE_OVERHEAD_BYTES: usize = 4096;

/// Copies of one function until the module is about `size_bytes` (at least one copy).
fn repeat(size_bytes: usize, make: impl Fn() -> Function) -> Vec<Function> {
    let one = make();
    // Each body also takes its size prefix and a type index (at most 5 + 3 bytes).
    let copies = (size_bytes.saturating_sub(MODULE_OVERHEAD_BYTES) / (one.byte_len() + 8)).max(1);
    (0..copies).map(|_| make()).collect()
}

#[derive(Clone, Copy)]
enum Nest {
    Block,
    Loop,
    If,
}

/// `depth` nested blocks, loops or ifs inside the function's own label (so the control
/// stack reaches `depth + 1`), with a value flowing through.
fn nested(depth: u32, kind: Nest) -> Function {
    let mut f = Function::new([]);
    for _ in 0..depth {
        match kind {
            Nest::Block => f.instruction(&I::Block(BlockType::Empty)),
            Nest::Loop => f.instruction(&I::Loop(BlockType::Empty)),
            Nest::If => f.instruction(&I::LocalGet(0)).instruction(&I::If(BlockType::Empty)),
        };
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::I32Const(1)).instruction(&I::I32Add).instruction(&I::LocalSet(0));
    for _ in 0..depth {
        f.instruction(&I::End);
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

/// Blocks nested 64 deep, and inside them `br_table`s of `targets` targets (the default
/// included) each naming one of them.
fn br_table(targets: u32) -> Function {
    const DEPTH: u32 = 64;
    let mut f = Function::new([]);
    for _ in 0..DEPTH {
        f.instruction(&I::Block(BlockType::Empty));
    }
    let labels: Vec<u32> = (0..targets.saturating_sub(1)).map(|i| i % DEPTH).collect();
    for _ in 0..4 {
        f.instruction(&I::LocalGet(0)).instruction(&I::BrTable(labels.as_slice().into(), DEPTH - 1));
    }
    for _ in 0..DEPTH {
        f.instruction(&I::End);
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

/// `locals` i64 locals, each read and written inside loops nested 8 deep, the whole
/// repeated until the body is about `size_bytes` (capped at the function-size limit).
fn locals_across_loops(locals: u32, size_bytes: usize) -> Function {
    const DEPTH: u32 = 8;
    let mut f = Function::new([(locals, ValType::I64)]);
    let budget = size_bytes.min(FUNCTION_BODY_BYTES_MAX / 4);
    let mut local = 0u32;
    while f.byte_len() < budget {
        for _ in 0..DEPTH {
            f.instruction(&I::Loop(BlockType::Empty));
        }
        // Touch a stretch of locals (1 + local index); loops never repeat (no branch back).
        for _ in 0..64 {
            let l = 1 + local % locals;
            f.instruction(&I::LocalGet(l)).instruction(&I::I64Const(1)).instruction(&I::I64Add);
            f.instruction(&I::LocalSet(l));
            local += 97;
        }
        for _ in 0..DEPTH {
            f.instruction(&I::End);
        }
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

/// `height` values pushed (the argument itself, over and over), then summed back.
fn operand_stack(height: u32) -> Function {
    let mut f = Function::new([]);
    // The argument is on the stack already counted as one; `height` in all.
    f.instruction(&I::LocalGet(0));
    for _ in 1..height {
        f.instruction(&I::LocalGet(0));
    }
    for _ in 1..height {
        f.instruction(&I::I32Add);
    }
    f.instruction(&I::End);
    f
}

/// Straight-line arithmetic on the argument, `body_bytes` long.
fn straight_line(body_bytes: usize) -> Function {
    let mut f = Function::new([]);
    // 7 bytes a step: local.get 0 (2), i32.const 3 (2), i32.mul (1), local.set 0 (2).
    while f.byte_len() + 7 + 3 <= body_bytes {
        f.instruction(&I::LocalGet(0))
            .instruction(&I::I32Const(3))
            .instruction(&I::I32Mul)
            .instruction(&I::LocalSet(0));
    }
    // Pad to the exact size with nops, then return the argument.
    while f.byte_len() + 3 < body_bytes {
        f.instruction(&I::Nop);
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

/// `wasm` metered (`wasm` must pass the structural checks, past the size limits too).
fn metered(wasm: &[u8]) -> crate::instrument::Instrumented {
    let config = crate::VmConfig { module_size_bytes_max: usize::MAX, ..crate::VmConfig::default() };
    let frame_units = match crate::validate::validate(&config, wasm) {
        Ok(checked) => checked.frame_units,
        // A module past a structural limit: metered as if its frames were small.
        Err(_) => vec![0; crate::FUNCTIONS_MAX],
    };
    crate::instrument::instrument(wasm, &frame_units, crate::STACK_UNITS_MAX_DEFAULT)
        .expect("a generated module instruments")
}

/// The size of the metered form of `wasm`.
fn metered_module_bytes(wasm: &[u8]) -> usize {
    metered(wasm).wasm.len()
}

/// The size of the largest function of `wasm` once metered.
fn metered_body_bytes(wasm: &[u8]) -> usize {
    metered(wasm).largest_body.1
}

/// Straight-line code whose metered body is `metered_bytes` long (the metering adds the
/// function's entry code and its one charge).
fn straight_line_metered(metered_bytes: usize) -> Function {
    let mut body = metered_bytes;
    for _ in 0..4 {
        let metered = metered_body_bytes(&assemble(vec![straight_line(body)]));
        if metered == metered_bytes {
            break;
        }
        body = (body + metered_bytes).saturating_sub(metered);
    }
    straight_line(body)
}

/// Returns its argument, after calling function `next` when `call` (and the argument is
/// non-zero).
fn call_next(next: u32, call: bool) -> Function {
    let mut f = Function::new([]);
    if call {
        f.instruction(&I::LocalGet(0)).instruction(&I::If(BlockType::Empty));
        f.instruction(&I::LocalGet(0)).instruction(&I::Call(next)).instruction(&I::Drop).instruction(&I::End);
    }
    f.instruction(&I::LocalGet(0)).instruction(&I::End);
    f
}

/// A job module: `cairn_alloc`, `cairn_run` (which calls every bomb with 0), the bombs.
fn assemble(bombs: Vec<Function>) -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    types.ty().function([ValType::I32, ValType::I32], [ValType::I64]);
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut functions = FunctionSection::new();
    functions.function(TYPE_ALLOC);
    functions.function(TYPE_RUN);
    for _ in &bombs {
        functions.function(TYPE_BOMB);
    }
    let mut memory = MemorySection::new();
    memory.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
    let mut exports = ExportSection::new();
    exports.export(cairn_abi::EXPORT_MEMORY, ExportKind::Memory, 0);
    exports.export(cairn_abi::EXPORT_ALLOC, ExportKind::Func, 0);
    exports.export(cairn_abi::EXPORT_RUN, ExportKind::Func, 1);

    let mut code = CodeSection::new();
    let mut alloc = Function::new([]);
    alloc.instruction(&I::I32Const(0)).instruction(&I::End);
    code.function(&alloc);
    // cairn_run: call the first bomb with 0 (the others are reached through it or left
    // uncalled: compiling them is the point), return an empty output.
    let mut run = Function::new([]);
    if !bombs.is_empty() {
        run.instruction(&I::I32Const(0)).instruction(&I::Call(2)).instruction(&I::Drop);
    }
    run.instruction(&I::I64Const(0)).instruction(&I::End);
    code.function(&run);
    for bomb in &bombs {
        code.function(bomb);
    }

    let mut module = Module::new();
    module.section(&types).section(&functions).section(&memory).section(&exports).section(&code);
    module.finish()
}
