//! The gate as a test: every variant this CPU can run passes `verify`, and every planted bug is
//! caught by `verify --self-test`. (CI also runs the `harness` binary itself, with more cases.)

use harness::verify::{self, Status, VerifyConfig};
use kernels::Isa;

#[test]
fn every_available_variant_passes_the_gate() {
    let config = VerifyConfig {
        kernels: vec![],
        isas: Isa::available().collect(),
        cases: 48,
        seed: 0x7e57,
        neon_under_qemu: false,
    };
    let mut log = Vec::new();
    let rows = verify::run(&config, &mut log).expect("verify runs");
    let log = String::from_utf8_lossy(&log);
    assert!(!rows.is_empty());
    for row in &rows {
        // A layout an ISA never has (x8 off x86, AMX off avx512) and the AMX rows on a CPU
        // without AMX are SKIPPED with the reason, by design; every other row must pass.
        if row.variant().skip_is_expected() {
            assert!(
                matches!(row.status, Status::Skipped(_)),
                "{}",
                verify::format_row(row)
            );
            continue;
        }
        assert_eq!(
            row.status,
            Status::Pass,
            "{}\n{log}",
            verify::format_row(row)
        );
        assert!(row.cases > 0);
    }
    for isa in Isa::available() {
        assert!(rows.iter().any(|r| r.isa == isa), "no rows for {isa}");
    }
}

#[test]
fn self_test_catches_every_planted_bug() {
    let mut log = Vec::new();
    let results = verify::selftest::run(64, 0x5e1f, &mut log).expect("self-test runs");
    let log = String::from_utf8_lossy(&log);
    assert!(!results.is_empty());
    for r in &results {
        assert!(
            r.caught,
            "planted bug not caught: {}: {}\n{log}",
            r.name, r.detail
        );
    }
}

#[test]
fn unavailable_isa_is_reported_skipped_not_passed() {
    let Some(missing) = Isa::ALL.into_iter().find(|i| !i.is_available()) else {
        return; // every ISA runs here: nothing to skip
    };
    let config = VerifyConfig {
        kernels: vec!["matmul_q4k".into()],
        isas: vec![missing],
        cases: 4,
        seed: 1,
        neon_under_qemu: false,
    };
    let rows = verify::run(&config, &mut std::io::sink()).expect("verify runs");
    assert!(rows
        .iter()
        .all(|r| matches!(r.status, Status::Skipped(_)) && r.cases == 0));
}

fn harness(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .expect("run harness")
}

#[test]
fn bad_flags_fail_with_a_one_line_error() {
    for args in [
        &["verify", "--isa", "sse9"][..],
        &["verify", "--kernel", "matmul_q9k"],
        &["verify", "--cases", "zero"],
        &["verify", "--cases", "0"],
        &["verify", "--csv", "/nonexistent-dir/verify.csv"],
        &["verify", "--self-test", "--kernel", "attention"],
        &["verify", "--no-such-flag"],
        &["frobnicate"],
    ] {
        let out = harness(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn flash_attention_scratch_does_not_grow_with_context() {
    use kernels::attention::{scratch_len, AttentionDims};
    let dims = |pos0| AttentionDims {
        n_q: 1,
        n_head: 32,
        n_head_kv: 4,
        head_dim: 64,
        pos0,
    };
    let short = scratch_len(&dims(0));
    assert_eq!(short, scratch_len(&dims(1 << 20)));
    // A score tile per head of the GQA group and one K/V tile widened to f32: 4624 values here,
    // which must stay within a 32 KiB L1 data cache, whatever the context.
    assert!(short * 4 <= 32 * 1024, "{short} f32 of scratch");
}

#[test]
fn native_passes_here_and_reports_the_levels_this_cpu_lacks() {
    let out = harness(&[
        "verify", "--isa", "native", "--kernel", "rmsnorm", "--cases", "4",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for isa in Isa::of_target_arch() {
        let row = stdout
            .lines()
            .find(|l| l.split_whitespace().nth(2) == Some(isa.name()))
            .unwrap_or_else(|| panic!("no {isa} row:\n{stdout}"));
        let want = if isa.is_available() {
            "PASS"
        } else {
            "SKIPPED"
        };
        assert!(row.contains(want), "{isa}: want {want}: {row}");
    }
}

#[test]
fn a_named_level_this_cpu_lacks_fails_the_run() {
    let Some(missing) = Isa::of_target_arch().find(|i| !i.is_available()) else {
        eprintln!("every level of this architecture runs here: nothing to refuse");
        return;
    };
    let out = harness(&[
        "verify",
        "--isa",
        missing.name(),
        "--kernel",
        "rmsnorm",
        "--cases",
        "2",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot run here"), "{stderr}");
}
