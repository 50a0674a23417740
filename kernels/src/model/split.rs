//! [`ColumnSplit`]: a row-major `[n x width]` output cut into column ranges that different
//! threads write at the same time.
//!
//! A matmul split by weight rows gives each thread a range of output *columns*; for `n > 1`
//! those ranges interleave in memory (every token row holds a piece of each), so safe code cannot
//! hand each thread a `&mut` of its own. Attention split by heads has the same shape (a head is
//! `head_dim` columns of `[n_q x n_head*head_dim]`). This type owns the unsafe part: it hands out
//! each part's columns at most once ([`ColumnSplit::take`] panics on a second take), and a part
//! exposes only its own columns, one token row at a time, as ordinary `&mut [f32]`.

use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most parts one split can have (one bit each in `taken`).
pub const MAX_PARTS: usize = 64;

/// `[n x width]` f32, row-major, cut into `parts` disjoint column ranges.
pub struct ColumnSplit<'a> {
    ptr: *mut f32,
    n: usize,
    width: usize,
    /// Part `p`'s columns are `starts[p]..ends[p]`: ascending, disjoint, inside `0..width`.
    starts: [usize; MAX_PARTS],
    ends: [usize; MAX_PARTS],
    parts: usize,
    taken: AtomicU64,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `ColumnSplit` is an exclusive borrow of its buffer; shared across threads it only
// hands out disjoint column ranges, each at most once (`taken`), so no two threads can reach the
// same element through it.
unsafe impl Send for ColumnSplit<'_> {}
// SAFETY: as above: `&ColumnSplit` gives access only through `take`, which is atomic.
unsafe impl Sync for ColumnSplit<'_> {}

impl<'a> ColumnSplit<'a> {
    /// Splits `y` (at least `n * width` values) into `parts` column ranges, part `p` getting
    /// `range(p)`. The ranges must be ascending and disjoint (gaps are allowed: those columns
    /// are not handed out).
    ///
    /// # Panics
    /// If `y` is too short, `parts` is 0 or above [`MAX_PARTS`], or the ranges overlap, are out
    /// of order or run past `width`.
    pub fn new(
        y: &'a mut [f32],
        n: usize,
        width: usize,
        parts: usize,
        range: impl Fn(usize) -> Range<usize>,
    ) -> Self {
        assert!((1..=MAX_PARTS).contains(&parts), "{parts} parts");
        let need = n.checked_mul(width).expect("n * width overflows");
        assert!(
            y.len() >= need,
            "buffer holds {} values, needs {need}",
            y.len()
        );
        let (mut starts, mut ends) = ([0; MAX_PARTS], [0; MAX_PARTS]);
        let mut end = 0;
        for p in 0..parts {
            let r = range(p);
            assert!(
                r.start >= end && r.start <= r.end && r.end <= width,
                "part {p} columns {r:?} overlap the previous part or leave 0..{width}"
            );
            (starts[p], ends[p]) = (r.start, r.end);
            end = r.end;
        }
        ColumnSplit {
            ptr: y.as_mut_ptr(),
            n,
            width,
            starts,
            ends,
            parts,
            taken: AtomicU64::new(0),
            _borrow: PhantomData,
        }
    }

    pub fn parts(&self) -> usize {
        self.parts
    }

    /// The columns of part `p`.
    pub fn range(&self, p: usize) -> Range<usize> {
        self.starts[p]..self.ends[p]
    }

    /// Part `p`'s columns. Each part can be taken once.
    ///
    /// # Panics
    /// If `p` is out of range or was already taken.
    pub fn take(&self, p: usize) -> Columns<'_> {
        assert!(p < self.parts, "part {p} of {}", self.parts);
        let bit = 1u64 << p;
        let before = self.taken.fetch_or(bit, Ordering::AcqRel);
        assert!(before & bit == 0, "part {p} taken twice");
        Columns {
            ptr: self.ptr,
            n: self.n,
            width: self.width,
            cols: self.range(p),
            _borrow: PhantomData,
        }
    }
}

/// One part's columns of a [`ColumnSplit`]: `n` rows of `cols.len()` values.
pub struct Columns<'s> {
    ptr: *mut f32,
    n: usize,
    width: usize,
    cols: Range<usize>,
    _borrow: PhantomData<&'s mut [f32]>,
}

impl Columns<'_> {
    pub fn cols(&self) -> Range<usize> {
        self.cols.clone()
    }

    pub fn n_rows(&self) -> usize {
        self.n
    }

    /// Token row `t` of this part's columns.
    ///
    /// # Panics
    /// If `t >= n`.
    pub fn row_mut(&mut self, t: usize) -> &mut [f32] {
        assert!(t < self.n, "row {t} of {}", self.n);
        // SAFETY: `ColumnSplit::new` checked the buffer holds `n * width` values and that
        // `cols` lies inside `0..width`, so the range is in bounds. Columns of different parts
        // are disjoint and each part is handed out once, so no other `Columns` reaches these
        // elements; `&mut self` makes this the only live slice of this part.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.add(t * self.width + self.cols.start),
                self.cols.len(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_write_their_own_columns_from_many_threads() {
        let (n, width, parts) = (5, 37, 4);
        let mut y = vec![-1.0f32; n * width];
        let range = |p: usize| (p * width / parts)..((p + 1) * width / parts);
        {
            let split = ColumnSplit::new(&mut y, n, width, parts, range);
            std::thread::scope(|s| {
                for p in 0..parts {
                    let split = &split;
                    s.spawn(move || {
                        let mut cols = split.take(p);
                        let c = cols.cols();
                        for t in 0..cols.n_rows() {
                            for (j, v) in cols.row_mut(t).iter_mut().enumerate() {
                                *v = (t * width + c.start + j) as f32;
                            }
                        }
                    });
                }
            });
        }
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, i as f32, "element {i}");
        }
    }

    #[test]
    #[should_panic(expected = "taken twice")]
    fn a_part_is_handed_out_once() {
        let mut y = vec![0.0; 8];
        let split = ColumnSplit::new(&mut y, 2, 4, 2, |p| 2 * p..2 * p + 2);
        let _a = split.take(1);
        let _b = split.take(1);
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn overlapping_parts_are_refused() {
        let mut y = vec![0.0; 8];
        let _ = ColumnSplit::new(&mut y, 2, 4, 2, |p| p..p + 2);
    }

    #[test]
    #[should_panic(expected = "needs")]
    fn a_short_buffer_is_refused() {
        let mut y = vec![0.0; 7];
        let _ = ColumnSplit::new(&mut y, 2, 4, 1, |_| 0..4);
    }

    #[test]
    #[should_panic(expected = "row 2 of 2")]
    fn rows_past_n_are_refused() {
        let mut y = vec![0.0; 8];
        let split = ColumnSplit::new(&mut y, 2, 4, 1, |_| 0..4);
        let mut c = split.take(0);
        c.row_mut(2);
    }
}
