//! What a `no_std` job needs on wasm32: a global allocator and a panic handler.

#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::sync::atomic::{AtomicUsize, Ordering};

const PAGE_SIZE_BYTES: usize = 65_536;

/// A bump allocator over pages obtained with `memory.grow`.
///
/// An instance runs a single job, so memory is never given back: `dealloc` only rewinds
/// when it frees the most recent allocation, and `realloc` grows the most recent
/// allocation in place (the common case of a `Vec` being filled). Atomics only because a
/// `static` must be `Sync`; wasm32 jobs are single-threaded and these compile to plain
/// loads and stores.
struct BumpAllocator {
    /// Next free byte.
    next: AtomicUsize,
    /// End of the region obtained so far (0: none yet).
    end: AtomicUsize,
}

#[global_allocator]
static ALLOCATOR: BumpAllocator = BumpAllocator { next: AtomicUsize::new(0), end: AtomicUsize::new(0) };

impl BumpAllocator {
    /// Makes `[.., new_end)` part of the current region by growing memory, if the region
    /// ends where memory ends. Returns false if it does not, or memory cannot grow.
    fn extend_region_to(&self, new_end: usize) -> bool {
        let end = self.end.load(Ordering::Relaxed);
        if new_end <= end {
            return true;
        }
        if end == 0 || end != wasm32::memory_size(0) * PAGE_SIZE_BYTES {
            return false;
        }
        let pages = (new_end - end).div_ceil(PAGE_SIZE_BYTES);
        if wasm32::memory_grow(0, pages) == usize::MAX {
            return false;
        }
        self.end.store(end + pages * PAGE_SIZE_BYTES, Ordering::Relaxed);
        true
    }

    /// Starts a new region at the end of memory, large enough for `layout`.
    fn new_region(&self, layout: Layout) -> Option<usize> {
        let pages = layout.size().checked_add(layout.align())?.div_ceil(PAGE_SIZE_BYTES);
        let old_pages = wasm32::memory_grow(0, pages);
        if old_pages == usize::MAX {
            return None;
        }
        let start = old_pages * PAGE_SIZE_BYTES;
        self.end.store(start + pages * PAGE_SIZE_BYTES, Ordering::Relaxed);
        Some(start)
    }
}

unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let next = self.next.load(Ordering::Relaxed);
        let fits_current = (self.end.load(Ordering::Relaxed) != 0)
            .then(|| {
                let start = next.checked_next_multiple_of(layout.align())?;
                let new_next = start.checked_add(layout.size())?;
                self.extend_region_to(new_next).then_some((start, new_next))
            })
            .flatten();
        let (start, new_next) = match fits_current {
            Some(found) => found,
            None => {
                let Some(region) = self.new_region(layout) else {
                    return core::ptr::null_mut();
                };
                let start = region.next_multiple_of(layout.align());
                (start, start + layout.size())
            }
        };
        self.next.store(new_next, Ordering::Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation can be taken back.
        if ptr as usize + layout.size() == self.next.load(Ordering::Relaxed) {
            self.next.store(ptr as usize, Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        let is_last = start + layout.size() == self.next.load(Ordering::Relaxed);
        if is_last
            && let Some(new_next) = start.checked_add(new_size)
            && self.extend_region_to(new_next)
        {
            self.next.store(new_next, Ordering::Relaxed);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `layout.align()` is valid and `new_size`, rounded
        // up to it, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (`new_size > layout.size()`).
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks are live, `layout.size()` bytes fit in each, and a bump
            // allocator never hands out overlapping blocks.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size()) };
        }
        new_ptr
    }
}

/// A panic ends the job with status Trap. The message names the panic's location (and its
/// text when that needs no formatting), without pulling in `core::fmt`.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut message = Message::new();
    message.push("panicked");
    if let Some(location) = info.location() {
        message.push(" at ");
        message.push(location.file());
        message.push(":");
        message.push_u32(location.line());
        message.push(":");
        message.push_u32(location.column());
    }
    if let Some(text) = info.message().as_str() {
        message.push(": ");
        message.push(text);
    }
    crate::abort(message.as_str())
}

/// The longest panic message passed to `abort`: within what the host reads of one.
const MESSAGE_BYTES_MAX: usize = 256;
const _: () = assert!(MESSAGE_BYTES_MAX <= cairn_abi::ABORT_MESSAGE_BYTES_MAX);

/// A fixed-size message buffer; what does not fit is dropped.
struct Message {
    bytes: [u8; MESSAGE_BYTES_MAX],
    len: usize,
}

impl Message {
    fn new() -> Self {
        Message { bytes: [0; MESSAGE_BYTES_MAX], len: 0 }
    }

    fn push(&mut self, text: &str) {
        self.push_bytes(text.as_bytes());
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.len == self.bytes.len() {
                return;
            }
            self.bytes[self.len] = byte;
            self.len += 1;
        }
    }

    fn push_u32(&mut self, mut value: u32) {
        let mut digits = [0u8; 10];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (value % 10) as u8;
            value /= 10;
            if value == 0 {
                break;
            }
        }
        self.push_bytes(&digits[start..]);
    }

    fn as_str(&self) -> &str {
        // Truncation may have cut a multi-byte character: keep the valid prefix.
        match core::str::from_utf8(&self.bytes[..self.len]) {
            Ok(text) => text,
            Err(e) => core::str::from_utf8(&self.bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}
