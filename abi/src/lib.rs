//! The Cairn job ABI, defined once: the names, the version and the limits that the host side
//! (the sandbox, `cairn-vm`) and the guest side (`cairn-sdk`, or a job written in any
//! language) must agree on. `docs/JOB-ABI.md` is the full contract; this crate is its
//! machine-readable part. It has no dependencies and is `no_std`, so a guest can use it too.
//!
//! A job module exports a memory ([`EXPORT_MEMORY`]), an allocator ([`EXPORT_ALLOC`],
//! `(len: i32) -> i32`) and an entry point ([`EXPORT_RUN`], `(input_ptr: i32, input_len: i32)
//! -> i64`, the output packed by [`pack_output`]), and may import [`HOST_ABORT`] and
//! [`HOST_LOG`] (both `(ptr: i32, len: i32) -> ()`) from module [`HOST_MODULE`].
//!
//! ```
//! use cairn_abi::{pack_output, unpack_output};
//! let packed = pack_output(1024, 5);
//! assert_eq!(packed, (1024 << 32) | 5);
//! assert_eq!(unpack_output(packed), (1024, 5));
//! ```

#![no_std]

/// The version of the job ABI. Anything that changes a job's outcome (status, output or fuel)
/// is a new version (`docs/JOB-ABI.md`).
pub const ABI_VERSION: u32 = 3;

/// The module the host functions are imported from.
pub const HOST_MODULE: &str = "cairn";
/// The host function that ends the job with status `Trap` and a reason:
/// `abort(msg_ptr: i32, msg_len: i32)`.
pub const HOST_ABORT: &str = "abort";
/// The host function that appends bytes to the job's log: `log(ptr: i32, len: i32)`.
pub const HOST_LOG: &str = "log";

/// The name of the job's exported memory.
pub const EXPORT_MEMORY: &str = "memory";
/// The name of the job's exported allocator, `(len: i32) -> i32`: where the host writes the
/// input.
pub const EXPORT_ALLOC: &str = "cairn_alloc";
/// The name of the job's exported entry point, `(input_ptr: i32, input_len: i32) -> i64`:
/// returns the output's place, packed by [`pack_output`].
pub const EXPORT_RUN: &str = "cairn_run";

/// The most bytes of an `abort` message the host reads; the rest is dropped. A guest gains
/// nothing by passing more.
pub const ABORT_MESSAGE_BYTES_MAX: usize = 1024;

/// The return value of [`EXPORT_RUN`]: the output's address in the high 32 bits, its length
/// in the low 32 bits.
pub const fn pack_output(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// The output's `(address, length)` from [`EXPORT_RUN`]'s return value (both unsigned: the
/// host reads every pointer and length as `u32`).
pub const fn unpack_output(packed: i64) -> (u32, u32) {
    ((packed as u64 >> 32) as u32, packed as u64 as u32)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn outputs_pack_and_unpack_over_the_whole_range() {
        for (ptr, len) in [(0, 0), (1024, 5), (u32::MAX, 0), (0, u32::MAX), (u32::MAX, u32::MAX), (0x8000_0000, 1)] {
            assert_eq!(unpack_output(pack_output(ptr, len)), (ptr, len));
        }
        assert_eq!(pack_output(u32::MAX, u32::MAX), -1);
    }

    /// The written contract and these names say the same thing.
    #[test]
    fn the_specification_is_of_this_version_and_names_these_exports_and_imports() {
        let spec = include_str!("../../docs/JOB-ABI.md");
        let title = spec.lines().next().unwrap_or_default();
        assert_eq!(title, format!("# Cairn job ABI — version {ABI_VERSION}"));
        for name in [EXPORT_MEMORY, EXPORT_ALLOC, EXPORT_RUN] {
            assert!(spec.contains(&format!("| `{name}` |")), "docs/JOB-ABI.md's exports table lacks `{name}`");
        }
        for name in [HOST_ABORT, HOST_LOG] {
            let import = format!("| `{HOST_MODULE}.{name}` |");
            assert!(spec.contains(&import), "docs/JOB-ABI.md's imports table lacks `{HOST_MODULE}.{name}`");
        }
        assert!(spec.contains(&format!("{ABORT_MESSAGE_BYTES_MAX} bytes per `{HOST_ABORT}`")), "the abort limit");
    }
}
