//! A bounded pool of pre-reserved linear-memory regions, handed to wasmer through the
//! limiting tunables ([`crate::tunables`]) so that a warm job does not pay for a fresh
//! 6 GiB reservation (mmap + mprotect + munmap) and its first-touch faults.
//!
//! Wasmer's static memory style (4 GiB bound + 2 GiB guard) compiles loads and stores
//! without explicit bounds checks: the protection of the region *is* the bounds check.
//! Handing out a used region therefore makes isolation ours to guarantee. The invariants:
//!
//! - **An idle region is all zeros.** When a memory is dropped, every byte that was ever
//!   accessible in it is zeroed (explicit writes for small memories, whose pages stay
//!   resident; `madvise(MADV_DONTNEED)` otherwise, which gives zero-filled pages on the next
//!   touch) before the region goes back to the pool. If zeroing fails, the region is
//!   unmapped instead.
//! - **Exactly the memory's current size is accessible.** When a region is handed out, its
//!   read/write prefix is set to the new memory's initial size: pages past it are made
//!   `PROT_NONE` again. A grow makes exactly the new pages accessible. If `mprotect`
//!   fails, the region is unmapped, never handed out.
//! - **Nothing escapes the memory's owner.** Shared memories are refused; `try_clone` and
//!   `copy` are refused, so a region has exactly one user at a time.
//! - **Bounded.** At most `regions_max` idle regions are kept
//!   ([`crate::VmConfig::memory_pool_regions`]); when the pool is empty a fresh region is
//!   reserved (so the regions in use are as many as the jobs running at once), and a
//!   region released to a full pool is unmapped.
//!
//! Unsafe code of the sandbox's memory lives here, each block with its `SAFETY` comment.

#![allow(unsafe_code)] // mmap/mprotect/madvise and the wasmer memory definition pointer.

use std::cell::UnsafeCell;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wasmer::sys::vm::{LinearMemory, MemoryError, MemoryStyle, VMMemory, VMMemoryDefinition};
use wasmer::{MemoryType, Pages};

/// Idle memories of at most this many accessible bytes are zeroed by explicit writes
/// (their pages stay resident, so the next job takes no page fault); larger ones with
/// `madvise(MADV_DONTNEED)`. Resident memory kept by the pool is at most
/// `regions_max` × this.
const ZERO_BY_WRITE_BYTES_MAX: usize = 64 * 1024;

/// One reservation: `reserved` bytes of address space, of which `[0, accessible)` is
/// read/write and the rest `PROT_NONE`.
#[derive(Debug)]
struct Region {
    base: NonNull<u8>,
    reserved: usize,
    accessible: usize,
}

// SAFETY: a `Region` owns its mapping exclusively (no other pointer to it is kept while it
// is idle; while in use, only its one `PooledMemory` hands the base to wasmer), so moving
// it to another thread is sound.
unsafe impl Send for Region {}

fn os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

impl Region {
    /// Reserves `reserved` bytes of address space, none of it accessible.
    fn reserve(reserved: usize) -> Result<Region, String> {
        // SAFETY: a new private anonymous mapping at an address the kernel picks: no
        // existing memory is affected. `MAP_NORESERVE`: address space only.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserved,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_error("reserving a memory region"));
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| "mmap returned null".to_owned())?;
        Ok(Region { base, reserved, accessible: 0 })
    }

    /// Makes exactly `[0, bytes)` read/write and everything after it inaccessible.
    fn set_accessible(&mut self, bytes: usize) -> Result<(), String> {
        if bytes > self.reserved {
            return Err(format!("{bytes} bytes do not fit a region of {} bytes", self.reserved));
        }
        let (start, len, protection) = match bytes.cmp(&self.accessible) {
            std::cmp::Ordering::Equal => return Ok(()),
            std::cmp::Ordering::Greater => {
                (self.accessible, bytes - self.accessible, libc::PROT_READ | libc::PROT_WRITE)
            }
            std::cmp::Ordering::Less => (bytes, self.accessible - bytes, libc::PROT_NONE),
        };
        // SAFETY: `[start, start + len)` lies inside this region's own mapping (checked
        // above: `start + len` is `bytes` or `self.accessible`, both ≤ `reserved`), and
        // both ends are multiples of the wasm page size, hence of the OS page size.
        let result = unsafe { libc::mprotect(self.base.as_ptr().add(start).cast(), len, protection) };
        if result != 0 {
            return Err(os_error("changing a memory region's protection"));
        }
        self.accessible = bytes;
        Ok(())
    }

    /// Zeroes every accessible byte.
    fn zero(&mut self) -> Result<(), String> {
        if self.accessible == 0 {
            return Ok(());
        }
        if self.accessible <= ZERO_BY_WRITE_BYTES_MAX || !cfg!(target_os = "linux") {
            // SAFETY: `[0, accessible)` is mapped read/write and owned by this region; no
            // wasm instance uses it any more (its memory was dropped).
            unsafe { std::ptr::write_bytes(self.base.as_ptr(), 0, self.accessible) };
            return Ok(());
        }
        // SAFETY: as above; on Linux, `MADV_DONTNEED` on a private anonymous mapping
        // discards the pages, and the next access reads zero-filled pages.
        let result = unsafe { libc::madvise(self.base.as_ptr().cast(), self.accessible, libc::MADV_DONTNEED) };
        if result != 0 {
            return Err(os_error("zeroing a memory region"));
        }
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly this region's own mapping, which nothing uses any more.
        // A failure would only leak address space.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.reserved) };
    }
}

/// Counters of a [`MemoryPool`], for tests.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PoolStats {
    /// Regions reserved from the OS (pool empty).
    pub(crate) reserved: u64,
    /// Memories handed out on a region taken from the pool.
    pub(crate) reused: u64,
    /// Regions idle in the pool now.
    pub(crate) idle: usize,
}

/// The pool: idle, zeroed regions, at most `regions_max` of them.
#[derive(Debug)]
pub(crate) struct MemoryPool {
    idle: Mutex<Vec<Region>>,
    regions_max: usize,
    reserved: AtomicU64,
    reused: AtomicU64,
}

impl MemoryPool {
    /// A pool that keeps at most `regions_max` idle regions.
    pub(crate) fn new(regions_max: usize) -> Arc<MemoryPool> {
        Arc::new(MemoryPool {
            idle: Mutex::new(Vec::with_capacity(regions_max)),
            regions_max,
            reserved: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        })
    }

    /// The most idle regions kept.
    #[cfg(test)]
    pub(crate) fn regions_max(&self) -> usize {
        self.regions_max
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            reserved: self.reserved.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            idle: self.lock().len(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Region>> {
        // A `Vec` push/pop cannot leave it inconsistent: a poisoned lock is still usable.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle region of `reserved` bytes, or a fresh one.
    fn take(&self, reserved: usize) -> Result<Region, MemoryError> {
        let idle = self.lock().pop();
        match idle {
            Some(region) if region.reserved == reserved => {
                self.reused.fetch_add(1, Ordering::Relaxed);
                Ok(region)
            }
            // Another size (another style): unmapped, and a fresh one reserved.
            _ => {
                self.reserved.fetch_add(1, Ordering::Relaxed);
                Region::reserve(reserved).map_err(MemoryError::Region)
            }
        }
    }

    /// Zeroes the region and keeps it if there is room; otherwise unmaps it.
    fn give_back(&self, mut region: Region) {
        if region.zero().is_err() {
            return; // Dropped: unmapped, never reused.
        }
        let mut idle = self.lock();
        if idle.len() < self.regions_max {
            idle.push(region);
        }
    }

    /// A memory of type `ty` on a pooled region, or `None` if `style` is not static (then
    /// the caller creates it the usual way). `location`: the instance's definition to
    /// fill in, or `None` for a host memory that owns its definition.
    ///
    /// # Safety
    /// `location`, if any, must point to a valid `VMMemoryDefinition` that outlives the
    /// returned memory's use by wasm code (as for `Tunables::create_vm_memory`).
    pub(crate) unsafe fn create(
        self: &Arc<Self>,
        ty: &MemoryType,
        style: &MemoryStyle,
        location: Option<NonNull<VMMemoryDefinition>>,
    ) -> Result<Option<VMMemory>, MemoryError> {
        if ty.shared {
            return Err(MemoryError::InvalidMemory { reason: "shared memories are not supported".to_owned() });
        }
        let MemoryStyle::Static { bound, offset_guard_size } = *style else {
            return Ok(None);
        };
        if ty.minimum > bound {
            return Err(MemoryError::MinimumMemoryTooLarge { min_requested: ty.minimum, max_allowed: bound });
        }
        let reserved = usize::try_from(offset_guard_size)
            .ok()
            .and_then(|guard| bound.bytes().0.checked_add(guard))
            .ok_or_else(|| MemoryError::Region("memory reservation too large".to_owned()))?;
        let mut region = self.take(reserved)?;
        // Past the initial size: inaccessible again. (A failure drops the region: unmapped.)
        region.set_accessible(ty.minimum.bytes().0).map_err(MemoryError::Region)?;
        let initial = VMMemoryDefinition { base: region.base.as_ptr(), current_length: region.accessible };
        let definition = match location {
            Some(location) => {
                // SAFETY: the caller guarantees `location` points to a valid definition
                // that we may write.
                unsafe { location.as_ptr().write(initial) };
                Definition::Instance(location)
            }
            None => Definition::Host(Box::new(UnsafeCell::new(initial))),
        };
        let memory =
            PooledMemory { region: Some(region), pool: Arc::clone(self), definition, ty: *ty, bound, size: ty.minimum };
        Ok(Some(VMMemory(Box::new(memory))))
    }
}

/// Where a memory's definition (base and length, read by compiled code) lives.
#[derive(Debug)]
enum Definition {
    /// In the instance's `VMContext`.
    Instance(NonNull<VMMemoryDefinition>),
    /// Owned here (a host memory).
    Host(Box<UnsafeCell<VMMemoryDefinition>>),
}

impl Definition {
    fn as_ptr(&self) -> NonNull<VMMemoryDefinition> {
        match self {
            Definition::Instance(location) => *location,
            // An `UnsafeCell`'s pointer is never null.
            Definition::Host(cell) => NonNull::from(cell.as_ref()).cast(),
        }
    }
}

/// A linear memory on a pooled region; the region goes back to the pool, zeroed, on drop.
#[derive(Debug)]
struct PooledMemory {
    /// `Some` until dropped.
    region: Option<Region>,
    pool: Arc<MemoryPool>,
    definition: Definition,
    /// The type it was created with (its maximum already limited by the tunables).
    ty: MemoryType,
    /// The static bound: the code has no bounds checks below it.
    bound: Pages,
    size: Pages,
}

// SAFETY: like wasmer's `VMOwnedMemory`: the region is exclusively owned, and the
// definition pointer is written only through `&mut self` (`grow`), by whichever thread
// owns the store.
unsafe impl Send for PooledMemory {}

impl LinearMemory for PooledMemory {
    fn ty(&self) -> MemoryType {
        MemoryType { minimum: self.size, ..self.ty }
    }

    fn size(&self) -> Pages {
        self.size
    }

    fn style(&self) -> MemoryStyle {
        MemoryStyle::Static { bound: self.bound, offset_guard_size: self.guard_bytes() }
    }

    fn grow(&mut self, delta: Pages) -> Result<Pages, MemoryError> {
        let previous = self.size;
        if delta.0 == 0 {
            return Ok(previous);
        }
        let refused = MemoryError::CouldNotGrow { current: previous, attempted_delta: delta };
        let Some(new_size) = previous.checked_add(delta) else {
            return Err(refused);
        };
        if self.ty.maximum.is_some_and(|maximum| new_size > maximum) || new_size > self.bound {
            return Err(refused);
        }
        let region = self.region.as_mut().ok_or(refused)?;
        region.set_accessible(new_size.bytes().0).map_err(MemoryError::Region)?;
        self.size = new_size;
        // SAFETY: the definition is valid while this memory is in use (the contract of
        // `create`), and `&mut self` makes this the only writer.
        unsafe { (*self.definition.as_ptr().as_ptr()).current_length = region.accessible };
        Ok(previous)
    }

    fn grow_at_least(&mut self, min_size: u64) -> Result<(), MemoryError> {
        let current = self.size.bytes().0 as u64;
        if current < min_size {
            let pages = (min_size - current).div_ceil(crate::WASM_PAGE_SIZE_BYTES as u64);
            let delta = u32::try_from(pages)
                .map_err(|_| MemoryError::CouldNotGrow { current: self.size, attempted_delta: Pages::max_value() })?;
            self.grow(Pages(delta))?;
        }
        Ok(())
    }

    fn vmmemory(&self) -> NonNull<VMMemoryDefinition> {
        self.definition.as_ptr()
    }

    fn try_clone(&self) -> Result<Box<dyn LinearMemory + 'static>, MemoryError> {
        // One user per region.
        Err(MemoryError::MemoryNotShared)
    }

    fn copy(&mut self) -> Result<Box<dyn LinearMemory + 'static>, MemoryError> {
        Err(MemoryError::UnsupportedOperation { message: "pooled memories cannot be copied".to_owned() })
    }
}

impl PooledMemory {
    fn guard_bytes(&self) -> u64 {
        let reserved = self.region.as_ref().map_or(0, |region| region.reserved);
        reserved.saturating_sub(self.bound.bytes().0) as u64
    }
}

impl Drop for PooledMemory {
    fn drop(&mut self) {
        // The definition may already be freed with its instance: not touched here.
        if let Some(region) = self.region.take() {
            self.pool.give_back(region);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pool's invariants checked on the raw regions: zeroed when released (by both
    //! zeroing paths), inaccessible past the size, refusals.

    use super::*;

    /// A static style like wasmer's on 64-bit hosts, scaled down: 64 pages + 1 page of guard.
    const STYLE: MemoryStyle = MemoryStyle::Static { bound: Pages(64), offset_guard_size: 65_536 };

    fn memory_type(minimum: u32, maximum: u32) -> MemoryType {
        MemoryType::new(Pages(minimum), Some(Pages(maximum)), false)
    }

    fn create(pool: &Arc<MemoryPool>, minimum: u32) -> VMMemory {
        // SAFETY: no definition location: the memory owns its definition.
        unsafe { pool.create(&memory_type(minimum, 16), &STYLE, None) }.expect("created").expect("static style")
    }

    /// The memory's accessible bytes, as wasm code sees them.
    fn bytes(memory: &mut VMMemory) -> &mut [u8] {
        // SAFETY: the definition describes `current_length` read/write bytes at `base`,
        // owned by `memory`, which is borrowed mutably for as long as the slice lives.
        unsafe {
            let definition = memory.vmmemory().as_ref();
            std::slice::from_raw_parts_mut(definition.base, definition.current_length)
        }
    }

    /// Whether the byte at `offset` from the memory's base can be read, checked without
    /// faulting: the kernel reports `EFAULT` when writing from an inaccessible address.
    fn readable(memory: &VMMemory, offset: usize) -> bool {
        let mut pipe = [0; 2];
        // SAFETY: a fresh pipe, written once from the address under test (the kernel
        // checks it), read back and closed; no Rust reference to that address is formed.
        unsafe {
            assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
            let address = memory.vmmemory().as_ref().base.wrapping_add(offset);
            let written = libc::write(pipe[1], address.cast(), 1);
            let mut byte = 0u8;
            if written == 1 {
                libc::read(pipe[0], (&raw mut byte).cast(), 1);
            }
            libc::close(pipe[0]);
            libc::close(pipe[1]);
            written == 1
        }
    }

    #[test]
    fn a_released_region_comes_back_zeroed_and_protected_past_the_new_size() {
        let pool = MemoryPool::new(1);
        // 1 page (zeroed by writes), then 3 pages grown to 5 (zeroed by madvise).
        for (minimum, grow) in [(1, 0), (3, 2), (1, 0), (2, 1)] {
            let mut memory = create(&pool, minimum);
            let size = ((minimum + grow) as usize) * 65_536;
            memory.grow(Pages(grow)).expect("within the maximum");
            assert_eq!(memory.size(), Pages(minimum + grow));
            assert!(bytes(&mut memory).iter().all(|&b| b == 0), "a previous memory's bytes leaked");
            assert!(readable(&memory, size - 1));
            assert!(!readable(&memory, size), "accessible past the size");
            assert!(!readable(&memory, 5 * 65_536), "accessible past the size");
            bytes(&mut memory).fill(0xa5);
        }
        let stats = pool.stats();
        assert_eq!((stats.reserved, stats.reused, stats.idle), (1, 3, 1), "{stats:?}");
    }

    #[test]
    fn grows_past_the_maximum_or_the_bound_are_refused() {
        let pool = MemoryPool::new(1);
        let mut memory = create(&pool, 2);
        assert!(memory.grow(Pages(15)).is_err());
        assert_eq!(memory.grow(Pages(14)).expect("to the maximum"), Pages(2));
        assert!(memory.grow(Pages(1)).is_err());
        assert_eq!(memory.size(), Pages(16));
        assert!(!readable(&memory, 16 * 65_536));
        // SAFETY: no definition location.
        let unbounded = unsafe { pool.create(&MemoryType::new(Pages(1), None, false), &STYLE, None) };
        let mut unbounded = unbounded.expect("created").expect("static style");
        assert!(unbounded.grow(Pages(64)).is_err(), "past the static bound");
        assert_eq!(unbounded.grow(Pages(63)).expect("to the bound"), Pages(1));
    }

    #[test]
    fn shared_memories_copies_and_clones_are_refused() {
        let pool = MemoryPool::new(1);
        // SAFETY: no definition location.
        let shared = unsafe { pool.create(&MemoryType::new(Pages(1), Some(Pages(2)), true), &STYLE, None) };
        assert!(shared.is_err());
        let mut memory = create(&pool, 1);
        assert!(memory.try_clone().is_err());
        assert!(memory.copy().is_err());
        // Not static: left to wasmer.
        let dynamic = MemoryStyle::Dynamic { offset_guard_size: 0 };
        // SAFETY: no definition location.
        assert!(unsafe { pool.create(&memory_type(1, 2), &dynamic, None) }.expect("no error").is_none());
    }

    #[test]
    fn a_full_pool_unmaps_what_it_cannot_keep() {
        let pool = MemoryPool::new(2);
        let memories: Vec<VMMemory> = (0..5).map(|_| create(&pool, 1)).collect();
        assert_eq!(pool.stats().reserved, 5);
        drop(memories);
        assert_eq!(pool.stats().idle, 2);
        assert_eq!(pool.regions_max(), 2);
    }
}
