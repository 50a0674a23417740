//! The tokenizers against ids from implementations that are not ours (fixtures made by
//! scripts/tokenizer-fixtures/make.sh: npm llama-tokenizer-js for the Llama SentencePiece vocab,
//! PyPI `tokenizers` for SmolLM2's byte-level BPE vocab), on the real vocabularies: the Llama
//! vocab in ../shared/assets and SmolLM2's vocab-only GGUF committed beside the fixtures.
//! Plus decode(encode(s)) == s on random Unicode strings, and bad metadata.

use kernels::gguf::{Gguf, GgufWriter, MetaValue};
use kernels::tokenizer::{
    byte_level_char, Pre, TokenType, Tokenizer, TokenizerError, Vocab, VocabKind,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Deserialize)]
struct Fixture {
    source: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    parse_special: bool,
    ids: Vec<u32>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer")
}

fn load_fixture(name: &str) -> Fixture {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The real Llama/TinyLlama vocab. CI has ../shared beside the clone; without it the test fails
/// (it is part of the test environment, not an optional download).
fn llama() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let bytes = read(repo().join("../shared/assets/llama-spm-vocab.gguf"));
        let g = Gguf::parse(&bytes).expect("llama-spm-vocab.gguf parses");
        Tokenizer::from_gguf(&g).expect("llama vocab builds")
    })
}

fn smollm2_bytes() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| read(fixture_dir().join("smollm2-vocab.gguf")))
}

fn smollm2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| {
        let g = Gguf::parse(smollm2_bytes()).expect("smollm2-vocab.gguf parses");
        Tokenizer::from_gguf(&g).expect("smollm2 vocab builds")
    })
}

/// SmolLM2's vocab with another pre-tokenizer, as a file with that `tokenizer.ggml.pre` would be.
fn smollm2_with_pre(pre: &str) -> Tokenizer {
    let g = Gguf::parse(smollm2_bytes()).expect("smollm2-vocab.gguf parses");
    let mut v = Vocab::from_gguf(&g).expect("smollm2 vocab reads");
    let info = Pre::from_gguf_name(pre).expect("known pre");
    v.kind = VocabKind::BytePairBpe(info);
    // llama.cpp sets add_bos from the pre only when the file has no add_bos_token; SmolLM2's
    // file says false, which wins.
    Tokenizer::new(v).expect("vocab builds")
}

fn show(t: &Tokenizer, ids: &[u32]) -> String {
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| {
            format!(
                "{id}:{:?}",
                t.vocab()
                    .tokens
                    .get(id as usize)
                    .map_or("?", |s| s.as_str())
            )
        })
        .collect();
    pieces.join(" ")
}

/// Every case of a fixture: ids without special tokens, with them (BOS as the metadata says),
/// and, where the reference decodes to the input, the decoded text.
fn check_fixture(t: &Tokenizer, fixture: &str, check_decode: bool) {
    let f = load_fixture(fixture);
    assert!(!f.cases.is_empty(), "{fixture}: no cases");
    let mut failures = Vec::new();
    for c in &f.cases {
        let got = t.encode(&c.text, false, c.parse_special).expect("encode");
        if got != c.ids {
            failures.push(format!(
                "case `{}` {:?} (parse_special {}):\n  expected {}\n  got      {}",
                c.name,
                c.text,
                c.parse_special,
                show(t, &c.ids),
                show(t, &got)
            ));
            continue;
        }
        let with_bos = t.encode(&c.text, true, c.parse_special).expect("encode");
        let mut want = Vec::new();
        if t.vocab().add_bos {
            want.extend(t.vocab().bos);
        }
        want.extend_from_slice(&c.ids);
        if t.vocab().add_eos {
            want.extend(t.vocab().eos);
        }
        if with_bos != want {
            failures.push(format!(
                "case `{}`: with special tokens {with_bos:?}, expected {want:?}",
                c.name
            ));
        }
        // SentencePiece gives text after a special token a space prefix that decode keeps
        // (llama.cpp's rule), so only ids without special tokens decode back to the input.
        let has_special = got.iter().any(|&id| {
            t.vocab()
                .token_types
                .get(id as usize)
                .is_some_and(|ty| *ty != TokenType::Normal && *ty != TokenType::Byte)
        });
        if check_decode && !(has_special && t.vocab().kind == VocabKind::SentencePiece) {
            let text = t.decode(&got, false, true).expect("decode");
            if text != c.text.as_bytes() {
                failures.push(format!(
                    "case `{}`: decode gives {:?}, expected {:?}",
                    c.name,
                    String::from_utf8_lossy(&text),
                    c.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{fixture} ({}): {} of {} cases differ:\n{}",
        f.source,
        failures.len(),
        f.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn llama_spm_matches_llama_tokenizer_js() {
    check_fixture(llama(), "llama-spm.json", true);
}

#[test]
fn smollm2_matches_hf_tokenizers() {
    check_fixture(smollm2(), "smollm2-smollm.json", true);
}

#[test]
fn other_pre_tokenizers_on_smollm2_vocab_match_hf_tokenizers() {
    for pre in ["gpt-2", "llama3", "qwen2", "default"] {
        // gpt-2, llama3 and default decode with llama.cpp's space clean-up, which does not
        // give back the input, so only qwen2 checks decoding here.
        check_fixture(
            &smollm2_with_pre(pre),
            &format!("smollm2-{pre}.json"),
            pre == "qwen2",
        );
    }
}

#[test]
fn metadata_of_the_real_vocabs() {
    let l = llama().vocab();
    assert_eq!(l.kind, VocabKind::SentencePiece);
    assert_eq!(
        (
            l.bos,
            l.eos,
            l.unk,
            l.add_bos,
            l.add_eos,
            l.add_space_prefix
        ),
        (Some(1), Some(2), Some(0), true, false, true)
    );
    assert_eq!(l.tokens.len(), 32000);
    let s = smollm2().vocab();
    assert!(matches!(s.kind, VocabKind::BytePairBpe(info) if info.pre == Pre::Smollm));
    assert_eq!(
        (s.bos, s.eos, s.add_bos, s.add_space_prefix),
        (Some(1), Some(2), false, false)
    );
    assert_eq!((s.tokens.len(), s.merges.len()), (49152, 48900));
}

#[test]
fn spm_decode_keeps_the_space_after_a_removed_bos() {
    // llama.cpp: the prefix space is stripped from the first piece unless a BOS was removed
    // before it; with the BOS still there (not removed), the BOS piece is empty and takes the strip.
    let t = llama();
    let ids = t.encode("Hello", true, true).unwrap();
    assert_eq!(t.decode(&ids, true, false).unwrap(), b" Hello");
    assert_eq!(t.decode(&ids, false, false).unwrap(), b" Hello");
    assert_eq!(t.decode(&ids[1..], false, false).unwrap(), b"Hello");
    assert_eq!(t.decode(&ids, false, true).unwrap(), b"<s> Hello");
}

/// The full SmolLM2 GGUF, if scripts/fetch-smollm2.sh has put it in the cache: its tokenizer
/// must be the one in the committed vocab-only file.
#[test]
fn full_smollm2_file_has_the_committed_vocab() {
    let cache = std::env::var_os("KERNELBENCH_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kernelbench")));
    let Some(path) = cache
        .map(|c| c.join("SmolLM2-135M-Instruct.Q4_1.gguf"))
        .filter(|p| p.exists())
    else {
        eprintln!(
            "SKIPPED full_smollm2_file_has_the_committed_vocab: SmolLM2-135M-Instruct.Q4_1.gguf is not in \
             ${{KERNELBENCH_CACHE:-$HOME/.cache/kernelbench}}; run `bash scripts/fetch-smollm2.sh` (scripts/test.sh does)"
        );
        return;
    };
    let file = kernels::gguf::GgufFile::open(&path).expect("SmolLM2 GGUF opens");
    let full = Vocab::from_gguf(file.gguf()).expect("SmolLM2 vocab reads");
    let small = smollm2().vocab();
    assert_eq!(full.tokens, small.tokens);
    assert_eq!(full.merges, small.merges);
    assert_eq!(full.token_types, small.token_types);
    assert_eq!(
        (full.bos, full.eos, full.add_bos),
        (small.bos, small.eos, small.add_bos)
    );
}

fn vocab_file_with(src: &[u8], change: &str, value: Option<MetaValue>) -> Vec<u8> {
    let g = Gguf::parse(src).unwrap();
    let mut w = GgufWriter::new();
    for e in g.metadata() {
        if e.key == change {
            continue;
        }
        w.add_meta(e.key, MetaValue::from_value(&e.value)).unwrap();
    }
    if let Some(v) = value {
        w.add_meta(change, v).unwrap();
    }
    w.header_bytes()
}

#[test]
fn bad_metadata_is_a_clear_error() {
    let unknown = vocab_file_with(
        smollm2_bytes(),
        "tokenizer.ggml.pre",
        Some(MetaValue::Str("gpt5".into())),
    );
    let err = Tokenizer::from_gguf(&Gguf::parse(&unknown).unwrap())
        .err()
        .expect("unknown pre must fail");
    assert!(
        matches!(err, TokenizerError::UnknownPre(ref p) if p == "gpt5"),
        "{err}"
    );
    assert!(
        err.to_string().contains("smollm"),
        "the message lists the known names: {err}"
    );

    let none = vocab_file_with(smollm2_bytes(), "tokenizer.ggml.model", None);
    let err = Tokenizer::from_gguf(&Gguf::parse(&none).unwrap())
        .err()
        .expect("no tokenizer must fail");
    assert!(matches!(err, TokenizerError::NoTokenizer), "{err}");

    let no_merges = vocab_file_with(smollm2_bytes(), "tokenizer.ggml.merges", None);
    let err = Tokenizer::from_gguf(&Gguf::parse(&no_merges).unwrap())
        .err()
        .expect("no merges must fail");
    assert!(err.to_string().contains("merges"), "{err}");

    let bad_type = vocab_file_with(
        smollm2_bytes(),
        "tokenizer.ggml.tokens",
        Some(MetaValue::U32(3)),
    );
    let err = Tokenizer::from_gguf(&Gguf::parse(&bad_type).unwrap())
        .err()
        .expect("tokens of the wrong type must fail");
    assert!(err.to_string().contains("tokenizer.ggml.tokens"), "{err}");

    let short = vocab_file_with(
        smollm2_bytes(),
        "tokenizer.ggml.token_type",
        Some(MetaValue::Array(
            kernels::gguf::ValueType::I32,
            vec![MetaValue::I32(1)],
        )),
    );
    let err = Tokenizer::from_gguf(&Gguf::parse(&short).unwrap())
        .err()
        .expect("short token_type must fail");
    assert!(
        matches!(err, TokenizerError::LengthMismatch { .. }),
        "{err}"
    );
}

/// Random Unicode: any scalar value but U+2581, which SentencePiece uses for the space and so
/// decodes to a space (llama.cpp does the same); strings are short runs of a few scripts so that
/// merges, byte fallback and whitespace runs all occur.
fn unicode_text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => prop::char::range(' ', '~'),
        2 => prop::sample::select(vec![' ', ' ', '\n', '\t', '\r', '\u{a0}', '\u{3000}']),
        2 => prop::char::range('\u{a1}', '\u{24f}'),
        1 => prop::char::range('\u{4e00}', '\u{4fff}'),
        1 => prop::char::range('\u{1f300}', '\u{1faff}'),
        1 => any::<char>(),
    ]
    .prop_filter("U+2581 is SentencePiece's space", |&c| c != '\u{2581}');
    prop::collection::vec(ch, 0..40).prop_map(|v| v.into_iter().collect())
}

/// `s` without the characters the byte-level vocab cannot spell.
fn spellable(t: &Tokenizer, s: &str) -> String {
    s.chars()
        .filter(|c| {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .all(|b| t.token_id(&byte_level_char(b).to_string()).is_some())
        })
        .collect()
}

#[test]
fn bpe_drops_bytes_without_a_token_like_llama_cpp() {
    // U+40000 is F1 80 80 80; SmolLM2 has no token for byte F1, so only the three 80s remain.
    let t = smollm2();
    let ids = t.encode("\u{40000}", false, false).unwrap();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(t.decode(&ids, false, false).unwrap(), [0x80, 0x80, 0x80]);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("tests/proptest-regressions/tokenizer.txt"))),
        ..ProptestConfig::default()
    })]

    /// decode(encode(s)) == s. SentencePiece: the space prefix added by encode is the one
    /// decode removes from the first piece; control tokens are written back (unparse_special).
    #[test]
    fn spm_decode_inverts_encode(s in unicode_text()) {
        let t = llama();
        let ids = t.encode(&s, false, false).unwrap();
        let back = t.decode(&ids, false, true).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&back), s.as_str(), "ids {:?}", ids);
    }

    /// Byte-level BPE: only characters whose every byte has a token can come back; SmolLM2's
    /// vocab lacks 21 of the 256 byte tokens (0x04 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2
    /// 0xF5..=0xFF), and a byte without one is dropped, as llama.cpp drops it.
    #[test]
    fn bpe_decode_inverts_encode(s in unicode_text()) {
        let t = smollm2();
        let s = spellable(t, &s);
        let ids = t.encode(&s, false, false).unwrap();
        let back = t.decode(&ids, false, true).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&back), s.as_str(), "ids {:?}", ids);
    }

    /// Special tokens parsed out of the text decode back to their text too.
    #[test]
    fn bpe_special_tokens_round_trip(a in unicode_text(), b in unicode_text()) {
        let t = smollm2();
        let s = format!("{}<|im_start|>{}<|im_end|>", spellable(t, &a), spellable(t, &b));
        let ids = t.encode(&s, false, true).unwrap();
        prop_assert!(ids.contains(&1) && ids.contains(&2));
        let back = t.decode(&ids, false, true).unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&back), s.as_str());
    }
}
