//! The one memory map of a GGUF file in the project: a mapped path and its parse, together.

use super::{Gguf, GgufError};
use memmap2::Mmap;
use std::path::{Path, PathBuf};

/// A GGUF file mapped read-only and parsed once. Tensor data borrows from the map.
pub struct GgufFile {
    // Declared before `map` so that it is dropped first: it borrows from the mapping.
    gguf: Gguf<'static>,
    map: Option<Mmap>,
    path: PathBuf,
}

impl GgufFile {
    /// Maps and parses `path`. Errors name the path (I/O) or the field and offset (format).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |io| GgufError::Io {
            path: path.clone(),
            io,
        };
        let file = std::fs::File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // An empty file cannot be mapped on every platform; it parses as an empty slice.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the mapping is read-only and private to this struct. Like every reader of
            // memory-mapped files we rely on nobody truncating or rewriting the file while it is
            // open; the parse below validates the contents once, and tensor slices stay within
            // the length mapped here.
            Some(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        let bytes: &[u8] = map.as_deref().unwrap_or(&[]);
        // SAFETY: `bytes` points into the mapping owned by `map`, which lives in the same struct
        // and is never moved out, replaced or dropped before `gguf` (field order); moving an
        // `Mmap` does not move the mapped memory. The `'static` lifetime never escapes: `gguf()`
        // hands it out shortened to the borrow of `self`.
        let bytes: &'static [u8] =
            unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        let gguf = Gguf::parse(bytes)?;
        Ok(GgufFile { gguf, map, path })
    }

    /// The parsed file; its borrows last as long as `self`.
    pub fn gguf(&self) -> &Gguf<'_> {
        &self.gguf
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file in bytes.
    pub fn len(&self) -> u64 {
        self.map.as_ref().map_or(0, |m| m.len() as u64)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the resident pages of `data` (a slice of this file's mapping, e.g. a tensor whose
    /// contents were copied elsewhere) from this process: a later read pages them in again
    /// from the file, so nothing observable changes but the resident size. A slice outside
    /// the mapping, or an `madvise` the OS refuses, is ignored: releasing is only a hint.
    pub fn release_pages(&self, data: &[u8]) {
        let Some(map) = &self.map else { return };
        let base = map.as_ptr() as usize;
        let start = data.as_ptr() as usize;
        if data.is_empty() || start < base || start + data.len() > base + map.len() {
            return;
        }
        // SAFETY: `MADV_DONTNEED` on this read-only, never-written private file mapping only
        // discards pages that the kernel re-reads from the file on the next access, so every
        // borrow of the mapping keeps seeing the same bytes (memmap2 calls it unchecked because
        // on a written private mapping it would revert the writes; this one is never written).
        let _ = unsafe {
            map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start - base, data.len())
        };
    }
}
