//! The bench, report and compare commands as a user runs them: a smoke run of `harness bench`
//! on a tiny shape (no timing is asserted, only that the output is complete and parses back),
//! a report from it, and `compare` on identical data, on the same data slowed by 25%, and on
//! llama-bench files.

use harness::record::{parse_rows, write_jsonl};
use std::path::Path;
use std::process::{Command, Output};

fn harness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .expect("run harness")
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bench_report_compare_smoke() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("bench");
    let stem_s = stem.to_str().unwrap();
    let out = harness(&[
        "bench",
        "--kernel",
        "matmul_q4k,rmsnorm",
        "--shapes",
        "256x256x1,256x256x4,tinyllama",
        "--n",
        "1",
        "--isa",
        "scalar",
        "--threads",
        "1,2",
        "--reps",
        "3",
        "--min-time",
        "0",
        "--warmup",
        "0",
        "--max-time",
        "0.01",
        "-o",
        "md,csv,jsonl",
        "--out",
        stem_s,
    ]);
    ok(&out);
    let csv = std::fs::read_to_string(stem.with_extension("csv")).unwrap();
    let jsonl = std::fs::read_to_string(stem.with_extension("jsonl")).unwrap();
    let md = std::fs::read_to_string(stem.with_extension("md")).unwrap();
    let rows = parse_rows(&csv).unwrap();
    let rows_j = parse_rows(&jsonl).unwrap();
    assert_eq!(rows.len(), rows_j.len());
    assert!(md.contains("| kernel | format |") && md.contains("read bandwidth"));
    // Two custom matmul shapes + TinyLlama's 5 at n = 1, each at 1 and 2 threads; rmsnorm on
    // two sizes at one thread.
    let matmul = rows.iter().filter(|r| r.kernel == "matmul_q4k").count();
    assert_eq!(matmul, 2 * 2 * 7, "{md}");
    assert_eq!(rows.iter().filter(|r| r.kernel == "rmsnorm").count(), 2);
    for r in &rows {
        assert!(r.reps >= 3 && r.samples_ns.len() == r.reps, "{r:?}");
        assert!(r.median_ns > 0.0 && r.min_ns <= r.median_ns);
        assert!(r.ci95_lo_ns <= r.median_ns && r.median_ns <= r.ci95_hi_ns);
        assert!(r.roofline_fraction > 0.0 && (r.bound == "memory" || r.bound == "compute"));
        assert!(!r.cpu.is_empty() && !r.rustc.is_empty() && !r.date.is_empty());
        assert_eq!(r.speedup_vs_scalar, Some(1.0));
        // n = 1 matmuls default to cold weights, everything else to hot.
        let cold = r.kernel == "matmul_q4k" && r.n == 1;
        assert_eq!(r.cache, if cold { "cold" } else { "hot" });
    }

    // The report from that directory.
    let rep = dir.path().join("rep");
    ok(&harness(&[
        "report",
        "--in",
        dir.path().to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]));
    let html = std::fs::read_to_string(rep.join("REPORT.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"));
    assert!(rep.join("REPORT.md").exists() && rep.join("speedup_matmul_q4k.png").exists());

    // Identical data: no regression, exit 0.
    let csv_path = stem.with_extension("csv");
    let jsonl_path = stem.with_extension("jsonl");
    let same = harness(&[
        "compare",
        csv_path.to_str().unwrap(),
        jsonl_path.to_str().unwrap(),
    ]);
    ok(&same);
    // Every sample 25% slower: regressions, exit 1.
    let mut slow = rows_j.clone();
    for r in &mut slow {
        for s in &mut r.samples_ns {
            *s *= 1.25;
        }
    }
    let slow_path = dir.path().join("slow.jsonl");
    let mut buf = Vec::new();
    write_jsonl(&slow, &mut buf).unwrap();
    std::fs::write(&slow_path, buf).unwrap();
    let flagged = harness(&[
        "compare",
        jsonl_path.to_str().unwrap(),
        slow_path.to_str().unwrap(),
    ]);
    assert_eq!(flagged.status.code(), Some(1), "{flagged:?}");
    assert!(String::from_utf8_lossy(&flagged.stdout).contains("REGRESSION"));
    // 1 thread against 2 threads of the same kernels joins once `threads` is ignored.
    // (rmsnorm runs on one thread only, so its rows stay unmatched.)
    let t1: Vec<_> = rows_j
        .iter()
        .filter(|r| r.threads == 1 && r.kernel == "matmul_q4k")
        .cloned()
        .collect();
    let t2: Vec<_> = rows_j.iter().filter(|r| r.threads == 2).cloned().collect();
    let (p1, p2) = (dir.path().join("t1.jsonl"), dir.path().join("t2.jsonl"));
    for (rows, p) in [(&t1, &p1), (&t2, &p2)] {
        let mut buf = Vec::new();
        write_jsonl(rows, &mut buf).unwrap();
        std::fs::write(p, buf).unwrap();
    }
    let joined = harness(&[
        "compare",
        p1.to_str().unwrap(),
        p2.to_str().unwrap(),
        "--ignore",
        "threads",
        "--threshold",
        "1000",
    ]);
    ok(&joined);
    assert!(String::from_utf8_lossy(&joined.stderr).contains(&format!("{} rows joined", t1.len())));
}

#[test]
fn compare_reads_llama_bench_csv_and_json() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = harness(&[
        "compare",
        fixtures.join("llama-bench.json").to_str().unwrap(),
        fixtures.join("llama-bench.json").to_str().unwrap(),
    ]);
    ok(&out);
    let out = harness(&[
        "compare",
        fixtures.join("llama-bench.csv").to_str().unwrap(),
        fixtures.join("llama-bench.json").to_str().unwrap(),
    ]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("n_prompt=512"));
}

#[test]
fn bad_input_is_a_one_line_error() {
    for args in [
        &["compare", "/nonexistent/a.csv", "/nonexistent/b.csv"][..],
        &["bench", "--shapes", "huge"][..],
        &["bench", "--kernel", "matmul_q9"][..],
        &["bench", "--threads", "0"][..],
        &["report", "--in", "/nonexistent"][..],
    ] {
        let out = harness(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("harness: error:"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
