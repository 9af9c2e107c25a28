//! The two Linux calls a `--netns` testnet needs that the standard library lacks: attaching to
//! a TUN device, and moving a thread into a network namespace.
#![allow(unsafe_code)] // ioctl(TUNSETIFF) and setns(2): plain syscalls on owned descriptors.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, bail};

/// `_IOW('T', 202, int)`.
const TUNSETIFF: u64 = 0x4004_54ca;
/// The longest interface name, with its NUL.
const IFNAMSIZ: usize = 16;

/// Creates (or attaches to) TUN device `name` in the calling thread's network namespace, with
/// no packet information header: each `read` of the file gives one IP packet, each `write`
/// sends one.
pub fn open_tun(name: &str) -> anyhow::Result<File> {
    if name.is_empty() || name.len() >= IFNAMSIZ {
        bail!("interface name {name:?} must be 1 to {} bytes", IFNAMSIZ - 1);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .context("cannot open /dev/net/tun (is the tun module loaded, and are you root?)")?;
    // struct ifreq: the name, then the flags (a short) at offset 16; 40 bytes in all.
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    ifreq[IFNAMSIZ..IFNAMSIZ + 2].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: `file` is an open descriptor of /dev/net/tun, and `ifreq` is a writable buffer as
    // large as the kernel's struct ifreq, which TUNSETIFF reads and writes.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, ifreq.as_mut_ptr()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot create TUN device {name}"));
    }
    Ok(file)
}

/// Moves the calling thread into the network namespace at `path` (e.g.
/// `/var/run/netns/<name>`): its later sockets are that namespace's.
pub fn enter_netns(path: &Path) -> anyhow::Result<()> {
    let ns = File::open(path).with_context(|| format!("cannot open network namespace {}", path.display()))?;
    // SAFETY: `ns` is an open namespace descriptor; setns only changes this thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("cannot enter {}", path.display()));
    }
    Ok(())
}

/// Whether this process runs as root (what namespaces and TUN devices need).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
