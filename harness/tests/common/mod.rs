//! Shared by the model tests: synthesized model files, made once per build directory (synth
//! is deterministic, so a cached file is the file the seed gives), and skip reports.

#![allow(dead_code)]

use harness::synth::{ArchName, Preset, SynthArgs};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

/// The real Llama SentencePiece vocabulary, beside the repository.
pub fn llama_vocab() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/assets/llama-spm-vocab.gguf"
    ))
}

/// A synthesized model: `arch` with `layers` layers in `quant`, the real Llama vocab when
/// `real_vocab`. Made on first use, then reused.
pub fn synth(arch: ArchName, quant: Preset, layers: Option<u64>, real_vocab: bool) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let name = format!(
        "{arch:?}-{quant:?}-{}-{}.gguf",
        layers.map_or("all".into(), |l| l.to_string()),
        if real_vocab { "spm" } else { "gen" }
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("models");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        harness::synth::run(SynthArgs {
            arch,
            quant,
            out: tmp.clone(),
            layers,
            seed: 0,
            vocab: real_vocab.then(llama_vocab),
            threads: None,
        })
        .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// The 2-layer TinyLlama Q4_K_M with the real vocab.
pub fn tinyllama_2l() -> PathBuf {
    synth(ArchName::TinyLlama, Preset::Q4KM, Some(2), true)
}

/// The tiny test model (4 layers of 256, vocab 320) in Q4_K_M.
pub fn tiny() -> PathBuf {
    synth(ArchName::TestTiny, Preset::Q4KM, None, false)
}

/// SmolLM2-135M-Instruct, if `scripts/fetch-smollm2.sh` has fetched it.
pub fn smollm2() -> Option<PathBuf> {
    let cache = std::env::var_os("KERNELBENCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kernelbench"))
        })?;
    let p = cache.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    p.exists().then_some(p)
}

/// Says on stderr, past libtest's capture, that a test did not run and why.
pub fn skipped(test: &str, why: &str) {
    let _ = std::io::stderr().write_all(format!("SKIPPED {test}: {why}\n").as_bytes());
}
