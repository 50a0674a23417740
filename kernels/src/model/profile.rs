//! An opt-in time profile of the forward pass: nanoseconds accumulated per [`Phase`] across the
//! steps a [`super::Session`] runs while profiling is on.
//!
//! Time is attributed by laps: each mark charges the time since the previous mark to one phase,
//! so the phases of a step add up to the step's wall time (no gap, no overlap). Off, a mark is
//! one predictable branch on a bool and reads no clock; on, it is one `Instant::now()` (a vDSO
//! call of tens of nanoseconds, a few hundred per token against milliseconds per token).
//! Nothing here allocates.

use std::time::Instant;

/// Where the forward pass spends its time. The matmul phases include quantizing their input
/// activations (the `q8` design), since that work exists only for the matmul.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The Q, K and V projections.
    AttnQkv,
    /// The attention output projection.
    AttnOutput,
    /// The FFN gate and up projections.
    FfnGateUp,
    /// The FFN down projection.
    FfnDown,
    /// The output (vocabulary) projection.
    Output,
    /// Storing K/V into the cache and flash attention.
    Attention,
    /// The RMSNorms (attention, FFN, output).
    Norms,
    /// RoPE on Q and K.
    Rope,
    /// The rest: embedding lookup, SwiGLU, residual adds.
    Other,
}

impl Phase {
    pub const COUNT: usize = 9;
    pub const ALL: [Phase; Phase::COUNT] = [
        Phase::AttnQkv,
        Phase::AttnOutput,
        Phase::FfnGateUp,
        Phase::FfnDown,
        Phase::Output,
        Phase::Attention,
        Phase::Norms,
        Phase::Rope,
        Phase::Other,
    ];

    /// A short snake_case name, as column names use it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::AttnQkv => "attn_qkv",
            Phase::AttnOutput => "attn_output",
            Phase::FfnGateUp => "ffn_gate_up",
            Phase::FfnDown => "ffn_down",
            Phase::Output => "output",
            Phase::Attention => "attention",
            Phase::Norms => "norms",
            Phase::Rope => "rope",
            Phase::Other => "other",
        }
    }
}

/// Accumulated nanoseconds per phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub ns: [u64; Phase::COUNT],
}

impl Profile {
    pub fn get(&self, phase: Phase) -> u64 {
        self.ns[phase as usize]
    }

    /// The sum over all phases: the wall time of the profiled steps.
    pub fn total_ns(&self) -> u64 {
        self.ns.iter().sum()
    }
}

/// The lap clock a session carries.
#[derive(Debug, Default)]
pub(crate) struct Profiler {
    on: bool,
    last: Option<Instant>,
    acc: Profile,
}

impl Profiler {
    pub(crate) fn set(&mut self, on: bool) {
        self.on = on;
        self.last = None;
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    pub(crate) fn profile(&self) -> Profile {
        self.acc
    }

    pub(crate) fn clear(&mut self) {
        self.acc = Profile::default();
    }

    /// Starts a step's laps.
    #[inline]
    pub(crate) fn start(&mut self) {
        if self.on {
            self.last = Some(Instant::now());
        }
    }

    /// Charges the time since the previous mark to `phase`.
    #[inline]
    pub(crate) fn lap(&mut self, phase: Phase) {
        if self.on {
            let now = Instant::now();
            if let Some(last) = self.last {
                self.acc.ns[phase as usize] += now.duration_since(last).as_nanos() as u64;
            }
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laps_add_up_and_off_records_nothing() {
        let mut p = Profiler::default();
        p.start();
        p.lap(Phase::Norms);
        assert_eq!(p.profile(), Profile::default());
        p.set(true);
        let t0 = Instant::now();
        p.start();
        std::thread::sleep(std::time::Duration::from_millis(2));
        p.lap(Phase::Rope);
        p.lap(Phase::Other);
        let wall = t0.elapsed().as_nanos() as u64;
        let prof = p.profile();
        assert!(prof.get(Phase::Rope) >= 2_000_000, "{prof:?}");
        // The laps cover the span from `start` to the last mark, which lies inside `wall`.
        assert!(prof.total_ns() <= wall, "{prof:?} > {wall}");
        p.clear();
        assert_eq!(p.profile().total_ns(), 0);
    }
}
