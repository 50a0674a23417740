//! AVX-512 flash attention: the shared driver on 16-lane vectors. Four K rows share each `q`
//! load in the dot products; the tile's exponentials are computed sixteen at a time; `p*V`
//! keeps 64 output values in registers across the whole tile. f16 caches are widened with
//! `vcvtph2ps` straight from memory.

use super::driver::{flash_attention_entry, AttentionLanes};
use crate::simd::lanes::Avx512;

impl AttentionLanes for Avx512 {
    type Dot = Avx512;
    type Acc = Avx512;
    const ROW_DOT_PAIR: bool = false;
}

flash_attention_entry!(
    "avx512f,avx2,fma,f16c",
    Avx512,
    "AVX-512 F (and the AVX2/FMA/F16C set [`crate::Isa::Avx512`] implies)"
);
