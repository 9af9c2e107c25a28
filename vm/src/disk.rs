//! The on-disk cache of compiled modules.
//!
//! One file per (module id, engine-configuration hash), named
//! `<module id hex>-<first 16 hex digits of the configuration hash>.cairnmod`:
//!
//! ```text
//! offset  size  field
//! 0       8     magic "CAIRNMOD"
//! 8       4     format version, u32 little-endian (1)
//! 12      32    engine-configuration hash
//! 44      32    module id (SHA-256 of the wasm)
//! 76      8     artifact length n, u64 little-endian
//! 84      32    SHA-256 of the artifact
//! 116     n     the artifact (`Module::serialize`)
//! ```
//!
//! An artifact is machine code that [`Module::deserialize`] trusts, so a file is loaded
//! only if every header field matches and the artifact's checksum is right; anything
//! else (truncated, corrupted, another version or configuration) is deleted and the
//! module compiled again. Files are written to a temporary name and renamed, so a
//! reader never sees half a file. Only the node writes the folder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_ledger::Hash;
use sha2::{Digest, Sha256};
use wasmer::{Engine, Module};

const MAGIC: &[u8; 8] = b"CAIRNMOD";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 8 + 4 + 32 + 32 + 8 + 32;
/// Artifacts larger than this are not read (a 4 MiB module compiles to far less).
const ARTIFACT_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Why a cache file was not used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No file for this module.
    Absent,
    /// A file that failed a check (it was deleted).
    Rejected(&'static str),
}

#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    config_hash: [u8; 32],
    /// Makes temporary file names unique within the process.
    counter: AtomicU64,
}

impl DiskCache {
    pub(crate) fn new(dir: PathBuf, config_hash: [u8; 32]) -> Self {
        DiskCache { dir, config_hash, counter: AtomicU64::new(0) }
    }

    /// The file of a module.
    pub(crate) fn path(&self, module_id: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}-{}.cairnmod", Hash(*module_id).to_hex(), &Hash(self.config_hash).to_hex()[..16]))
    }

    /// The module from its file, if the file passes every check, with the artifact's size
    /// (what it weighs in the memory cache, as a freshly compiled module's artifact does).
    pub(crate) fn load(&self, module_id: &[u8; 32], engine: &Engine) -> Result<(Module, usize), Miss> {
        let path = self.path(module_id);
        let bytes = match read_bounded(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.reject(&path, "too large"),
            Err(_) => return Err(Miss::Absent),
        };
        let artifact = match self.check(&bytes, module_id) {
            Ok(artifact) => artifact,
            Err(why) => return self.reject(&path, why),
        };
        // SAFETY: `Module::deserialize` runs the artifact's machine code as is. This node
        // wrote the file (only it writes the cache folder) for this exact module and engine
        // configuration (both in the header, both checked), and its SHA-256 matches the
        // one written with it, so these are the bytes `Module::serialize` produced here.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(engine, artifact.to_vec()) };
        match module {
            Ok(module) => Ok((module, artifact.len())),
            Err(_) => self.reject(&path, "the artifact does not deserialize"),
        }
    }

    fn check<'b>(&self, bytes: &'b [u8], module_id: &[u8; 32]) -> Result<&'b [u8], &'static str> {
        if bytes.len() < HEADER_BYTES {
            return Err("truncated header");
        }
        let (header, artifact) = bytes.split_at(HEADER_BYTES);
        if &header[0..8] != MAGIC {
            return Err("not a cache file");
        }
        if header[8..12] != FORMAT_VERSION.to_le_bytes() {
            return Err("another format version");
        }
        if header[12..44] != self.config_hash {
            return Err("another engine configuration");
        }
        if header[44..76] != module_id[..] {
            return Err("another module");
        }
        let len = u64::from_le_bytes(header[76..84].try_into().expect("8 bytes"));
        if len != artifact.len() as u64 {
            return Err("truncated or extended artifact");
        }
        if Sha256::digest(artifact)[..] != header[84..116] {
            return Err("checksum mismatch");
        }
        Ok(artifact)
    }

    fn reject<T>(&self, path: &Path, why: &'static str) -> Result<T, Miss> {
        // Best effort: a file that cannot be removed is rejected again next time.
        let _ = fs::remove_file(path);
        Err(Miss::Rejected(why))
    }

    /// Writes a module's artifact. Failures are ignored: the cache is an optimisation.
    pub(crate) fn store(&self, module_id: &[u8; 32], artifact: &[u8]) {
        let _ = self.try_store(module_id, artifact);
    }

    fn try_store(&self, module_id: &[u8; 32], artifact: &[u8]) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let path = self.path(module_id);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".{}.{}.{n}.tmp", Hash(*module_id).to_hex(), std::process::id()));
        let mut file = fs::File::create(&tmp)?;
        let mut header = Vec::with_capacity(HEADER_BYTES);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&self.config_hash);
        header.extend_from_slice(module_id);
        header.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
        header.extend_from_slice(&Sha256::digest(artifact));
        let written = file.write_all(&header).and_then(|()| file.write_all(artifact)).and_then(|()| file.sync_all());
        drop(file);
        match written.and_then(|()| fs::rename(&tmp, &path)) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// The file's bytes, or `None` if it is larger than [`ARTIFACT_BYTES_MAX`] plus a header.
fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let len = fs::metadata(path)?.len();
    if len > ARTIFACT_BYTES_MAX + HEADER_BYTES as u64 {
        return Ok(None);
    }
    fs::read(path).map(Some)
}
