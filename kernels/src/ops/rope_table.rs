//! The rotation angles of RoPE: `cos` and `sin` of `pos * base^(-2i/head_dim)` for the
//! `head_dim/2` frequencies `i`, computed once per position and shared by every head (and by the
//! query and key projections) of that token. The rotation itself is the SIMD part, in the ISA files.
//!
//! Angles are computed in f64 and only the final `cos`/`sin` are rounded to f32, so each entry is
//! within half an f32 ulp (`<= 2^-25` absolute, since `|cos|, |sin| <= 1`) of the exact value at any
//! position: the f64 angle `pos * base^(-2i/d)` carries a relative error of a few `2^-53`, i.e.
//! `< 1e-12` rad at `pos = 4096`. Computing the angle in f32 instead would be off by up to
//! `pos * 2^-24` rad (`2.4e-4` at `pos = 4096`).

/// Fills `cos[i]`, `sin[i]` with the rotation of frequency `i` at position `pos`:
/// `angle = pos * base^(-2i / head_dim)`, for `i < head_dim / 2`. Does not allocate.
///
/// # Panics
/// If `head_dim` is odd or zero, or `cos`/`sin` do not hold `head_dim / 2` values.
pub fn rope_cos_sin(pos: usize, head_dim: usize, base: f64, cos: &mut [f32], sin: &mut [f32]) {
    assert!(
        head_dim > 0 && head_dim.is_multiple_of(2),
        "head_dim {head_dim} must be even and positive"
    );
    let half = head_dim / 2;
    assert_eq!(cos.len(), half, "cos holds head_dim/2 values");
    assert_eq!(sin.len(), half, "sin holds head_dim/2 values");
    for (i, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).enumerate() {
        let inv_freq = base.powf(-((2 * i) as f64) / head_dim as f64);
        let angle = pos as f64 * inv_freq;
        let (sin_angle, cos_angle) = angle.sin_cos();
        *c = cos_angle as f32;
        *s = sin_angle as f32;
    }
}

/// `cos`/`sin` rows for positions `0..max_pos`, built once per model (this allocates; the
/// kernels that read it do not).
#[derive(Clone, Debug)]
pub struct RopeTable {
    head_dim: usize,
    base: f64,
    max_pos: usize,
    /// `[max_pos][head_dim / 2]`
    cos: Vec<f32>,
    /// `[max_pos][head_dim / 2]`
    sin: Vec<f32>,
}

impl RopeTable {
    /// # Panics
    /// If `head_dim` is odd or zero.
    pub fn new(head_dim: usize, base: f64, max_pos: usize) -> Self {
        Self::new_scaled(head_dim, base, max_pos, 1.0)
    }

    /// As [`new`](Self::new), with linear RoPE scaling: the angle at `pos` is that of
    /// `pos * pos_scale` (`pos_scale = 1 / factor`; 1 is unscaled and identical to `new`).
    ///
    /// # Panics
    /// If `head_dim` is odd or zero.
    pub fn new_scaled(head_dim: usize, base: f64, max_pos: usize, pos_scale: f64) -> Self {
        assert!(
            head_dim > 0 && head_dim.is_multiple_of(2),
            "head_dim {head_dim} must be even and positive"
        );
        let half = head_dim / 2;
        let mut cos = vec![0.0; max_pos * half];
        let mut sin = vec![0.0; max_pos * half];
        for (pos, (c, s)) in cos
            .chunks_exact_mut(half)
            .zip(sin.chunks_exact_mut(half))
            .enumerate()
        {
            if pos_scale == 1.0 {
                rope_cos_sin(pos, head_dim, base, c, s);
            } else {
                let half = head_dim / 2;
                for i in 0..half {
                    let inv_freq = base.powf(-((2 * i) as f64) / head_dim as f64);
                    let (sin_angle, cos_angle) = (pos as f64 * pos_scale * inv_freq).sin_cos();
                    c[i] = cos_angle as f32;
                    s[i] = sin_angle as f32;
                }
            }
        }
        RopeTable {
            head_dim,
            base,
            max_pos,
            cos,
            sin,
        }
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    pub fn base(&self) -> f64 {
        self.base
    }

    pub fn max_pos(&self) -> usize {
        self.max_pos
    }

    /// `(cos, sin)` for `pos`, each `head_dim / 2` long: the arguments of
    /// [`rope_adjacent`](super::rope_adjacent) and [`rope_neox`](super::rope_neox).
    ///
    /// # Panics
    /// If `pos >= max_pos`.
    pub fn cos_sin(&self, pos: usize) -> (&[f32], &[f32]) {
        assert!(
            pos < self.max_pos,
            "position {pos} beyond the table's {}",
            self.max_pos
        );
        let half = self.head_dim / 2;
        let row = pos * half..(pos + 1) * half;
        (&self.cos[row.clone()], &self.sin[row])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_scaling_by_one_half_is_the_unscaled_table_at_half_the_position() {
        // (2p * 0.5) is exact in f64, so both paths compute the same angle bit for bit.
        let plain = RopeTable::new(64, 10_000.0, 1024);
        let scaled = RopeTable::new_scaled(64, 10_000.0, 2048, 0.5);
        for p in 0..1024 {
            assert_eq!(plain.cos_sin(p), scaled.cos_sin(2 * p), "position {p}");
        }
        let same = RopeTable::new_scaled(64, 10_000.0, 16, 1.0);
        for p in 0..16 {
            assert_eq!(plain.cos_sin(p), same.cos_sin(p));
        }
    }
}
