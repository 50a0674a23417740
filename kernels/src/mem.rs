//! [`PageBuf`]: the owned home of weights the process streams every token (the x8 repacks and
//! the copies of the matrices decode reads in the file's layout).
//!
//! A buffer of its own anonymous mapping, started on a 2 MiB boundary (when it holds 2 MiB or
//! more) and advised for transparent huge pages on Linux (`MADV_HUGEPAGE`; the kernel's
//! `madvise` mode honours only advised ranges), or against them when the process's policy says
//! so (`MADV_NOHUGEPAGE`, which also holds where THP is `always`). Streaming 600 MB a token through 4 KiB pages walks 150 000 page-table
//! entries and stops the hardware prefetchers at every page boundary; 2 MiB pages do neither.
//! Measured on a 2-core Zen 4 VM, a 512 MiB read went from 33 / 40 to 36 / 42 GB/s (1 / 2
//! threads). The advice is a hint: where the OS refuses it the buffer works the same with small
//! pages.
//!
//! The advice has a price on a VM: a huge page is taken from free memory in 2 MiB pieces, which
//! on a freshly booted guest are mostly pages its host has never backed, so the first load of a
//! model after other work waits for the host (the kernel's `clear_page` of each fresh 2 MiB page
//! was a fifth of the samples of a short run). Small pages reuse memory the guest has touched
//! before. Measured on a 2-core Zen 4 VM, TinyLlama Q4_K_M, three alternated rounds of `harness
//! e2e -p 40 -n 128 -t 1,2 -r 5` each way: load 1.84 / 1.11 / 0.48 s with huge pages and 0.49 /
//! 0.48 / 0.41 s without; decode 34.6 (37.2 / 31.1 / 35.6) against 32.9 (34.7 / 30.0 / 34.0)
//! t/s at 1 thread and 48.6 against 44.5 at 2. So huge pages stay the default (decode is what
//! they are for) and [`set_huge_pages`] turns them off for a process that would rather load
//! fast (`--huge-pages off` on the harness's model commands).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytemuck::Pod;

/// The alignment of a buffer's first element (one x86_64 / aarch64 huge page).
pub const HUGE_PAGE: usize = 2 << 20;

/// Whether [`PageBuf::zeroed`] advises its buffers for huge pages: the process's policy.
static HUGE_PAGES: AtomicBool = AtomicBool::new(true);

/// Sets the process's huge-page policy for the buffers made from now on (on by default); buffers
/// already made keep theirs. Only speed and the load time change, never a value read.
pub fn set_huge_pages(on: bool) {
    HUGE_PAGES.store(on, Ordering::Relaxed);
}

/// The process's huge-page policy (see [`set_huge_pages`]).
pub fn huge_pages() -> bool {
    HUGE_PAGES.load(Ordering::Relaxed)
}

/// [`decode_prefetch`] unless [`set_decode_prefetch`] says otherwise: the distance, in bytes, at
/// which the x86 kernels that stream weights for one activation row (decode, and the one-row
/// tile a prompt may end with) ask for the lines ahead of their reads.
///
/// A decode matmul reads each weight byte once, so it runs at the rate the memory hands bytes to
/// one core, and that rate is set by how many line fills are in flight. The hardware prefetchers
/// keep some in flight; a `prefetcht0` a few KiB ahead of the kernel's reads adds more.
/// Measured on a 2-core Intel Xeon VM (family 6 model 207, Emerald Rapids; AVX-512), TinyLlama
/// Q4_K_M, `harness e2e -p 0 -n 64 -t 1,2 -r 5` in rounds alternating the distance (off: 3
/// rounds, 2 KiB: 2, 4 and 8 KiB: 4, 16 KiB: 1): decode went from 13.7-13.9 t/s (1 thread) and
/// 25.4-26.0 (2 threads) without it to 15.5-18.9 and 24.7-32.9 with it, 4 and 8 KiB the best.
/// Not measured on AMD (the Zen 4 VMs before reached 62-89% of their plain 1-thread read without
/// it); `--prefetch 0` on the harness's commands compares. Results never depend on it.
pub const DEFAULT_DECODE_PREFETCH: usize = 8192;

static DECODE_PREFETCH: AtomicUsize = AtomicUsize::new(DEFAULT_DECODE_PREFETCH);

/// Sets the process's decode prefetch distance in bytes (0: none; see
/// [`DEFAULT_DECODE_PREFETCH`]). Only speed changes, never a value computed.
pub fn set_decode_prefetch(bytes: usize) {
    DECODE_PREFETCH.store(bytes, Ordering::Relaxed);
}

/// The process's decode prefetch distance in bytes (see [`set_decode_prefetch`]).
#[inline(always)]
pub fn decode_prefetch() -> usize {
    DECODE_PREFETCH.load(Ordering::Relaxed)
}

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
    /// written (or made resident) before the caller writes it. A buffer of 2 MiB or more starts
    /// on a 2 MiB boundary and is advised for or against huge pages as the process's policy says
    /// ([`set_huge_pages`]).
    ///
    /// # Errors
    /// The OS refuses the mapping (out of address space or memory), or `len` elements do not
    /// fit in `usize` bytes.
    pub fn zeroed(len: usize) -> std::io::Result<PageBuf<T>> {
        Self::zeroed_with(len, huge_pages())
    }

    /// [`PageBuf::zeroed`] with the huge-page advice given (`huge`: for, else against) rather
    /// than the process's policy. The alignment is the same either way.
    ///
    /// # Errors
    /// As [`PageBuf::zeroed`].
    pub fn zeroed_with(len: usize, huge: bool) -> std::io::Result<PageBuf<T>> {
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
            // Against, where THP is `always`, is what keeps small pages there.
            let advice = if huge {
                memmap2::Advice::HugePage
            } else {
                memmap2::Advice::NoHugePage
            };
            let _ = map.advise_range(advice, offset, bytes);
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

    /// The `VmFlags` of the mapping that holds `addr`, from `/proc/self/smaps`: a mapping's
    /// block is its header line (`lo-hi perms offset dev inode [path]`) then `Key: value` lines,
    /// `VmFlags` last.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn vm_flags(addr: usize) -> Vec<String> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = first.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
            if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
                return flags.split_whitespace().map(String::from).collect();
            }
        }
        panic!("no VmFlags line for the mapping that holds {addr:#x} in /proc/self/smaps");
    }

    /// Puts the process's policy back when dropped, so a failing assertion leaves it as found.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    struct PolicyGuard(bool);

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    impl Drop for PolicyGuard {
        fn drop(&mut self) {
            set_huge_pages(self.0);
        }
    }

    /// The advice reaches the kernel exactly as asked (`hg` or `nh` in the mapping's
    /// `VmFlags`), and the process's policy picks it for `zeroed`. One test, so no other test
    /// sees the policy changed. Native x86_64 only: qemu-user (the NEON tests) accepts the
    /// advice and drops it, and a kernel without THP has nothing to advise.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn huge_page_advice_follows_the_policy() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage/enabled").exists() {
            eprintln!("SKIPPED: this kernel has no transparent huge pages");
            return;
        }
        let flags = |b: &PageBuf<u8>| vm_flags(b.as_ptr() as usize);
        let (advised, against) = (
            |f: &[String]| f.iter().any(|f| f == "hg"),
            |f: &[String]| f.iter().any(|f| f == "nh"),
        );
        let len = 3 * HUGE_PAGE;
        let on = flags(&PageBuf::zeroed_with(len, true).unwrap());
        assert!(advised(&on) && !against(&on), "{on:?}");
        let plain = PageBuf::<u8>::zeroed_with(len, false).unwrap();
        let off = flags(&plain);
        assert!(against(&off) && !advised(&off), "{off:?}");
        assert!((plain.as_ptr() as usize).is_multiple_of(HUGE_PAGE));
        assert!(huge_pages(), "on by default");
        let _restore = PolicyGuard(true);
        set_huge_pages(false);
        let off = flags(&PageBuf::zeroed(len).unwrap());
        assert!(against(&off), "policy off: {off:?}");
        set_huge_pages(true);
        let on = flags(&PageBuf::zeroed(len).unwrap());
        assert!(advised(&on), "policy on: {on:?}");
    }

    #[test]
    fn overflowing_length_is_an_error() {
        assert!(PageBuf::<u64>::zeroed(usize::MAX / 4).is_err());
    }
}
