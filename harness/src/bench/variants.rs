//! What the bench adds to the shared variant registry ([`crate::registry`], which `verify`
//! uses too): the kind of shape each family runs on, the storage format a row names, and the
//! instruction mix (compute roof) each design lives on. The list of variants itself is the
//! registry's, so a family added there (as the 32-value formats were) joins the bench here.

use super::probes::ComputeKind;
pub use crate::registry::{Design, Kernel, Variant};

/// What a family's calls look like, which decides the shapes it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyKind {
    Matmul,
    Attention,
    /// One row of a per-layer op or an activation quantizer.
    Op,
}

pub fn kind(kernel: Kernel) -> FamilyKind {
    if kernel.is_matmul() {
        FamilyKind::Matmul
    } else if kernel == Kernel::Attention {
        FamilyKind::Attention
    } else {
        FamilyKind::Op
    }
}

/// Values per weight block of a matmul family (what `k` must be a multiple of); 1 otherwise.
pub fn weight_block(kernel: Kernel) -> usize {
    match kernel {
        Kernel::MatmulQ4K | Kernel::MatmulQ6K => kernels::quant::QK_K,
        Kernel::MatmulF16 => 1,
        k if k.is_matmul() => 32,
        Kernel::QuantizeQ8_0 | Kernel::QuantizeQ8_1 => 32,
        Kernel::QuantizeQ8K => kernels::quant::QK_K,
        _ => 1,
    }
}

/// The storage format a row names: the weights of a matmul, the KV cache of attention, the
/// output of a quantizer, f32 for the ops.
pub fn format(kernel: Kernel, design: Design) -> &'static str {
    match kernel {
        Kernel::MatmulQ4K => "q4_K",
        Kernel::MatmulQ6K => "q6_K",
        Kernel::MatmulQ8_0 => "q8_0",
        Kernel::MatmulQ4_0 => "q4_0",
        Kernel::MatmulQ5_0 => "q5_0",
        Kernel::MatmulQ4_1 => "q4_1",
        Kernel::MatmulF16 => "f16",
        Kernel::QuantizeQ8_0 => "q8_0",
        Kernel::QuantizeQ8_1 => "q8_1",
        Kernel::QuantizeQ8K => "q8_K",
        Kernel::Attention if design == Design::FlashF16Kv => "f16",
        _ => "f32",
    }
}

/// The instructions a design's inner loop lives on, which names its compute roof.
pub fn compute_kind(design: Design) -> ComputeKind {
    match design {
        Design::Q8K | Design::Q8KX8 | Design::Q8KAmx | Design::Q8_0 | Design::Q8_1 => {
            ComputeKind::Int8Dot
        }
        _ => ComputeKind::FmaF32,
    }
}

/// Every variant of `kernel`, designs in registry order (the first is the baseline that
/// `speedup_vs_reference` is taken against), ISAs in [`kernels::Isa::ALL`] order.
pub fn variants_of(kernel: Kernel) -> Vec<Variant> {
    crate::registry::variants()
        .filter(|v| v.kernel == kernel)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_a_kind_format_and_variants() {
        for k in Kernel::ALL {
            assert!(!variants_of(k).is_empty(), "{k}");
            for d in k.designs() {
                assert!(!format(k, *d).is_empty());
            }
            assert!(k.is_matmul() == (kind(k) == FamilyKind::Matmul));
        }
        // Q4_K: the f32, q8k, q8k-x8 and q8k-amx designs, each listed for every ISA (a row
        // the CPU lacks is SKIPPED or absent at run time, never dropped from the list).
        let q4k = variants_of(Kernel::MatmulQ4K);
        assert_eq!(q4k.len(), 4 * kernels::Isa::ALL.len());
        assert!(q4k.iter().any(|v| v.design == Design::Q8KAmx));
    }
}
