//! The sandbox's limits.

use std::path::PathBuf;

/// Size of a WebAssembly page in bytes.
pub const WASM_PAGE_SIZE_BYTES: usize = 65_536;

/// Default for [`VmConfig::memory_pages_max`]: 256 pages, 16 MiB.
pub const MEMORY_PAGES_MAX_DEFAULT: u32 = 256;
/// Default for [`VmConfig::module_size_bytes_max`]: 4 MiB.
pub const MODULE_SIZE_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// Default for [`VmConfig::input_size_bytes_max`]: 4 MiB, the largest input blob
/// ([`cairn_ledger::DATA_BLOB_BYTES_MAX`]).
pub const INPUT_SIZE_BYTES_MAX_DEFAULT: usize = cairn_ledger::DATA_BLOB_BYTES_MAX;
/// Default for [`VmConfig::output_size_bytes_max`]: 4 MiB, the largest output blob
/// ([`cairn_ledger::DATA_BLOB_BYTES_MAX`]).
pub const OUTPUT_SIZE_BYTES_MAX_DEFAULT: usize = cairn_ledger::DATA_BLOB_BYTES_MAX;
/// Default for [`VmConfig::log_size_bytes_max`]: 4 KiB.
pub const LOG_SIZE_BYTES_MAX_DEFAULT: usize = 4 * 1024;
/// Default for [`VmConfig::cache_modules_max`].
pub const CACHE_MODULES_MAX_DEFAULT: usize = 64;
/// Default for [`VmConfig::cache_dir_bytes_max`]: 1 GiB (a module at the size limit compiles
/// to tens of MiB per compiler; most to far less).
pub const CACHE_DIR_BYTES_MAX_DEFAULT: u64 = 1 << 30;
/// Default for [`VmConfig::table_elements_max`].
pub const TABLE_ELEMENTS_MAX_DEFAULT: u32 = 10_000;
/// Default for [`VmConfig::stack_units_max`]: 131,072 units (2 MiB at
/// [`STACK_UNIT_BYTES`]); about 3,000 nested calls of small functions.
pub const STACK_UNITS_MAX_DEFAULT: u32 = 1 << 17;

/// The stack units one active call of a function holds besides its slots (return address,
/// saved registers, the compiler's own spills): see [`frame_units`].
pub const FRAME_UNITS_BASE: u32 = 32;
/// The native stack bytes one stack unit stands for: a slot (a parameter, a local or an
/// operand) takes at most 8 bytes of a compiled frame, so a unit of 16 leaves room.
pub const STACK_UNIT_BYTES: usize = 16;
/// How many times the native stack exceeds the most the stack units can stand for, so
/// that the deterministic limit always comes first.
pub const NATIVE_STACK_MARGIN: usize = 4;
/// Native stack kept on top of the units' share, for the host functions and the
/// runtime's own frames.
pub const NATIVE_STACK_RESERVE_BYTES: usize = 1 << 20;

/// The stack units one active call of a function with `params` parameters, `locals`
/// declared locals and at most `operands` operands on its operand stack holds:
/// [`FRAME_UNITS_BASE`] plus one per slot. Part of the job ABI (`docs/FUEL.md` §4).
pub fn frame_units(params: u32, locals: u32, operands: u32) -> u32 {
    FRAME_UNITS_BASE.saturating_add(params).saturating_add(locals).saturating_add(operands)
}

/// The native stack a job runs on when at most `stack_units_max` units may be in use.
pub fn native_stack_bytes(stack_units_max: u32) -> usize {
    (stack_units_max as usize)
        .saturating_mul(STACK_UNIT_BYTES)
        .saturating_mul(NATIVE_STACK_MARGIN)
        .saturating_add(NATIVE_STACK_RESERVE_BYTES)
}
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
/// The most locals (parameters excluded) all of a module's functions may declare together.
pub const LOCALS_TOTAL_MAX: u64 = 100_000;
/// The deepest nesting of control structures (`block`, `loop`, `if`, and the function's
/// own label) in a function.
pub const CONTROL_DEPTH_MAX: u32 = 1_024;
/// The most targets (the default included) of one `br_table`.
pub const BR_TABLE_TARGETS_MAX: u32 = 65_536;
/// The most operands on a function's operand stack at any point.
pub const OPERAND_STACK_MAX: u32 = 65_536;
/// The largest function body, in bytes, after the fuel metering is added.
pub const FUNCTION_BODY_BYTES_MAX: usize = 1 << 20;
/// The largest module, in bytes, after the fuel metering is added: what the compiler is
/// given, hence what bounds compile time.
pub const METERED_MODULE_BYTES_MAX: usize = 16 << 20;

/// The most bytes of an `abort` message the host reads; the rest is dropped (a limit of the
/// job ABI, `cairn-abi`).
pub use cairn_abi::ABORT_MESSAGE_BYTES_MAX;

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
    /// The most stack units the active calls of a job may hold together (status `Trap`
    /// past it): each call of a function holds [`frame_units`] of its parameters, locals
    /// and deepest operand stack. Counted by the instrumentation, so it does not depend on
    /// the compiler or the machine; the native stack ([`native_stack_bytes`]) is sized so
    /// that this limit always comes first.
    pub stack_units_max: u32,
    /// The most bytes of compiled code kept in memory (least recently used evicted first);
    /// the cache is bounded by this and by [`cache_modules_max`](Self::cache_modules_max).
    /// Local tuning: no effect on outcomes.
    pub cache_bytes_max: usize,
    /// Where compiled modules are also kept on disk (`None`: in memory only). Only this
    /// node may write there: artifacts are machine code that is loaded as is, after its
    /// checksum is checked. Local tuning: no effect on outcomes.
    pub cache_dir: Option<PathBuf>,
    /// The most bytes of files [`cache_dir`](Self::cache_dir) holds: past it, storing a
    /// module deletes the files used least recently (a load counts as a use) until the folder
    /// is within seven eighths of it. Local tuning: no effect on outcomes.
    pub cache_dir_bytes_max: u64,
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
            cache_dir_bytes_max: CACHE_DIR_BYTES_MAX_DEFAULT,
            table_elements_max: TABLE_ELEMENTS_MAX_DEFAULT,
            stack_units_max: STACK_UNITS_MAX_DEFAULT,
            cache_bytes_max: CACHE_BYTES_MAX_DEFAULT,
            cache_dir: None,
            memory_pool_regions: memory_pool_regions_default(),
        }
    }
}
