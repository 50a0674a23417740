//! `harness tokenize` as a user runs it: ids on one line matching the committed fixtures (made
//! by implementations that are not ours), `--no-bos`, `--pieces`, and one-line errors with a
//! non-zero exit for bad input.

use kernels::gguf::{Gguf, GgufWriter, MetaValue};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}
fn llama_vocab() -> PathBuf {
    repo().join("../shared/assets/llama-spm-vocab.gguf")
}
fn smollm2_vocab() -> PathBuf {
    repo().join("kernels/tests/fixtures/tokenizer/smollm2-vocab.gguf")
}

fn harness(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("tokenize")
        .args(args)
        .output()
        .expect("harness runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture_ids(fixture: &str, name: &str) -> (String, Vec<u32>) {
    let path = repo()
        .join("kernels/tests/fixtures/tokenizer")
        .join(fixture);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{fixture} has no case {name}"));
    let ids = case["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect();
    (case["text"].as_str().unwrap().to_string(), ids)
}

fn join(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn ids_match_the_fixtures() {
    for (model, fixture, bos, names) in [
        (
            llama_vocab(),
            "llama-spm.json",
            Some(1),
            ["sentence", "cjk", "spm-control-eos"],
        ),
        (
            smollm2_vocab(),
            "smollm2-smollm.json",
            None,
            ["sentence", "emoji", "bpe-chat"],
        ),
    ] {
        for name in names {
            let (text, ids) = fixture_ids(fixture, name);
            let (code, out, err) = harness(&[
                "--model".as_ref(),
                model.as_os_str(),
                "--text".as_ref(),
                text.as_ref(),
            ]);
            assert_eq!(code, 0, "{name}: {err}");
            let mut want: Vec<u32> = bos.into_iter().collect();
            want.extend(&ids);
            assert_eq!(out, format!("{}\n", join(&want)), "{fixture} {name}");
            let (code, out, err) = harness(&[
                "--model".as_ref(),
                model.as_os_str(),
                "--text".as_ref(),
                text.as_ref(),
                "--no-bos".as_ref(),
            ]);
            assert_eq!(code, 0, "{name}: {err}");
            assert_eq!(
                out,
                format!("{}\n", join(&ids)),
                "{fixture} {name} --no-bos"
            );
        }
    }
}

#[test]
fn pieces_and_file_input() {
    let dir = std::env::temp_dir().join(format!("harness-tokenize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (text, ids) = fixture_ids("llama-spm.json", "plain");
    let file = dir.join("plain.txt");
    std::fs::write(&file, &text).unwrap();
    let (code, out, err) = harness(&[
        "--model".as_ref(),
        llama_vocab().as_os_str(),
        "--file".as_ref(),
        file.as_os_str(),
        "--pieces".as_ref(),
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("1 {}", join(&ids)));
    assert_eq!(lines.len(), ids.len() + 2);
    assert_eq!(lines[1], "1\t\"<s>\"");
    assert!(
        lines[2].starts_with(&format!("{}\t\"\u{2581}", ids[0])),
        "{}",
        lines[2]
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn assert_one_line_error(args: &[&std::ffi::OsStr], needle: &str) {
    let (code, out, err) = harness(args);
    assert_ne!(code, 0, "must fail: {args:?}");
    assert!(out.is_empty(), "no ids on failure: {out}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

fn write_variant(
    src: &Path,
    dir: &Path,
    name: &str,
    drop: &str,
    add: Option<MetaValue>,
) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let mut w = GgufWriter::new();
    for e in g.metadata() {
        if e.key != drop {
            w.add_meta(e.key, MetaValue::from_value(&e.value)).unwrap();
        }
    }
    if let Some(v) = add {
        w.add_meta(drop, v).unwrap();
    }
    let path = dir.join(name);
    std::fs::write(&path, w.header_bytes()).unwrap();
    path
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("harness-tokenize-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let l = llama_vocab();
    let m = ["--model".as_ref(), l.as_os_str()];

    let not_utf8 = dir.join("latin1.txt");
    std::fs::write(&not_utf8, b"caf\xe9").unwrap();
    assert_one_line_error(
        &[m[0], m[1], "--file".as_ref(), not_utf8.as_os_str()],
        "not valid UTF-8",
    );
    assert_one_line_error(
        &[
            m[0],
            m[1],
            "--file".as_ref(),
            dir.join("absent.txt").as_os_str(),
        ],
        "absent.txt",
    );
    assert_one_line_error(
        &[
            "--model".as_ref(),
            dir.join("absent.gguf").as_os_str(),
            "--text".as_ref(),
            "x".as_ref(),
        ],
        "absent.gguf",
    );
    assert_one_line_error(
        &[
            "--model".as_ref(),
            not_utf8.as_os_str(),
            "--text".as_ref(),
            "x".as_ref(),
        ],
        "not a GGUF file",
    );

    let no_tok = write_variant(&l, &dir, "no-tokenizer.gguf", "tokenizer.ggml.model", None);
    assert_one_line_error(
        &[
            "--model".as_ref(),
            no_tok.as_os_str(),
            "--text".as_ref(),
            "x".as_ref(),
        ],
        "no tokenizer",
    );
    let bad_pre = write_variant(
        &smollm2_vocab(),
        &dir,
        "bad-pre.gguf",
        "tokenizer.ggml.pre",
        Some(MetaValue::Str("mystery".into())),
    );
    assert_one_line_error(
        &[
            "--model".as_ref(),
            bad_pre.as_os_str(),
            "--text".as_ref(),
            "x".as_ref(),
        ],
        "unknown pre-tokenizer `tokenizer.ggml.pre = mystery`",
    );
    std::fs::remove_dir_all(&dir).ok();
}
