//! Deliberately wrong copies of `kernels::ops::scalar::rope_adjacent`, for the gate's self-test:
//! `verify` must reject each of them against `reference::ops::rope_adjacent`. Never call these
//! outside that self-test.
//!
//! Both agree with the correct kernel at position 0 (every angle is 0) and on a head whose pairs
//! are equal, so a gate that only checks `pos = 0` or symmetric inputs would miss them.

/// Same signature as `kernels::ops::scalar::rope_adjacent` (and the dispatch function without its
/// `isa`). PLANTED BUG: rotates `(x[2i+1], x[2i])` instead of `(x[2i], x[2i+1])`, i.e. each pair
/// by `-angle`.
pub fn rope_adjacent(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(head_dim) {
        for (pair, (&c, &s)) in head.chunks_exact_mut(2).zip(cos.iter().zip(sin)) {
            let (a, b) = (pair[1], pair[0]);
            pair[1] = a * c - b * s;
            pair[0] = a * s + b * c;
        }
    }
}

/// Same signature. PLANTED BUG: pairs `(x[i], x[i + head_dim/2])` (the NeoX layout) although the
/// adjacent layout is asked for.
pub fn rope_adjacent_with_neox_pairs(x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
    let half = head_dim / 2;
    for head in x.chunks_exact_mut(head_dim) {
        let (lo, hi) = head.split_at_mut(half);
        for ((a, b), (&c, &s)) in lo.iter_mut().zip(hi.iter_mut()).zip(cos.iter().zip(sin)) {
            let (va, vb) = (*a, *b);
            *a = va * c - vb * s;
            *b = va * s + vb * c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernels::ops::{self, RopeTable};
    use kernels::Isa;

    /// The planted kernels must differ from the real one, or the self-test proves nothing.
    #[test]
    fn planted_bugs_change_the_result() {
        let head_dim = 64;
        let table = RopeTable::new(head_dim, 10000.0, 8);
        let (cos, sin) = table.cos_sin(5);
        let x: Vec<f32> = (0..2 * head_dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut good = x.clone();
        ops::rope_adjacent(Isa::Scalar, &mut good, head_dim, cos, sin);
        for planted in [rope_adjacent, rope_adjacent_with_neox_pairs] {
            let mut bad = x.clone();
            planted(&mut bad, head_dim, cos, sin);
            let worst = good
                .iter()
                .zip(&bad)
                .map(|(g, b)| (g - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst > 0.1, "planted bug indistinguishable: {worst}");
        }
    }
}
