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
//!
//! The folder is bounded in bytes ([`DiskBudget`], `VmConfig::cache_dir_bytes_max`), shared
//! by the caches of both compilers: storing a file that takes it past the bound deletes the
//! files used least recently (by modification time, which a load refreshes, and so does a
//! module leaving the memory cache) until it is within seven eighths of it. Temporary files
//! another process left unfinished are deleted when the folder is first counted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

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

/// The bytes the cache folder may hold, and what it holds: counted once by reading the
/// folder, then kept up to date as files are stored and deleted here.
#[derive(Debug)]
pub(crate) struct DiskBudget {
    dir: PathBuf,
    bytes_max: u64,
    /// The bytes of the folder's cache files (`None` until first counted).
    bytes: Mutex<Option<u64>>,
}

impl DiskBudget {
    pub(crate) fn new(dir: PathBuf, bytes_max: u64) -> DiskBudget {
        DiskBudget { dir, bytes_max, bytes: Mutex::new(None) }
    }

    /// A file of `len` bytes was stored at `kept`: past the bound, the files used least
    /// recently go (never `kept`) until the folder is within seven eighths of it.
    fn stored(&self, kept: &Path, len: u64) {
        let mut bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        let total = match *bytes {
            Some(total) => total + len,
            // The first count includes the file just stored; writes another process left
            // unfinished (it died mid-write) go first, or nothing would ever count them.
            None => {
                remove_unfinished_writes(&self.dir);
                cache_files(&self.dir).iter().map(|f| f.1).sum()
            }
        };
        *bytes = Some(if total > self.bytes_max { self.evict(kept) } else { total });
    }

    /// Deletes the files used least recently, but `kept`, until the folder is within seven
    /// eighths of the bound; returns what is left.
    fn evict(&self, kept: &Path) -> u64 {
        let mut files = cache_files(&self.dir);
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort_by_key(|f| f.2);
        let target = self.bytes_max / 8 * 7;
        for (path, len, _) in files {
            if total <= target {
                break;
            }
            if path != kept && fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
        total
    }

    /// A file was deleted here (rejected): its bytes no longer count.
    fn deleted(&self, len: u64) {
        if let Some(total) = self.bytes.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            *total = total.saturating_sub(len);
        }
    }
}

/// Deletes the temporary files of writes by other processes (`.<id>.<pid>.<n>.tmp`, see
/// [`DiskCache::store`]): a process that dies mid-write leaves one behind.
fn remove_unfinished_writes(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mine = std::process::id().to_string();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let parts: Vec<&str> = name.to_str().unwrap_or_default().split('.').collect();
        if let ["", _id, pid, _n, "tmp"] = parts[..]
            && pid != mine
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The folder's cache files: each one's path, length and last use.
fn cache_files(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "cairnmod"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
        })
        .collect()
}

#[derive(Debug)]
pub(crate) struct DiskCache {
    config_hash: [u8; 32],
    /// Makes temporary file names unique within the process.
    counter: AtomicU64,
    budget: Arc<DiskBudget>,
}

impl DiskCache {
    /// The cache of one engine configuration in `budget`'s folder.
    pub(crate) fn new(config_hash: [u8; 32], budget: Arc<DiskBudget>) -> Self {
        DiskCache { config_hash, counter: AtomicU64::new(0), budget }
    }

    /// The file of a module.
    pub(crate) fn path(&self, module_id: &[u8; 32]) -> PathBuf {
        self.budget.dir.join(format!(
            "{}-{}.cairnmod",
            Hash(*module_id).to_hex(),
            &Hash(self.config_hash).to_hex()[..16]
        ))
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
            Ok(module) => {
                used(&path);
                Ok((module, artifact.len()))
            }
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
        let len = fs::metadata(path).map(|m| m.len());
        if fs::remove_file(path).is_ok() {
            self.budget.deleted(len.unwrap_or(0));
        }
        Err(Miss::Rejected(why))
    }

    /// Marks a module's file, if there is one, as just used.
    pub(crate) fn mark_used(&self, module_id: &[u8; 32]) {
        used(&self.path(module_id));
    }

    /// Writes a module's artifact. Failures are ignored: the cache is an optimisation.
    pub(crate) fn store(&self, module_id: &[u8; 32], artifact: &[u8]) {
        let _ = self.try_store(module_id, artifact);
    }

    fn try_store(&self, module_id: &[u8; 32], artifact: &[u8]) -> std::io::Result<()> {
        fs::create_dir_all(&self.budget.dir)?;
        let path = self.path(module_id);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.budget.dir.join(format!(".{}.{}.{n}.tmp", Hash(*module_id).to_hex(), std::process::id()));
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
            Ok(()) => {
                self.budget.stored(&path, (HEADER_BYTES + artifact.len()) as u64);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

/// Marks a file as just used (its modification time), so that it is among the last to go.
/// Best effort: a file whose time cannot be set goes in the order it was written.
fn used(path: &Path) {
    if let Ok(file) = fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_bytes(dir: &Path) -> u64 {
        cache_files(dir).iter().map(|f| f.1).sum()
    }

    fn set_time(path: &Path, secs: u64) {
        let file = fs::File::options().write(true).open(path).expect("a cache file");
        file.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)).expect("set its time");
    }

    /// Past its bound the folder loses the files used least recently, never the one just
    /// stored, down to seven eighths of the bound; a load makes a file the last to go, and the
    /// count follows what is deleted here.
    #[test]
    fn the_folder_keeps_within_its_bytes_the_files_used_last() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let file_bytes = (HEADER_BYTES + 3_000) as u64;
        let budget = Arc::new(DiskBudget::new(dir.path().to_owned(), 4 * file_bytes));
        let cache = DiskCache::new([7; 32], budget.clone());
        let id = |i: u8| [i; 32];
        // A write another process left unfinished goes when the folder is first counted; one
        // of this process's own (in progress) stays.
        let theirs = dir.path().join(format!(".{}.0.0.tmp", Hash([9; 32]).to_hex()));
        let ours = dir.path().join(format!(".{}.{}.0.tmp", Hash([9; 32]).to_hex(), std::process::id()));
        fs::write(&theirs, [0; 100]).expect("write");
        fs::write(&ours, [0; 100]).expect("write");
        for i in 1..=4 {
            cache.store(&id(i), &[i; 3_000]);
            set_time(&cache.path(&id(i)), u64::from(i));
        }
        assert!(!theirs.exists() && ours.exists());
        fs::remove_file(&ours).expect("remove");
        assert_eq!(folder_bytes(dir.path()), 4 * file_bytes, "at the bound, nothing goes");
        // Module 1, the oldest, is used again.
        used(&cache.path(&id(1)));
        cache.store(&id(5), &[5; 3_000]);
        let left: Vec<bool> = (1..=5).map(|i| cache.path(&id(i)).exists()).collect();
        // Over the bound: down to 7/8 of it, 3.5 files' worth, so three files stay.
        assert_eq!(left, vec![true, false, false, true, true], "the least recently used went first");
        assert!(folder_bytes(dir.path()) <= 4 * file_bytes / 8 * 7);
        assert_eq!(*budget.bytes.lock().expect("count"), Some(folder_bytes(dir.path())));

        // A rejected file (one byte of its artifact changed) no longer counts.
        let mut bytes = fs::read(cache.path(&id(4))).expect("read");
        *bytes.last_mut().expect("an artifact") ^= 1;
        fs::write(cache.path(&id(4)), bytes).expect("write");
        let engine = crate::engine::headless_engine(&crate::VmConfig::default(), None);
        assert_eq!(cache.load(&id(4), &engine).err(), Some(Miss::Rejected("checksum mismatch")));
        assert!(!cache.path(&id(4)).exists());
        assert_eq!(*budget.bytes.lock().expect("count"), Some(folder_bytes(dir.path())), "the count follows");

        // A bound smaller than one file keeps the file just stored, alone.
        let small = tempfile::tempdir().expect("a temporary folder");
        let cache = DiskCache::new([7; 32], Arc::new(DiskBudget::new(small.path().to_owned(), 10)));
        cache.store(&id(1), &[1; 100]);
        cache.store(&id(2), &[2; 100]);
        assert!(!cache.path(&id(1)).exists() && cache.path(&id(2)).exists());
    }
}
