//! The fuel rule — cost table, segments, charge points — and the two reference meters,
//! wasmer middlewares that inject metering, the stack limit and the refused-grow flag
//! into every function body at compilation. The production meter, [`MeterMode::Fast`], is
//! a rewrite of the module's bytes instead ([`crate::instrument`]) that charges at the same
//! points the same amounts.
//!
//! The cost of each operator is [`operator_cost`] (the table is `docs/FUEL.md`); bulk
//! operations add a charge proportional to their size ([`dynamic_cost_kind`]).
//!
//! # Segments
//!
//! Fuel is subtracted per *segment*: the operators from one charge point to the next. A
//! charge point is an operator at which control may leave straight-line code: `loop`,
//! `end`, `if`, `else`, `br`, `br_table`, `return`, `call`, `call_indirect`, a bulk
//! operation, and a `br_if` — except a `br_if` that jumps forward to a `block` or `if`
//! without results, which is charged only when taken (on the not-taken path its segment
//! simply continues). The whole segment is charged when execution reaches its last
//! operator, before that operator runs. A trap inside a segment leaves it uncharged.
//!
//! # Checks
//!
//! [`MeterMode::Fast`], the production meter, only subtracts at charge points and checks
//! for exhaustion (remaining fuel below zero) at function entry, at each loop header and
//! at each bulk operation: every path that can run long passes one of them, so a job
//! still halts, and straight-line code between checks is bounded by the module's size.
//! [`MeterMode::Checked`] (a middleware here) checks at every charge point, before
//! subtracting. Both charge at the same points, so a run that completes (or traps) uses
//! exactly the same fuel under both; a run that exhausts its fuel is `OutOfFuel` under
//! both, with `fuel_used` reported as the limit (the fast meter may stop a little later,
//! with the remaining fuel negative, but nothing it does after the segment that overdrew
//! the fuel reaches the outcome). [`MeterMode::PerOperator`] (the other middleware) is the
//! reference meter: it charges and checks every operator on its own, before it runs; on a
//! completed run it charges exactly the sum of the costs of the operators executed.
//!
//! # Globals
//!
//! The middleware appends globals to the module (the guest's code was validated before
//! they existed, so it cannot name them) and exports the ones the host reads:
//! [`EXPORT_FUEL`] (i64, remaining fuel, set by the host per job), [`EXPORT_STOP`] (i32,
//! why the meter stopped the job: [`STOP_FUEL`] or [`STOP_STACK`]),
//! [`EXPORT_GROW_REFUSED`] (i32, whether a `memory.grow` returned -1) and
//! [`EXPORT_STACK_UNITS`] (i32, the stack units in use, set to 0 by the host before each
//! call into the job). Two scratch globals hold an operand while it is inspected (a
//! middleware cannot add locals). The rewrite adds and exports the same globals (scratch
//! values in locals).
//!
//! # Stack
//!
//! Each active call of a function holds its frame's stack units ([`crate::frame_units`],
//! measured by validation). Here a function adds them to the units global at entry and
//! takes them off again on every way out — `return`, its final `end`, and a `br`, `br_if`
//! or `br_table` to its own label (a conditional one only when taken) — so no caller needs
//! to know what it called. The rewrite instead restores the caller's own sum after each
//! call; both keep the global equal to the sum of the active frames.

use std::sync::Mutex;

use wasmer::sys::{FunctionMiddleware, MiddlewareError, MiddlewareReaderState, ModuleMiddleware};
use wasmer::wasmparser::{BlockType, Operator};
use wasmer::{ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, Mutability, Type};

/// Export of the remaining-fuel global (i64).
pub(crate) const EXPORT_FUEL: &str = "cairn_vm_fuel_remaining";
/// Export of the stop-reason global (i32): 0, [`STOP_FUEL`] or [`STOP_STACK`].
pub(crate) const EXPORT_STOP: &str = "cairn_vm_stop";
/// Export of the refused-grow flag (i32, 1 once a `memory.grow` returned -1).
pub(crate) const EXPORT_GROW_REFUSED: &str = "cairn_vm_memory_grow_refused";
/// Export of the stack units in use (i32).
pub(crate) const EXPORT_STACK_UNITS: &str = "cairn_vm_stack_units";

/// The stop-reason value when the fuel ran out.
pub(crate) const STOP_FUEL: i32 = 1;
/// The stop-reason value when a call would have held more stack units than the limit.
pub(crate) const STOP_STACK: i32 = 2;

/// Bytes of `memory.copy`, `memory.fill` or `memory.init` per unit of fuel (rounded up).
pub const FUEL_BYTES_PER_UNIT: u64 = 64;
/// Fuel per 64 KiB page that `memory.grow` adds (charged only when the grow succeeds):
/// the same rate as filling the page, [`WASM_PAGE_SIZE_BYTES`](crate::WASM_PAGE_SIZE_BYTES)
/// / [`FUEL_BYTES_PER_UNIT`].
pub const FUEL_PER_PAGE_GROWN: u64 = 1024;
/// Fuel per table element of `table.copy`, `table.fill`, `table.init`, and per element
/// that `table.grow` adds (when it succeeds).
pub const FUEL_PER_TABLE_ELEMENT: u64 = 1;

/// The fuel an operator costs by itself (before any size-dependent charge). This is the
/// table of `docs/FUEL.md`; changing it changes jobs' outcomes, so it is part of the ABI.
pub fn operator_cost(operator: &Operator<'_>) -> u64 {
    use Operator as O;
    match operator {
        O::I32DivS
        | O::I32DivU
        | O::I32RemS
        | O::I32RemU
        | O::I64DivS
        | O::I64DivU
        | O::I64RemS
        | O::I64RemU
        | O::F32Div
        | O::F64Div
        | O::F32Sqrt
        | O::F64Sqrt
        | O::F32x4Div
        | O::F64x2Div
        | O::F32x4Sqrt
        | O::F64x2Sqrt => 3,
        O::Call { .. } => 2,
        O::CallIndirect { .. } => 3,
        O::MemoryCopy { .. }
        | O::MemoryFill { .. }
        | O::MemoryInit { .. }
        | O::TableCopy { .. }
        | O::TableFill { .. }
        | O::TableInit { .. }
        | O::MemoryGrow { .. }
        | O::TableGrow { .. } => 2,
        _ => 1,
    }
}

/// How an operator's cost depends on its operands, on top of [`operator_cost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dynamic {
    /// `memory.copy`/`fill`/`init`: ⌈n / [`FUEL_BYTES_PER_UNIT`]⌉, n the byte count (the
    /// top operand), charged before the operation runs.
    Bytes,
    /// `table.copy`/`fill`/`init`: n × [`FUEL_PER_TABLE_ELEMENT`], charged before.
    Elements,
    /// `memory.grow`: pages × [`FUEL_PER_PAGE_GROWN`], charged after, only if it succeeded.
    MemoryGrow,
    /// `table.grow`: elements × [`FUEL_PER_TABLE_ELEMENT`], charged after, only if it
    /// succeeded.
    TableGrow,
}

/// The size-dependent part of an operator's cost, if any.
pub(crate) fn dynamic_cost_kind(operator: &Operator<'_>) -> Option<Dynamic> {
    use Operator as O;
    match operator {
        O::MemoryCopy { .. } | O::MemoryFill { .. } | O::MemoryInit { .. } => Some(Dynamic::Bytes),
        O::TableCopy { .. } | O::TableFill { .. } | O::TableInit { .. } => Some(Dynamic::Elements),
        O::MemoryGrow { .. } => Some(Dynamic::MemoryGrow),
        O::TableGrow { .. } => Some(Dynamic::TableGrow),
        _ => None,
    }
}

/// Where the meter checks for exhaustion; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MeterMode {
    /// Subtract at charge points, check at function entry, loop headers and bulk operations.
    Fast,
    /// Check before every subtraction, at the same charge points as `Fast`.
    Checked,
    /// The reference meter: charge and check each operator on its own.
    PerOperator,
}

/// Indexes of the globals the middleware adds.
#[derive(Clone, Copy, Debug)]
struct Globals {
    fuel: u32,
    stop: u32,
    grow_refused: u32,
    units: u32,
    scratch_n: u32,
    scratch_r: u32,
}

/// The module middleware. One instance per compilation: it records the indexes of the
/// globals it added to that module.
#[derive(Debug)]
pub(crate) struct Meter {
    mode: MeterMode,
    /// The stack units of each defined function's frame, in order (from validation).
    frame_units: Vec<u32>,
    stack_units_max: u32,
    globals: Mutex<Option<Globals>>,
}

impl Meter {
    pub(crate) fn new(mode: MeterMode, frame_units: Vec<u32>, stack_units_max: u32) -> Self {
        Meter { mode, frame_units, stack_units_max, globals: Mutex::new(None) }
    }
}

impl ModuleMiddleware for Meter {
    fn generate_function_middleware(&self, index: LocalFunctionIndex) -> Box<dyn FunctionMiddleware> {
        let globals = self
            .globals
            .lock()
            .expect("the meter's lock is never held across a panic")
            .expect("wasmer transforms the module info before generating function middlewares");
        Box::new(FunctionMeter {
            mode: self.mode,
            frame_units: self.frame_units.get(index.as_u32() as usize).copied().unwrap_or(u32::MAX),
            stack_units_max: self.stack_units_max,
            entered: false,
            g: globals,
            accumulated: 0,
            frames: vec![Frame::Function],
        })
    }

    fn transform_module_info(&self, module_info: &mut wasmer::ModuleInfo) -> Result<(), MiddlewareError> {
        let mut globals = self.globals.lock().expect("the meter's lock is never held across a panic");
        if globals.is_some() {
            return Err(MiddlewareError::new("Meter", "one instance must not be used for two modules"));
        }
        let mut add = |ty: Type, init: GlobalInit| {
            let index = module_info.globals.push(GlobalType::new(ty, Mutability::Var));
            module_info.global_initializers.push(init);
            index
        };
        let fuel = add(Type::I64, GlobalInit::I64Const(0));
        let stop = add(Type::I32, GlobalInit::I32Const(0));
        let grow_refused = add(Type::I32, GlobalInit::I32Const(0));
        let units = add(Type::I32, GlobalInit::I32Const(0));
        let scratch_n = add(Type::I32, GlobalInit::I32Const(0));
        let scratch_r = add(Type::I32, GlobalInit::I32Const(0));
        module_info.exports.insert(EXPORT_FUEL.to_owned(), ExportIndex::Global(fuel));
        module_info.exports.insert(EXPORT_STOP.to_owned(), ExportIndex::Global(stop));
        module_info.exports.insert(EXPORT_GROW_REFUSED.to_owned(), ExportIndex::Global(grow_refused));
        module_info.exports.insert(EXPORT_STACK_UNITS.to_owned(), ExportIndex::Global(units));
        *globals = Some(Globals {
            fuel: fuel.as_u32(),
            stop: stop.as_u32(),
            grow_refused: grow_refused.as_u32(),
            units: units.as_u32(),
            scratch_n: scratch_n.as_u32(),
            scratch_r: scratch_r.as_u32(),
        });
        Ok(())
    }
}

/// A label of the function's original code, for deciding whether a `br_if` can be
/// charged only when taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Function,
    Loop,
    /// A `block` or `if`; `true` when it has no results (branching to it carries no values).
    Forward(bool),
}

#[derive(Debug)]
struct FunctionMeter {
    mode: MeterMode,
    /// This function's frame, in stack units.
    frame_units: u32,
    stack_units_max: u32,
    /// Whether the entry code was emitted (before the first operator).
    entered: bool,
    g: Globals,
    /// Cost of the current segment so far.
    accumulated: u64,
    frames: Vec<Frame>,
}

/// Fuel amounts are subtracted as i64; a segment's cost is far below that.
pub(crate) fn as_i64(cost: u64) -> i64 {
    i64::try_from(cost).unwrap_or(i64::MAX)
}

/// Follows the labels of the function's original code: `operator` opens or closes one.
pub(crate) fn track_labels(frames: &mut Vec<Frame>, operator: &Operator<'_>) {
    match operator {
        Operator::Block { blockty } | Operator::If { blockty } => {
            frames.push(Frame::Forward(*blockty == BlockType::Empty))
        }
        Operator::Loop { .. } => frames.push(Frame::Loop),
        Operator::End => {
            frames.pop();
        }
        _ => {}
    }
}

/// Whether a `br_if` to `relative_depth`, inside the labels `frames` (innermost last), jumps
/// forward to a label without results: such a `br_if` is charged only when taken.
pub(crate) fn forward_without_results(frames: &[Frame], relative_depth: u32) -> bool {
    frames.len().checked_sub(1 + relative_depth as usize).is_some_and(|index| frames[index] == Frame::Forward(true))
}

impl FunctionMeter {
    /// With an i32 condition on the stack: `if { stop = reason; unreachable }`.
    fn stop_if<'a>(&self, state: &mut MiddlewareReaderState<'a>, reason: i32) {
        state.extend([
            Operator::If { blockty: BlockType::Empty },
            Operator::I32Const { value: reason },
            Operator::GlobalSet { global_index: self.g.stop },
            Operator::Unreachable,
            Operator::End,
        ]);
    }

    /// Function entry: `units += frame; if units > max { stop = STOP_STACK; unreachable }`.
    fn enter<'a>(&self, state: &mut MiddlewareReaderState<'a>) {
        state.extend([
            Operator::GlobalGet { global_index: self.g.units },
            Operator::I32Const { value: self.frame_units as i32 },
            Operator::I32Add,
            Operator::GlobalSet { global_index: self.g.units },
            Operator::GlobalGet { global_index: self.g.units },
            Operator::I32Const { value: self.stack_units_max as i32 },
            Operator::I32GtU,
        ]);
        self.stop_if(state, STOP_STACK);
    }

    /// `units -= frame`, on a way out of the function.
    fn leave<'a>(&self, state: &mut MiddlewareReaderState<'a>) {
        state.extend([
            Operator::GlobalGet { global_index: self.g.units },
            Operator::I32Const { value: self.frame_units as i32 },
            Operator::I32Sub,
            Operator::GlobalSet { global_index: self.g.units },
        ]);
    }

    /// With an i32 condition on the stack that decides whether the branch about to run leaves
    /// the function: keeps it in scratch, leaves if it holds, and puts the branch's own operand
    /// (`scratch_n`) back.
    fn leave_if<'a>(&self, state: &mut MiddlewareReaderState<'a>) {
        state.push_operator(Operator::If { blockty: BlockType::Empty });
        self.leave(state);
        state.extend([Operator::End, Operator::GlobalGet { global_index: self.g.scratch_n }]);
    }

    /// Whether a branch to `relative_depth` leaves the function (targets its own label).
    fn to_function_label(&self, relative_depth: u32) -> bool {
        relative_depth as usize + 1 == self.frames.len()
    }

    /// `if (remaining < 0) { stop = STOP_FUEL; unreachable }`
    fn check<'a>(&self, state: &mut MiddlewareReaderState<'a>) {
        state.extend([
            Operator::GlobalGet { global_index: self.g.fuel },
            Operator::I64Const { value: 0 },
            Operator::I64LtS,
        ]);
        self.stop_if(state, STOP_FUEL);
    }

    /// Checks that the fuel covers a constant cost, then subtracts it.
    fn charge<'a>(&self, state: &mut MiddlewareReaderState<'a>, cost: u64) {
        if cost == 0 {
            return;
        }
        let cost = as_i64(cost);
        state.extend([
            Operator::GlobalGet { global_index: self.g.fuel },
            Operator::I64Const { value: cost },
            Operator::I64LtS,
        ]);
        self.stop_if(state, STOP_FUEL);
        state.extend([
            Operator::GlobalGet { global_index: self.g.fuel },
            Operator::I64Const { value: cost },
            Operator::I64Sub,
            Operator::GlobalSet { global_index: self.g.fuel },
        ]);
    }

    /// Charges the current segment and starts a new one.
    fn flush<'a>(&mut self, state: &mut MiddlewareReaderState<'a>) {
        self.charge(state, self.accumulated);
        self.accumulated = 0;
    }

    /// Subtracts `base` plus the size-dependent cost computed from the scratch globals,
    /// then checks (in every mode).
    fn charge_dynamic<'a>(&self, state: &mut MiddlewareReaderState<'a>, base: u64, kind: Dynamic) {
        let n = self.g.scratch_n;
        state.extend([
            Operator::GlobalGet { global_index: self.g.fuel },
            Operator::GlobalGet { global_index: n },
            Operator::I64ExtendI32U,
        ]);
        match kind {
            Dynamic::Bytes => state.extend([
                Operator::I64Const { value: as_i64(FUEL_BYTES_PER_UNIT - 1) },
                Operator::I64Add,
                Operator::I64Const { value: as_i64(FUEL_BYTES_PER_UNIT.trailing_zeros().into()) },
                Operator::I64ShrU,
            ]),
            Dynamic::Elements => {
                state.extend([Operator::I64Const { value: as_i64(FUEL_PER_TABLE_ELEMENT) }, Operator::I64Mul])
            }
            Dynamic::MemoryGrow | Dynamic::TableGrow => {
                let unit = if kind == Dynamic::MemoryGrow { FUEL_PER_PAGE_GROWN } else { FUEL_PER_TABLE_ELEMENT };
                // select(n × unit, 0, result != -1)
                state.extend([
                    Operator::I64Const { value: as_i64(unit) },
                    Operator::I64Mul,
                    Operator::I64Const { value: 0 },
                    Operator::GlobalGet { global_index: self.g.scratch_r },
                    Operator::I32Const { value: -1 },
                    Operator::I32Ne,
                    Operator::Select,
                ]);
            }
        }
        if base > 0 {
            state.extend([Operator::I64Const { value: as_i64(base) }, Operator::I64Add]);
        }
        state.extend([Operator::I64Sub, Operator::GlobalSet { global_index: self.g.fuel }]);
        self.check(state);
    }
}

impl FunctionMiddleware for FunctionMeter {
    fn feed<'a>(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> Result<(), MiddlewareError> {
        if !self.entered {
            self.entered = true;
            self.enter(state);
        }
        let cost = operator_cost(&operator);
        if self.mode == MeterMode::PerOperator {
            self.charge(state, cost);
        } else {
            self.accumulated += cost;
        }

        track_labels(&mut self.frames, &operator);

        if let Some(kind) = dynamic_cost_kind(&operator) {
            match kind {
                Dynamic::Bytes | Dynamic::Elements => {
                    let base = std::mem::take(&mut self.accumulated);
                    state.push_operator(Operator::GlobalSet { global_index: self.g.scratch_n });
                    self.charge_dynamic(state, base, kind);
                    state.push_operator(Operator::GlobalGet { global_index: self.g.scratch_n });
                    state.push_operator(operator);
                }
                Dynamic::MemoryGrow | Dynamic::TableGrow => {
                    self.flush(state);
                    state.extend([
                        Operator::GlobalSet { global_index: self.g.scratch_n },
                        Operator::GlobalGet { global_index: self.g.scratch_n },
                    ]);
                    state.push_operator(operator);
                    state.push_operator(Operator::GlobalSet { global_index: self.g.scratch_r });
                    if kind == Dynamic::MemoryGrow {
                        // grow_refused |= (result == -1)
                        state.extend([
                            Operator::GlobalGet { global_index: self.g.grow_refused },
                            Operator::GlobalGet { global_index: self.g.scratch_r },
                            Operator::I32Const { value: -1 },
                            Operator::I32Eq,
                            Operator::I32Or,
                            Operator::GlobalSet { global_index: self.g.grow_refused },
                        ]);
                    }
                    self.charge_dynamic(state, 0, kind);
                    state.push_operator(Operator::GlobalGet { global_index: self.g.scratch_r });
                }
            }
            return Ok(());
        }

        match operator {
            // Ways out of the function: its frame's units are taken off first.
            Operator::Return => {
                self.flush(state);
                self.leave(state);
                state.push_operator(operator);
            }
            Operator::End if self.frames.is_empty() => {
                self.flush(state);
                self.leave(state);
                state.push_operator(operator);
            }
            Operator::Br { relative_depth } if self.to_function_label(relative_depth) => {
                self.flush(state);
                self.leave(state);
                state.push_operator(operator);
            }
            Operator::BrIf { relative_depth } if self.to_function_label(relative_depth) => {
                self.flush(state);
                // The condition: kept, tested, put back.
                state.extend([
                    Operator::GlobalSet { global_index: self.g.scratch_n },
                    Operator::GlobalGet { global_index: self.g.scratch_n },
                ]);
                self.leave_if(state);
                state.push_operator(operator);
            }
            Operator::BrTable { ref targets }
                if targets
                    .targets()
                    .chain(std::iter::once(Ok(targets.default())))
                    .any(|t| t.is_ok_and(|d| self.to_function_label(d))) =>
            {
                self.flush(state);
                // leaves = (index selects the function's label): some entry i naming it with
                // index == i, or the default naming it with index >= the entry count.
                let entries: Vec<u32> = targets.targets().map(|t| t.unwrap_or(u32::MAX)).collect();
                state.push_operator(Operator::GlobalSet { global_index: self.g.scratch_n });
                state.push_operator(Operator::I32Const { value: 0 });
                for (i, d) in entries.iter().enumerate() {
                    if self.to_function_label(*d) {
                        state.extend([
                            Operator::GlobalGet { global_index: self.g.scratch_n },
                            Operator::I32Const { value: i as i32 },
                            Operator::I32Eq,
                            Operator::I32Or,
                        ]);
                    }
                }
                if self.to_function_label(targets.default()) {
                    state.extend([
                        Operator::GlobalGet { global_index: self.g.scratch_n },
                        Operator::I32Const { value: entries.len() as i32 },
                        Operator::I32GeU,
                        Operator::I32Or,
                    ]);
                }
                self.leave_if(state);
                state.push_operator(operator);
            }
            Operator::Call { .. } | Operator::CallIndirect { .. } => {
                self.flush(state);
                state.push_operator(operator);
            }
            Operator::BrIf { relative_depth }
                if self.mode != MeterMode::PerOperator && forward_without_results(&self.frames, relative_depth) =>
            {
                // Charged only when taken: `if; charge; br depth+1; end`. Not taken, the
                // segment goes on.
                state.push_operator(Operator::If { blockty: BlockType::Empty });
                self.charge(state, self.accumulated);
                state.extend([Operator::Br { relative_depth: relative_depth + 1 }, Operator::End]);
            }
            Operator::End
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Else
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. } => {
                self.flush(state);
                state.push_operator(operator);
            }
            operator => state.push_operator(operator),
        }
        Ok(())
    }
}
