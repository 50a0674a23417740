//! Instruction-set levels and the one cached runtime detection.
//!
//! Every kernel family has the same set of variants, one per [`Isa`]; each family's `mod.rs` holds
//! the single `match isa` that routes to them. Callers never need `unsafe`: the dispatch functions
//! refuse (panic) an `Isa` the CPU lacks, so a `#[target_feature]` function is only ever entered on
//! hardware that has the feature.

use std::sync::OnceLock;

/// Routes one call to the variant for `isa`: `dispatch!(isa, func(args..))` calls
/// `scalar::func`, `avx2::func`, `avx512::func` or `neon::func` of the invoking module, after
/// [`Isa::assert_available`]. The one `match isa` of every kernel family.
macro_rules! dispatch {
    ($isa:expr, $func:ident($($arg:expr),* $(,)?)) => {{
        let isa: $crate::Isa = $isa;
        isa.assert_available();
        match isa {
            $crate::Isa::Scalar => scalar::$func($($arg),*),
            // SAFETY: `assert_available` checked that the CPU has the target features.
            #[cfg(target_arch = "x86_64")]
            $crate::Isa::Avx2 => unsafe { avx2::$func($($arg),*) },
            // SAFETY: as above.
            #[cfg(target_arch = "x86_64")]
            $crate::Isa::Avx512 => unsafe { avx512::$func($($arg),*) },
            // SAFETY: as above.
            #[cfg(target_arch = "aarch64")]
            $crate::Isa::Neon => unsafe { neon::$func($($arg),*) },
            #[allow(unreachable_patterns)]
            _ => unreachable!("assert_available admits no ISA of another architecture"),
        }
    }};
}
pub(crate) use dispatch;

/// An instruction-set level a kernel variant is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no intrinsics. Runs everywhere; the oracle for the SIMD variants.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C (Haswell / Zen 1 and later).
    Avx2,
    /// x86-64 AVX-512 F + BW + VL + VNNI (Ice Lake / Zen 4 and later).
    Avx512,
    /// aarch64 Advanced SIMD (NEON), baseline on every aarch64 CPU.
    Neon,
}

/// What this CPU supports, detected once.
#[derive(Clone, Copy, Debug)]
struct Detected {
    avx2: bool,
    avx512: bool,
    neon: bool,
}

fn detected() -> Detected {
    static CACHE: OnceLock<Detected> = OnceLock::new();
    *CACHE.get_or_init(detect)
}

fn detect() -> Detected {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avx512 =
            avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni");
        Detected {
            avx2,
            avx512,
            neon: false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        Detected {
            avx2: false,
            avx512: false,
            neon: std::arch::is_aarch64_feature_detected!("neon"),
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Detected {
            avx2: false,
            avx512: false,
            neon: false,
        }
    }
}

impl Isa {
    /// Every level, in the order reports list them.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon];

    /// The short lower-case name used on the command line and in CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a name produced by [`Isa::name`].
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name() == name)
    }

    /// Whether this CPU (and this build's target architecture) can run the variant.
    pub fn is_available(self) -> bool {
        self.unavailable_reason().is_none()
    }

    /// Why the variant cannot run here, or `None` when it can.
    pub fn unavailable_reason(self) -> Option<&'static str> {
        let d = detected();
        match self {
            Isa::Scalar => None,
            Isa::Avx2 if !cfg!(target_arch = "x86_64") => Some("not an x86_64 build"),
            Isa::Avx2 if !d.avx2 => Some("CPU lacks AVX2+FMA+F16C"),
            Isa::Avx512 if !cfg!(target_arch = "x86_64") => Some("not an x86_64 build"),
            Isa::Avx512 if !d.avx512 => Some("CPU lacks AVX-512 F/BW/VL/VNNI"),
            Isa::Neon if !cfg!(target_arch = "aarch64") => Some("not an aarch64 build"),
            Isa::Neon if !d.neon => Some("CPU lacks NEON"),
            _ => None,
        }
    }

    /// The fastest level this CPU runs, detected once and cached.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            [Isa::Avx512, Isa::Avx2, Isa::Neon]
                .into_iter()
                .find(|isa| isa.is_available())
                .unwrap_or(Isa::Scalar)
        })
    }

    /// Every level this CPU can run.
    pub fn available() -> impl Iterator<Item = Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_available())
    }

    /// Panics unless the CPU can run `self`. Dispatchers call this before entering a
    /// `#[target_feature]` function, which is what makes those calls sound.
    #[track_caller]
    pub fn assert_available(self) {
        if let Some(reason) = self.unavailable_reason() {
            panic!("kernel variant `{}` cannot run here: {reason}", self.name());
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
        }
        assert_eq!(Isa::from_name("sse2"), None);
    }

    #[test]
    fn best_is_available_and_scalar_always_is() {
        assert!(Isa::Scalar.is_available());
        assert!(Isa::best().is_available());
    }
}
