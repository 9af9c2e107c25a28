//! Compiling a module for the sandbox: Cranelift with NaN canonicalization, the fuel and
//! memory-grow middlewares, the limiting tunables, and the WebAssembly features.

use std::sync::{Arc, Mutex};

use wasmer::sys::{
    CompilerConfig, Cranelift, EngineBuilder, Features, FunctionMiddleware, MiddlewareError, MiddlewareReaderState,
    ModuleMiddleware, NativeEngineExt,
};
use wasmer::wasmparser::Operator;
use wasmer::{Engine, ExportIndex, GlobalInit, GlobalType, LocalFunctionIndex, Module, Mutability, Type};
use wasmer_middlewares::Metering;

use crate::tunables::LimitingTunables;
use crate::{Result, VmConfig, VmError};

/// Fuel charged for each WebAssembly operator the guest executes.
///
/// Every operator costs the same for now, including `call`, `memory.grow`, `memory.copy`
/// and `memory.fill`, whatever their operands. Fuel is counted on the module's own
/// operators, before compilation, so it does not depend on the machine or the compiler's
/// output. Host calls (`cairn.abort`, `cairn.log`) cost only their `call`.
pub const FUEL_PER_OPERATOR: u64 = 1;

/// Name of the export through which the memory-grow middleware exposes its flag.
pub(crate) const GROW_REFUSED_EXPORT: &str = "cairn_vm_memory_grow_refused";

/// The cost function given to [`Metering`]; see [`FUEL_PER_OPERATOR`].
fn operator_cost(_operator: &Operator<'_>) -> u64 {
    FUEL_PER_OPERATOR
}

/// The wasmer feature set matching [`validate::wasm_features`](crate::validate): WebAssembly 2.0.
fn engine_features() -> Features {
    let mut features = Features::none();
    features
        .bulk_memory(true)
        .reference_types(true)
        .multi_value(true)
        .simd(true)
        .threads(false)
        .relaxed_simd(false)
        .memory64(false)
        .multi_memory(false)
        .exceptions(false)
        .tail_call(false)
        .extended_const(false)
        .wide_arithmetic(false);
    features
}

/// A module compiled for the sandbox, with the engine it belongs to.
///
/// Each module has its own engine: the metering middleware records per-module state and
/// must not be shared between compilations, and the engine holds the middleware chain.
pub(crate) struct Compiled {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
}

/// Compiles a module that passed [`validate`](crate::validate).
pub(crate) fn compile(config: &VmConfig, wasm: &[u8]) -> Result<Compiled> {
    let mut compiler = Cranelift::new();
    // Deterministic floats: every NaN result gets the one canonical bit pattern.
    compiler.canonicalize_nans(true);
    // Fuel first, so that the grow tracker's own instructions are not charged.
    // The initial limit is irrelevant: each job sets its own before running guest code.
    compiler.push_middleware(Arc::new(Metering::new(0, operator_cost)));
    compiler.push_middleware(Arc::new(GrowTracker::default()));

    let mut engine: Engine = EngineBuilder::new(compiler).set_features(Some(engine_features())).engine().into();
    let tunables = LimitingTunables::new(
        engine.target(),
        config.memory_pages_max,
        config.table_elements_max,
        config.stack_size_bytes_max,
    );
    // Before compiling: memory styles are baked into the code.
    engine.set_tunables(tunables);

    let module = Module::from_binary(&engine, wasm).map_err(|e| VmError::Compile(e.to_string()))?;
    Ok(Compiled { engine, module })
}

/// Records, in an exported global, whether any `memory.grow` of the instance was refused,
/// so that a trap that follows can be reported as `MemoryLimit`.
///
/// After every `memory.grow` it inserts (with two globals it adds to the module, `scratch`
/// and `refused`, both i32 initialised to 0):
///
/// ```wat
/// global.set $scratch                     ;; the grow's result
/// global.get $refused
/// global.get $scratch  i32.const -1  i32.eq
/// i32.or
/// global.set $refused                     ;; refused |= (result == -1)
/// global.get $scratch                     ;; the result, back for the guest
/// ```
///
/// A middleware cannot add locals, hence the scratch global. The guest cannot reach either
/// global: its code was validated before they existed.
#[derive(Debug, Default)]
struct GrowTracker {
    /// `(scratch, refused)` global indexes, set when the module is transformed.
    globals: Mutex<Option<(u32, u32)>>,
}

impl ModuleMiddleware for GrowTracker {
    fn generate_function_middleware(&self, _: LocalFunctionIndex) -> Box<dyn FunctionMiddleware> {
        let (scratch, refused) = self
            .globals
            .lock()
            .expect("the grow tracker's lock is never held across a panic")
            .expect("wasmer transforms the module info before generating function middlewares");
        Box::new(FunctionGrowTracker { scratch, refused })
    }

    fn transform_module_info(&self, module_info: &mut wasmer::ModuleInfo) -> std::result::Result<(), MiddlewareError> {
        let mut globals = self.globals.lock().expect("the grow tracker's lock is never held across a panic");
        if globals.is_some() {
            return Err(MiddlewareError::new("GrowTracker", "one instance must not be used for two modules"));
        }
        let mut add_i32_global = || {
            let index = module_info.globals.push(GlobalType::new(Type::I32, Mutability::Var));
            module_info.global_initializers.push(GlobalInit::I32Const(0));
            index
        };
        let scratch = add_i32_global();
        let refused = add_i32_global();
        module_info.exports.insert(GROW_REFUSED_EXPORT.to_owned(), ExportIndex::Global(refused));
        *globals = Some((scratch.as_u32(), refused.as_u32()));
        Ok(())
    }
}

#[derive(Debug)]
struct FunctionGrowTracker {
    scratch: u32,
    refused: u32,
}

impl FunctionMiddleware for FunctionGrowTracker {
    fn feed<'a>(
        &mut self,
        operator: Operator<'a>,
        state: &mut MiddlewareReaderState<'a>,
    ) -> std::result::Result<(), MiddlewareError> {
        let is_grow = matches!(operator, Operator::MemoryGrow { .. });
        state.push_operator(operator);
        if is_grow {
            state.extend([
                Operator::GlobalSet { global_index: self.scratch },
                Operator::GlobalGet { global_index: self.refused },
                Operator::GlobalGet { global_index: self.scratch },
                Operator::I32Const { value: -1 },
                Operator::I32Eq,
                Operator::I32Or,
                Operator::GlobalSet { global_index: self.refused },
                Operator::GlobalGet { global_index: self.scratch },
            ]);
        }
        Ok(())
    }
}
