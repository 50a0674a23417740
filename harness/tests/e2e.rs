//! `harness e2e` on the synthesized 2-layer TinyLlama with tiny tests: the rows parse, carry
//! llama-bench's fields in its order, name the tests as llama-bench does, the time breakdown adds
//! up, and bad flags fail with one line. Also a profile check on the session itself.

mod common;

use harness::e2e::{self, LLAMA_BENCH_FIELDS, OUR_FIELDS};
use kernels::gguf::GgufFile;
use kernels::model::{Model, Phase, Session, SessionOptions};
use std::process::Command;

fn e2e_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("e2e")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--huge-pages` reaches the rows (on by default) and a wrong value is a usage error.
#[test]
fn huge_page_policy_is_recorded_in_every_row() {
    let model = common::tinyllama_2l();
    let m = model.to_str().unwrap();
    let tiny = [
        "--model", m, "-p", "4", "-n", "2", "-r", "1", "-t", "1", "-o", "csv",
    ];
    for (flag, want) in [(None, "on"), (Some("off"), "off"), (Some("on"), "on")] {
        let mut args = tiny.to_vec();
        if let Some(v) = flag {
            args.extend(["--huge-pages", v]);
        }
        let (ok, csv_text, err) = e2e_cmd(&args);
        assert!(ok, "{flag:?}: {err}");
        let recs = e2e::parse_records(&csv_text).unwrap();
        assert_eq!(recs.len(), 2, "{flag:?}");
        for rec in &recs {
            assert_eq!(rec.huge_pages.as_deref(), Some(want), "{flag:?}: {rec:?}");
        }
    }
    let (ok, _, err) = e2e_cmd(&[&tiny[..], &["--huge-pages", "sometimes"][..]].concat());
    assert!(!ok && err.contains("--huge-pages"), "{err}");
}

/// `--prefetch` reaches the rows (the default distance without it), and a distance that is not
/// a byte count or is beyond the limit is a usage error that says so on its first line.
#[test]
fn prefetch_distance_is_recorded_in_every_row() {
    let model = common::tinyllama_2l();
    let m = model.to_str().unwrap();
    let tiny = [
        "--model", m, "-p", "4", "-n", "2", "-r", "1", "-t", "1", "-o", "csv",
    ];
    let default = kernels::mem::DEFAULT_DECODE_PREFETCH.to_string();
    for (flag, want) in [
        (None, default.as_str()),
        (Some("0"), "0"),
        (Some("512"), "512"),
    ] {
        let mut args = tiny.to_vec();
        if let Some(v) = flag {
            args.extend(["--prefetch", v]);
        }
        let (ok, csv_text, err) = e2e_cmd(&args);
        assert!(ok, "{flag:?}: {err}");
        let recs = e2e::parse_records(&csv_text).unwrap();
        assert_eq!(recs.len(), 2, "{flag:?}");
        let want: f64 = want.parse().unwrap();
        for rec in &recs {
            assert_eq!(rec.prefetch_bytes, Some(want), "{flag:?}: {rec:?}");
        }
    }
    for bad in ["lots", "-1", "1048577"] {
        let flag = format!("--prefetch={bad}");
        let (ok, _, err) = e2e_cmd(&[&tiny[..], &[flag.as_str()][..]].concat());
        let first = err.lines().next().unwrap_or("");
        assert!(
            !ok && first.starts_with("error:") && first.contains("--prefetch"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn csv_and_jsonl_rows_in_llama_bench_order_with_breakdown_that_adds_up() {
    let model = common::tinyllama_2l();
    let m = model.to_str().unwrap();
    let tiny = ["-p", "8", "-n", "4", "-pg", "8,4", "-r", "2", "-t", "1,2"];
    let (ok, csv_text, err) = e2e_cmd(&[&["--model", m, "-o", "csv"][..], &tiny[..]].concat());
    assert!(ok, "{err}");
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let want: Vec<&str> = LLAMA_BENCH_FIELDS
        .iter()
        .chain(OUR_FIELDS.iter())
        .copied()
        .collect();
    assert_eq!(header, want);
    let recs = e2e::parse_records(&csv_text).unwrap();
    let names: Vec<(String, usize)> = recs.iter().map(|r| (r.test_name(), r.n_threads)).collect();
    let mut expect = Vec::new();
    for t in [1, 2] {
        for n in ["pp8", "tg4", "pp8+tg4"] {
            expect.push((n.to_string(), t));
        }
    }
    assert_eq!(names, expect);
    for rec in &recs {
        assert!(
            rec.is_ours() && rec.avg_ts > 0.0 && rec.avg_ns > 0.0,
            "{rec:?}"
        );
        // t/s is the mean of per-repetition rates: at least the rate of the mean time (Jensen),
        // equal when the repetitions agree.
        let tokens = (rec.n_prompt + rec.n_gen) as f64;
        assert!(
            rec.avg_ts >= 1e9 * tokens / rec.avg_ns * (1.0 - 1e-6),
            "{rec:?}"
        );
        // Each repetition's categories add up to its wall time by construction (`other` is the
        // remainder); the means are rounded to whole ns per category: 10 categories, <= 10 ns.
        let b = rec.breakdown().unwrap();
        let sum: f64 = b.iter().sum();
        assert!((sum - rec.avg_ns).abs() <= 10.0, "{sum} vs {}", rec.avg_ns);
        // The matmuls dominate any forward pass of this model; a profile that lost them fails.
        assert!(b[..5].iter().sum::<f64>() > 0.2 * sum, "{b:?}");
        if rec.n_gen > 0 {
            assert!(rec.gen_ts.unwrap() > 0.0 && rec.roofline_fraction.unwrap() > 0.0);
        }
        assert_eq!(
            rec.ttft_ms.is_some(),
            rec.n_prompt > 0 && rec.n_gen > 0,
            "{rec:?}"
        );
    }
    let (ok, jsonl, err) = e2e_cmd(&[&["--model", m, "-o", "jsonl"][..], &tiny[..]].concat());
    assert!(ok, "{err}");
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), want.len());
        assert_eq!(v["samples_ns"].as_array().unwrap().len(), 2);
        assert!(line.starts_with("{\"build_commit\": "), "{line}");
    }
    assert_eq!(e2e::parse_records(&jsonl).unwrap().len(), 6);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (ok, md, err) = e2e_cmd(&[
        "--model",
        m,
        "-p",
        "8",
        "-n",
        "2",
        "-r",
        "1",
        "-d",
        "4",
        "--reports",
        d,
    ]);
    assert!(ok, "{err}");
    assert!(
        md.starts_with("| model ") && md.contains("pp8 @ d4"),
        "{md}"
    );
    // The report of those rows: both e2e charts as real PNGs, the tables in REPORT.md.
    let report = std::fs::read_to_string(dir.path().join("REPORT.md")).unwrap();
    assert!(
        report.contains("## End to end") && report.contains("| tg2 @ d4 |"),
        "{report}"
    );
    for png in ["e2e_tokens_per_s.png", "e2e_breakdown.png"] {
        let bytes = std::fs::read(dir.path().join(png)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{png}");
    }
}

#[test]
fn bad_flags_fail_with_one_line() {
    let model = common::tinyllama_2l();
    let m = model.to_str().unwrap();
    for (args, needle) in [
        (vec!["--model", m, "-p", "4096", "-n", "0"], "context"),
        (vec!["--model", m, "-r", "0"], "-r 0"),
        (vec!["--model", m, "-t", "0"], "-t 0"),
        (vec!["--model", m, "-o", "xml"], "-o xml"),
        (vec!["--model", m, "-pg", "8"], "-pg 8"),
        (vec!["--model", m, "--isa", "sse9"], "--isa sse9"),
        (vec!["--model", m, "--design", "int4"], "--design int4"),
        (vec!["--model", "/nonexistent.gguf"], "/nonexistent.gguf"),
        (vec!["--model", m, "-p", "0", "-n", "0"], "no tests"),
    ] {
        let (ok, _, err) = e2e_cmd(&args);
        assert!(!ok, "{args:?} succeeded");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // clap's own errors (a flag that takes integers) end in a usage line; the error is line 1.
    let (ok, _, err) = e2e_cmd(&["--model", m, "-p", "x"]);
    assert!(
        !ok && err.lines().next().unwrap().contains("invalid value"),
        "{err}"
    );
}

/// The profile is off by default (nothing recorded), and on it accounts for a decode's time:
/// the phases add up to no more than the wall time around the call, and every matmul class ran.
#[test]
fn session_profile_is_opt_in_and_adds_up() {
    let path = common::tinyllama_2l();
    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_gguf(file.gguf()).unwrap();
    let mut s = Session::new(&model, SessionOptions::new(1, 64)).unwrap();
    s.prefill(&[1, 2, 3]).unwrap();
    assert_eq!(s.profile().total_ns(), 0);
    s.set_profiling(true);
    let t0 = std::time::Instant::now();
    s.decode(5).unwrap();
    let wall = t0.elapsed().as_nanos() as u64;
    let p = s.profile();
    assert!(p.total_ns() <= wall, "{p:?} > {wall}");
    for ph in [
        Phase::AttnQkv,
        Phase::AttnOutput,
        Phase::FfnGateUp,
        Phase::FfnDown,
        Phase::Output,
        Phase::Attention,
    ] {
        assert!(p.get(ph) > 0, "{ph:?} not timed: {p:?}");
    }
    s.clear_profile();
    assert_eq!(s.profile().total_ns(), 0);
}
