//! `harness tokenize`: text to token ids with the tokenizer a GGUF file carries (vocab-only
//! files work). Prints the ids space-separated on one line; with `--pieces`, then one line per
//! token with its id and vocab text. Bad input (a missing or corrupt file, no tokenizer in it,
//! an unknown pre-tokenizer, text that is not UTF-8) is a one-line error.

use anyhow::{anyhow, bail, Context, Result};
use kernels::gguf::GgufFile;
use kernels::tokenizer::Tokenizer;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct TokenizeArgs {
    /// GGUF file whose tokenizer to use (`tokenizer.ggml.*` metadata; tensors are not read).
    #[arg(long)]
    pub model: PathBuf,
    /// The text to tokenize.
    #[arg(long, conflicts_with = "file", required_unless_present = "file")]
    pub text: Option<OsString>,
    /// Read the text from this file (UTF-8).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Add no special tokens (no BOS/EOS); the SentencePiece space prefix still applies.
    #[arg(long)]
    pub no_bos: bool,
    /// Treat control tokens written in the text (`<s>`, `<|im_end|>`) as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// Also print each token: its id and its text in the vocabulary.
    #[arg(long)]
    pub pieces: bool,
    /// Print the encoding time and throughput on stderr (the vocabulary load is timed apart).
    #[arg(long)]
    pub time: bool,
}

pub fn run(args: &TokenizeArgs, out: &mut impl Write) -> Result<()> {
    let text_bytes = match (&args.text, &args.file) {
        (Some(t), _) => t.as_encoded_bytes().to_vec(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => bail!("give --text or --file"),
    };
    let text = match std::str::from_utf8(&text_bytes) {
        Ok(t) => t,
        Err(e) => {
            let src = match &args.file {
                Some(p) if args.text.is_none() => p.display().to_string(),
                _ => "--text".to_string(),
            };
            bail!(
                "{src}: the text is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            )
        }
    };

    let started = Instant::now();
    // One line: the reader's I/O errors already name the path, its format errors do not.
    let file = GgufFile::open(&args.model).map_err(|e| {
        let msg = e.to_string();
        let path = args.model.display().to_string();
        if msg.starts_with(&path) {
            anyhow!(msg)
        } else {
            anyhow!("{path}: {msg}")
        }
    })?;
    let g = file.gguf();
    let tok = Tokenizer::from_gguf(g).with_context(|| args.model.display().to_string())?;
    if matches!(
        tok.vocab().kind,
        kernels::tokenizer::VocabKind::BytePairBpe(_)
    ) && g.get("tokenizer.ggml.pre").is_none()
    {
        eprintln!(
            "harness: warning: {} has no tokenizer.ggml.pre; using llama.cpp's fallback `default`",
            args.model.display()
        );
    }
    let loaded = started.elapsed();

    let started = Instant::now();
    let ids = tok.encode(text, !args.no_bos, !args.no_parse_special)?;
    let encoded = started.elapsed();
    if args.time {
        let s = encoded.as_secs_f64();
        eprintln!(
            "tokenize: vocab loaded in {:.1} ms; {} bytes -> {} tokens in {:.1} ms ({:.1} MB/s)",
            loaded.as_secs_f64() * 1e3,
            text.len(),
            ids.len(),
            s * 1e3,
            text.len() as f64 / s.max(1e-9) / 1e6
        );
    }

    let mut line = String::with_capacity(ids.len() * 6);
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&id.to_string());
    }
    writeln!(out, "{line}")?;
    if args.pieces {
        for &id in &ids {
            let piece = tok
                .vocab()
                .tokens
                .get(id as usize)
                .map_or("", |s| s.as_str());
            writeln!(out, "{id}\t{piece:?}")?;
        }
    }
    Ok(())
}
