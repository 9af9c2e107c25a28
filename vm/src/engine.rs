//! Compiling a module for the sandbox: Cranelift with NaN canonicalization, the metering
//! (the rewrite of [`crate::instrument`] for the production meter, a middleware of
//! [`crate::meter`] for the reference meters), the limiting tunables, and the WebAssembly
//! features.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use sha2::{Digest, Sha256};
use wasmer::sys::{CompilerConfig, Cranelift, EngineBuilder, Features, NativeEngineExt, Singlepass};
use wasmer::{Engine, Module};

use crate::meter::{Meter, MeterMode};
use crate::pool::MemoryPool;
use crate::tunables::LimitingTunables;
use crate::validate::Checked;
use crate::{Result, VmConfig, VmError, native_stack_bytes};

/// Version of the instrumentation (fuel table, charge points, stack accounting, and how
/// the code is instrumented: 3 is the pre-compilation rewrite with the fuel in a local, 4
/// counts stack units per frame instead of calls). Part of the engine-configuration hash,
/// so cached artifacts of another version are not used.
pub(crate) const INSTRUMENTATION_VERSION: u32 = 4;

/// The wasmer feature set matching [`validate::wasm_features`](crate::validate): WebAssembly
/// 2.0 without SIMD.
fn engine_features() -> Features {
    let mut features = Features::none();
    features
        .bulk_memory(true)
        .reference_types(true)
        .multi_value(true)
        .simd(false)
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
/// A freshly compiled module has its own engine: a reference meter's middleware records
/// per-module state and must not be shared between compilations, and the engine holds the
/// middleware chain. (The production meter's rewrite has no such state; its modules keep
/// an engine each.) A module loaded from the disk cache gets a headless engine of its own.
/// Either way the module's code is freed with it: a wasmer engine keeps the code of every
/// module it compiled or loaded until the engine is dropped.
pub(crate) struct Compiled {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    /// The compiler that made the module's code.
    pub(crate) compiler: Compiler,
    /// Fuel the module's jobs used on this node while this code served them
    /// ([`Tiering::Tiered`](crate::Tiering::Tiered)).
    pub(crate) fuel_spent: AtomicU64,
    /// Whether the module was handed to the background compiler.
    pub(crate) tier_up_requested: AtomicBool,
}

impl Compiled {
    pub(crate) fn new(engine: Engine, module: Module, compiler: Compiler) -> Compiled {
        Compiled { engine, module, compiler, fuel_spent: AtomicU64::new(0), tier_up_requested: AtomicBool::new(false) }
    }
}

/// The compilers the sandbox can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compiler {
    /// wasmer's single-pass compiler: compile time linear in the module's size.
    Singlepass,
    /// Cranelift: optimizing.
    Cranelift,
}

/// Compiles a module that passed [`validate`](crate::validate) (which measured it:
/// `checked`) with `which`, metered with `mode` (`None`: unmetered, only for measuring the
/// meter's overhead).
pub(crate) fn compile(
    config: &VmConfig,
    wasm: &[u8],
    checked: &Checked,
    mode: Option<MeterMode>,
    pool: Option<&Arc<MemoryPool>>,
    which: Compiler,
) -> Result<Compiled> {
    let mut compiler: Box<dyn CompilerConfig> = match which {
        Compiler::Singlepass => Box::new(Singlepass::new()),
        Compiler::Cranelift => Box::new(Cranelift::new()),
    };
    // Deterministic floats: every NaN result gets the one canonical bit pattern.
    compiler.canonicalize_nans(true);
    let wasm = match mode {
        // The production meter rewrote the module before compilation (in validation).
        Some(MeterMode::Fast) => &checked.metered[..],
        // The reference meters are middlewares. A fresh one per compilation: it records
        // the globals it added to this module.
        Some(mode) => {
            compiler.push_middleware(Arc::new(Meter::new(mode, checked.frame_units.clone(), config.stack_units_max)));
            wasm
        }
        None => wasm,
    };
    let mut engine: Engine = EngineBuilder::new(compiler).set_features(Some(engine_features())).engine().into();
    // Before compiling: memory styles are baked into the code.
    engine.set_tunables(tunables(&engine, config, pool));
    let module = Module::from_binary(&engine, wasm).map_err(|e| VmError::Compile(e.to_string()))?;
    Ok(Compiled::new(engine, module, which))
}

fn tunables(engine: &Engine, config: &VmConfig, pool: Option<&Arc<MemoryPool>>) -> LimitingTunables {
    LimitingTunables::new(
        engine.target(),
        config.memory_pages_max,
        config.table_elements_max,
        native_stack_bytes(config.stack_units_max),
        pool.cloned(),
    )
}

/// An engine that cannot compile, only run artifacts compiled by [`compile`] with the
/// same configuration (and loaded from the disk cache).
pub(crate) fn headless_engine(config: &VmConfig, pool: Option<&Arc<MemoryPool>>) -> Engine {
    let mut engine: Engine = EngineBuilder::headless().set_features(Some(engine_features())).engine().into();
    engine.set_tunables(tunables(&engine, config, pool));
    engine
}

/// A hash of everything that shapes compiled code besides the module: the compiler and
/// its settings, the features, the instrumentation and the limits baked into it, and the
/// CPU. Artifacts are cached under (module id, this hash).
pub(crate) fn engine_config_hash(config: &VmConfig, compiler: Compiler) -> [u8; 32] {
    engine_config_hash_for(config, compiler, INSTRUMENTATION_VERSION)
}

/// [`engine_config_hash`] with another instrumentation version (for tests).
pub(crate) fn engine_config_hash_for(config: &VmConfig, compiler: Compiler, instrumentation_version: u32) -> [u8; 32] {
    let engine = headless_engine(config, None);
    let description = format!(
        "cairn-vm {} instrumentation {instrumentation_version}; wasmer 7.1 {compiler:?} nan-canonical; \
         features {:?}; stack_units_max {}; memory_pages_max {}; table_elements_max {}; target {:?}",
        env!("CARGO_PKG_VERSION"),
        engine_features(),
        config.stack_units_max,
        config.memory_pages_max,
        config.table_elements_max,
        engine.target(),
    );
    Sha256::digest(description.as_bytes()).into()
}
