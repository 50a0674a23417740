//! Shared by the integration tests: how a test reports a variant this CPU cannot run.

use kernels::Isa;
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Mutex;

/// Returns whether `isa` runs here. When it does not, says so once per test and variant on the
/// process's stderr — written to the file descriptor directly, past libtest's output capture, so
/// the skip is visible in every `cargo test` log and never reads as a silent pass.
pub fn runs_here(isa: Isa, test: &str) -> bool {
    static REPORTED: Mutex<BTreeSet<(String, Isa)>> = Mutex::new(BTreeSet::new());
    let Some(reason) = isa.unavailable_reason() else {
        return true;
    };
    let first = REPORTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert((test.to_string(), isa));
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: the {isa} variant cannot run here ({reason})"
        );
    }
    false
}
