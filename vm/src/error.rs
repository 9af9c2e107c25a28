//! Why a module was rejected.

/// `Result` with [`VmError`] as the default error.
pub type Result<T, E = VmError> = std::result::Result<T, E>;

/// Why [`Vm::validate`](crate::Vm::validate) rejected a module.
///
/// Every variant is a property of the module's bytes (and of the [`VmConfig`]
/// limits), so every node reaches the same verdict. When [`Vm::execute`](crate::Vm::execute)
/// meets one of these, the job's status is `InvalidModule` and the error's text is the
/// execution's message ([`crate::Execution::message`]).
///
/// [`VmConfig`]: crate::VmConfig
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    /// The module is larger than [`VmConfig::module_size_bytes_max`](crate::VmConfig::module_size_bytes_max).
    #[error(
        "the module is {size_bytes} bytes, over the limit of {size_bytes_max} bytes: build it in \
         release mode with opt-level \"s\", LTO and stripped symbols, or split the work"
    )]
    ModuleTooLarge {
        /// The module's size.
        size_bytes: usize,
        /// The limit.
        size_bytes_max: usize,
    },

    /// The bytes are not a valid WebAssembly 2.0 binary, or use a feature Cairn leaves off
    /// (SIMD, threads, relaxed SIMD, memory64, multiple memories, exceptions, tail calls,
    /// GC…).
    #[error(
        "not a valid Cairn WebAssembly module: {0}. Upload the compiled binary (.wasm), built \
         for wasm32-unknown-unknown without SIMD (simd128), threads, memory64 or exceptions"
    )]
    Malformed(String),

    /// The module imports something other than the host functions of the job ABI.
    #[error(
        "the module imports `{module}.{name}`, which Cairn does not provide: a job may import \
         only the functions `cairn.abort` and `cairn.log` (no WASI, clock, randomness or \
         imported memory); build it for wasm32-unknown-unknown with no_std or without those APIs"
    )]
    ForbiddenImport {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
    },

    /// A `cairn` host function is imported with the wrong signature.
    #[error(
        "the module imports `cairn.{name}` as {found}, but it is {expected}: declare it as the \
         job ABI says (docs/JOB-ABI.md)"
    )]
    ImportSignature {
        /// The host function's name.
        name: &'static str,
        /// Its signature in the ABI.
        expected: &'static str,
        /// The signature the module declared.
        found: String,
    },

    /// A required export of the job ABI is missing.
    #[error(
        "the module does not export `{name}` ({expected}): jobs must export `memory`, \
         `cairn_alloc` and `cairn_run` (the cairn-sdk `job!` macro does this)"
    )]
    MissingExport {
        /// The export's name.
        name: &'static str,
        /// What it should be.
        expected: &'static str,
    },

    /// A required export has the wrong kind or signature.
    #[error(
        "the module exports `{name}` as {found}, but the job ABI needs {expected} \
         (docs/JOB-ABI.md)"
    )]
    ExportSignature {
        /// The export's name.
        name: &'static str,
        /// What it should be.
        expected: &'static str,
        /// What the module exports.
        found: String,
    },

    /// The module has a start function. Cairn runs guest code only through `cairn_run`,
    /// where it is metered against the job's fuel.
    #[error(
        "the module has a start function, which Cairn does not run: do that work at the \
         beginning of `cairn_run` instead"
    )]
    StartFunction,

    /// The memory's declared minimum is over [`VmConfig::memory_pages_max`](crate::VmConfig::memory_pages_max).
    #[error(
        "the module's memory starts at {pages_min} pages of 64 KiB, over the limit of \
         {pages_max} pages: lower its initial size (smaller stack or static data)"
    )]
    MemoryTooLarge {
        /// The declared minimum.
        pages_min: u64,
        /// The limit.
        pages_max: u32,
    },

    /// A table's declared minimum is over [`VmConfig::table_elements_max`](crate::VmConfig::table_elements_max).
    #[error(
        "a table of the module starts at {elements_min} elements, over the limit of \
         {elements_max}: use fewer indirectly called functions"
    )]
    TableTooLarge {
        /// The declared minimum.
        elements_min: u64,
        /// The limit.
        elements_max: u32,
    },

    /// The module has more items of some kind than the sandbox accepts (functions,
    /// globals, imports, exports, data or element segments, types, tables, or locals in
    /// one function; see the `*_MAX` constants). Refused before compilation, which would
    /// take time proportional to them.
    #[error(
        "the module has {count} {what}, over the limit of {max}: build it in release mode \
         with LTO, or split the work"
    )]
    TooMany {
        /// What there are too many of.
        what: &'static str,
        /// How many the module has.
        count: u64,
        /// The limit.
        max: u64,
    },

    /// A function of the module goes past one of the structural limits that bound what
    /// compiling it costs (`CONTROL_DEPTH_MAX`, `BR_TABLE_TARGETS_MAX`,
    /// `OPERAND_STACK_MAX`, `FUNCTION_BODY_BYTES_MAX`; docs/JOB-ABI.md §5).
    #[error(
        "function {function} of the module has {count} {what}, over the limit of {max}: split it \
         into smaller functions (a huge `match` or a long unrolled loop usually causes this)"
    )]
    FunctionLimit {
        /// The function's index (imported functions first, as in the binary).
        function: u32,
        /// The rule: what there is too much of.
        what: &'static str,
        /// How much the function has.
        count: u64,
        /// The limit.
        max: u64,
    },

    /// The module with its fuel metering added is larger than `METERED_MODULE_BYTES_MAX`,
    /// which bounds the time it takes to compile (docs/JOB-ABI.md §5).
    #[error(
        "the module is {size_bytes} bytes once metered, over the limit of {size_bytes_max} \
         bytes: build it in release mode with opt-level \"s\", LTO and stripped symbols, or split \
         the work"
    )]
    MeteredTooLarge {
        /// The metered module's size.
        size_bytes: usize,
        /// The limit.
        size_bytes_max: usize,
    },

    /// The compiler could not compile a module that passed validation. This points at a
    /// compiler limit or bug, not at the job.
    #[error("the module could not be compiled: {0}. Report this with the module attached")]
    Compile(String),
}

/// A failure of this node while running a job, not of the job: the host could not reserve
/// memory that the module's declared minimum is entitled to, the sandbox panicked, or the
/// instrumentation's state could not be set.
///
/// Another node running the same (module, input, fuel limit) would not meet it, so it is
/// never turned into a [`JobStatus`](crate::JobStatus): a provider that gets one signs no
/// result (the job can be run again later or by another provider), and a re-execution for a
/// dispute that gets one has no verdict to give.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the sandbox failed on this node, not because of the job: {reason}. No result should be \
     signed; check the node's memory (address space, overcommit) and logs, then run the job again"
)]
pub struct InternalError {
    /// What failed.
    pub reason: String,
}

impl InternalError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        InternalError { reason: reason.into() }
    }
}
