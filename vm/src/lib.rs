//! The Cairn execution sandbox: runs a WebAssembly job deterministically, metered and
//! bounded, and turns every way it can end into a [`JobStatus`].
//!
//! A job is a pure function of (module, input, fuel limit): the same three give the same
//! output bytes, the same fuel used and the same status on every node, which is what lets
//! providers' receipts be compared and re-executed by validators. To get there:
//!
//! - **Deterministic code**: wasmer with Cranelift, NaN canonicalization on, and exactly the
//!   WebAssembly 2.0 features (no threads, relaxed SIMD, memory64, exceptions…). No WASI,
//!   clock or randomness: a job may import only `cairn.abort` and `cairn.log`.
//! - **Fuel** (a cost per operator, [`operator_cost`], and bulk memory operations charged
//!   by size; `docs/FUEL.md`), counted on the module's operators by a rewrite of the
//!   module before compilation that keeps the remaining fuel in a local of each function,
//!   is both the billing unit and the halting guarantee. Calls are counted too: nesting
//!   deeper than [`VmConfig::call_depth_max`] traps.
//! - **Limits** ([`VmConfig`] and the `*_MAX` constants): module, input, output and log
//!   sizes, memory pages, table elements, stack, call depth, and the counts of functions,
//!   types, locals, globals, imports, exports, tables and segments (checked before
//!   compilation). A `memory.grow` past the limit returns -1; if the guest then traps
//!   the status is `MemoryLimit`.
//! - **Isolation**: a fresh store and instance per job, its memory on a region from a
//!   bounded pool ([`VmConfig::memory_pool_regions`]), zeroed when the previous job
//!   released it and made inaccessible again past the new memory's size; compiled
//!   modules are shared through an LRU cache bounded in modules and bytes, keyed by the
//!   module id (SHA-256 of the wasm), and optionally an on-disk cache keyed by (module id, engine-configuration hash)
//!   whose files carry their own checksum.
//! - **Re-execution** for disputes is [`Vm::execute`] again: every node gets the same
//!   [`Execution`], whose [`Execution::outcome`] is the [`Outcome`] a result states
//!   (`output_hash`, `fuel_used`, `status`; `cairn_ledger`'s) before the chain's own output
//!   limit, which the node applies.
//!
//! The job ABI is specified in `docs/JOB-ABI.md`; its names and limits are the `cairn-abi`
//! crate, shared with the guest side, the `cairn-sdk` crate.
//!
//! Main types: [`Vm`] (validate and execute; `Send + Sync`, share it in an `Arc`),
//! [`VmConfig`], [`Execution`] (a whole run: status, output, fuel, log, message; its
//! [`Execution::outcome`] is what a result states), [`ModuleInfo`], [`VmError`], and
//! [`InternalError`] — a failure
//! of this node (memory it could not reserve, a panic in the sandbox) that is never a job
//! status, because another node would not reproduce it. [`fixtures`] holds small test
//! modules for other crates' tests.
//!
//! ```
//! use cairn_vm::{JobStatus, Vm, VmConfig, fixtures};
//!
//! let vm = Vm::new(VmConfig::default());
//! let wasm = fixtures::uppercase_wasm();
//! let info = vm.validate(&wasm)?;
//! assert_eq!(info.size_bytes, wasm.len());
//!
//! let outcome = vm.execute(&wasm, b"hello, cairn", 1_000_000)?;
//! assert_eq!(outcome.status, JobStatus::Ok);
//! assert_eq!(outcome.output, b"HELLO, CAIRN");
//! assert!(outcome.fuel_used > 0);
//!
//! let outcome = vm.execute(&fixtures::infinite_loop_wasm(), b"", 10_000)?;
//! assert_eq!(outcome.status, JobStatus::OutOfFuel);
//! assert_eq!(outcome.fuel_used, 10_000);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod config;
mod disk;
mod engine;
mod error;
pub mod fixtures;
mod host;
mod instrument;
mod meter;
mod pool;
mod reason;
mod run;
mod tier;
mod tunables;
mod validate;
pub mod worst_case;

#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use sha2::{Digest, Sha256};

pub use cairn_ledger::{JobStatus, Outcome};
pub use config::*;
pub use error::{InternalError, Result, VmError};
pub use meter::{FUEL_BYTES_PER_UNIT, FUEL_PER_PAGE_GROWN, FUEL_PER_TABLE_ELEMENT, MeterMode, operator_cost};

use cache::Lru;
use disk::{DiskBudget, DiskCache, Miss};
use engine::Compiled;
pub use engine::Compiler;
pub use reason::REASON_BYTES_MAX;

/// The fuel of the simplest operators (`i32.add`, `local.get`, `br`, …); the whole table is
/// [`operator_cost`] and `docs/FUEL.md`.
pub const FUEL_PER_OPERATOR: u64 = 1;

/// The id of a module: the SHA-256 of its bytes.
pub fn module_id(wasm: &[u8]) -> [u8; 32] {
    Sha256::digest(wasm).into()
}

/// What validation learned about a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// SHA-256 of the module's bytes (see [`module_id`]).
    pub module_id: [u8; 32],
    /// The module's size.
    pub size_bytes: usize,
}

/// How a job ended: the whole run, as this node saw it.
///
/// - `output` is what `cairn_run` returned when `status` is `Ok`; for every other status
///   it is the failure's reason, the same text as `message` (UTF-8, at most
///   [`REASON_BYTES_MAX`] bytes, deterministic: `docs/JOB-ABI.md` §6).
/// - `fuel_used` is the fuel consumed: exactly the limit for `OutOfFuel`, 0 for
///   `InvalidModule` and for failures before any guest code ran.
/// - `log` holds what the guest passed to `cairn.log`, truncated at
///   [`VmConfig::log_size_bytes_max`], whatever the status.
/// - `message` is the failure's reason (trap kind, abort text, limit hit, rule broken),
///   empty when `status` is `Ok`. Like the status, the output and the fuel, it is
///   deterministic: receipts commit to it through the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Execution {
    /// How the job ended.
    pub status: JobStatus,
    /// What `cairn_run` returned; for any other status than `Ok`, the reason.
    pub output: Vec<u8>,
    /// Fuel consumed.
    pub fuel_used: u64,
    /// What the job logged, at most [`VmConfig::log_size_bytes_max`] bytes.
    pub log: Vec<u8>,
    /// Why the job failed (the output of a failed job, as text); empty when `status` is `Ok`.
    pub message: String,
}

impl Execution {
    /// A failed job: its reason (bounded) is both its output and its message.
    fn failed(status: JobStatus, fuel_used: u64, message: String) -> Execution {
        let message = reason::bounded(message);
        Execution { status, output: message.clone().into_bytes(), fuel_used, log: Vec::new(), message }
    }

    fn with_log(mut self, log: Vec<u8>) -> Execution {
        self.log = log;
        self
    }

    /// What a result states about this run, and a receipt commits to: SHA-256 of the output
    /// (the reason, unless `status` is `Ok`), the fuel used and the status.
    pub fn outcome(&self) -> Outcome {
        Outcome { output_hash: cairn_ledger::Hash::of(&self.output), fuel_used: self.fuel_used, status: self.status }
    }
}

/// Counters of the compiled-module caches, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Modules compiled (by either compiler; tier-ups included).
    pub compiled: u64,
    /// Runs that found their module compiled in the memory cache.
    pub memory_hits: u64,
    /// Modules loaded from the disk cache.
    pub disk_loads: u64,
    /// Disk cache files rejected (corrupted, truncated, other configuration) and deleted.
    pub disk_rejected: u64,
    /// Modules recompiled by the optimizing compiler in the background ([`Tiering::Tiered`]).
    pub tiered_up: u64,
}

/// Which compiler makes a module's code.
///
/// Both compile the same metered module (fuel, stack units and every other rule are in
/// the module's own code), so they give the same outcomes; they differ in how long
/// compiling takes and how fast the code runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiering {
    /// Every module with this compiler.
    Fixed(Compiler),
    /// The single-pass compiler first, whose compile time is linear in the module's size
    /// (the bound of `docs/JOB-ABI.md` §5); then, for a module whose jobs on this node used
    /// [`TIER_UP_FUEL_PER_WASM_BYTE`] fuel per byte of the module, Cranelift in the
    /// background, one module at a time at the lowest CPU priority, its code replacing the
    /// first when ready. Cranelift's compile time can grow faster than the module (its
    /// worst cases take minutes), so it never runs where a job or a block waits for it.
    Tiered,
}

/// Fuel a module's jobs must use on a node, per byte of the module, before the node
/// recompiles it with Cranelift ([`Tiering::Tiered`]): the work a module can cause in the
/// background stays proportional to the work paid for on it.
pub const TIER_UP_FUEL_PER_WASM_BYTE: u64 = 1_000;

/// The compiled-module caches and their counters, shared with the background compiler.
pub(crate) struct Caches {
    memory: Mutex<Lru<[u8; 32], Arc<Compiled>>>,
    /// On disk, one cache per compiler (`None`: no cache folder, or unmetered).
    disk_singlepass: Option<DiskCache>,
    disk_cranelift: Option<DiskCache>,
    compiled_count: AtomicU64,
    memory_hits: AtomicU64,
    disk_loads: AtomicU64,
    disk_rejected: AtomicU64,
    tiered_up: AtomicU64,
}

impl Caches {
    fn disk(&self, compiler: Compiler) -> Option<&DiskCache> {
        match compiler {
            Compiler::Singlepass => self.disk_singlepass.as_ref(),
            Compiler::Cranelift => self.disk_cranelift.as_ref(),
        }
    }

    fn lock_memory(&self) -> std::sync::MutexGuard<'_, Lru<[u8; 32], Arc<Compiled>>> {
        // The cache's invariants hold between operations, so a poisoned lock is still usable.
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a freshly compiled module in both caches.
    fn keep(&self, id: [u8; 32], compiled: Compiled, wasm_len: usize) -> Arc<Compiled> {
        self.keep_where(id, compiled, wasm_len, |_| true)
    }

    /// Keeps a module's optimized code in both caches, in place of its first code if that is
    /// still cached (a module evicted meanwhile is not brought back).
    fn replace(&self, id: [u8; 32], compiled: Compiled, wasm_len: usize) {
        self.keep_where(id, compiled, wasm_len, |memory| memory.contains(&id));
    }

    fn keep_where(
        &self,
        id: [u8; 32],
        compiled: Compiled,
        wasm_len: usize,
        wanted: impl FnOnce(&Lru<[u8; 32], Arc<Compiled>>) -> bool,
    ) -> Arc<Compiled> {
        self.compiled_count.fetch_add(1, Ordering::Relaxed);
        let artifact = compiled.module.serialize().ok();
        let weight = artifact.as_ref().map_or_else(|| estimated_weight(wasm_len), |a| a.len());
        if let (Some(disk), Some(artifact)) = (self.disk(compiled.compiler), &artifact) {
            disk.store(&id, artifact);
        }
        let compiled = Arc::new(compiled);
        let left = {
            let mut memory = self.lock_memory();
            if !wanted(&memory) {
                return compiled;
            }
            memory.insert(id, Arc::clone(&compiled), weight)
        };
        self.left_memory(&left);
        compiled
    }

    /// Keeps a module loaded from disk in memory.
    fn keep_loaded(&self, id: [u8; 32], compiled: &Arc<Compiled>, weight: usize) {
        let left = self.lock_memory().insert(id, Arc::clone(compiled), weight);
        self.left_memory(&left);
    }

    /// Modules the memory cache let go were in use until now: their files on disk say so,
    /// so that the folder's eviction (least recently used first) keeps them over modules
    /// used longer ago. A module served from memory never touches its file, so without this
    /// the most used modules would have the oldest files and go first.
    fn left_memory(&self, ids: &[[u8; 32]]) {
        for id in ids {
            for disk in [&self.disk_singlepass, &self.disk_cranelift].into_iter().flatten() {
                disk.mark_used(id);
            }
        }
    }
}

/// The sandbox: validates modules and executes jobs.
///
/// `Send + Sync`: one `Vm` (in an `Arc`) serves every thread of a node; jobs run in
/// parallel on the calling threads, each in its own store and instance. Compiled modules
/// are cached in memory (LRU, at most [`VmConfig::cache_modules_max`] modules and
/// [`VmConfig::cache_bytes_max`] bytes of compiled code) and, with
/// [`VmConfig::cache_dir`], on disk.
pub struct Vm {
    config: VmConfig,
    mode: Option<MeterMode>,
    tiering: Tiering,
    caches: Arc<Caches>,
    /// Where jobs' memories come from (`None`: [`VmConfig::memory_pool_regions`] is 0).
    memory_pool: Option<Arc<pool::MemoryPool>>,
    /// Modules being loaded or compiled, each with a lock its loader holds: another thread
    /// wanting the same module (a job arriving while a node prepares it) waits for that
    /// compilation instead of starting a second one.
    loading: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
    /// The background compiler of [`Tiering::Tiered`], started on its first module.
    tier_up: OnceLock<tier::Worker>,
}

impl fmt::Debug for Vm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vm")
            .field("config", &self.config)
            .field("mode", &self.mode)
            .field("tiering", &self.tiering)
            .field("cached_modules", &self.cached_modules())
            .finish()
    }
}

impl Vm {
    /// A sandbox with these limits, compiling [`Tiering::Tiered`].
    pub fn new(config: VmConfig) -> Vm {
        Vm::build(config, Some(MeterMode::Fast), Tiering::Tiered)
    }

    /// A sandbox that compiles every module with `compiler`. Outcomes are the same with
    /// every compiler (that is tested); for tests and measurements.
    pub fn with_compiler(config: VmConfig, compiler: Compiler) -> Vm {
        Vm::build(config, Some(MeterMode::Fast), Tiering::Fixed(compiler))
    }

    /// A sandbox metered in another [`MeterMode`], compiling with `compiler`. Every mode
    /// gives the same outcomes (that is tested); [`Vm::new`] uses the fastest. For tests and
    /// measurements.
    pub fn with_meter_mode(config: VmConfig, mode: MeterMode, compiler: Compiler) -> Vm {
        Vm::build(config, Some(mode), Tiering::Fixed(compiler))
    }

    /// A sandbox that does not meter at all: jobs report no fuel and need not halt. Only
    /// for measuring the meter's overhead; never run untrusted jobs on it.
    #[doc(hidden)]
    pub fn unmetered_for_benchmarks(config: VmConfig, compiler: Compiler) -> Vm {
        Vm::build(config, None, Tiering::Fixed(compiler))
    }

    /// Checks and compiles `wasm` with `compiler`, without caching, and returns how long
    /// the compilation took (the checks and the metering rewrite excluded) and the size of
    /// the metered module. Only for measuring compile times (the `compile_bound` example).
    #[doc(hidden)]
    pub fn compile_for_benchmarks(&self, wasm: &[u8], compiler: Compiler) -> Result<(std::time::Duration, usize)> {
        let checked = validate::check(&self.config, wasm)?;
        let started = std::time::Instant::now();
        engine::compile(&self.config, wasm, &checked, self.mode, self.memory_pool.as_ref(), compiler)?;
        Ok((started.elapsed(), checked.metered.len()))
    }

    fn build(config: VmConfig, mode: Option<MeterMode>, tiering: Tiering) -> Vm {
        // One bound for the folder, whichever compiler's files fill it.
        let budget =
            config.cache_dir.as_ref().map(|dir| Arc::new(DiskBudget::new(dir.clone(), config.cache_dir_bytes_max)));
        let disk = |compiler: Compiler| match (&budget, mode) {
            (Some(budget), Some(mode)) => {
                // The mode changes the code, hence the hash.
                let mut hash = engine::engine_config_hash(&config, compiler);
                hash[0] ^= mode as u8;
                Some(DiskCache::new(hash, budget.clone()))
            }
            _ => None,
        };
        let caches = Arc::new(Caches {
            memory: Mutex::new(Lru::new(config.cache_modules_max, config.cache_bytes_max)),
            disk_singlepass: disk(Compiler::Singlepass),
            disk_cranelift: disk(Compiler::Cranelift),
            compiled_count: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            disk_loads: AtomicU64::new(0),
            disk_rejected: AtomicU64::new(0),
            tiered_up: AtomicU64::new(0),
        });
        let memory_pool = (config.memory_pool_regions > 0).then(|| pool::MemoryPool::new(config.memory_pool_regions));
        Vm { config, mode, tiering, caches, memory_pool, loading: Mutex::new(HashMap::new()), tier_up: OnceLock::new() }
    }

    /// Counters of the caches since this `Vm` was created.
    pub fn cache_stats(&self) -> CacheStats {
        let c = &self.caches;
        CacheStats {
            compiled: c.compiled_count.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            disk_loads: c.disk_loads.load(Ordering::Relaxed),
            disk_rejected: c.disk_rejected.load(Ordering::Relaxed),
            tiered_up: c.tiered_up.load(Ordering::Relaxed),
        }
    }

    /// Bytes of compiled code in the in-memory cache (the size of each module's artifact).
    pub fn cached_bytes(&self) -> usize {
        self.caches.lock_memory().weight()
    }

    /// The disk cache file of a module's code from the compiler this sandbox starts with,
    /// if this `Vm` has a cache folder (whether or not the file exists).
    pub fn disk_cache_path(&self, wasm: &[u8]) -> Option<std::path::PathBuf> {
        self.caches.disk(self.first_compiler()).map(|disk| disk.path(&module_id(wasm)))
    }

    /// The limits this sandbox enforces.
    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    /// Number of compiled modules in the cache.
    pub fn cached_modules(&self) -> usize {
        self.caches.lock_memory().len()
    }

    /// The compiler that made the cached code of a module, if it is in the memory cache.
    pub fn cached_compiler(&self, wasm: &[u8]) -> Option<Compiler> {
        self.caches.lock_memory().get(&module_id(wasm)).map(|c| c.compiler)
    }

    /// The compiler a module is first compiled with.
    fn first_compiler(&self) -> Compiler {
        match self.tiering {
            Tiering::Fixed(compiler) => compiler,
            Tiering::Tiered => Compiler::Singlepass,
        }
    }

    /// Parses and validates a module: size limit; a valid WebAssembly 2.0 binary without
    /// SIMD and with no other features; the job ABI's exports (`memory`, `cairn_alloc`,
    /// `cairn_run`) with their signatures; only the `cairn.abort` and `cairn.log` imports;
    /// no start function; memory and table minimums within the limits; the structural
    /// limits that bound compile time (nesting, `br_table`s, operand stack, locals, the
    /// size of each function and of the whole module once metered). Does not compile, but a
    /// module that passes always compiles, within the bound of `docs/JOB-ABI.md` §5.
    ///
    /// `module_put` calls this (through [`Vm::prepare`]) before storing a module;
    /// [`Vm::execute`] calls it before compiling one.
    pub fn validate(&self, wasm: &[u8]) -> Result<ModuleInfo> {
        validate::check(&self.config, wasm)?;
        Ok(ModuleInfo { module_id: module_id(wasm), size_bytes: wasm.len() })
    }

    /// Runs one job: `cairn_alloc(input.len())`, the input written there,
    /// `cairn_run(ptr, len)`, the output read back, all within `fuel_limit`.
    ///
    /// Never panics and never takes the process down on a hostile module: every way the
    /// *job* can end is a status of the [`Execution`]. Checks happen in this order:
    ///
    /// 1. the module is valid, else `InvalidModule` (fuel 0);
    /// 2. the input is within [`VmConfig::input_size_bytes_max`], else `Trap` (fuel 0) —
    ///    the node rejects such jobs before execution; this is a fallback;
    /// 3. the run: `OutOfFuel` (fuel = limit) takes precedence, then `MemoryLimit` (a trap
    ///    after a refused `memory.grow`), then `Trap`; an output over the limit is
    ///    `OutputTooLarge`, one outside memory is `Trap`.
    ///
    /// `Err` is a failure of this node, not of the job ([`InternalError`]: the job's memory
    /// could not be reserved, the sandbox panicked, a validated module did not compile):
    /// there is no outcome to sign.
    pub fn execute(&self, wasm: &[u8], input: &[u8], fuel_limit: u64) -> Result<Execution, InternalError> {
        self.execute_with_id(&module_id(wasm), wasm, input, fuel_limit)
    }

    /// [`Vm::execute`] for a caller that already knows the module's id (a node stores modules
    /// by id): skips hashing the whole module on every job. `id` must be `module_id(wasm)` —
    /// a wrong id would put this module in the cache under another's name.
    pub fn execute_with_id(
        &self,
        id: &[u8; 32],
        wasm: &[u8],
        input: &[u8],
        fuel_limit: u64,
    ) -> Result<Execution, InternalError> {
        debug_assert_eq!(*id, module_id(wasm), "execute_with_id needs the module's own id");
        let compiled = match self.compiled(id, wasm) {
            Ok(compiled) => compiled,
            // Validation is deterministic: every node finds the module invalid.
            Err(e @ VmError::Compile(_)) => {
                return Err(InternalError::new(format!("a valid module did not compile: {e}")));
            }
            Err(e) => return Ok(Execution::failed(JobStatus::InvalidModule, 0, reason::invalid_module(&e))),
        };
        if input.len() > self.config.input_size_bytes_max {
            return Ok(Execution::failed(
                JobStatus::Trap,
                0,
                format!(
                    "input too large: {} bytes, over the limit of {} bytes",
                    input.len(),
                    self.config.input_size_bytes_max
                ),
            ));
        }
        // A panic here is a bug of the sandbox (or of wasmer), which another node need not
        // share: never a status.
        let outcome = catch_unwind(AssertUnwindSafe(|| run::run(&self.config, &compiled, input, fuel_limit)))
            .unwrap_or_else(|panic| {
                Err(InternalError::new(format!("the sandbox panicked: {}", panic_message(&*panic))))
            })?;
        self.count_toward_tier_up(id, wasm, &compiled, outcome.fuel_used);
        Ok(outcome)
    }

    /// [`Tiering::Tiered`]: adds a job's fuel to its module's account, and hands the module
    /// to the background compiler once the account reaches its threshold.
    fn count_toward_tier_up(&self, id: &[u8; 32], wasm: &[u8], compiled: &Compiled, fuel_used: u64) {
        if self.tiering != Tiering::Tiered || compiled.compiler != Compiler::Singlepass {
            return;
        }
        let spent = compiled.fuel_spent.fetch_add(fuel_used, Ordering::Relaxed).saturating_add(fuel_used);
        let threshold = TIER_UP_FUEL_PER_WASM_BYTE.saturating_mul(wasm.len() as u64);
        if spent < threshold || compiled.tier_up_requested.swap(true, Ordering::Relaxed) {
            return;
        }
        let worker = self.tier_up.get_or_init(|| {
            tier::Worker::start(self.config.clone(), self.mode, self.memory_pool.clone(), Arc::clone(&self.caches))
        });
        if !worker.request(*id, wasm) {
            // The queue is full: the module may ask again after more jobs.
            compiled.tier_up_requested.store(false, Ordering::Relaxed);
        }
    }

    /// Validates and compiles a module into the caches without running anything, so the
    /// first job on it starts warm (a node calls this when a module is uploaded or stored).
    /// Takes at most the compile bound of `docs/JOB-ABI.md` §5.
    pub fn prepare(&self, wasm: &[u8]) -> Result<ModuleInfo> {
        let id = module_id(wasm);
        self.compiled(&id, wasm)?;
        Ok(ModuleInfo { module_id: id, size_bytes: wasm.len() })
    }

    /// Whether a module's code is in the memory cache: a job on it starts without compiling.
    pub fn is_ready(&self, wasm: &[u8]) -> bool {
        self.caches.lock_memory().get(&module_id(wasm)).is_some()
    }

    /// The compiled module: from the memory cache, else from the disk cache (the optimized
    /// code first), else checked and compiled now with the first compiler (and written to
    /// both caches).
    fn compiled(&self, id: &[u8; 32], wasm: &[u8]) -> Result<Arc<Compiled>> {
        let id = *id;
        if let Some(compiled) = self.caches.lock_memory().get(&id) {
            self.caches.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(compiled);
        }
        let checked = validate::check(&self.config, wasm)?;
        // One loader per module: a thread that finds another loading it waits, then finds the
        // result in the cache.
        let slot = Arc::clone(self.lock_loading().entry(id).or_default());
        let _loading = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let _forget = Loading { vm: self, id };
        if let Some(compiled) = self.caches.lock_memory().get(&id) {
            return Ok(compiled);
        }
        let on_disk: &[Compiler] = match self.tiering {
            Tiering::Fixed(Compiler::Singlepass) => &[Compiler::Singlepass],
            Tiering::Fixed(Compiler::Cranelift) => &[Compiler::Cranelift],
            Tiering::Tiered => &[Compiler::Cranelift, Compiler::Singlepass],
        };
        for &compiler in on_disk {
            let Some(disk) = self.caches.disk(compiler) else { continue };
            // An engine of its own, like a compiled module's: a wasmer engine keeps the code
            // of every artifact loaded into it until the engine itself is dropped, so a shared
            // one would grow with every reload of an evicted module.
            let engine = engine::headless_engine(&self.config, self.memory_pool.as_ref());
            match disk.load(&id, &engine) {
                Ok((module, weight)) => {
                    self.caches.disk_loads.fetch_add(1, Ordering::Relaxed);
                    let compiled = Arc::new(Compiled::new(engine, module, compiler));
                    self.caches.keep_loaded(id, &compiled, weight);
                    return Ok(compiled);
                }
                Err(Miss::Rejected(_)) => {
                    self.caches.disk_rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(Miss::Absent) => {}
            }
        }
        // Compiled outside the cache's lock: other jobs keep running meanwhile; only threads
        // wanting this same module wait (above).
        let compiler = self.first_compiler();
        let compiled = catch_unwind(AssertUnwindSafe(|| {
            engine::compile(&self.config, wasm, &checked, self.mode, self.memory_pool.as_ref(), compiler)
        }))
        .unwrap_or_else(|panic| Err(VmError::Compile(format!("the compiler panicked: {}", panic_message(&*panic)))))?;
        Ok(self.caches.keep(id, compiled, wasm.len()))
    }

    /// The memory pool's counters (`None`: no pool).
    #[cfg(test)]
    pub(crate) fn memory_pool_stats(&self) -> Option<pool::PoolStats> {
        self.memory_pool.as_ref().map(|pool| pool.stats())
    }

    fn lock_loading(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<Mutex<()>>>> {
        self.loading.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Drops a module's loading slot when its loader is done (or failed, or panicked), so the map
/// holds only modules being loaded now.
struct Loading<'a> {
    vm: &'a Vm,
    id: [u8; 32],
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.vm.lock_loading().remove(&self.id);
    }
}

/// A stand-in for a module's compiled size when its artifact cannot be measured.
fn estimated_weight(wasm_len: usize) -> usize {
    wasm_len.saturating_mul(4)
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
