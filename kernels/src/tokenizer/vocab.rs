//! The vocabulary as a GGUF file states it: token texts, scores, types, merges, special ids and
//! flags, held as plain vectors so a test or a converter can build one without a file.
//! Reading it out of GGUF metadata lives in `gguf_vocab.rs`; the algorithms live in `spm.rs`
//! and `bpe.rs`.

use super::pretokenize::PreInfo;
use thiserror::Error;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    /// Maps the integer stored in GGUF; values outside 0..=6 are `Undefined`, as llama.cpp reads them.
    pub fn from_gguf(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// Control, user-defined and unknown tokens are matched in the raw text before splitting.
    pub(crate) fn is_special(self) -> bool {
        matches!(
            self,
            TokenType::Control | TokenType::UserDefined | TokenType::Unknown
        )
    }
}

/// Which algorithm the vocabulary belongs to (`tokenizer.ggml.model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// `llama`: SentencePiece with scores and `<0xXX>` byte fallback.
    SentencePiece,
    /// `gpt2`: byte-level BPE with merges and a pre-tokenizer.
    BytePairBpe(PreInfo),
}

/// Everything a tokenizer needs from the file. Build it by hand or with `Vocab::from_gguf`.
#[derive(Clone, Debug)]
pub struct Vocab {
    pub kind: VocabKind,
    /// Token texts, indexed by id. For SentencePiece a space is U+2581; for byte-level BPE the
    /// bytes are spelled with GPT-2's byte-to-unicode characters.
    pub tokens: Vec<String>,
    /// One score per token (SentencePiece merge priority); empty means all zero.
    pub scores: Vec<f32>,
    /// One type per token; empty means all normal.
    pub token_types: Vec<TokenType>,
    /// BPE merges, `"left right"`, highest priority first.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unk: Option<u32>,
    pub add_bos: bool,
    pub add_eos: bool,
    /// Prepend a space to text that starts the input or follows a special token (SentencePiece);
    /// decoding then removes the space again from the first piece.
    pub add_space_prefix: bool,
}

/// Errors building a tokenizer, reading a vocabulary or encoding.
#[derive(Debug, Error)]
pub enum TokenizerError {
    #[error("the file has no tokenizer (no `tokenizer.ggml.model` key)")]
    NoTokenizer,
    #[error("unsupported tokenizer model `{0}` (supported: llama, gpt2)")]
    UnknownModel(String),
    #[error("unknown pre-tokenizer `tokenizer.ggml.pre = {0}` (known: {known})", known = super::Pre::KNOWN_NAMES)]
    UnknownPre(String),
    #[error("bad tokenizer metadata: {0}")]
    BadMetadata(String),
    #[error("the vocabulary is empty")]
    EmptyVocab,
    #[error("`{what}` has {got} entries for {tokens} tokens")]
    LengthMismatch {
        what: &'static str,
        got: usize,
        tokens: usize,
    },
    #[error("token text {text:?} appears twice (ids {first} and {second})")]
    DuplicateToken {
        text: String,
        first: u32,
        second: u32,
    },
    #[error("{what} id {id} is outside the vocabulary of {n} tokens")]
    IdOutOfRange {
        what: &'static str,
        id: u32,
        n: usize,
    },
    #[error("the vocabulary has no token for byte 0x{0:02X} and no unknown token to stand for it")]
    NoByteToken(u8),
    #[error("the vocabulary has no {0} token, but the metadata asks for one to be added")]
    MissingSpecial(&'static str),
}

impl Vocab {
    pub(crate) fn token_type(&self, id: u32) -> TokenType {
        self.token_types
            .get(id as usize)
            .copied()
            .unwrap_or(TokenType::Normal)
    }

    pub(crate) fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    /// Checks lengths and ids, so the tokenizer may index without further checks.
    pub(crate) fn validate(&self) -> Result<(), TokenizerError> {
        let n = self.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        if n > u32::MAX as usize / 2 {
            return Err(TokenizerError::BadMetadata(format!(
                "{n} tokens is too many"
            )));
        }
        for (what, got) in [
            ("scores", self.scores.len()),
            ("token_type", self.token_types.len()),
        ] {
            if got != 0 && got != n {
                return Err(TokenizerError::LengthMismatch {
                    what,
                    got,
                    tokens: n,
                });
            }
        }
        for (what, id) in [("bos", self.bos), ("eos", self.eos), ("unknown", self.unk)] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(TokenizerError::IdOutOfRange { what, id, n });
                }
            }
        }
        if self.add_bos && self.bos.is_none() {
            return Err(TokenizerError::MissingSpecial("BOS"));
        }
        if self.add_eos && self.eos.is_none() {
            return Err(TokenizerError::MissingSpecial("EOS"));
        }
        Ok(())
    }
}
