//! The one list of kernel variants the bench runs: family x format x design x ISA.
//!
//! Family names are those of `harness verify` (`matmul_q4k`, `attention`, `rmsnorm`, ...) so a
//! bench row and a gate row of the same variant carry the same names. This list is written so
//! that `verify` can adopt it (one registry for both commands); until then it lives here.

use super::probes::ComputeKind;
use kernels::Isa;

/// A kernel family: one dispatch function in `kernels`, several variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    MatmulQ4K,
    MatmulQ6K,
    Attention,
    Rmsnorm,
    RopeAdjacent,
    RopeNeox,
    Swiglu,
    Softmax,
    ResidualAdd,
}

/// What a family's calls look like, which decides the shapes it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FamilyKind {
    Matmul,
    Attention,
    Op,
}

impl Family {
    pub const ALL: [Family; 9] = [
        Family::MatmulQ4K,
        Family::MatmulQ6K,
        Family::Attention,
        Family::Rmsnorm,
        Family::RopeAdjacent,
        Family::RopeNeox,
        Family::Swiglu,
        Family::Softmax,
        Family::ResidualAdd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::MatmulQ4K => "matmul_q4k",
            Family::MatmulQ6K => "matmul_q6k",
            Family::Attention => "attention",
            Family::Rmsnorm => "rmsnorm",
            Family::RopeAdjacent => "rope_adjacent",
            Family::RopeNeox => "rope_neox",
            Family::Swiglu => "swiglu",
            Family::Softmax => "softmax",
            Family::ResidualAdd => "residual_add",
        }
    }

    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn kind(self) -> FamilyKind {
        match self {
            Family::MatmulQ4K | Family::MatmulQ6K => FamilyKind::Matmul,
            Family::Attention => FamilyKind::Attention,
            _ => FamilyKind::Op,
        }
    }

    /// (format, design) pairs of the family, baseline first (`speedup_vs_reference` is against
    /// the scalar variant of the first pair).
    pub fn formats_designs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Family::MatmulQ4K => &[("q4_K", "f32"), ("q4_K", "q8k")],
            Family::MatmulQ6K => &[("q6_K", "f32"), ("q6_K", "q8k")],
            Family::Attention => &[("f32", "flash"), ("f16", "flash")],
            _ => &[("f32", "f32")],
        }
    }
}

/// The instructions a design's inner loop lives on, which names its compute roof.
pub fn compute_kind(design: &str) -> ComputeKind {
    if design == "q8k" {
        ComputeKind::Int8Dot
    } else {
        ComputeKind::FmaF32
    }
}

/// One variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    pub family: Family,
    pub format: &'static str,
    pub design: &'static str,
    pub isa: Isa,
}

/// Every variant of `family`, formats and designs in baseline order, ISAs in [`Isa::ALL`]
/// order. Whether this CPU runs one is the caller's question ([`Isa::is_available`]).
pub fn variants_of(family: Family) -> Vec<Variant> {
    let mut v = Vec::new();
    for &(format, design) in family.formats_designs() {
        for isa in Isa::ALL {
            v.push(Variant {
                family,
                format,
                design,
                isa,
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_gate_and_round_trip() {
        for f in Family::ALL {
            assert_eq!(Family::from_name(f.name()), Some(f));
            assert!(
                crate::verify::KERNELS.contains(&f.name()),
                "{} is not a verify family",
                f.name()
            );
        }
        assert_eq!(variants_of(Family::MatmulQ4K).len(), 8);
    }
}
