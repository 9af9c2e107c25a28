//! Static checks of a module against the job ABI and the sandbox's limits.
//!
//! Validation is a pure function of the module's bytes and the [`VmConfig`], so every
//! node reaches the same verdict. It runs before compilation: the compiler only ever sees
//! modules that passed.

use wasmer::wasmparser::{ExternalKind, FuncType, Parser, Payload, TypeRef, ValType, Validator, WasmFeatures};

use crate::config::{
    DATA_SEGMENTS_MAX, ELEMENT_SEGMENTS_MAX, EXPORTS_MAX, FUNCTIONS_MAX, GLOBALS_MAX, IMPORTS_MAX,
    LOCALS_PER_FUNCTION_MAX, TABLES_MAX, TYPES_MAX,
};
use crate::{Result, VmConfig, VmError};

/// The host functions a job may import, all from module [`HOST_MODULE`]: name, parameters,
/// results.
pub(crate) const HOST_FUNCTIONS: [(&str, &[ValType], &[ValType]); 2] =
    [("abort", &[ValType::I32, ValType::I32], &[]), ("log", &[ValType::I32, ValType::I32], &[])];

/// The module name of the host imports.
pub const HOST_MODULE: &str = "cairn";
/// Name of the exported memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Name of the exported allocator, `(len: i32) -> i32`.
pub const EXPORT_ALLOC: &str = "cairn_alloc";
/// Name of the exported entry point, `(input_ptr: i32, input_len: i32) -> i64`.
pub const EXPORT_RUN: &str = "cairn_run";

const ALLOC_SIGNATURE: &str = "a function (i32) -> i32";
const RUN_SIGNATURE: &str = "a function (i32, i32) -> i64";
const HOST_SIGNATURE: &str = "a function (i32, i32) -> ()";

/// The WebAssembly features jobs may use: exactly WebAssembly 2.0 (mutable globals,
/// sign extension, saturating float-to-int, multi-value, bulk memory, reference types and
/// fixed-width SIMD). Threads, relaxed SIMD, memory64, multiple memories, exceptions,
/// tail calls, extended constants, GC and the rest are off: some are nondeterministic,
/// the others are not needed and each is more attack surface.
pub(crate) fn wasm_features() -> WasmFeatures {
    WasmFeatures::WASM2
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
pub(crate) fn validate(config: &VmConfig, wasm: &[u8]) -> Result<()> {
    if wasm.len() > config.module_size_bytes_max {
        return Err(VmError::ModuleTooLarge { size_bytes: wasm.len(), size_bytes_max: config.module_size_bytes_max });
    }
    check_counts(wasm)?;
    Validator::new_with_features(wasm_features()).validate_all(wasm).map_err(|e| VmError::Malformed(e.to_string()))?;
    let shape = shape(config, wasm)?;
    check_exports(&shape)
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
            return Err(VmError::ImportSignature {
                name: host_name,
                expected: HOST_SIGNATURE,
                found: format!("{other:?}"),
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
