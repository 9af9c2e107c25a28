//! The production meter ([`MeterMode::Fast`](crate::MeterMode::Fast)): a rewrite of the
//! module's bytes before compilation that adds fuel metering, the call-depth limit and the
//! refused-grow flag.
//!
//! It charges exactly what the reference middlewares of [`crate::meter`] charge — the same
//! cost table ([`operator_cost`]), the same segments and charge points (see that module
//! and `docs/FUEL.md` §2) — and differs only in *where the remaining fuel lives* while a
//! function runs. A wasmer middleware cannot add locals, so it keeps the fuel in a global
//! and every charge is a load, a subtraction and a store through the instance's vmctx: in
//! a tight loop that load → subtract → store → next iteration's load is a dependency chain
//! through memory longer than the loop body. Here each function gets an i64 local `f`:
//!
//! - at function entry and after every `call`/`call_indirect` (the callee charged the
//!   global): `f = global fuel`;
//! - at each charge point: `f = f - cost; global fuel = f` (`local.tee` + `global.set`): the
//!   global stays exact at every instruction that can trap, so a trap or a host call sees
//!   the same remaining fuel as under the middlewares, but the store is off the
//!   loop-carried chain, which now runs through a register;
//! - the exhaustion checks (function entry, loop headers, bulk operations, as the fast
//!   middleware did) test `f < 0`.
//!
//! The stack units in use (`docs/FUEL.md` §4) and the refused-grow flag are still globals,
//! not on any loop's chain: at entry a function adds its frame's units to the global, keeps
//! the sum in an i32 local `base` and stops the job past the limit; after every call it
//! returns from, it sets the global back to `base` (so no exit path needs code of its own).
//! The refused-grow flag is updated after each `memory.grow`. The operand of a bulk
//! operation is held in two scratch i32 locals instead of scratch globals.
//!
//! The guest's own operators are copied byte for byte; only the instrumentation is
//! encoded (with `wasm-encoder`). Globals are appended after the module's own (which its
//! code was validated against, so it cannot name them) and exported under the names the
//! host reads ([`EXPORT_FUEL`], [`EXPORT_STOP`], [`EXPORT_GROW_REFUSED`]); a guest export
//! of one of those names is dropped, as the middleware's replacement did. Locals are
//! appended after the function's own, so its local indexes do not move.
//!
//! The rewrite's version is part of
//! [`INSTRUMENTATION_VERSION`](crate::engine::INSTRUMENTATION_VERSION), hence of the disk
//! cache's key.

use wasm_encoder::{
    BlockType as EBlockType, CodeSection, ConstExpr, Encode, ExportKind, ExportSection, GlobalSection, GlobalType,
    Instruction as I, RawSection, ValType as EValType,
};
use wasmer::wasmparser::{
    BinaryReaderError, ExportSectionReader, ExternalKind, FunctionBody, GlobalSectionReader, Operator, Parser, Payload,
    TypeRef,
};

use crate::meter::{
    Dynamic, EXPORT_FUEL, EXPORT_GROW_REFUSED, EXPORT_STACK_UNITS, EXPORT_STOP, FUEL_BYTES_PER_UNIT,
    FUEL_PER_PAGE_GROWN, FUEL_PER_TABLE_ELEMENT, Frame, STOP_FUEL, STOP_STACK, as_i64, dynamic_cost_kind,
    forward_without_results, operator_cost, track_labels,
};

/// Section ids (the binary format's numbers).
const SECTION_GLOBAL: u8 = 6;
const SECTION_EXPORT: u8 = 7;

/// Where a section sits in the binary format's order (custom sections: anywhere).
fn section_order(id: u8) -> u8 {
    match id {
        1..=5 => id, // type, import, function, table, memory
        13 => 6,     // tag
        6 => 7,      // global
        7 => 8,      // export
        8 => 9,      // start
        9 => 10,     // element
        12 => 11,    // data count
        10 => 12,    // code
        11 => 13,    // data
        _ => 0,      // custom
    }
}

/// Indexes of the globals the rewrite adds.
#[derive(Clone, Copy, Debug)]
struct Globals {
    fuel: u32,
    stop: u32,
    grow_refused: u32,
    units: u32,
}

/// Indexes of the locals the rewrite adds to one function.
#[derive(Clone, Copy, Debug)]
struct Locals {
    /// The remaining fuel (i64).
    fuel: u32,
    /// A bulk operation's size operand (i32).
    n: u32,
    /// A grow's result (i32).
    r: u32,
    /// The stack units in use while this call is active, its own frame included (i32).
    base: u32,
}

/// What the first pass learns: the number of globals and of imported functions, and each
/// defined function's number of parameters.
struct Shape {
    globals: u32,
    imported_functions: u32,
    params: Vec<u32>,
}

/// A module rewritten to meter itself.
pub(crate) struct Instrumented {
    /// The rewritten module.
    pub(crate) wasm: Vec<u8>,
    /// The largest function body once metered: its index (imported functions first) and
    /// size in bytes.
    pub(crate) largest_body: (u32, usize),
}

fn shape(wasm: &[u8]) -> Result<Shape, BinaryReaderError> {
    let mut globals = 0u32;
    let mut imported_functions = 0u32;
    let mut type_params: Vec<u32> = Vec::new();
    let mut params = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    type_params.push(u32::try_from(ty?.params().len()).unwrap_or(u32::MAX));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    match import?.ty {
                        TypeRef::Global(_) => globals += 1,
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => imported_functions += 1,
                        _ => {}
                    }
                }
            }
            Payload::GlobalSection(reader) => globals += reader.count(),
            Payload::FunctionSection(reader) => {
                for type_index in reader {
                    let type_index = type_index?;
                    params.push(type_params.get(type_index as usize).copied().unwrap_or(0));
                }
            }
            _ => {}
        }
    }
    Ok(Shape { globals, imported_functions, params })
}

/// Rewrites a module that passed validation so that it meters itself (see the module
/// docs): `frame_units` are the stack units of each defined function's frame, in order
/// (from validation), `stack_units_max` the limit. Errors are malformed input, which
/// validation already excluded.
pub(crate) fn instrument(
    wasm: &[u8],
    frame_units: &[u32],
    stack_units_max: u32,
) -> Result<Instrumented, BinaryReaderError> {
    let shape = shape(wasm)?;
    let mut largest_body = (0u32, 0usize);
    let base = shape.globals;
    let g = Globals { fuel: base, stop: base + 1, grow_refused: base + 2, units: base + 3 };

    let mut out = wasm_encoder::Module::new();
    let mut globals_written = false;
    let mut exports_written = false;
    let mut code: Option<(CodeSection, u32)> = None;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if let Some((id, _)) = payload.as_section() {
            // Our sections, if the module has none of its own, go where the order wants them.
            if section_order(id) > section_order(SECTION_GLOBAL) && !globals_written {
                out.section(&added_globals(GlobalSection::new()));
                globals_written = true;
            }
            if section_order(id) > section_order(SECTION_EXPORT) && !exports_written {
                out.section(&added_exports(ExportSection::new(), g));
                exports_written = true;
            }
        }
        match payload {
            Payload::GlobalSection(reader) => {
                out.section(&added_globals(own_globals(wasm, reader)?));
                globals_written = true;
            }
            Payload::ExportSection(reader) => {
                out.section(&added_exports(own_exports(reader)?, g));
                exports_written = true;
            }
            Payload::CodeSectionStart { count, .. } => {
                code = Some((CodeSection::new(), count));
                if count == 0 {
                    out.section(&CodeSection::new());
                    code = None;
                }
            }
            Payload::CodeSectionEntry(body) => {
                let (section, count) = code.as_mut().expect("a code section entry follows the section's start");
                let index = section.len() as usize;
                let params = shape.params.get(index).copied().unwrap_or(0);
                let units = frame_units.get(index).copied().unwrap_or(u32::MAX);
                let stack = Stack { frame_units: units, units_max: stack_units_max };
                let metered = function(wasm, &body, params, g, stack)?;
                if metered.len() > largest_body.1 {
                    let index = shape.imported_functions.saturating_add(u32::try_from(index).unwrap_or(u32::MAX));
                    largest_body = (index, metered.len());
                }
                section.raw(&metered);
                if section.len() == *count {
                    out.section(&code.take().expect("just used").0);
                }
            }
            Payload::End(_) => {
                if !globals_written {
                    out.section(&added_globals(GlobalSection::new()));
                    globals_written = true;
                }
                if !exports_written {
                    out.section(&added_exports(ExportSection::new(), g));
                    exports_written = true;
                }
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection { id, data: &wasm[range] });
                }
            }
        }
    }
    Ok(Instrumented { wasm: out.finish(), largest_body })
}

/// The module's own globals, copied as they are.
fn own_globals(wasm: &[u8], reader: GlobalSectionReader<'_>) -> Result<GlobalSection, BinaryReaderError> {
    let end = reader.range().end;
    let offsets: Vec<usize> =
        reader.into_iter_with_offsets().map(|item| item.map(|(offset, _)| offset)).collect::<Result<_, _>>()?;
    let mut section = GlobalSection::new();
    for (i, start) in offsets.iter().enumerate() {
        let stop = offsets.get(i + 1).copied().unwrap_or(end);
        section.raw(&wasm[*start..stop]);
    }
    Ok(section)
}

/// Appends the fuel, stop, grow-refused and depth globals (in that order).
fn added_globals(mut section: GlobalSection) -> GlobalSection {
    let var = |val_type| GlobalType { val_type, mutable: true, shared: false };
    section.global(var(EValType::I64), &ConstExpr::i64_const(0));
    for _ in 0..3 {
        section.global(var(EValType::I32), &ConstExpr::i32_const(0));
    }
    section
}

/// The module's own exports, except any that take a name the host reads.
fn own_exports(reader: ExportSectionReader<'_>) -> Result<ExportSection, BinaryReaderError> {
    let mut section = ExportSection::new();
    for export in reader {
        let export = export?;
        if [EXPORT_FUEL, EXPORT_STOP, EXPORT_GROW_REFUSED, EXPORT_STACK_UNITS].contains(&export.name) {
            continue;
        }
        let kind = match export.kind {
            ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
            ExternalKind::Table => ExportKind::Table,
            ExternalKind::Memory => ExportKind::Memory,
            ExternalKind::Global => ExportKind::Global,
            ExternalKind::Tag => ExportKind::Tag,
        };
        section.export(export.name, kind, export.index);
    }
    Ok(section)
}

fn added_exports(mut section: ExportSection, g: Globals) -> ExportSection {
    section.export(EXPORT_FUEL, ExportKind::Global, g.fuel);
    section.export(EXPORT_STOP, ExportKind::Global, g.stop);
    section.export(EXPORT_GROW_REFUSED, ExportKind::Global, g.grow_refused);
    section.export(EXPORT_STACK_UNITS, ExportKind::Global, g.units);
    section
}

/// A function's frame and the limit, for the stack accounting.
#[derive(Clone, Copy, Debug)]
struct Stack {
    frame_units: u32,
    units_max: u32,
}

/// One function body, instrumented: its local declarations plus ours, then its operators
/// with the metering around them.
fn function(
    wasm: &[u8],
    body: &FunctionBody<'_>,
    params: u32,
    g: Globals,
    stack: Stack,
) -> Result<Vec<u8>, BinaryReaderError> {
    // The declared locals: groups of (count, type), copied as they are; ours are numbered
    // after the parameters and all of them.
    let mut reader = body.get_binary_reader();
    let groups = reader.read_var_u32()?;
    let groups_start = reader.original_position();
    let mut declared: u32 = 0;
    let mut locals_reader = body.get_locals_reader()?;
    for _ in 0..locals_reader.get_count() {
        let (count, _) = locals_reader.read()?;
        declared = declared.saturating_add(count);
    }
    let operators_start = body.get_binary_reader_for_operators()?.original_position();
    let first = params.saturating_add(declared);
    let locals = Locals { fuel: first, n: first + 1, r: first + 2, base: first + 3 };

    let mut out = Vec::with_capacity(body.range().len() * 2);
    (groups + 2).encode(&mut out);
    out.extend_from_slice(&wasm[groups_start..operators_start]);
    1u32.encode(&mut out);
    EValType::I64.encode(&mut out);
    3u32.encode(&mut out);
    EValType::I32.encode(&mut out);

    let mut meter = FunctionRewrite { out, g, l: locals, accumulated: 0, frames: vec![Frame::Function] };
    // Function entry: the fuel into the local, then the check; the frame's stack units
    // onto the global, then the check (unsigned: the units never reach 2^31).
    meter.emit(&[I::GlobalGet(g.fuel), I::LocalSet(locals.fuel)]);
    meter.check();
    meter.emit(&[
        I::GlobalGet(g.units),
        I::I32Const(stack.frame_units as i32),
        I::I32Add,
        I::LocalTee(locals.base),
        I::GlobalSet(g.units),
        I::LocalGet(locals.base),
        I::I32Const(stack.units_max as i32),
        I::I32GtU,
    ]);
    meter.stop_if(STOP_STACK);
    let mut operators = body.get_operators_reader()?;
    while !operators.eof() {
        let start = operators.original_position();
        let operator = operators.read()?;
        let raw = &wasm[start..operators.original_position()];
        meter.feed(&operator, raw);
    }
    Ok(meter.out)
}

/// The instrumentation of one function, fed its operators in order.
struct FunctionRewrite {
    out: Vec<u8>,
    g: Globals,
    l: Locals,
    /// Cost of the current segment so far.
    accumulated: u64,
    /// The labels of the original code.
    frames: Vec<Frame>,
}

impl FunctionRewrite {
    fn emit(&mut self, instructions: &[I<'_>]) {
        for instruction in instructions {
            instruction.encode(&mut self.out);
        }
    }

    /// `if (f < 0) { stop = STOP_FUEL; unreachable }`
    fn check(&mut self) {
        self.emit(&[I::LocalGet(self.l.fuel), I::I64Const(0), I::I64LtS]);
        self.stop_if(STOP_FUEL);
    }

    /// With an i32 condition on the stack: `if { stop = reason; unreachable }`.
    fn stop_if(&mut self, reason: i32) {
        self.emit(&[I::If(EBlockType::Empty), I::I32Const(reason), I::GlobalSet(self.g.stop), I::Unreachable, I::End]);
    }

    /// `f -= cost; fuel = f`.
    fn charge(&mut self, cost: u64) {
        if cost == 0 {
            return;
        }
        self.emit(&[
            I::LocalGet(self.l.fuel),
            I::I64Const(as_i64(cost)),
            I::I64Sub,
            I::LocalTee(self.l.fuel),
            I::GlobalSet(self.g.fuel),
        ]);
    }

    /// Charges the current segment and starts a new one.
    fn flush(&mut self) {
        let cost = std::mem::take(&mut self.accumulated);
        self.charge(cost);
    }

    /// Subtracts `base` plus the size-dependent cost computed from the `n` (and `r`)
    /// locals, then checks.
    fn charge_dynamic(&mut self, base: u64, kind: Dynamic) {
        self.emit(&[I::LocalGet(self.l.fuel), I::LocalGet(self.l.n), I::I64ExtendI32U]);
        match kind {
            Dynamic::Bytes => self.emit(&[
                I::I64Const(as_i64(FUEL_BYTES_PER_UNIT - 1)),
                I::I64Add,
                I::I64Const(as_i64(FUEL_BYTES_PER_UNIT.trailing_zeros().into())),
                I::I64ShrU,
            ]),
            Dynamic::Elements => self.emit(&[I::I64Const(as_i64(FUEL_PER_TABLE_ELEMENT)), I::I64Mul]),
            Dynamic::MemoryGrow | Dynamic::TableGrow => {
                let unit = if kind == Dynamic::MemoryGrow { FUEL_PER_PAGE_GROWN } else { FUEL_PER_TABLE_ELEMENT };
                // select(n × unit, 0, r != -1)
                self.emit(&[
                    I::I64Const(as_i64(unit)),
                    I::I64Mul,
                    I::I64Const(0),
                    I::LocalGet(self.l.r),
                    I::I32Const(-1),
                    I::I32Ne,
                    I::Select,
                ]);
            }
        }
        if base > 0 {
            self.emit(&[I::I64Const(as_i64(base)), I::I64Add]);
        }
        self.emit(&[I::I64Sub, I::LocalTee(self.l.fuel), I::GlobalSet(self.g.fuel)]);
        self.check();
    }

    fn feed(&mut self, operator: &Operator<'_>, raw: &[u8]) {
        self.accumulated += operator_cost(operator);

        track_labels(&mut self.frames, operator);

        if let Some(kind) = dynamic_cost_kind(operator) {
            match kind {
                Dynamic::Bytes | Dynamic::Elements => {
                    let base = std::mem::take(&mut self.accumulated);
                    self.emit(&[I::LocalSet(self.l.n)]);
                    self.charge_dynamic(base, kind);
                    self.emit(&[I::LocalGet(self.l.n)]);
                    self.out.extend_from_slice(raw);
                }
                Dynamic::MemoryGrow | Dynamic::TableGrow => {
                    self.flush();
                    self.emit(&[I::LocalTee(self.l.n)]);
                    self.out.extend_from_slice(raw);
                    self.emit(&[I::LocalSet(self.l.r)]);
                    if kind == Dynamic::MemoryGrow {
                        // grow_refused |= (r == -1)
                        self.emit(&[
                            I::GlobalGet(self.g.grow_refused),
                            I::LocalGet(self.l.r),
                            I::I32Const(-1),
                            I::I32Eq,
                            I::I32Or,
                            I::GlobalSet(self.g.grow_refused),
                        ]);
                    }
                    self.charge_dynamic(0, kind);
                    self.emit(&[I::LocalGet(self.l.r)]);
                }
            }
            return;
        }

        match operator {
            Operator::Call { .. } | Operator::CallIndirect { .. } => {
                self.flush();
                self.out.extend_from_slice(raw);
                // The callee's frame is gone: units = base. The callee charged the global:
                // f = fuel.
                self.emit(&[
                    I::LocalGet(self.l.base),
                    I::GlobalSet(self.g.units),
                    I::GlobalGet(self.g.fuel),
                    I::LocalSet(self.l.fuel),
                ]);
            }
            Operator::BrIf { relative_depth } if forward_without_results(&self.frames, *relative_depth) => {
                // Charged only when taken: `if; charge; br depth+1; end`. Not taken, the
                // segment goes on.
                self.emit(&[I::If(EBlockType::Empty)]);
                let cost = self.accumulated;
                self.charge(cost);
                self.emit(&[I::Br(relative_depth + 1), I::End]);
            }
            Operator::Loop { .. } => {
                self.flush();
                self.out.extend_from_slice(raw);
                self.check();
            }
            Operator::End
            | Operator::If { .. }
            | Operator::Else
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::Return => {
                self.flush();
                self.out.extend_from_slice(raw);
            }
            _ => self.out.extend_from_slice(raw),
        }
    }
}
