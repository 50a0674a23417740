//! SentencePiece encoding as llama.cpp runs it on a GGUF `llama` vocabulary: spaces become
//! U+2581 (and one is prepended when asked), the text starts as one symbol per character, and
//! the adjacent pair whose concatenation is a token with the highest score merges first (ties:
//! the leftmost). A final symbol that is not a token is written as its bytes, `<0xXX>`.
//!
//! This is a best-pair-first merge over a linked list with a heap of candidate pairs: a pair
//! is stale once either side has changed size, which is checked when it is popped.

use super::vocab::{TokenizerError, Vocab};
use super::Tokenizer;
use rustc_hash::FxHashMap;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

const NONE: u32 = u32::MAX;

pub(crate) struct Spm {
    /// The token for each byte: `<0xXX>`, else the byte itself as a one-character token.
    byte_tokens: [Option<u32>; 256],
    max_token_len: usize,
    /// No token has U+2581 right after another character: then no merge can cross the start
    /// of a space run, and the text is merged one word at a time (the same merges, as every
    /// candidate lies inside one word; far smaller heaps). True for the Llama vocab, where
    /// U+2581 inside a token only ever follows another U+2581.
    words_independent: bool,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: u32,
    next: u32,
    /// The token this symbol is, or NONE.
    id: u32,
}

struct Candidate {
    score: f32,
    left: u32,
    right: u32,
    /// Byte length of the two symbols together when the pair was found.
    size: u32,
    id: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// The heap's greatest is the highest score, then the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.left.cmp(&self.left))
    }
}

/// Buffers reused across the words of one `encode` call, and its word cache.
#[derive(Default)]
struct Scratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Candidate>,
    cache: FxHashMap<Box<str>, (u32, u32)>,
    cached_ids: Vec<u32>,
}

/// Words longer than this are merged without caching; they rarely repeat.
const CACHE_MAX_WORD: usize = 64;

impl Spm {
    pub(crate) fn new(
        vocab: &Vocab,
        token_to_id: &FxHashMap<Box<[u8]>, u32>,
    ) -> Result<Spm, TokenizerError> {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            *slot = token_to_id
                .get(hex.as_bytes())
                .or_else(|| token_to_id.get(&[b as u8][..]))
                .copied();
        }
        let max_token_len = vocab.tokens.iter().map(|t| t.len()).max().unwrap_or(0);
        let words_independent = !vocab.tokens.iter().any(|t| {
            let mut prev = None;
            t.chars().any(|c| {
                let crosses = c == '\u{2581}' && prev.is_some_and(|p| p != '\u{2581}');
                prev = Some(c);
                crosses
            })
        });
        Ok(Spm {
            byte_tokens,
            max_token_len,
            words_independent,
        })
    }

    /// Encodes one text fragment, appending to `out`. `buf` is scratch for the escaped text.
    pub(crate) fn encode(
        &self,
        tok: &Tokenizer,
        text: &str,
        space_prefix: bool,
        buf: &mut String,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        buf.clear();
        if space_prefix {
            buf.push('\u{2581}');
        }
        for (i, part) in text.split(' ').enumerate() {
            if i > 0 {
                buf.push('\u{2581}');
            }
            buf.push_str(part);
        }
        if buf.len() >= u32::MAX as usize / 2 {
            return Err(TokenizerError::BadMetadata(
                "text fragment longer than 2 GiB".into(),
            ));
        }
        let mut scratch = Scratch::default();
        if !self.words_independent {
            return self.encode_chunk(tok, buf, &mut scratch, out);
        }
        // Cut before each U+2581 that follows another character.
        let mut start = 0;
        let mut prev_space = true;
        for (i, c) in buf.char_indices() {
            let space = c == '\u{2581}';
            if space && !prev_space {
                self.encode_word(tok, &buf[start..i], &mut scratch, out)?;
                start = i;
            }
            prev_space = space;
        }
        self.encode_word(tok, &buf[start..], &mut scratch, out)
    }

    /// One word through the cache.
    fn encode_word(
        &self,
        tok: &Tokenizer,
        word: &str,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        if word.len() > CACHE_MAX_WORD {
            return self.encode_chunk(tok, word, scratch, out);
        }
        if let Some(&(at, len)) = scratch.cache.get(word) {
            out.extend_from_slice(&scratch.cached_ids[at as usize..(at + len) as usize]);
            return Ok(());
        }
        let start = out.len();
        self.encode_chunk(tok, word, scratch, out)?;
        let at = scratch.cached_ids.len() as u32;
        scratch.cached_ids.extend_from_slice(&out[start..]);
        scratch
            .cache
            .insert(word.into(), (at, (out.len() - start) as u32));
        Ok(())
    }

    /// The merges over one piece of escaped text.
    fn encode_chunk(
        &self,
        tok: &Tokenizer,
        text: &str,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) -> Result<(), TokenizerError> {
        let bytes = text.as_bytes();
        let lookup = |a: usize, b: usize| -> u32 {
            if b - a > self.max_token_len {
                return NONE;
            }
            tok.token_to_id.get(&bytes[a..b]).copied().unwrap_or(NONE)
        };

        let symbols = &mut scratch.symbols;
        symbols.clear();
        for (i, (start, c)) in text.char_indices().enumerate() {
            let end = start + c.len_utf8();
            symbols.push(Symbol {
                start: start as u32,
                len: (end - start) as u32,
                prev: if i == 0 { NONE } else { i as u32 - 1 },
                next: i as u32 + 1,
                id: lookup(start, end),
            });
        }
        let Some(last) = symbols.last_mut() else {
            return Ok(());
        };
        last.next = NONE;

        let heap = &mut scratch.heap;
        heap.clear();
        let push_pair = |heap: &mut BinaryHeap<Candidate>, symbols: &[Symbol], l: u32, r: u32| {
            if l == NONE || r == NONE {
                return;
            }
            let (a, b) = (symbols[l as usize], symbols[r as usize]);
            let start = a.start as usize;
            let end = start + (a.len + b.len) as usize;
            let id = lookup(start, end);
            if id != NONE {
                heap.push(Candidate {
                    score: tok.vocab.score(id),
                    left: l,
                    right: r,
                    size: a.len + b.len,
                    id,
                });
            }
        };
        for i in 1..symbols.len() as u32 {
            push_pair(heap, symbols, i - 1, i);
        }
        while let Some(c) = heap.pop() {
            let (l, r) = (symbols[c.left as usize], symbols[c.right as usize]);
            if l.len == 0 || r.len == 0 || l.len + r.len != c.size {
                continue;
            }
            let left = &mut symbols[c.left as usize];
            left.len += r.len;
            left.next = r.next;
            left.id = c.id;
            let prev = left.prev;
            symbols[c.right as usize].len = 0;
            if r.next != NONE {
                symbols[r.next as usize].prev = c.left;
            }
            push_pair(heap, symbols, prev, c.left);
            push_pair(heap, symbols, c.left, r.next);
        }

        let mut i = 0;
        while i != NONE {
            let s = symbols[i as usize];
            if s.id != NONE {
                out.push(s.id);
            } else {
                let start = s.start as usize;
                for &b in &bytes[start..start + s.len as usize] {
                    out.push(self.byte_tokens[b as usize].ok_or(TokenizerError::NoByteToken(b))?);
                }
            }
            i = s.next;
        }
        Ok(())
    }
}
