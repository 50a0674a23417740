//! `harness synth`: the same bytes for a seed whatever the thread count, a different file for
//! another seed, a file our reader accepts with the planned tensor mix, and weights with the
//! intended distribution once dequantized.

use harness::synth::{ArchName, Preset, SynthArgs};
use kernels::gguf::{GgmlType, GgufFile};
use std::path::PathBuf;

fn synth(dir: &std::path::Path, name: &str, seed: u64, threads: usize, quant: Preset) -> PathBuf {
    let out = dir.join(name);
    harness::synth::run(SynthArgs {
        arch: ArchName::TestTiny,
        quant,
        out: out.clone(),
        layers: Some(3),
        seed,
        vocab: None,
        threads: Some(threads),
    })
    .unwrap();
    out
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("synth-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn same_bytes_whatever_the_thread_count() {
    let dir = temp_dir("threads");
    for quant in [Preset::Q4KM, Preset::Q4_1] {
        let one = std::fs::read(synth(&dir, "a", 42, 1, quant)).unwrap();
        let three = std::fs::read(synth(&dir, "b", 42, 3, quant)).unwrap();
        assert!(
            one == three,
            "{quant:?}: 1 and 3 threads wrote different bytes"
        );
        let other = std::fs::read(synth(&dir, "c", 43, 2, quant)).unwrap();
        assert_eq!(one.len(), other.len());
        assert!(
            one != other,
            "{quant:?}: seeds 42 and 43 wrote the same bytes"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn weights_have_the_intended_distribution() {
    let dir = temp_dir("dist");
    let path = synth(&dir, "m", 5, 2, Preset::Q8_0);
    let file = GgufFile::open(&path).unwrap();
    let g = file.gguf();
    assert_eq!(g.get_u32("llama.block_count").unwrap(), 3);
    assert_eq!(g.get_array("tokenizer.ggml.tokens").unwrap().len(), 320);
    let q = g.tensor("blk.1.attn_q.weight").unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q8_0);
    let x = harness::inspect::dequantize(q).unwrap();
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    // 65536 values of N(0, 0.02): the sample std is within 6 standard errors
    // (0.02 / sqrt(2n) = 5.5e-5 each) of 0.02, and Q8_0 adds noise of about 0.4% of the block
    // maximum in quadrature (well under 1e-4 here); the mean within 6 * 0.02 / sqrt(n).
    assert!((std - 0.02).abs() < 6.0 * 5.5e-5 + 1e-4, "std {std}");
    assert!(mean.abs() < 6.0 * 0.02 / n.sqrt(), "mean {mean}");
    let norm = harness::inspect::dequantize(g.tensor("blk.1.ffn_norm.weight").unwrap()).unwrap();
    let norm_mean = norm.iter().sum::<f32>() / norm.len() as f32;
    assert!(
        (norm_mean - 1.0).abs() < 6.0 * 0.02 / 16.0,
        "norm mean {norm_mean}"
    );
    drop(file);
    std::fs::remove_dir_all(dir).unwrap();
}

/// `harness inspect` on a damaged file: one line on stderr, a non-zero exit, no panic.
#[test]
fn inspect_reports_a_damaged_file_in_one_line() {
    let dir = temp_dir("inspect");
    let path = synth(&dir, "ok.gguf", 1, 2, Preset::Q4_0);
    let bytes = std::fs::read(&path).unwrap();
    let run = |p: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("inspect")
            .arg(p)
            .output()
            .unwrap()
    };
    let ok = run(&path);
    assert!(ok.status.success());
    let text = String::from_utf8(ok.stdout).unwrap();
    assert!(text.contains("token_embd.weight") && text.contains("bits per weight"));
    for (name, damaged) in [
        ("cut", bytes[..bytes.len() - 100].to_vec()),
        ("header-cut", bytes[..5000].to_vec()),
        ("flipped", {
            let mut b = bytes.clone();
            b[30] ^= 0x40;
            b
        }),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, damaged).unwrap();
        let out = run(&p);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(
            err.starts_with("harness: error: ") && !err.contains("panicked"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
