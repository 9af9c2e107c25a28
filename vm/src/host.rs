//! The host functions a job may import from module `cairn`: `abort` and `log`.
//!
//! Both read guest memory through the instance's exported memory, with bounds checks:
//! a range outside memory traps the job. Neither reads more than its limit, so a hostile
//! guest cannot make the host copy unbounded amounts of data.

use wasmer::{AsStoreMut, Function, FunctionEnv, FunctionEnvMut, Global, Imports, Memory, MemoryView, Value, imports};

use cairn_abi::{ABORT_MESSAGE_BYTES_MAX, HOST_ABORT, HOST_LOG, HOST_MODULE};

/// Per-job state the host functions see.
pub(crate) struct HostState {
    /// The guest's exported memory; set right after instantiation, before any guest call.
    pub(crate) memory: Option<Memory>,
    /// The meter's remaining-fuel global (absent in unmetered builds). Host functions
    /// refuse to run once it is negative: the fast meter may let a job call one after its
    /// fuel ran out, and what the host does must not depend on the meter.
    pub(crate) fuel: Option<Global>,
    /// What the guest logged, at most `log_size_bytes_max` bytes.
    pub(crate) log: Vec<u8>,
    log_size_bytes_max: usize,
}

impl HostState {
    pub(crate) fn new(log_size_bytes_max: usize) -> Self {
        HostState { memory: None, fuel: None, log: Vec::new(), log_size_bytes_max }
    }
}

/// Why a host function stopped the job. Always status `Trap` (unless a refused
/// `memory.grow` came first, see the crate docs); the text becomes the execution's message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostTrap {
    /// The guest called `cairn.abort`.
    #[error("job aborted: {0}")]
    Abort(String),
    /// A host function was given a range outside the guest's memory.
    #[error("`cairn.{function}` was called with bytes {ptr}..{ptr}+{len} outside the job's memory")]
    OutOfBounds { function: &'static str, ptr: u32, len: u32 },
    /// A host function was called after the fuel ran out (reported as `OutOfFuel`).
    #[error("`cairn.{0}` was called after the fuel ran out")]
    OutOfFuel(&'static str),
    /// A host function ran before the memory was attached (cannot happen: no start
    /// function is allowed, and the memory is attached before `cairn_alloc` runs).
    #[error("`cairn.{0}` was called before the job's memory was ready")]
    NoMemory(&'static str),
}

/// The import object offering the host functions.
pub(crate) fn imports(store: &mut impl AsStoreMut, env: &FunctionEnv<HostState>) -> Imports {
    imports! {
        HOST_MODULE => {
            HOST_ABORT => Function::new_typed_with_env(store, env, abort),
            HOST_LOG => Function::new_typed_with_env(store, env, log),
        }
    }
}

/// `cairn.abort(msg_ptr: i32, msg_len: i32)`: stops the job with status Trap; the message
/// (its first [`ABORT_MESSAGE_BYTES_MAX`] bytes, lossy UTF-8) becomes the execution's message.
fn abort(mut env: FunctionEnvMut<HostState>, ptr: i32, len: i32) -> Result<(), HostTrap> {
    let (state, mut store) = env.data_and_store_mut();
    check_fuel(state, &mut store, HOST_ABORT)?;
    let memory = state.memory.as_ref().ok_or(HostTrap::NoMemory(HOST_ABORT))?;
    let view = memory.view(&store);
    let (start, size) = checked_range(&view, HOST_ABORT, ptr, len)?;
    let mut message = vec![0; size.min(ABORT_MESSAGE_BYTES_MAX as u64) as usize];
    view.read(start, &mut message).map_err(|_| out_of_bounds(HOST_ABORT, ptr, len))?;
    Err(HostTrap::Abort(String::from_utf8_lossy(&message).into_owned()))
}

/// `cairn.log(ptr: i32, len: i32)`: appends the bytes to the job's log; what does not fit
/// within the log limit is dropped.
fn log(mut env: FunctionEnvMut<HostState>, ptr: i32, len: i32) -> Result<(), HostTrap> {
    #[cfg(test)]
    test_hooks::maybe_panic();
    let (state, mut store) = env.data_and_store_mut();
    check_fuel(state, &mut store, HOST_LOG)?;
    let memory = state.memory.as_ref().ok_or(HostTrap::NoMemory(HOST_LOG))?;
    let view = memory.view(&store);
    let (start, size) = checked_range(&view, HOST_LOG, ptr, len)?;
    let room = state.log_size_bytes_max.saturating_sub(state.log.len());
    let take = size.min(room as u64) as usize;
    if take > 0 {
        let old_len = state.log.len();
        state.log.resize(old_len + take, 0);
        view.read(start, &mut state.log[old_len..]).map_err(|_| out_of_bounds(HOST_LOG, ptr, len))?;
    }
    Ok(())
}

fn check_fuel(state: &HostState, store: &mut impl AsStoreMut, function: &'static str) -> Result<(), HostTrap> {
    match state.fuel.as_ref().map(|fuel| fuel.get(store)) {
        Some(Value::I64(remaining)) if remaining < 0 => Err(HostTrap::OutOfFuel(function)),
        _ => Ok(()),
    }
}

/// The guest's `(ptr, len)` as an in-bounds `(start, len)` of memory. Both are unsigned
/// 32-bit values in the ABI; `i32` is only how wasm passes them.
fn checked_range(view: &MemoryView<'_>, function: &'static str, ptr: i32, len: i32) -> Result<(u64, u64), HostTrap> {
    let (start, size) = (u64::from(ptr as u32), u64::from(len as u32));
    if start + size > view.data_size() {
        return Err(out_of_bounds(function, ptr, len));
    }
    Ok((start, size))
}

fn out_of_bounds(function: &'static str, ptr: i32, len: i32) -> HostTrap {
    HostTrap::OutOfBounds { function, ptr: ptr as u32, len: len as u32 }
}

/// A way for tests to make the sandbox itself fail (a bug of the node, not of the job).
#[cfg(test)]
pub(crate) mod test_hooks {
    use std::cell::Cell;

    thread_local! {
        static PANIC_IN_LOG: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes `cairn.log` panic on this thread while `on`.
    pub(crate) fn panic_in_log(on: bool) {
        PANIC_IN_LOG.with(|flag| flag.set(on));
    }

    pub(super) fn maybe_panic() {
        if PANIC_IN_LOG.with(Cell::get) {
            panic!("test hook: a bug in a host function");
        }
    }
}
