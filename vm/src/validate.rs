//! Static checks of a module against the job ABI and the sandbox's limits.
//!
//! Validation is a pure function of the module's bytes and the [`VmConfig`], so every
//! node reaches the same verdict. It runs before compilation: the compiler only ever sees
//! modules that passed.
//!
//! Besides the job ABI, it holds every function to the structural limits that bound what
//! compiling it costs (nesting depth, `br_table` size, operand stack depth, locals) and
//! measures what each function's frame holds on the stack ([`crate::frame_units`]).

use cairn_abi::{EXPORT_ALLOC, EXPORT_MEMORY, EXPORT_RUN, HOST_ABORT, HOST_LOG, HOST_MODULE};
use wasmer::wasmparser::{
    ExternalKind, FuncType, FuncValidator, FuncValidatorAllocations, FunctionBody, Operator, Parser, Payload, TypeRef,
    ValType, ValidPayload, Validator, ValidatorResources, WasmFeatures,
};

use crate::config::{
    BR_TABLE_TARGETS_MAX, CONTROL_DEPTH_MAX, DATA_SEGMENTS_MAX, ELEMENT_SEGMENTS_MAX, EXPORTS_MAX,
    FUNCTION_BODY_BYTES_MAX, FUNCTIONS_MAX, GLOBALS_MAX, IMPORTS_MAX, LOCALS_PER_FUNCTION_MAX, LOCALS_TOTAL_MAX,
    METERED_MODULE_BYTES_MAX, OPERAND_STACK_MAX, TABLES_MAX, TYPES_MAX, frame_units,
};
use crate::{Result, VmConfig, VmError};

/// The host functions a job may import, all from module [`HOST_MODULE`]: name, parameters,
/// results (the names are the job ABI's, `cairn-abi`).
pub(crate) const HOST_FUNCTIONS: [(&str, &[ValType], &[ValType]); 2] =
    [(HOST_ABORT, &[ValType::I32, ValType::I32], &[]), (HOST_LOG, &[ValType::I32, ValType::I32], &[])];

const ALLOC_SIGNATURE: &str = "a function (i32) -> i32";
const RUN_SIGNATURE: &str = "a function (i32, i32) -> i64";
const HOST_SIGNATURE: &str = "a function (i32, i32) -> ()";

/// The WebAssembly features jobs may use: WebAssembly 2.0 without fixed-width SIMD
/// (mutable globals, sign extension, saturating float-to-int, multi-value, bulk memory,
/// reference types). SIMD is left out because the compiler that bounds compile time
/// (single-pass, linear in the module's size) does not support it. Threads, relaxed SIMD,
/// memory64, multiple memories, exceptions, tail calls, extended constants, GC and the
/// rest are off: some are nondeterministic, the others are not needed and each is more
/// attack surface.
pub(crate) fn wasm_features() -> WasmFeatures {
    WasmFeatures::WASM2 - WasmFeatures::SIMD
}

/// What validation measured of a valid module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The stack units of each defined function's frame, in function order
    /// ([`crate::frame_units`]).
    pub(crate) frame_units: Vec<u32>,
    /// The module rewritten to meter itself ([`crate::instrument`]): what the sandbox
    /// compiles (empty until [`check`] fills it).
    pub(crate) metered: Vec<u8>,
}

/// Everything a module must pass before the sandbox compiles it: [`validate`], then the
/// limits on its metered form (the module the compiler is given), so that a module that
/// passes always compiles, within the bound of `docs/JOB-ABI.md` §5.
pub(crate) fn check(config: &VmConfig, wasm: &[u8]) -> Result<Checked> {
    let mut checked = validate(config, wasm)?;
    let metered = crate::instrument::instrument(wasm, &checked.frame_units, config.stack_units_max)
        .map_err(|e| VmError::Compile(format!("instrumenting the module: {e}")))?;
    let (function, body_bytes) = metered.largest_body;
    if body_bytes > FUNCTION_BODY_BYTES_MAX {
        return Err(VmError::FunctionLimit {
            function,
            what: "bytes of code once metered",
            count: body_bytes as u64,
            max: FUNCTION_BODY_BYTES_MAX as u64,
        });
    }
    if metered.wasm.len() > METERED_MODULE_BYTES_MAX {
        return Err(VmError::MeteredTooLarge {
            size_bytes: metered.wasm.len(),
            size_bytes_max: METERED_MODULE_BYTES_MAX,
        });
    }
    checked.metered = metered.wasm;
    Ok(checked)
}

/// What the structural pass learned about a valid module.
struct ModuleShape {
    /// Function types by type index (`None` for non-function types).
    types: Vec<Option<FuncType>>,
    /// Type index of each function, imported ones first.
    func_types: Vec<u32>,
    /// Exports: name, kind, index.
    exports: Vec<(String, ExternalKind, u32)>,
}

impl ModuleShape {
    fn func_type(&self, func_index: u32) -> Option<&FuncType> {
        let type_index = *self.func_types.get(func_index as usize)?;
        self.types.get(type_index as usize)?.as_ref()
    }
}

/// Checks `wasm` against the job ABI and `config`'s limits.
///
/// The counts of a module's items are checked first, from the section headers, so a
/// pathological module is refused before anything proportional to its contents is done.
pub(crate) fn validate(config: &VmConfig, wasm: &[u8]) -> Result<Checked> {
    if wasm.len() > config.module_size_bytes_max {
        return Err(VmError::ModuleTooLarge { size_bytes: wasm.len(), size_bytes_max: config.module_size_bytes_max });
    }
    check_counts(wasm)?;
    let checked = check_code(wasm)?;
    let shape = shape(config, wasm)?;
    check_exports(&shape)?;
    Ok(checked)
}

/// Validates the module as WebAssembly (with [`wasm_features`]), each function body
/// operator by operator against the structural limits, and measures each function's frame.
fn check_code(wasm: &[u8]) -> Result<Checked> {
    let mut validator = Validator::new_with_features(wasm_features());
    let mut allocations = FuncValidatorAllocations::default();
    let mut checked = Checked::default();
    let mut locals_total = 0u64;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(malformed)?;
        match validator.payload(&payload).map_err(malformed)? {
            ValidPayload::Func(func, body) => {
                let mut func = func.into_validator(std::mem::take(&mut allocations));
                let frame = check_function(&mut func, &body, &mut locals_total)?;
                checked.frame_units.push(frame);
                allocations = func.into_allocations();
            }
            ValidPayload::End(_) => break,
            _ => {}
        }
    }
    Ok(checked)
}

/// One function body: validated, held to the limits; returns its frame's stack units.
fn check_function(
    func: &mut FuncValidator<ValidatorResources>,
    body: &FunctionBody<'_>,
    locals_total: &mut u64,
) -> Result<u32> {
    // Before the declared locals are read, the function's locals are its parameters.
    let params = func.len_locals();
    let mut reader = body.get_binary_reader();
    func.read_locals(&mut reader).map_err(malformed)?;
    let declared = func.len_locals().saturating_sub(params);
    *locals_total += u64::from(declared);
    too_many("locals in all functions", *locals_total, LOCALS_TOTAL_MAX)?;
    let mut operators = body.get_operators_reader().map_err(malformed)?;
    let mut operands_max = 0u32;
    while !operators.eof() {
        let offset = operators.original_position();
        let operator = operators.read().map_err(malformed)?;
        let function = func.index();
        let limit = |what, count: u64, max: u64| {
            if count > max { Err(VmError::FunctionLimit { function, what, count, max }) } else { Ok(()) }
        };
        if let Operator::BrTable { targets } = &operator {
            // The default target counts too.
            limit("targets in one br_table", u64::from(targets.len()) + 1, BR_TABLE_TARGETS_MAX.into())?;
        }
        func.op(offset, &operator).map_err(malformed)?;
        // The function's own label counts as a level.
        limit("levels of nested blocks, loops and ifs", func.control_stack_height().into(), CONTROL_DEPTH_MAX.into())?;
        let operands = func.operand_stack_height();
        limit("operands on its stack at once", operands.into(), OPERAND_STACK_MAX.into())?;
        operands_max = operands_max.max(operands);
    }
    operators.finish().map_err(malformed)?;
    Ok(frame_units(params, declared, operands_max))
}

fn too_many(what: &'static str, count: u64, max: u64) -> Result<()> {
    if count > max { Err(VmError::TooMany { what, count, max }) } else { Ok(()) }
}

/// The counts of a module's items against the structural limits (`FUNCTIONS_MAX`, …),
/// read from the section headers (and, for locals, the function bodies' headers).
fn check_counts(wasm: &[u8]) -> Result<()> {
    let mut imported_functions = 0u64;
    for payload in Parser::new(0).parse_all(wasm) {
        // Malformed bytes are reported by the full validation that follows.
        let Ok(payload) = payload else { return Ok(()) };
        match payload {
            Payload::TypeSection(r) => too_many("types", r.count().into(), TYPES_MAX as u64)?,
            Payload::ImportSection(r) => {
                too_many("imports", r.count().into(), IMPORTS_MAX as u64)?;
                imported_functions = r.count().into();
            }
            Payload::FunctionSection(r) => {
                too_many("functions", imported_functions + u64::from(r.count()), FUNCTIONS_MAX as u64)?
            }
            Payload::TableSection(r) => too_many("tables", r.count().into(), TABLES_MAX as u64)?,
            Payload::GlobalSection(r) => too_many("globals", r.count().into(), GLOBALS_MAX as u64)?,
            Payload::ExportSection(r) => too_many("exports", r.count().into(), EXPORTS_MAX as u64)?,
            Payload::ElementSection(r) => too_many("element segments", r.count().into(), ELEMENT_SEGMENTS_MAX as u64)?,
            Payload::DataSection(r) => too_many("data segments", r.count().into(), DATA_SEGMENTS_MAX as u64)?,
            Payload::CodeSectionStart { count, .. } => {
                too_many("functions", imported_functions + u64::from(count), FUNCTIONS_MAX as u64)?
            }
            Payload::CodeSectionEntry(body) => {
                let Ok(locals) = body.get_locals_reader() else { return Ok(()) };
                let mut total = 0u64;
                for local in locals {
                    let Ok((count, _)) = local else { return Ok(()) };
                    total += u64::from(count);
                    too_many("locals in one function", total, LOCALS_PER_FUNCTION_MAX)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn malformed(e: impl std::fmt::Display) -> VmError {
    VmError::Malformed(e.to_string())
}

/// Walks the sections of a module that already passed the validator.
fn shape(config: &VmConfig, wasm: &[u8]) -> Result<ModuleShape> {
    let mut shape = ModuleShape { types: Vec::new(), func_types: Vec::new(), exports: Vec::new() };
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub_type in group.map_err(malformed)?.into_types() {
                        let func = match sub_type.composite_type.inner {
                            wasmer::wasmparser::CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        };
                        shape.types.push(func);
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(malformed)?;
                    let type_index = check_import(&shape, import.module, import.name, import.ty)?;
                    shape.func_types.push(type_index);
                }
            }
            Payload::FunctionSection(reader) => {
                for type_index in reader {
                    shape.func_types.push(type_index.map_err(malformed)?);
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(malformed)?;
                    if memory.initial > u64::from(config.memory_pages_max) {
                        return Err(VmError::MemoryTooLarge {
                            pages_min: memory.initial,
                            pages_max: config.memory_pages_max,
                        });
                    }
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table.map_err(malformed)?;
                    if table.ty.initial > u64::from(config.table_elements_max) {
                        return Err(VmError::TableTooLarge {
                            elements_min: table.ty.initial,
                            elements_max: config.table_elements_max,
                        });
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(malformed)?;
                    shape.exports.push((export.name.to_owned(), export.kind, export.index));
                }
            }
            Payload::StartSection { .. } => return Err(VmError::StartFunction),
            _ => {}
        }
    }
    Ok(shape)
}

/// Accepts only the ABI's host functions; returns the import's type index.
fn check_import(shape: &ModuleShape, module: &str, name: &str, ty: TypeRef) -> Result<u32> {
    let forbidden = || VmError::ForbiddenImport { module: module.to_owned(), name: name.to_owned() };
    if module != HOST_MODULE {
        return Err(forbidden());
    }
    let Some((host_name, params, results)) = HOST_FUNCTIONS.iter().find(|(n, ..)| *n == name) else {
        return Err(forbidden());
    };
    let type_index = match ty {
        TypeRef::Func(i) | TypeRef::FuncExact(i) => i,
        other => {
            let found = match other {
                TypeRef::Table(_) => "a table",
                TypeRef::Memory(_) => "a memory",
                TypeRef::Global(_) => "a global",
                TypeRef::Tag(_) => "a tag",
                TypeRef::Func(_) | TypeRef::FuncExact(_) => "a function",
            };
            return Err(VmError::ImportSignature {
                name: host_name,
                expected: HOST_SIGNATURE,
                found: found.to_owned(),
            });
        }
    };
    match shape.types.get(type_index as usize).and_then(Option::as_ref) {
        Some(f) if f.params() == *params && f.results() == *results => Ok(type_index),
        found => {
            Err(VmError::ImportSignature { name: host_name, expected: HOST_SIGNATURE, found: describe_func(found) })
        }
    }
}

fn check_exports(shape: &ModuleShape) -> Result<()> {
    let find = |name: &'static str, expected: &'static str| {
        shape
            .exports
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, kind, index)| (*kind, *index))
            .ok_or(VmError::MissingExport { name, expected })
    };

    let (kind, _) = find(EXPORT_MEMORY, "a memory")?;
    if kind != ExternalKind::Memory {
        return Err(VmError::ExportSignature { name: EXPORT_MEMORY, expected: "a memory", found: describe_kind(kind) });
    }

    let functions: [(&'static str, &'static str, &[ValType], &[ValType]); 2] = [
        (EXPORT_ALLOC, ALLOC_SIGNATURE, &[ValType::I32], &[ValType::I32]),
        (EXPORT_RUN, RUN_SIGNATURE, &[ValType::I32, ValType::I32], &[ValType::I64]),
    ];
    for (name, expected, params, results) in functions {
        let (kind, index) = find(name, expected)?;
        if kind != ExternalKind::Func {
            return Err(VmError::ExportSignature { name, expected, found: describe_kind(kind) });
        }
        match shape.func_type(index) {
            Some(f) if f.params() == params && f.results() == results => {}
            found => {
                return Err(VmError::ExportSignature { name, expected, found: describe_func(found) });
            }
        }
    }
    Ok(())
}

fn describe_kind(kind: ExternalKind) -> String {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => "a function",
        ExternalKind::Table => "a table",
        ExternalKind::Memory => "a memory",
        ExternalKind::Global => "a global",
        ExternalKind::Tag => "a tag",
    }
    .to_owned()
}

fn describe_func(f: Option<&FuncType>) -> String {
    let Some(f) = f else {
        return "a non-function type".to_owned();
    };
    let list = |types: &[ValType]| types.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match f.results() {
        [] => format!("a function ({}) -> ()", list(f.params())),
        [one] => format!("a function ({}) -> {one}", list(f.params())),
        many => format!("a function ({}) -> ({})", list(f.params()), list(many)),
    }
}
