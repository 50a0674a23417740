//! NEON flash attention: the shared driver. The dot products run on register pairs (two
//! accumulators per row, four K rows sharing each `q` load); the tile's exponentials are
//! computed four at a time; `p*V` keeps 32 output values in registers across the whole tile.
//! f16 caches are widened with `fcvtl`.

use super::driver::{flash_attention_entry, AttentionLanes};
use crate::simd::lanes::{Neon, NeonPair};

impl AttentionLanes for Neon {
    type Dot = NeonPair;
    type Acc = Neon;
    const ROW_DOT_PAIR: bool = false;
}

flash_attention_entry!("neon", Neon, "NEON");
