//! `--isa`: which ISA rows `verify` produces, and which of them must run.
//!
//! A level named on the command line must run: a gate that passes by skipping what it was asked
//! to check would be worthless. `native` names every level of this build's architecture: those
//! this CPU runs are required like named ones, the others (AVX-512 on a Zen 3) appear as SKIPPED
//! rows with the reason. So `--isa native,neon` is right on every x86_64 machine: an AVX-512
//! machine must run and pass its AVX-512 rows, one without reports them skipped, and NEON must
//! run under qemu.

use anyhow::{bail, Result};
use kernels::Isa;

use super::{Row, Status};

/// The word that names every level of this build's architecture.
pub const NATIVE: &str = "native";

/// The ISA part of a `verify` run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IsaSelection {
    /// The levels to produce rows for, in report order; empty means every level.
    pub rows: Vec<Isa>,
    /// The levels whose rows must not be SKIPPED.
    pub required: Vec<Isa>,
}

impl IsaSelection {
    /// Parses the `--isa` list: level names (`scalar`, `avx2`, `avx512`, `neon`) and `native`.
    /// An empty list selects every level and requires none (unavailable ones are SKIPPED).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<IsaSelection> {
        let mut sel = IsaSelection::default();
        for name in names {
            let name = name.as_ref().trim();
            if name == NATIVE {
                for isa in Isa::of_target_arch() {
                    sel.add_row(isa);
                    if isa.is_available() {
                        sel.add_required(isa);
                    }
                }
            } else if let Some(isa) = Isa::from_name(name) {
                sel.add_row(isa);
                sel.add_required(isa);
            } else {
                bail!("unknown ISA `{name}`; known: scalar, avx2, avx512, neon, and `{NATIVE}` (every ISA this CPU runs)");
            }
        }
        sel.rows.sort();
        Ok(sel)
    }

    fn add_row(&mut self, isa: Isa) {
        if !self.rows.contains(&isa) {
            self.rows.push(isa);
        }
    }

    fn add_required(&mut self, isa: Isa) {
        if !self.required.contains(&isa) {
            self.required.push(isa);
        }
    }

    /// Whether a SKIPPED row of `isa` fails the run.
    pub fn requires(&self, isa: Isa) -> bool {
        self.required.contains(&isa)
    }

    /// The first row that was asked to run but was SKIPPED, which fails the run. A variant that
    /// does not exist for its ISA (the x86-only x8 layout on scalar or NEON) is not one, nor one
    /// that needs a CPU extension beyond its ISA which this machine lacks (`q8k-amx` on an
    /// AVX-512 CPU without AMX: `--isa` cannot name AMX, so no level asks for it). Both are
    /// decided by the variant, never by the note, which the NEON rows carry prefixed.
    pub fn first_missing<'a>(&self, rows: &'a [Row]) -> Option<&'a Row> {
        rows.iter().find(|r| {
            matches!(r.status, Status::Skipped(_))
                && self.requires(r.isa)
                && !r.variant().skip_is_expected()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_requires_exactly_what_this_cpu_runs() {
        let sel = IsaSelection::parse(&["native"]).unwrap();
        let arch: Vec<Isa> = Isa::of_target_arch().collect();
        assert_eq!(sel.rows, arch);
        for isa in arch {
            assert_eq!(sel.requires(isa), isa.is_available(), "{isa}");
        }
    }

    #[test]
    fn named_levels_are_required_even_when_unavailable() {
        let sel = IsaSelection::parse(&["native", "neon", "avx512"]).unwrap();
        assert!(sel.requires(Isa::Neon));
        assert!(sel.requires(Isa::Avx512));
        assert!(sel.requires(Isa::Scalar));
        // listed once each, in report order
        let mut sorted = sel.rows.clone();
        sorted.dedup();
        sorted.sort();
        assert_eq!(sel.rows, sorted);
    }

    #[test]
    fn unknown_level_is_an_error_naming_native() {
        let err = IsaSelection::parse(&["sse9"]).unwrap_err().to_string();
        assert!(err.contains("sse9") && err.contains("native"), "{err}");
    }

    #[test]
    fn absent_variants_never_fail_a_required_level_but_skipped_ones_do() {
        use crate::registry::{Design, Kernel, X8_ONLY};
        let sel = IsaSelection::parse(&["scalar", "neon"]).unwrap();
        // as the NEON rows come back from qemu: the note prefixed
        let x8_neon = Row::skipped(
            Kernel::MatmulQ4K,
            Design::Q8KX8,
            Isa::Neon,
            &format!("qemu-aarch64: {X8_ONLY}"),
        );
        let x8_scalar = Row::skipped(Kernel::MatmulQ4K, Design::Q8KX8, Isa::Scalar, X8_ONLY);
        assert!(sel.first_missing(&[x8_neon.clone(), x8_scalar]).is_none());
        let q8k_neon = Row::skipped(Kernel::MatmulQ4K, Design::Q8K, Isa::Neon, "qemu missing");
        let rows = [x8_neon, q8k_neon];
        let missing = sel
            .first_missing(&rows)
            .expect("a skipped required row fails");
        assert_eq!((missing.design, missing.isa), (Design::Q8K, Isa::Neon));
    }

    #[test]
    fn an_amx_row_fails_avx512_only_where_amx_runs() {
        use crate::registry::{Design, Kernel};
        let sel = IsaSelection::parse(&["avx512"]).unwrap();
        let amx = [Row::skipped(
            Kernel::MatmulQ4K,
            Design::Q8KAmx,
            Isa::Avx512,
            "why",
        )];
        // Without AMX the row is SKIPPED with its reason and passes; with AMX a SKIPPED row is
        // a variant that should have run.
        let amx_runs = kernels::matmul::amx::available();
        assert_eq!(sel.first_missing(&amx).is_some(), amx_runs);
    }

    #[test]
    fn empty_selects_all_and_requires_none() {
        let sel = IsaSelection::parse::<&str>(&[]).unwrap();
        assert!(sel.rows.is_empty() && sel.required.is_empty());
    }
}
