//! The sandbox's limits.

use std::path::PathBuf;

/// Size of a WebAssembly page in bytes.
pub const WASM_PAGE_SIZE_BYTES: usize = 65_536;

/// Default for [`VmConfig::memory_pages_max`]: 256 pages, 16 MiB.
pub const MEMORY_PAGES_MAX_DEFAULT: u32 = 256;
/// Default for [`VmConfig::module_size_bytes_max`]: 4 MiB.
pub const MODULE_SIZE_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// Default for [`VmConfig::input_size_bytes_max`]: 1 MiB.
pub const INPUT_SIZE_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// Default for [`VmConfig::output_size_bytes_max`]: 64 KiB.
pub const OUTPUT_SIZE_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Default for [`VmConfig::log_size_bytes_max`]: 4 KiB.
pub const LOG_SIZE_BYTES_MAX_DEFAULT: usize = 4 * 1024;
/// Default for [`VmConfig::cache_modules_max`].
pub const CACHE_MODULES_MAX_DEFAULT: usize = 64;
/// Default for [`VmConfig::table_elements_max`].
pub const TABLE_ELEMENTS_MAX_DEFAULT: u32 = 10_000;
/// Default for [`VmConfig::stack_size_bytes_max`]: 1 MiB.
pub const STACK_SIZE_BYTES_MAX_DEFAULT: usize = 1024 * 1024;

/// Default for [`VmConfig::call_depth_max`].
pub const CALL_DEPTH_MAX_DEFAULT: u32 = 2_000;
/// Default for [`VmConfig::cache_bytes_max`]: 256 MiB.
pub const CACHE_BYTES_MAX_DEFAULT: usize = 256 * 1024 * 1024;

/// Default for [`VmConfig::memory_pool_regions`], per core: idle memory regions kept
/// for reuse ([`memory_pool_regions_default`]).
pub const MEMORY_POOL_REGIONS_PER_CORE: usize = 2;

/// Default for [`VmConfig::memory_pool_regions`]: [`MEMORY_POOL_REGIONS_PER_CORE`] × the
/// cores available (2 × 1 if that is unknown).
pub fn memory_pool_regions_default() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    MEMORY_POOL_REGIONS_PER_CORE.saturating_mul(cores)
}

/// The most functions (imported and defined) a module may have.
pub const FUNCTIONS_MAX: usize = 10_000;
/// The most globals a module may define.
pub const GLOBALS_MAX: usize = 1_000;
/// The most imports a module may declare (only `cairn.abort` and `cairn.log` exist).
pub const IMPORTS_MAX: usize = 16;
/// The most exports a module may declare.
pub const EXPORTS_MAX: usize = 1_000;
/// The most data segments a module may have.
pub const DATA_SEGMENTS_MAX: usize = 1_000;
/// The most element segments a module may have.
pub const ELEMENT_SEGMENTS_MAX: usize = 1_000;
/// The most types a module may declare.
pub const TYPES_MAX: usize = 10_000;
/// The most locals (parameters excluded) one function may declare.
pub const LOCALS_PER_FUNCTION_MAX: u64 = 10_000;
/// The most tables a module may have.
pub const TABLES_MAX: usize = 16;

/// The most bytes of an `abort` message the host reads; the rest is dropped.
pub const ABORT_MESSAGE_BYTES_MAX: usize = 1024;

/// Limits of the sandbox.
///
/// Every field except [`log_size_bytes_max`](Self::log_size_bytes_max), the cache
/// settings and [`memory_pool_regions`](Self::memory_pool_regions) can change a job's
/// status, so all the nodes of a network must run with the same values: they are network
/// parameters, not local tuning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// The most 64 KiB pages a job's memory may have. A module that declares more as its
    /// minimum is rejected; a `memory.grow` past it fails (returns -1).
    pub memory_pages_max: u32,
    /// The largest module accepted, in bytes.
    pub module_size_bytes_max: usize,
    /// The largest input accepted, in bytes.
    pub input_size_bytes_max: usize,
    /// The largest output a job may return, in bytes; more is status `OutputTooLarge`.
    pub output_size_bytes_max: usize,
    /// The most bytes kept from a job's `log` calls; the rest is dropped.
    pub log_size_bytes_max: usize,
    /// The most compiled modules kept in memory (least recently used evicted first).
    pub cache_modules_max: usize,
    /// The most elements a table may have. A module that declares more as a table's
    /// minimum is rejected; a `table.grow` past it fails (returns -1).
    pub table_elements_max: u32,
    /// Size of the stack guest code runs on, in bytes. Deep recursion past it traps.
    pub stack_size_bytes_max: usize,
    /// The most nested calls a job may make (status `Trap` past it). Counted by the
    /// instrumentation, so it does not depend on frame sizes; it keeps typical recursion
    /// well inside [`stack_size_bytes_max`](Self::stack_size_bytes_max).
    pub call_depth_max: u32,
    /// The most bytes of compiled code kept in memory (least recently used evicted first);
    /// the cache is bounded by this and by [`cache_modules_max`](Self::cache_modules_max).
    /// Local tuning: no effect on outcomes.
    pub cache_bytes_max: usize,
    /// Where compiled modules are also kept on disk (`None`: in memory only). Only this
    /// node may write there: artifacts are machine code that is loaded as is, after its
    /// checksum is checked. Local tuning: no effect on outcomes.
    pub cache_dir: Option<PathBuf>,
    /// How many jobs' memory regions (6 GiB of address space each, wasmer's static
    /// reservation) are kept, zeroed and re-protected, for the next jobs, instead of a
    /// fresh reservation per job; 0: no pool. When the pool is empty a job reserves a
    /// fresh region; a region released to a full pool is unmapped. Local tuning: no
    /// effect on outcomes.
    pub memory_pool_regions: usize,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            memory_pages_max: MEMORY_PAGES_MAX_DEFAULT,
            module_size_bytes_max: MODULE_SIZE_BYTES_MAX_DEFAULT,
            input_size_bytes_max: INPUT_SIZE_BYTES_MAX_DEFAULT,
            output_size_bytes_max: OUTPUT_SIZE_BYTES_MAX_DEFAULT,
            log_size_bytes_max: LOG_SIZE_BYTES_MAX_DEFAULT,
            cache_modules_max: CACHE_MODULES_MAX_DEFAULT,
            table_elements_max: TABLE_ELEMENTS_MAX_DEFAULT,
            stack_size_bytes_max: STACK_SIZE_BYTES_MAX_DEFAULT,
            call_depth_max: CALL_DEPTH_MAX_DEFAULT,
            cache_bytes_max: CACHE_BYTES_MAX_DEFAULT,
            cache_dir: None,
            memory_pool_regions: memory_pool_regions_default(),
        }
    }
}
