//! Text to token ids and back, as llama.cpp does it for the two vocabularies Llama-family GGUF
//! files carry: SentencePiece (`tokenizer.ggml.model = llama`, TinyLlama, Llama-2) and GPT-2
//! byte-level BPE (`gpt2`, SmolLM2, Llama-3, Qwen2).
//!
//! The pipeline, shared by both: special tokens (control, user-defined, unknown) are found in
//! the raw text first, longest first, cutting it into fragments; each text fragment is then
//! tokenized on its own (`spm.rs`: score-driven merges of characters with byte fallback;
//! `bpe.rs`: words from `pretokenize.rs`, then ranked merges over bytes); BOS/EOS are added as
//! the metadata says. Decoding concatenates token pieces with llama.cpp's space rules.
//!
//! This module owns no file access: a [`Vocab`] is plain vectors, read from GGUF metadata by
//! [`Vocab::from_gguf`].

mod bpe;
mod gguf_vocab;
mod pretokenize;
mod spm;
mod vocab;

pub use bpe::byte_to_char as byte_level_char;
pub use pretokenize::{split_words, Pre, PreInfo};
pub use vocab::{TokenType, TokenizerError, Vocab, VocabKind};

use rustc_hash::FxHashMap;

/// A piece of the input after special tokens are cut out: text, or one special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fragment {
    Text { start: usize, end: usize },
    Token(u32),
}

/// A tokenizer built from a [`Vocab`]: lookup tables made once, then `encode` and `decode`
/// take `&self` and may run on many threads.
pub struct Tokenizer {
    vocab: Vocab,
    token_to_id: FxHashMap<Box<[u8]>, u32>,
    /// Special tokens in the order llama.cpp matches them: longest text first.
    specials: Vec<u32>,
    /// `token_to_piece(id, special = true)` for every id.
    pieces: Vec<Box<[u8]>>,
    model: Model,
}

enum Model {
    Spm(Box<spm::Spm>),
    Bpe(Box<bpe::Bpe>),
}

impl Tokenizer {
    pub fn new(mut vocab: Vocab) -> Result<Tokenizer, TokenizerError> {
        vocab.validate()?;
        // llama.cpp names empty token texts so that no two collide.
        for (i, t) in vocab.tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
        }
        let mut token_to_id = FxHashMap::default();
        token_to_id.reserve(vocab.tokens.len());
        for (i, t) in vocab.tokens.iter().enumerate() {
            let id = i as u32;
            if let Some(first) = token_to_id.insert(t.as_bytes().into(), id) {
                return Err(TokenizerError::DuplicateToken {
                    text: t.clone(),
                    first,
                    second: id,
                });
            }
        }
        let mut specials: Vec<u32> = (0..vocab.tokens.len() as u32)
            .filter(|&id| vocab.token_type(id).is_special())
            .collect();
        specials.sort_by_key(|&id| std::cmp::Reverse(vocab.tokens[id as usize].len()));
        let model = match vocab.kind {
            VocabKind::SentencePiece => Model::Spm(Box::new(spm::Spm::new(&vocab, &token_to_id)?)),
            VocabKind::BytePairBpe(info) => {
                Model::Bpe(Box::new(bpe::Bpe::new(&vocab, &token_to_id, info)))
            }
        };
        let mut tok = Tokenizer {
            vocab,
            token_to_id,
            specials,
            pieces: Vec::new(),
            model,
        };
        tok.pieces = (0..tok.vocab.tokens.len() as u32)
            .map(|id| tok.make_piece(id).into_boxed_slice())
            .collect();
        Ok(tok)
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn n_tokens(&self) -> usize {
        self.vocab.tokens.len()
    }

    /// The id of a token text, if the vocabulary has it.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text.as_bytes()).copied()
    }

    /// Encodes `text`. `add_special`: BOS/EOS as the metadata asks (`add_bos_token`,
    /// `add_eos_token`). `parse_special`: control and unknown tokens written in the text
    /// (`<s>`, `<|im_end|>`) become their ids; user-defined tokens always do, as in llama.cpp.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        let fragments = self.partition(text, parse_special);
        if add_special && self.vocab.add_bos {
            // validate() guarantees a BOS id when add_bos is set.
            out.extend(self.vocab.bos);
        }
        match &self.model {
            Model::Spm(m) => {
                let mut prev_special = true;
                let mut buf = String::new();
                for f in fragments {
                    match f {
                        Fragment::Text { start, end } => {
                            let prefix = self.vocab.add_space_prefix && prev_special;
                            m.encode(self, &text[start..end], prefix, &mut buf, &mut out)?;
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe(m) => {
                let mut session = m.session();
                for f in fragments {
                    match f {
                        Fragment::Text { start, end } => {
                            session.encode(self, &text[start..end], &mut out)
                        }
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.vocab.add_eos {
            out.extend(self.vocab.eos);
        }
        Ok(out)
    }

    /// Cuts the text around every occurrence of a special token, longest tokens first, each
    /// token's occurrences left to right; empty text fragments are dropped.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text {
            start: 0,
            end: text.len(),
        });
        let mut next = Vec::new();
        for &id in &self.specials {
            let ty = self.vocab.token_type(id);
            if !parse_special && matches!(ty, TokenType::Control | TokenType::Unknown) {
                continue;
            }
            let pat = self.vocab.tokens[id as usize].as_str();
            if !text.contains(pat) {
                continue;
            }
            next.clear();
            for &f in &frags {
                let Fragment::Text { start, end } = f else {
                    next.push(f);
                    continue;
                };
                let mut pos = start;
                while let Some(off) = text[pos..end].find(pat) {
                    let m = pos + off;
                    if m > pos {
                        next.push(Fragment::Text { start: pos, end: m });
                    }
                    next.push(Fragment::Token(id));
                    pos = m + pat.len();
                }
                if pos < end {
                    next.push(Fragment::Text { start: pos, end });
                }
            }
            std::mem::swap(&mut frags, &mut next);
        }
        frags
    }

    /// The bytes a token stands for. Control and unknown tokens give their text only with
    /// `special`; unused and undefined tokens give nothing.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Result<&[u8], TokenizerError> {
        let piece = self
            .pieces
            .get(id as usize)
            .ok_or(TokenizerError::IdOutOfRange {
                what: "token",
                id,
                n: self.n_tokens(),
            })?;
        let ty = self.vocab.token_type(id);
        if !special && matches!(ty, TokenType::Control | TokenType::Unknown) {
            return Ok(&[]);
        }
        Ok(piece)
    }

    fn make_piece(&self, id: u32) -> Vec<u8> {
        let text = &self.vocab.tokens[id as usize];
        match self.vocab.token_type(id) {
            TokenType::Control | TokenType::Unknown | TokenType::UserDefined => {
                text.as_bytes().to_vec()
            }
            TokenType::Normal => match &self.model {
                Model::Spm(_) => text.replace('\u{2581}', " ").into_bytes(),
                Model::Bpe(_) => bpe::decode_token_text(text),
            },
            TokenType::Byte => parse_byte_token(text).map_or_else(Vec::new, |b| vec![b]),
            TokenType::Unused | TokenType::Undefined => Vec::new(),
        }
    }

    /// Decodes ids to bytes as llama.cpp's `detokenize` does: with `remove_special`, a leading
    /// BOS and a trailing EOS that the metadata adds are dropped; with `unparse_special`,
    /// control tokens are written out. With `add_space_prefix`, the first piece loses one
    /// leading space — unless a BOS was removed first (llama.cpp keeps it then). The result is
    /// bytes: a cut sequence may end inside a UTF-8 character.
    pub fn decode(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<Vec<u8>, TokenizerError> {
        let mut ids = ids;
        let mut remove_space = self.vocab.add_space_prefix;
        if remove_special && self.vocab.add_bos {
            if let (Some(&first), Some(bos)) = (ids.first(), self.vocab.bos) {
                if first == bos {
                    remove_space = false;
                    ids = &ids[1..];
                }
            }
        }
        if remove_special && self.vocab.add_eos {
            if let (Some(&last), Some(eos)) = (ids.last(), self.vocab.eos) {
                if last == eos {
                    ids = &ids[..ids.len() - 1];
                }
            }
        }
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let mut piece = self.token_to_piece(id, unparse_special)?;
            if remove_space {
                if let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
            }
            remove_space = false;
            out.extend_from_slice(piece);
        }
        if let Model::Bpe(m) = &self.model {
            if m.clean_spaces {
                clean_spaces(&mut out);
            }
        }
        Ok(out)
    }
}

/// `<0xXX>` to its byte.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// llama.cpp's `clean_spaces` for GPT-2-style vocabularies, three passes over the bytes: drop a
/// space before `?!.,`; turn ` ' ` into `'`; drop the space before `'s`, `'m`, `'re`, `'ve`.
fn clean_spaces(text: &mut Vec<u8>) {
    if text.is_empty() {
        return;
    }
    // Pass 1: " ?", " !", " .", " ," lose the space.
    let src = std::mem::take(text);
    let mut out = Vec::with_capacity(src.len());
    out.push(src[0]);
    for i in 1..src.len() {
        if src[i - 1] == b' ' && matches!(src[i], b'?' | b'!' | b'.' | b',') {
            out.pop();
        }
        out.push(src[i]);
    }
    // Pass 2: a lone apostrophe between spaces loses both spaces. llama.cpp blanks the second
    // space in place, so the character after it does not see a space before it.
    let src = std::mem::take(&mut out);
    out.push(src[0]);
    let mut prev_blanked = false;
    let mut i = 1;
    while i < src.len() {
        let x = src[i];
        let prev = if prev_blanked { 0 } else { src[i - 1] };
        prev_blanked = false;
        if x == b'\'' && i + 1 < src.len() && prev == b' ' && src[i + 1] == b' ' {
            out.pop();
            out.push(x);
            i += 2;
            prev_blanked = true;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // Pass 3: " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
    let src = std::mem::take(&mut out);
    out.push(src[0]);
    for i in 1..src.len() {
        let x = src[i];
        if src[i - 1] == b' ' && x == b'\'' && i + 1 < src.len() {
            let x1 = src[i + 1];
            let x2 = src.get(i + 2).copied();
            if matches!(x1, b's' | b'm')
                || matches!((x1, x2), (b'r', Some(b'e')) | (b'v', Some(b'e')))
            {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}
