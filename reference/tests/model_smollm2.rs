//! The reference forward pass on a real trained model: SmolLM2-135M-Instruct (Q4_1 matrices,
//! Q8_0 tied embedding) continues "The capital of France is" with " Paris". The file is fetched
//! by `scripts/fetch-smollm2.sh` into `${KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}`; without
//! it the test says SKIPPED on stderr and returns.

use reference::gguf::{Gguf, Value};
use reference::model::Transformer;
use std::io::Write;
use std::path::PathBuf;

fn smollm2() -> Option<Vec<u8>> {
    let dir = std::env::var_os("KERNELBENCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kernelbench"))
        })?;
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED reference SmolLM2 test: {} ({e}); run scripts/fetch-smollm2.sh",
                path.display()
            );
            None
        }
    }
}

#[test]
fn smollm2_names_paris() {
    let Some(bytes) = smollm2() else { return };
    let vocab = match Gguf::parse(&bytes).unwrap().get("tokenizer.ggml.tokens") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::Str(s) => s.clone(),
                other => panic!("token {other:?}"),
            })
            .collect::<Vec<_>>(),
        other => panic!("tokenizer.ggml.tokens: {other:?}"),
    };
    let mut model = Transformer::from_gguf(&bytes, 64).unwrap();
    assert_eq!(model.config.n_layers, 30);
    assert_eq!((model.config.n_heads, model.config.n_kv_heads), (9, 3));
    assert!(model.weights.output.is_none(), "SmolLM2's output is tied");
    // "The capital of France is" in SmolLM2's byte-level BPE (as HF `tokenizers` encodes it).
    let prompt = [504usize, 3575, 282, 4649, 314];
    let mut logits = Vec::new();
    for (pos, &t) in prompt.iter().enumerate() {
        logits = model.forward(t, pos).to_vec();
    }
    let mut text = String::new();
    for pos in prompt.len()..prompt.len() + 3 {
        let next = (0..logits.len())
            .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
            .unwrap();
        text.push_str(&vocab[next]);
        logits = model.forward(next, pos).to_vec();
    }
    // 'Ġ' is the byte-level BPE's picture of a space.
    assert!(text.contains("Paris"), "greedy continuation: {text:?}");
}
