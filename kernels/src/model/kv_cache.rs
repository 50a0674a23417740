//! The key/value cache: per layer, `[n_ctx][n_head_kv * head_dim]` keys and values in f16 (the
//! default: half the memory traffic of attention) or f32, token-major as
//! [`flash_attention`](crate::attention::flash_attention) reads it. Allocated once, zeroed by the
//! allocator (pages are touched only as positions fill).

use crate::attention::KvFormat;
use half::f16;

/// One layer's keys and values in element type `T`.
pub struct LayerCache<T> {
    pub k: Vec<T>,
    pub v: Vec<T>,
}

/// The whole cache, in one of the two element types.
pub enum KvCache {
    F16(Vec<LayerCache<f16>>),
    F32(Vec<LayerCache<f32>>),
}

impl KvCache {
    pub fn new(format: KvFormat, n_layer: usize, n_ctx: usize, kv_dim: usize) -> KvCache {
        let len = n_ctx * kv_dim;
        match format {
            KvFormat::F16 => KvCache::F16(
                (0..n_layer)
                    .map(|_| LayerCache {
                        // Zeroed by the allocator: `vec![f16::ZERO; len]` would write every
                        // element (and make every page resident) up front.
                        k: bytemuck::zeroed_vec(len),
                        v: bytemuck::zeroed_vec(len),
                    })
                    .collect(),
            ),
            KvFormat::F32 => KvCache::F32(
                (0..n_layer)
                    .map(|_| LayerCache {
                        k: vec![0.0; len],
                        v: vec![0.0; len],
                    })
                    .collect(),
            ),
        }
    }

    pub fn format(&self) -> KvFormat {
        match self {
            KvCache::F16(_) => KvFormat::F16,
            KvCache::F32(_) => KvFormat::F32,
        }
    }

    /// Bytes held by the cache.
    pub fn bytes(&self) -> usize {
        match self {
            KvCache::F16(l) => l.iter().map(|c| 2 * c.k.len() * 2).sum(),
            KvCache::F32(l) => l.iter().map(|c| 2 * c.k.len() * 4).sum(),
        }
    }
}

/// Conversion of the f32 projections into a cache element.
pub trait StoreElem: crate::attention::KvElem {
    fn from_f32(x: f32) -> Self;
}

impl StoreElem for f32 {
    #[inline(always)]
    fn from_f32(x: f32) -> f32 {
        x
    }
}

impl StoreElem for f16 {
    #[inline(always)]
    fn from_f32(x: f32) -> f16 {
        f16::from_f32(x)
    }
}

/// Writes `src` (f32) into `dst`, converting.
pub fn store<T: StoreElem>(dst: &mut [T], src: &[f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = T::from_f32(s);
    }
}
