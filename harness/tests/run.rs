//! The forward pass and `harness run` on synthesized models (a 2-layer TinyLlama Q4_K_M with
//! the real Llama vocab, and the tiny test model) and, when fetched, SmolLM2-135M-Instruct.

mod common;

use common::{skipped, smollm2, tiny, tinyllama_2l};
use harness::synth::{ArchName, Preset};
use kernels::attention::KvFormat;
use kernels::gguf::GgufFile;
use kernels::model::sampler::argmax;
use kernels::model::{Blocks, Design, Model, ModelError, Session, SessionOptions};
use kernels::tokenizer::Tokenizer;
use kernels::Isa;
use std::path::Path;
use std::process::Command;

fn opts(isa: Isa, design: Design, threads: usize) -> SessionOptions {
    SessionOptions {
        isa,
        design,
        threads,
        n_ctx: 256,
        n_batch: 512,
        kv: KvFormat::F16,
    }
}

/// Greedy continuation of `prompt` by `n` tokens.
fn greedy(path: &Path, o: SessionOptions, prompt: &[u32], n: usize) -> Vec<u32> {
    let file = GgufFile::open(path).unwrap();
    let model = Model::from_gguf(file.gguf()).unwrap();
    let mut s = Session::new(&model, o).unwrap();
    let mut next = argmax(s.prefill(prompt).unwrap());
    let mut out = vec![next];
    while out.len() < n {
        next = argmax(s.decode(next).unwrap());
        out.push(next);
    }
    out
}

fn encode(path: &Path, text: &str) -> Vec<u32> {
    let file = GgufFile::open(path).unwrap();
    Tokenizer::from_gguf(file.gguf())
        .unwrap()
        .encode(text, true, false)
        .unwrap()
}

#[test]
fn tinyllama_greedy_is_deterministic_and_thread_count_invariant() {
    let path = tinyllama_2l();
    let prompt = encode(&path, "The quick brown fox jumps over the lazy dog");
    for design in Design::ALL {
        let one = greedy(&path, opts(Isa::best(), design, 1), &prompt, 6);
        assert_eq!(
            one,
            greedy(&path, opts(Isa::best(), design, 1), &prompt, 6),
            "{design:?}: two runs differ"
        );
        for threads in [2, 3] {
            let many = greedy(&path, opts(Isa::best(), design, threads), &prompt, 6);
            assert_eq!(one, many, "{design:?}: 1 thread vs {threads}");
        }
    }
}

#[test]
fn every_isa_design_and_cache_agrees_on_the_tiny_model_across_thread_counts() {
    let path = tiny();
    let prompt: Vec<u32> = (1..40).map(|i| (i * 7) % 320).collect();
    for isa in Isa::ALL {
        if let Some(why) = isa.unavailable_reason() {
            skipped(
                "every_isa_design_and_cache_agrees (tiny model)",
                &format!("{isa}: {why}"),
            );
            continue;
        }
        for design in Design::ALL {
            for kv in [KvFormat::F16, KvFormat::F32] {
                let base = SessionOptions {
                    kv,
                    ..opts(isa, design, 1)
                };
                let one = greedy(&path, base, &prompt, 10);
                for threads in [2, 4] {
                    let many = greedy(&path, SessionOptions { threads, ..base }, &prompt, 10);
                    assert_eq!(one, many, "{isa} {design:?} {kv:?}: 1 thread vs {threads}");
                }
            }
        }
    }
}

/// Prefill in one batch, in batches of 5, and token by token fill the same cache: the logits
/// after the prompt agree (the `n > 1` kernels against the `n = 1` ones; the q8 design is
/// integer per block, so this is exact there; f32 within a relative 1e-4 of the largest logit).
#[test]
fn batched_prefill_matches_token_by_token_decode() {
    let path = tiny();
    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_gguf(file.gguf()).unwrap();
    let prompt: Vec<u32> = (0..23).map(|i| (i * 13 + 5) % 320).collect();
    for design in Design::ALL {
        let run = |batch: usize| {
            let o = SessionOptions {
                n_batch: batch,
                ..opts(Isa::best(), design, 2)
            };
            let mut s = Session::new(&model, o).unwrap();
            s.prefill(&prompt).unwrap().to_vec()
        };
        let whole = run(512);
        let scale = whole.iter().fold(0f32, |m, v| m.max(v.abs()));
        for batch in [1, 5] {
            let other = run(batch);
            let worst = whole
                .iter()
                .zip(&other)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let tol = match design {
                Design::Int8 => 0.0,
                Design::F32 => 1e-4 * scale,
            };
            assert!(
                worst <= tol,
                "{design:?} batch {batch}: logits differ by {worst} (tol {tol})"
            );
        }
    }
}

#[test]
fn the_context_limit_is_enforced_before_any_compute() {
    let path = tiny();
    let file = GgufFile::open(&path).unwrap();
    let model = Model::from_gguf(file.gguf()).unwrap();
    let o = SessionOptions {
        n_ctx: 8,
        ..opts(Isa::best(), Design::Int8, 1)
    };
    let mut s = Session::new(&model, o).unwrap();
    let err = s.prefill(&[1; 9]).unwrap_err();
    assert!(matches!(err, ModelError::ContextFull { .. }), "{err}");
    assert_eq!(s.pos(), 0, "nothing may be computed");
    s.prefill(&[1; 8]).unwrap();
    assert!(matches!(s.decode(1), Err(ModelError::ContextFull { .. })));
    assert!(matches!(
        s.prefill(&[400]),
        Err(ModelError::TokenOutOfRange { id: 400, .. })
    ));
}

fn harness_run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_refuses_a_prompt_longer_than_the_context() {
    let path = tinyllama_2l();
    let long = "word ".repeat(40);
    let (ok, _, err) = harness_run(&[
        "--model",
        path.to_str().unwrap(),
        "--prompt",
        &long,
        "--ctx",
        "16",
    ]);
    assert!(!ok);
    assert!(err.contains("does not fit --ctx 16"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn run_streams_text_and_reports_one_summary_line() {
    let path = tinyllama_2l();
    let p = path.to_str().unwrap();
    let (ok, out, err) = harness_run(&[
        "--model",
        p,
        "--prompt",
        "Once upon a time",
        "-n",
        "5",
        "--temp",
        "0",
        "--threads",
        "2",
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("Once upon a time"), "{out}");
    let last = err.lines().last().unwrap_or("");
    for part in ["load", "prompt", "tok/s", "generated 5 tokens", "peak RSS"] {
        assert!(last.contains(part), "summary line lacks {part}: {last}");
    }
    // Same seed, same text; the greedy text is the library's.
    let sampled = |seed: &str| {
        harness_run(&[
            "--model",
            p,
            "--prompt",
            "Once upon a time",
            "-n",
            "8",
            "--temp",
            "1.0",
            "--seed",
            seed,
        ])
        .1
    };
    assert_eq!(sampled("7"), sampled("7"));
    assert_ne!(
        sampled("7"),
        sampled("8"),
        "different seeds gave the same 8 tokens"
    );
}

#[test]
fn run_gives_one_line_errors_for_bad_input() {
    let path = tinyllama_2l();
    let p = path.to_str().unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let not_gguf = dir.join("not.gguf");
    std::fs::write(&not_gguf, b"hello, world").unwrap();
    let vocab = common::llama_vocab();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", truncated.to_str().unwrap(), "--prompt", "x"],
            "past the end of the file",
        ),
        (
            vec!["--model", not_gguf.to_str().unwrap(), "--prompt", "x"],
            "not a GGUF file",
        ),
        (
            vec!["--model", "/nonexistent.gguf", "--prompt", "x"],
            "/nonexistent.gguf",
        ),
        (
            vec!["--model", vocab.to_str().unwrap(), "--prompt", "x"],
            "missing tensor `token_embd.weight`",
        ),
        (
            vec!["--model", p, "--prompt", "x", "--isa", "sse9"],
            "--isa sse9",
        ),
        (
            vec!["--model", p, "--prompt", "x", "--design", "int4"],
            "--design int4",
        ),
        (
            vec!["--model", p, "--prompt", "x", "--threads", "0"],
            "--threads 0",
        ),
        (vec!["--model", p, "--prompt", "x", "--top-p", "0"], "top-p"),
        (
            vec!["--model", p, "--prompt", "x", "--chat"],
            "no tokenizer.chat_template",
        ),
        (vec!["--model", p, "--prompt", "x", "--kv", "q8"], "--kv q8"),
    ];
    for (args, want) in cases {
        let (ok, _, err) = harness_run(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    if !Isa::Avx512.is_available() {
        let (ok, _, err) = harness_run(&["--model", p, "--prompt", "x", "--isa", "avx512"]);
        assert!(!ok && err.contains("cannot run here"), "{err}");
    }
}

/// A copy of `bytes` with the type id of tensor `name` replaced by `id`.
fn with_tensor_type(bytes: &[u8], name: &str, id: u32) -> Vec<u8> {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(key.len())
        .position(|w| w == key.as_slice())
        .expect("tensor info");
    let dims_at = at + key.len();
    let n_dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
    let type_at = dims_at + 4 + 8 * n_dims;
    let mut out = bytes.to_vec();
    out[type_at..type_at + 4].copy_from_slice(&id.to_le_bytes());
    out
}

#[test]
fn a_tensor_type_without_a_kernel_is_refused_by_name() {
    let bytes = std::fs::read(tiny()).unwrap();
    for (tensor, id, want) in [
        ("blk.1.attn_q.weight", 23, "type IQ4_XS"),
        ("blk.0.ffn_norm.weight", 1, "type F16"),
        ("blk.2.ffn_up.weight", 1000, "type type 1000"),
    ] {
        let patched = with_tensor_type(&bytes, tensor, id);
        let result = kernels::gguf::Gguf::parse(&patched)
            .map_err(ModelError::from)
            .and_then(|g| Model::from_gguf(&g).map(|_| ()));
        let err = result.expect_err(tensor).to_string();
        assert!(
            err.contains(tensor) && err.contains(want),
            "{tensor}: {err}"
        );
    }
}

fn smol_greedy(
    path: &Path,
    o: SessionOptions,
    text: &str,
    n: usize,
    chat: bool,
) -> (Vec<u32>, String) {
    let file = GgufFile::open(path).unwrap();
    let model = Model::from_gguf(file.gguf()).unwrap();
    let tok = Tokenizer::from_gguf(file.gguf()).unwrap();
    let ids = tok.encode(text, true, chat).unwrap();
    let mut s = Session::new(&model, o).unwrap();
    let mut next = argmax(s.prefill(&ids).unwrap());
    let mut out = vec![];
    let eos = tok.vocab().eos;
    while out.len() < n && Some(next) != eos {
        out.push(next);
        next = argmax(s.decode(next).unwrap());
    }
    let text = String::from_utf8_lossy(&tok.decode(&out, false, false).unwrap()).into_owned();
    (out, text)
}

#[test]
fn smollm2_names_paris_in_every_isa_and_design_and_thread_count() {
    let Some(path) = smollm2() else {
        skipped(
            "smollm2_names_paris",
            "SmolLM2-135M-Instruct.Q4_1.gguf not fetched (scripts/fetch-smollm2.sh)",
        );
        return;
    };
    for isa in Isa::available() {
        for design in Design::ALL {
            let (ids, text) = smol_greedy(
                &path,
                opts(isa, design, 1),
                "The capital of France is",
                8,
                false,
            );
            assert!(text.contains("Paris"), "{isa} {design:?}: {text:?}");
            let (ids2, _) = smol_greedy(
                &path,
                opts(isa, design, 2),
                "The capital of France is",
                8,
                false,
            );
            assert_eq!(ids, ids2, "{isa} {design:?}: 1 thread vs 2");
        }
    }
}

/// Through the ChatML template. (Germany rather than France: for "What is the capital of
/// France?" the first answer token is a near-tie, "The" 25.33 vs "L" 25.24 in the f32 design,
/// which the q8 design's activation rounding flips.)
#[test]
fn smollm2_chat_answers_sensibly() {
    let Some(path) = smollm2() else {
        skipped(
            "smollm2_chat_answers_sensibly",
            "SmolLM2-135M-Instruct.Q4_1.gguf not fetched",
        );
        return;
    };
    for (design, threads) in [("q8", "1"), ("q8", "2"), ("f32", "2")] {
        let (ok, out, err) = harness_run(&[
            "--model",
            path.to_str().unwrap(),
            "--prompt",
            "What is the capital of Germany?",
            "--chat",
            "--temp",
            "0",
            "-n",
            "16",
            "--design",
            design,
            "--threads",
            threads,
        ]);
        assert!(ok, "{err}");
        assert!(out.contains("Berlin"), "{design} {threads}: {out}");
    }
}

/// `Model::load` (x8 repacks, huge-page copies of what decode reads in the file's layout, the
/// file's pages released) computes the very logits of the borrowed `Model::from_gguf`, for
/// prompts and decode, in every design on the best ISA and on scalar; and for the x8 `q8` load
/// every matrix decode reads row-major is read from a copy.
#[test]
fn a_loaded_model_gives_the_logits_of_the_borrowed_one() {
    // A 2-layer SmolLM2 shape: a tied Q8_0 output, which the embedding lookups share.
    let smol_2l = common::synth(ArchName::SmolLm2, Preset::Q4_1, Some(2), false);
    for path in [tinyllama_2l(), tiny(), smol_2l] {
        let file = GgufFile::open(&path).unwrap();
        let borrowed = Model::from_gguf(file.gguf()).unwrap();
        // 70 tokens: at least both AMX_MIN_N, so the prompt takes the AMX copies where AMX runs.
        let prompt: Vec<u32> = (0..70).map(|i| (i * 11 + 3) % 300).collect();
        let logits = |m: &Model, o: SessionOptions| {
            let mut s = Session::new(m, o).unwrap();
            let mut all = s.prefill(&prompt).unwrap().to_vec();
            for t in [5u32, 17, 2] {
                all.extend_from_slice(s.decode(t).unwrap());
            }
            all
        };
        for design in Design::ALL {
            let loaded = Model::load(&file, Isa::best(), design, 2).unwrap();
            if design == Design::Int8 && kernels::matmul::x8::runs_on(Isa::best()) {
                let w = &loaded.weights;
                for m in w.layers.iter().flat_map(|l| [&l.wq, &l.wv, &l.w_down]) {
                    assert!(
                        !m.decode_reads_rows() || m.copy.is_some(),
                        "{}: {} decode reads the file",
                        path.display(),
                        m.name
                    );
                }
                assert!(!w.output.decode_reads_rows() || w.output.copy.is_some());
                // Where AMX runs, the prompt takes the AMX copies:
                // the logits below then check them against the borrowed model bit for bit.
                if Isa::best() == Isa::Avx512 && kernels::matmul::amx::available() {
                    for m in w.layers.iter().flat_map(|l| [&l.wq, &l.wv, &l.w_down]) {
                        let quantk = matches!(m.blocks, Blocks::Q4K(_) | Blocks::Q6K(_));
                        let want = quantk && m.rows % kernels::matmul::amx::ROWS == 0;
                        assert_eq!(m.amx.is_some(), want, "{}: {}", path.display(), m.name);
                    }
                }
                assert_eq!(
                    w.output_tied,
                    w.token_embd.copy.is_some() && w.output.copy.is_some()
                );
            }
            for isa in [Isa::best(), Isa::Scalar] {
                let o = opts(isa, design, 2);
                assert_eq!(
                    logits(&loaded, o),
                    logits(&borrowed, o),
                    "{} {isa} {design:?}",
                    path.display()
                );
            }
        }
    }
}
