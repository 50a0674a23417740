//! [`PageBuf`]: the owned home of weights the process streams every token (the x8 repacks and
//! the copies of the matrices decode reads in the file's layout).
//!
//! A buffer of its own anonymous mapping, started on a 2 MiB boundary and advised for
//! transparent huge pages on Linux (`MADV_HUGEPAGE`; the kernel's `madvise` mode honours only
//! advised ranges). Streaming 600 MB a token through 4 KiB pages walks 150 000 page-table
//! entries and stops the hardware prefetchers at every page boundary; 2 MiB pages do neither.
//! Measured on a 2-core Zen 4 VM, a 512 MiB read went from 33 / 40 to 36 / 42 GB/s (1 / 2
//! threads). The advice is a hint: where the OS refuses it the buffer works the same with small
//! pages.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use bytemuck::Pod;

/// The alignment of a buffer's first element (one x86_64 / aarch64 huge page).
pub const HUGE_PAGE: usize = 2 << 20;

/// A zero-initialized `[T]` in its own anonymous mapping, 2 MiB aligned, advised for huge pages.
pub struct PageBuf<T: Pod> {
    map: memmap2::MmapMut,
    /// Offset of the first element in `map`.
    offset: usize,
    len: usize,
    _elem: PhantomData<T>,
}

impl<T: Pod> PageBuf<T> {
    /// `len` zeroed elements. The mapping's pages are the OS's fresh zero pages: nothing is
    /// written (or made resident) before the caller writes it.
    ///
    /// # Errors
    /// The OS refuses the mapping (out of address space or memory), or `len` elements do not
    /// fit in `usize` bytes.
    pub fn zeroed(len: usize) -> std::io::Result<PageBuf<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| std::io::Error::other(format!("{len} elements overflow usize")))?;
        // Small buffers are not worth a huge page's alignment slack.
        let slack = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 0 };
        let map_len = bytes.checked_add(slack).ok_or_else(|| {
            std::io::Error::other(format!("{bytes} bytes and alignment overflow usize"))
        })?;
        let map = memmap2::MmapMut::map_anon(map_len.max(1))?;
        let addr = map.as_ptr() as usize;
        let offset = if slack > 0 {
            addr.next_multiple_of(HUGE_PAGE) - addr
        } else {
            0
        };
        #[cfg(target_os = "linux")]
        if slack > 0 {
            // A hint: an OS that refuses it (THP off) keeps small pages, with the same contents.
            let _ = map.advise_range(memmap2::Advice::HugePage, offset, bytes);
        }
        Ok(PageBuf {
            map,
            offset,
            len,
            _elem: PhantomData,
        })
    }
}

impl<T: Pod> Deref for PageBuf<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        let bytes = self.len * std::mem::size_of::<T>();
        // The mapping is page aligned and `offset` a multiple of a page, so this cast of whole
        // elements cannot fail (`T: Pod` has an alignment of at most a page in practice; a
        // larger one would panic here, never misread).
        bytemuck::cast_slice(&self.map[self.offset..self.offset + bytes])
    }
}

impl<T: Pod> DerefMut for PageBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        let bytes = self.len * std::mem::size_of::<T>();
        bytemuck::cast_slice_mut(&mut self.map[self.offset..self.offset + bytes])
    }
}

impl<T: Pod> std::fmt::Debug for PageBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBuf")
            .field("elem", &std::any::type_name::<T>())
            .field("len", &self.len)
            .field(
                "huge_aligned",
                &(self.as_ptr() as usize).is_multiple_of(HUGE_PAGE),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_aligned_and_writable() {
        for len in [
            0usize,
            1,
            1000,
            HUGE_PAGE / 4,
            (HUGE_PAGE / 4) + 3,
            3 * HUGE_PAGE / 4,
        ] {
            let mut b = PageBuf::<u32>::zeroed(len).unwrap();
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&v| v == 0), "len {len}");
            if len * 4 >= HUGE_PAGE {
                assert!((b.as_ptr() as usize).is_multiple_of(HUGE_PAGE), "len {len}");
            }
            for (i, v) in b.iter_mut().enumerate() {
                *v = i as u32;
            }
            assert!(
                b.iter().enumerate().all(|(i, &v)| v == i as u32),
                "len {len}"
            );
        }
    }

    #[test]
    fn holds_whole_blocks() {
        use crate::matmul::x8::BlockQ6Kx8;
        let n = HUGE_PAGE / std::mem::size_of::<BlockQ6Kx8>() + 5;
        let mut b = PageBuf::<BlockQ6Kx8>::zeroed(n).unwrap();
        assert_eq!(b.len(), n);
        b[n - 1].d[7] = half::f16::ONE;
        assert_eq!(b[n - 1].d[7], half::f16::ONE);
        assert!((b.as_ptr() as usize).is_multiple_of(HUGE_PAGE));
    }

    #[test]
    fn overflowing_length_is_an_error() {
        assert!(PageBuf::<u64>::zeroed(usize::MAX / 4).is_err());
    }
}
