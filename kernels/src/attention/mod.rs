//! Causal grouped-query self-attention for one Llama layer, "flash" style: each (query row, head)
//! walks the KV cache in tiles of [`TILE`] positions keeping an online softmax (running max and
//! running sum, the output accumulator rescaled whenever the max grows), so the full score row is
//! never materialised and the scratch memory is `O(TILE)`, independent of the context length.
//!
//! The SIMD variants walk the cache once per GQA group and block of up to four query rows: all
//! query heads of one KV head, for every row of the block, consume a K/V tile before the next is
//! loaded, so the tile is read from memory (and an f16 tile widened) once and reused from L1.
//!
//! This module owns the kernel and its dispatch; the naive f64 version it is checked against
//! lives in `reference::attention` and shares no code with it.
//!
//! # Layouts (all row-major, no padding)
//! - `q`, `out`: `[n_q][n_head][head_dim]` f32. Query row `t` sits at absolute position
//!   `pos0 + t`; RoPE is already applied.
//! - `k`, `v`: `[pos][n_head_kv][head_dim]` in f32 or [`half::f16`] ([`KvElem`]). Token-major,
//!   as a forward pass appends one token's K and V per step. The cache may be longer than
//!   `pos0 + n_q`; positions past the causal horizon are never read.
//!
//! # Semantics
//! For query row `t` and query head `h`, with `g = h / (n_head / n_head_kv)` its KV head and
//! `s_j = q[t][h] . k[j][g] / sqrt(head_dim)`:
//! `out[t][h] = sum_{j <= pos0+t} softmax(s)_j * v[j][g]`.
//!
//! # Threads
//! A call computes only the query heads in `heads` and writes only those heads' outputs, and
//! needs its own scratch. `out` is still the whole `[n_q][n_head][head_dim]` buffer, so safe code
//! cannot give two threads head ranges of one buffer at once: split by query rows (separate
//! calls on row bands, with `pos0` advanced), or give each thread its own `out` and copy its
//! heads back. A strided output view that splits by heads belongs with the threaded forward
//! pass.
//!
//! Every ISA file exports the same function, `flash_attention`, with the signature of
//! [`scalar::flash_attention`]; the SIMD variants vectorise the `q.k` dot products, the
//! exponentials and the `p*V` accumulation over `head_dim` (f16 widened with F16C `vcvtph2ps` / NEON `fcvtl`).
//! They share one loop (`driver`), generic over the per-ISA vector primitives, and the
//! vectorised `exp` of [`crate::ops`] (relative error at most [`crate::ops::EXP_MAX_REL_ERROR`],
//! exactly 0 for arguments below [`crate::ops::EXP_UNDERFLOW_BELOW`]); the scalar variant uses
//! `f32::exp`.

use std::ops::Range;

pub mod scalar;

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
#[cfg(target_arch = "aarch64")]
pub mod neon;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod driver;

use crate::isa::dispatch;
use crate::Isa;

/// KV positions per tile: the length of the score buffer, and how often the running max can grow.
/// A multiple of 16 so every vector width tiles it exactly.
pub const TILE: usize = 64;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
}

/// How a KV cache element is stored; lets the SIMD variants pick their load at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvFormat {
    F32,
    F16,
}

/// A KV cache element type: `f32` or [`half::f16`]. Sealed: the SIMD loads rely on the
/// exact bit layout of these two.
pub trait KvElem: sealed::Sealed + Copy + Send + Sync + 'static {
    const FORMAT: KvFormat;
    fn to_f32(self) -> f32;
}

impl KvElem for f32 {
    const FORMAT: KvFormat = KvFormat::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl KvElem for half::f16 {
    const FORMAT: KvFormat = KvFormat::F16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        half::f16::to_f32(self)
    }
}

/// Shapes of one attention call. See the module doc for layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    /// Query rows: 1 for decode, the prompt chunk length for prefill.
    pub n_q: usize,
    /// Query heads; a multiple of `n_head_kv`.
    pub n_head: usize,
    /// KV heads; query head `h` reads KV head `h / (n_head / n_head_kv)`.
    pub n_head_kv: usize,
    /// Values per head; a positive multiple of 16.
    pub head_dim: usize,
    /// Absolute position of query row 0; row `t` attends KV positions `0..=pos0 + t`.
    pub pos0: usize,
}

impl AttentionDims {
    /// Query heads sharing one KV head.
    pub fn group(&self) -> usize {
        self.n_head / self.n_head_kv
    }

    /// The softmax temperature `1/sqrt(head_dim)`, rounded once to f32.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Values in `q` or `out`.
    pub fn q_len(&self) -> usize {
        self.n_q
            .checked_mul(self.n_head)
            .and_then(|v| v.checked_mul(self.head_dim))
            .unwrap_or_else(|| self.overflow())
    }

    /// Values per cached position in `k` or `v`.
    pub fn kv_stride(&self) -> usize {
        self.n_head_kv
            .checked_mul(self.head_dim)
            .unwrap_or_else(|| self.overflow())
    }

    /// Positions a cache must hold: `pos0 + n_q`.
    pub fn kv_len_needed(&self) -> usize {
        self.pos0
            .checked_add(self.n_q)
            .unwrap_or_else(|| self.overflow())
    }

    /// The sizes above are checked, not wrapped: the SIMD variants' unchecked loads rely on
    /// [`check`](Self::check), which a wrapped product would fool.
    #[track_caller]
    fn overflow(&self) -> ! {
        panic!("attention shape {self:?} overflows usize")
    }

    /// Panics (a caller bug, never an input-data condition) unless the slices fit the shapes.
    /// Every variant calls this before touching memory, which is what keeps their unchecked
    /// vector loads in bounds.
    #[track_caller]
    pub fn check(
        &self,
        q_len: usize,
        k_len: usize,
        v_len: usize,
        out_len: usize,
        scratch_len_given: usize,
        heads: &Range<usize>,
    ) {
        assert!(
            self.head_dim > 0 && self.head_dim.is_multiple_of(16),
            "head_dim = {} is not a positive multiple of 16",
            self.head_dim
        );
        assert!(
            self.n_head_kv > 0 && self.n_head.is_multiple_of(self.n_head_kv),
            "n_head_kv = {} does not divide n_head = {}",
            self.n_head_kv,
            self.n_head
        );
        assert!(
            heads.start <= heads.end && heads.end <= self.n_head,
            "heads {heads:?} outside 0..{}",
            self.n_head
        );
        assert_eq!(q_len, self.q_len(), "q length");
        assert_eq!(out_len, self.q_len(), "out length");
        assert_eq!(k_len, v_len, "k and v lengths differ");
        assert_eq!(
            k_len % self.kv_stride(),
            0,
            "k length is not whole positions"
        );
        let kv_len = k_len / self.kv_stride();
        assert!(
            kv_len >= self.kv_len_needed(),
            "cache holds {kv_len} positions, needs pos0 + n_q = {}",
            self.kv_len_needed()
        );
        let need = scratch_len(self);
        assert!(
            scratch_len_given >= need,
            "scratch holds {scratch_len_given} f32, needs {need}"
        );
    }
}

/// f32 values of scratch a call needs: for each query head of a GQA group and each query row of
/// a block of `QUERY_BLOCK` (4) a tile of scores and a running max and sum, and one tile of K
/// or V widened to f32, `(TILE + 2) * 4 * n_head / n_head_kv + TILE * head_dim`. Independent of
/// the context length.
pub fn scratch_len(dims: &AttentionDims) -> usize {
    let group = dims.n_head / dims.n_head_kv.max(1);
    (TILE + 2)
        .saturating_mul(group)
        .saturating_mul(driver::QUERY_BLOCK)
        .saturating_add(TILE.saturating_mul(dims.head_dim))
}

/// Causal GQA attention for query heads `heads`: writes `out[t][h]` for every `t < n_q`,
/// `h in heads`, and nothing else. `scratch` holds at least [`scratch_len`] values.
///
/// # Panics
/// If `isa` cannot run on this CPU, or the slices do not match `dims` (see
/// [`AttentionDims::check`]).
#[allow(clippy::too_many_arguments)]
pub fn flash_attention<KV: KvElem>(
    isa: Isa,
    q: &[f32],
    k: &[KV],
    v: &[KV],
    out: &mut [f32],
    scratch: &mut [f32],
    dims: AttentionDims,
    heads: Range<usize>,
) {
    dispatch!(isa, flash_attention(q, k, v, out, scratch, dims, heads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "overflows usize")]
    fn positions_that_wrap_are_refused() {
        // pos0 + n_q wraps to 0 in unchecked arithmetic, which would admit an empty cache.
        let dims = AttentionDims {
            n_q: 2,
            n_head: 1,
            n_head_kv: 1,
            head_dim: 16,
            pos0: usize::MAX - 1,
        };
        dims.check(32, 0, 0, 32, scratch_len(&dims), &(0..1));
    }
}
