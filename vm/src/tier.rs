//! The background compiler of [`Tiering::Tiered`](crate::Tiering::Tiered): recompiles modules
//! with Cranelift, one at a time, on a thread of its own at the lowest CPU priority, and
//! swaps the optimized code into the caches when it is ready.
//!
//! Bounded: at most [`TIER_UP_QUEUE_MAX`] modules wait (a request past that is refused and
//! may come again after more jobs), and a module is handed over only once its jobs on this
//! node used [`TIER_UP_FUEL_PER_WASM_BYTE`](crate::TIER_UP_FUEL_PER_WASM_BYTE) fuel per byte
//! of it, so the work one module can cause here stays proportional to the work paid for on
//! it. Nothing waits for this thread: jobs keep running on the first code meanwhile.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::engine::{self, Compiler};
use crate::meter::MeterMode;
use crate::pool::MemoryPool;
use crate::{Caches, VmConfig, validate};

/// Modules waiting for the background compiler.
pub const TIER_UP_QUEUE_MAX: usize = 16;

/// A module to recompile: its id and bytes.
type Request = ([u8; 32], Vec<u8>);

/// The handle of the background compiler; dropping it ends the thread (after the module
/// it is compiling, if any).
pub(crate) struct Worker {
    queue: SyncSender<Request>,
}

impl Worker {
    pub(crate) fn start(
        config: VmConfig,
        mode: Option<MeterMode>,
        pool: Option<Arc<MemoryPool>>,
        caches: Arc<Caches>,
    ) -> Worker {
        let (queue, requests) = sync_channel(TIER_UP_QUEUE_MAX);
        let spawned = std::thread::Builder::new()
            .name("cairn-vm-tier-up".into())
            .spawn(move || run(&config, mode, pool.as_ref(), &caches, &requests));
        // Without the thread, modules keep their first code: slower, never wrong.
        drop(spawned);
        Worker { queue }
    }

    /// Queues a module; `false` if the queue is full (or the thread is gone).
    pub(crate) fn request(&self, id: [u8; 32], wasm: &[u8]) -> bool {
        match self.queue.try_send((id, wasm.to_vec())) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

fn run(
    config: &VmConfig,
    mode: Option<MeterMode>,
    pool: Option<&Arc<MemoryPool>>,
    caches: &Caches,
    requests: &Receiver<Request>,
) {
    lowest_priority();
    while let Ok((id, wasm)) = requests.recv() {
        // A module evicted meanwhile is not brought back.
        if caches.lock_memory().get(&id).is_none() {
            continue;
        }
        let compiled = catch_unwind(AssertUnwindSafe(|| {
            let checked = validate::check(config, &wasm)?;
            engine::compile(config, &wasm, &checked, mode, pool, Compiler::Cranelift)
        }));
        // A failure keeps the first code, which serves every job the same way.
        if let Ok(Ok(compiled)) = compiled {
            caches.replace(id, compiled, wasm.len());
            caches.tiered_up.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Gives the calling thread the lowest CPU priority (nice 19), so that the optimizing
/// compiler only uses what jobs, blocks and the network leave.
fn lowest_priority() {
    // SAFETY: `gettid` takes nothing and returns the caller's thread id; `setpriority`
    // reads its three integer arguments and changes the scheduling priority of that thread
    // (on Linux the nice value is per thread); neither touches memory of ours. A failure
    // only leaves the priority as it was.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
}
