//! Reading a [`Vocab`] out of GGUF metadata (`tokenizer.ggml.*`), with llama.cpp's defaults
//! where a key is absent: SentencePiece files get BOS 1, EOS 2, unknown 0, BOS added and a space
//! prefix; byte-level BPE files get BOS = EOS = 11 (GPT-2's convention, kept only if in range),
//! no space prefix, and BOS added only where the pre-tokenizer implies it (Llama-3).
//! Works on vocab-only files: no tensor is looked at.

use super::pretokenize::{Pre, PreInfo};
use super::vocab::{TokenType, TokenizerError, Vocab, VocabKind};
use super::Tokenizer;
use crate::gguf::{Gguf, GgufError, Value};

fn meta(e: GgufError) -> TokenizerError {
    TokenizerError::BadMetadata(e.to_string())
}

/// An optional key: absent is `None`, present with the wrong type is an error.
fn opt<'g, 'a, T>(
    g: &'g Gguf<'a>,
    key: &str,
    get: impl Fn(&'g Gguf<'a>, &str) -> Result<T, GgufError>,
) -> Result<Option<T>, TokenizerError> {
    if g.get(key).is_none() {
        return Ok(None);
    }
    get(g, key).map(Some).map_err(meta)
}

impl Vocab {
    /// The vocabulary of a GGUF file. Errors name the key at fault; a file without
    /// `tokenizer.ggml.model` is [`TokenizerError::NoTokenizer`].
    pub fn from_gguf(g: &Gguf) -> Result<Vocab, TokenizerError> {
        let model = match g.get("tokenizer.ggml.model") {
            None => return Err(TokenizerError::NoTokenizer),
            Some(_) => g.get_str("tokenizer.ggml.model").map_err(meta)?,
        };
        let pre_name = opt(g, "tokenizer.ggml.pre", |g, k| g.get_str(k))?;
        let kind = match model {
            "llama" => VocabKind::SentencePiece,
            "gpt2" => VocabKind::BytePairBpe(match pre_name {
                // llama.cpp falls back to `default` (with a loud warning) when the key is absent.
                None => Pre::from_gguf_name("default")
                    .ok_or(TokenizerError::UnknownPre("default".into()))?,
                Some(name) => Pre::from_gguf_name(name)
                    .ok_or_else(|| TokenizerError::UnknownPre(name.into()))?,
            }),
            other => return Err(TokenizerError::UnknownModel(other.into())),
        };

        let tokens: Vec<String> = g
            .get_array("tokenizer.ggml.tokens")
            .and_then(|a| a.iter_str())
            .map_err(meta)?
            .map(str::to_owned)
            .collect();
        let n = tokens.len();

        let scores = match g.get("tokenizer.ggml.scores") {
            None => Vec::new(),
            Some(Value::Array(a)) => {
                let s: Vec<f32> = match a.iter_f32() {
                    Ok(it) => it.collect(),
                    // llama.cpp also accepts integer scores.
                    Err(_) => a.iter_i32().map_err(meta)?.map(|v| v as f32).collect(),
                };
                if s.len() < n {
                    return Err(TokenizerError::LengthMismatch {
                        what: "tokenizer.ggml.scores",
                        got: s.len(),
                        tokens: n,
                    });
                }
                s[..n].to_vec()
            }
            Some(v) => {
                return Err(TokenizerError::BadMetadata(format!(
                    "`tokenizer.ggml.scores` is {}, expected an array of f32",
                    v.type_name()
                )))
            }
        };
        let token_types = match opt(g, "tokenizer.ggml.token_type", |g, k| {
            g.get_array(k).cloned()
        })? {
            None => Vec::new(),
            Some(a) => {
                let t: Vec<TokenType> = a
                    .iter_i32()
                    .map_err(meta)?
                    .map(TokenType::from_gguf)
                    .collect();
                if t.len() < n {
                    return Err(TokenizerError::LengthMismatch {
                        what: "tokenizer.ggml.token_type",
                        got: t.len(),
                        tokens: n,
                    });
                }
                t[..n].to_vec()
            }
        };
        let merges: Vec<String> = match kind {
            VocabKind::SentencePiece => Vec::new(),
            VocabKind::BytePairBpe(_) => match g.get("tokenizer.ggml.merges") {
                None => {
                    return Err(TokenizerError::BadMetadata(
                        "a gpt2 tokenizer needs `tokenizer.ggml.merges`, which the file lacks"
                            .into(),
                    ))
                }
                Some(_) => g
                    .get_array("tokenizer.ggml.merges")
                    .and_then(|a| a.iter_str())
                    .map_err(meta)?
                    .map(str::to_owned)
                    .collect(),
            },
        };

        let in_range = |id: u32| (id as usize) < n;
        let (mut bos, mut eos, mut unk, mut add_bos, mut add_space_prefix) = match kind {
            VocabKind::SentencePiece => (Some(1), Some(2), Some(0), true, true),
            VocabKind::BytePairBpe(PreInfo {
                add_bos_default, ..
            }) => (Some(11), Some(11), None, add_bos_default, false),
        };
        for (key, slot) in [
            ("tokenizer.ggml.bos_token_id", &mut bos),
            ("tokenizer.ggml.eos_token_id", &mut eos),
            ("tokenizer.ggml.unknown_token_id", &mut unk),
        ] {
            // A default outside the vocabulary is dropped; an id from the file outside it is
            // ignored in favour of the default, as llama.cpp does (it warns).
            *slot = slot.filter(|&id| in_range(id));
            if let Some(id) = opt(g, key, |g, k| g.get_u32(k))? {
                if in_range(id) {
                    *slot = Some(id);
                }
            }
        }
        if let Some(v) = opt(g, "tokenizer.ggml.add_bos_token", |g, k| g.get_bool(k))? {
            add_bos = v;
        }
        let add_eos =
            opt(g, "tokenizer.ggml.add_eos_token", |g, k| g.get_bool(k))?.unwrap_or(false);
        if let Some(v) = opt(g, "tokenizer.ggml.add_space_prefix", |g, k| g.get_bool(k))? {
            add_space_prefix = v;
        }
        Ok(Vocab {
            kind,
            tokens,
            scores,
            token_types,
            merges,
            bos,
            eos,
            unk,
            add_bos,
            add_eos,
            add_space_prefix,
        })
    }
}

impl Tokenizer {
    /// The tokenizer a GGUF file describes.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::new(Vocab::from_gguf(g)?)
    }
}
