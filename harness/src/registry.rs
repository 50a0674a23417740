//! The one list of kernel variants (kernel x design x ISA) that `verify` checks and `bench`
//! times. A variant is named by enums, never by strings; the strings exist only at the edges
//! (command-line flags, CSV columns), through [`Kernel::name`] / [`Kernel::from_name`] and
//! [`Design::name`] / [`Design::from_name`], and serde uses the same names.
//!
//! This module owns the names and the list; it must not run kernels (that is `verify`'s and
//! `bench`'s business), so both can use it without depending on each other.

use kernels::matmul;
use kernels::Isa;
use serde::{Deserialize, Serialize};

/// A kernel family: one dispatch point in `kernels`, one or more designs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kernel {
    /// Q4_K weights (`matmul_q4k_f32`, `matmul_q4k_q8k`).
    #[serde(rename = "matmul_q4k")]
    MatmulQ4K,
    /// Q6_K weights.
    #[serde(rename = "matmul_q6k")]
    MatmulQ6K,
    /// Q8_0 weights (f32 and Q8_0 activations).
    #[serde(rename = "matmul_q8_0")]
    MatmulQ8_0,
    /// Q4_0 weights (f32 and Q8_0 activations).
    #[serde(rename = "matmul_q4_0")]
    MatmulQ4_0,
    /// Q5_0 weights (f32 and Q8_0 activations).
    #[serde(rename = "matmul_q5_0")]
    MatmulQ5_0,
    /// Q4_1 weights (f32 and Q8_1 activations).
    #[serde(rename = "matmul_q4_1")]
    MatmulQ4_1,
    /// F16 weights, f32 activations.
    #[serde(rename = "matmul_f16")]
    MatmulF16,
    /// Activations to Q8_0 (the input of the `q8_0` matmul design).
    #[serde(rename = "quantize_q8_0")]
    QuantizeQ8_0,
    /// Activations to Q8_1 (the input of the `q8_1` matmul design).
    #[serde(rename = "quantize_q8_1")]
    QuantizeQ8_1,
    /// Causal GQA flash attention.
    #[serde(rename = "attention")]
    Attention,
    #[serde(rename = "rmsnorm")]
    Rmsnorm,
    #[serde(rename = "rope_adjacent")]
    RopeAdjacent,
    #[serde(rename = "rope_neox")]
    RopeNeox,
    #[serde(rename = "swiglu")]
    Swiglu,
    #[serde(rename = "softmax")]
    Softmax,
    #[serde(rename = "residual_add")]
    ResidualAdd,
    /// The vectorised `exp` softmax, SwiGLU and attention share.
    #[serde(rename = "exp")]
    Exp,
    /// The RoPE cos/sin table a forward pass builds once (ISA-independent).
    #[serde(rename = "rope_table")]
    RopeTable,
    /// Activations to Q8_K (the input of the `q8k` matmul design).
    #[serde(rename = "quantize_q8k")]
    QuantizeQ8K,
}

/// How a variant computes: the activation format of a matmul, the KV cache type of attention,
/// the pairing of RoPE, or plain f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Design {
    /// Weights dequantized in registers, f32 activations (matmuls); plain f32 (ops, quantizers).
    #[serde(rename = "f32")]
    F32,
    /// Activations in Q8_K, integer dot per 256-value block.
    #[serde(rename = "q8k")]
    Q8K,
    /// Q8_K activations against weights repacked at load into 8-row interleaved blocks
    /// (`kernels::matmul::x8`): the model's fast x86 path (AVX2 kernels, also on AVX-512).
    #[serde(rename = "q8k-x8")]
    Q8KX8,
    /// Q8_K activations against weights repacked at load into 16-row panels for Intel AMX tile
    /// products (`kernels::matmul::amx`): runs under the avx512 variant on CPUs with AMX-INT8.
    #[serde(rename = "q8k-amx")]
    Q8KAmx,
    /// Activations in Q8_0, integer dot per 32-value block.
    #[serde(rename = "q8_0")]
    Q8_0,
    /// Activations in Q8_1 (scale and scaled sum per block), integer dot per 32-value block.
    #[serde(rename = "q8_1")]
    Q8_1,
    /// Flash attention over an f32 KV cache.
    #[serde(rename = "flash-f32kv")]
    FlashF32Kv,
    /// Flash attention over an f16 KV cache.
    #[serde(rename = "flash-f16kv")]
    FlashF16Kv,
    /// RoPE on adjacent pairs.
    #[serde(rename = "adjacent")]
    Adjacent,
    /// RoPE on NeoX half-split pairs.
    #[serde(rename = "neox")]
    Neox,
    /// Angles computed in f64, rounded once (the RoPE table).
    #[serde(rename = "f64-angles")]
    F64Angles,
}

impl Kernel {
    /// Every family, in the order reports list them.
    pub const ALL: [Kernel; 19] = [
        Kernel::MatmulQ4K,
        Kernel::MatmulQ6K,
        Kernel::MatmulQ8_0,
        Kernel::MatmulQ4_0,
        Kernel::MatmulQ5_0,
        Kernel::MatmulQ4_1,
        Kernel::MatmulF16,
        Kernel::QuantizeQ8_0,
        Kernel::QuantizeQ8_1,
        Kernel::Attention,
        Kernel::Rmsnorm,
        Kernel::RopeAdjacent,
        Kernel::RopeNeox,
        Kernel::Swiglu,
        Kernel::Softmax,
        Kernel::ResidualAdd,
        Kernel::Exp,
        Kernel::RopeTable,
        Kernel::QuantizeQ8K,
    ];

    /// The name used by `--kernel` and in CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::MatmulQ4K => "matmul_q4k",
            Kernel::MatmulQ6K => "matmul_q6k",
            Kernel::MatmulQ8_0 => "matmul_q8_0",
            Kernel::MatmulQ4_0 => "matmul_q4_0",
            Kernel::MatmulQ5_0 => "matmul_q5_0",
            Kernel::MatmulQ4_1 => "matmul_q4_1",
            Kernel::MatmulF16 => "matmul_f16",
            Kernel::QuantizeQ8_0 => "quantize_q8_0",
            Kernel::QuantizeQ8_1 => "quantize_q8_1",
            Kernel::Attention => "attention",
            Kernel::Rmsnorm => "rmsnorm",
            Kernel::RopeAdjacent => "rope_adjacent",
            Kernel::RopeNeox => "rope_neox",
            Kernel::Swiglu => "swiglu",
            Kernel::Softmax => "softmax",
            Kernel::ResidualAdd => "residual_add",
            Kernel::Exp => "exp",
            Kernel::RopeTable => "rope_table",
            Kernel::QuantizeQ8K => "quantize_q8k",
        }
    }

    /// Parses a name produced by [`Kernel::name`].
    pub fn from_name(name: &str) -> Option<Kernel> {
        Kernel::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The designs this family has, in report order.
    pub fn designs(self) -> &'static [Design] {
        match self {
            Kernel::MatmulQ4K | Kernel::MatmulQ6K => {
                &[Design::F32, Design::Q8K, Design::Q8KX8, Design::Q8KAmx]
            }
            Kernel::MatmulQ8_0 | Kernel::MatmulQ4_0 | Kernel::MatmulQ5_0 => {
                &[Design::F32, Design::Q8_0]
            }
            Kernel::MatmulQ4_1 => &[Design::F32, Design::Q8_1],
            Kernel::MatmulF16 => &[Design::F32],
            Kernel::QuantizeQ8_0 => &[Design::Q8_0],
            Kernel::QuantizeQ8_1 => &[Design::Q8_1],
            Kernel::Attention => &[Design::FlashF32Kv, Design::FlashF16Kv],
            Kernel::RopeAdjacent => &[Design::Adjacent],
            Kernel::RopeNeox => &[Design::Neox],
            Kernel::Rmsnorm
            | Kernel::Swiglu
            | Kernel::Softmax
            | Kernel::ResidualAdd
            | Kernel::Exp => &[Design::F32],
            Kernel::RopeTable => &[Design::F64Angles],
            Kernel::QuantizeQ8K => &[Design::Q8K],
        }
    }

    /// Whether this is a matmul family (`Y = X * W^T`).
    pub fn is_matmul(self) -> bool {
        self.name().starts_with("matmul")
    }
}

impl Design {
    /// Every design.
    pub const ALL: [Design; 11] = [
        Design::F32,
        Design::Q8K,
        Design::Q8KX8,
        Design::Q8KAmx,
        Design::Q8_0,
        Design::Q8_1,
        Design::FlashF32Kv,
        Design::FlashF16Kv,
        Design::Adjacent,
        Design::Neox,
        Design::F64Angles,
    ];

    /// The name used in reports and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Design::F32 => "f32",
            Design::Q8K => "q8k",
            Design::Q8KX8 => "q8k-x8",
            Design::Q8KAmx => "q8k-amx",
            Design::Q8_0 => "q8_0",
            Design::Q8_1 => "q8_1",
            Design::FlashF32Kv => "flash-f32kv",
            Design::FlashF16Kv => "flash-f16kv",
            Design::Adjacent => "adjacent",
            Design::Neox => "neox",
            Design::F64Angles => "f64-angles",
        }
    }

    /// Parses a name produced by [`Design::name`].
    pub fn from_name(name: &str) -> Option<Design> {
        Design::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The matmul design of the `kernels` crate this stands for, if it is one.
    pub fn matmul(self) -> Option<matmul::Design> {
        match self {
            Design::F32 => Some(matmul::Design::F32),
            Design::Q8K => Some(matmul::Design::Q8K),
            Design::Q8_0 => Some(matmul::Design::Q8_0),
            Design::Q8_1 => Some(matmul::Design::Q8_1),
            _ => None,
        }
    }
}

impl From<matmul::Design> for Design {
    fn from(d: matmul::Design) -> Design {
        match d {
            matmul::Design::F32 => Design::F32,
            matmul::Design::Q8K => Design::Q8K,
            matmul::Design::Q8_0 => Design::Q8_0,
            matmul::Design::Q8_1 => Design::Q8_1,
        }
    }
}

impl std::fmt::Display for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Design {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One kernel x design x ISA variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub kernel: Kernel,
    pub design: Design,
    pub isa: Isa,
}

impl Variant {
    /// Why this variant cannot run on this machine, if it cannot: the CPU lacks its ISA (or,
    /// for `q8k-amx`, AMX), or it is a layout asked for on an ISA that never has it.
    pub fn unavailable_reason(&self) -> Option<String> {
        if let Some(why) = self.absent_reason() {
            return Some(why.into());
        }
        if let Some(why) = self.isa.unavailable_reason() {
            return Some(why.to_string());
        }
        if self.design == Design::Q8KAmx {
            return matmul::amx::unavailable_reason().map(str::to_string);
        }
        None
    }

    /// Whether this variant does not exist at all (the x86-only `q8k-x8` layout on scalar or
    /// NEON, `q8k-amx` anywhere but avx512), as opposed to existing but needing a CPU feature
    /// this machine lacks. A gate asked to check an ISA must not fail on a variant that ISA
    /// never has.
    pub fn is_absent_by_design(&self) -> bool {
        self.absent_reason().is_some()
    }

    /// Whether this variant needs a CPU extension beyond its ISA that this machine lacks
    /// (AMX for `q8k-amx`): reported SKIPPED, but no `--isa` level requires it.
    pub fn lacks_cpu_extension(&self) -> bool {
        self.design == Design::Q8KAmx && matmul::amx::unavailable_reason().is_some()
    }

    /// Whether a SKIPPED row of this variant is what this machine should give: it is absent by
    /// design or lacks a CPU extension beyond its ISA (the two above), so no `--isa` level
    /// requires it.
    pub fn skip_is_expected(&self) -> bool {
        self.is_absent_by_design() || self.lacks_cpu_extension()
    }

    fn absent_reason(&self) -> Option<&'static str> {
        match self.design {
            Design::Q8KX8 if !matmul::x8::runs_on(self.isa) => Some(X8_ONLY),
            Design::Q8KAmx if self.isa != Isa::Avx512 => Some(AMX_ONLY),
            _ => None,
        }
    }
}

/// Why a `q8k-x8` variant of a non-x86 ISA never runs.
pub const X8_ONLY: &str = "the x8 layout is an x86 path (avx2, and avx512 with VNNI byte dots)";

/// Why a `q8k-amx` variant of an ISA other than avx512 never runs.
pub const AMX_ONLY: &str =
    "the AMX layout runs under avx512 only (AMX tiles with an AVX-512 epilogue)";

/// Every variant, in report order (kernel, then design, then ISA). Which ones run here is a
/// separate question ([`Variant::unavailable_reason`]): a variant the CPU lacks is reported as
/// skipped, never left out.
pub fn variants() -> impl Iterator<Item = Variant> {
    Kernel::ALL.into_iter().flat_map(|kernel| {
        kernel.designs().iter().flat_map(move |&design| {
            Isa::ALL.into_iter().map(move |isa| Variant {
                kernel,
                design,
                isa,
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in Kernel::ALL {
            assert_eq!(Kernel::from_name(k.name()), Some(k));
        }
        for d in Design::ALL {
            assert_eq!(Design::from_name(d.name()), Some(d));
        }
        // serde must write the same names the CLI reads (CSV files are read back).
        let mut w = csv::Writer::from_writer(vec![]);
        w.serialize((Kernel::MatmulQ4_1, Design::Q8_1)).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(text.trim(), "matmul_q4_1,q8_1");
    }

    #[test]
    fn every_variant_is_listed_once() {
        let all: Vec<Variant> = variants().collect();
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
        let designs: usize = Kernel::ALL.iter().map(|k| k.designs().len()).sum();
        assert_eq!(all.len(), designs * Isa::ALL.len());
    }
}
