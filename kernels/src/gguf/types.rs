//! Tensor element types as GGUF files name them: every ggml type id with its block layout, so
//! that the reader can check the size of any tensor, including the ones the project cannot run.

use crate::quant;

/// A ggml tensor type id from a tensor info. Ids no ggml version defines are kept as
/// `Unknown(id)`: the reader lists them and only a model loader refuses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Q8K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Unknown(u32),
}

/// (type, id, name, values per block, bytes per block). Facts of the ggml format: the block
/// sizes follow from each block's fields (e.g. IQ4_XS: f16 d, u16 scales_h, u8 scales_l[4],
/// u8 qs[128] = 136 bytes per 256 values). Ids 4, 5 and 31..33, 36..38 were removed from ggml.
/// Checked against `gguf.constants.GGML_QUANT_SIZES` of the `gguf` 0.19.0 Python package,
/// which differs only for Q8_1: it still says 40 bytes (f32 d and s, an older layout); ggml's
/// block has f16 d and s, 36 bytes, as FORMATS.md and `quant` have it.
const TABLE: [(GgmlType, u32, &str, u64, u64); 34] = {
    use GgmlType::*;
    [
        (F32, 0, "F32", 1, 4),
        (F16, 1, "F16", 1, 2),
        (Q4_0, 2, "Q4_0", 32, 18),
        (Q4_1, 3, "Q4_1", 32, 20),
        (Q5_0, 6, "Q5_0", 32, 22),
        (Q5_1, 7, "Q5_1", 32, 24),
        (Q8_0, 8, "Q8_0", 32, 34),
        (Q8_1, 9, "Q8_1", 32, 36),
        (Q2K, 10, "Q2_K", 256, 84),
        (Q3K, 11, "Q3_K", 256, 110),
        (Q4K, 12, "Q4_K", 256, 144),
        (Q5K, 13, "Q5_K", 256, 176),
        (Q6K, 14, "Q6_K", 256, 210),
        (Q8K, 15, "Q8_K", 256, 292),
        (IQ2_XXS, 16, "IQ2_XXS", 256, 66),
        (IQ2_XS, 17, "IQ2_XS", 256, 74),
        (IQ3_XXS, 18, "IQ3_XXS", 256, 98),
        (IQ1_S, 19, "IQ1_S", 256, 50),
        (IQ4_NL, 20, "IQ4_NL", 32, 18),
        (IQ3_S, 21, "IQ3_S", 256, 110),
        (IQ2_S, 22, "IQ2_S", 256, 82),
        (IQ4_XS, 23, "IQ4_XS", 256, 136),
        (I8, 24, "I8", 1, 1),
        (I16, 25, "I16", 1, 2),
        (I32, 26, "I32", 1, 4),
        (I64, 27, "I64", 1, 8),
        (F64, 28, "F64", 1, 8),
        (IQ1_M, 29, "IQ1_M", 256, 56),
        (BF16, 30, "BF16", 1, 2),
        (TQ1_0, 34, "TQ1_0", 256, 54),
        (TQ2_0, 35, "TQ2_0", 256, 66),
        (MXFP4, 39, "MXFP4", 32, 17),
        (NVFP4, 40, "NVFP4", 64, 36),
        (Q1_0, 41, "Q1_0", 128, 18),
    ]
};

impl GgmlType {
    /// The type for a GGUF type id (`Unknown(id)` if no ggml version defines it).
    pub fn from_id(id: u32) -> GgmlType {
        TABLE
            .iter()
            .find(|row| row.1 == id)
            .map_or(GgmlType::Unknown(id), |row| row.0)
    }

    /// Every type with a known layout, in id order.
    pub fn all_known() -> impl Iterator<Item = GgmlType> {
        TABLE.iter().map(|row| row.0)
    }

    fn row(self) -> Option<&'static (GgmlType, u32, &'static str, u64, u64)> {
        TABLE.iter().find(|row| row.0 == self)
    }

    /// The GGUF type id.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::Unknown(id) => id,
            t => t.row().map_or(u32::MAX, |row| row.1),
        }
    }

    /// The name ggml and the `gguf` Python package use (`Q4_K`, `F32`, ...); `type 1000` for an
    /// unknown id.
    pub fn name(self) -> String {
        match self.row() {
            Some(row) => row.2.to_string(),
            None => format!("type {}", self.id()),
        }
    }

    /// (values per block, bytes per block), `None` for an unknown id.
    pub fn block_layout(self) -> Option<(u64, u64)> {
        self.row().map(|row| (row.3, row.4))
    }

    /// Bytes of `values` values (a whole number of blocks), `None` if the type is unknown, the
    /// count is not a whole number of blocks, or the size overflows.
    pub fn bytes_for(self, values: u64) -> Option<u64> {
        let (block_values, block_bytes) = self.block_layout()?;
        if !values.is_multiple_of(block_values) {
            return None;
        }
        (values / block_values).checked_mul(block_bytes)
    }

    /// The storage format of `kernels::quant` for this type, if the project has one (the types
    /// a model can be loaded with).
    pub fn to_quant(self) -> Option<quant::GgmlType> {
        let id = self.id();
        quant::GgmlType::from_id(id).filter(|_| !matches!(self, GgmlType::Unknown(_)))
    }
}

impl From<quant::GgmlType> for GgmlType {
    fn from(t: quant::GgmlType) -> GgmlType {
        GgmlType::from_id(t as u32)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_agree_with_quant() {
        for t in GgmlType::all_known() {
            assert_eq!(GgmlType::from_id(t.id()), t, "{t}");
            if let Some(q) = t.to_quant() {
                assert_eq!(q as u32, t.id());
                let (v, b) = q.block_layout();
                assert_eq!(t.block_layout(), Some((v as u64, b as u64)), "{t}");
            }
        }
        assert_eq!(GgmlType::from_id(4), GgmlType::Unknown(4));
        assert_eq!(GgmlType::Unknown(4).to_quant(), None);
        assert_eq!(GgmlType::Q4K.bytes_for(512), Some(288));
        assert_eq!(GgmlType::Q4K.bytes_for(100), None);
    }
}
