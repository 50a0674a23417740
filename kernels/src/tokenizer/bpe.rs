//! GPT-2 byte-level BPE as llama.cpp runs it on a GGUF `gpt2` vocabulary: each word from the
//! pre-tokenizer starts as one symbol per byte (spelled with GPT-2's byte-to-unicode
//! characters), and the adjacent pair with the lowest merge rank merges first (ties: the
//! leftmost) until no pair has a rank.
//!
//! Symbols carry interned ids instead of strings: every token text and every merge result has
//! one (merge results that are not tokens get ids past the vocabulary), so a candidate pair is
//! one hash lookup of two integers. Repeated words are looked up in a per-call cache.

use super::pretokenize::{split_words, Pre, PreInfo};
use super::vocab::Vocab;
use super::Tokenizer;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

const NONE: u32 = u32::MAX;

/// GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the other 68
/// bytes take the code points from U+0100 up, in byte order.
pub fn byte_to_char(b: u8) -> char {
    BYTE_CHARS.0[b as usize]
}

struct ByteChars([char; 256]);

static BYTE_CHARS: ByteChars = {
    let mut t = ['\0'; 256];
    let mut n = 0u32;
    let mut b = 0usize;
    while b < 256 {
        let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        t[b] = if printable {
            b as u8 as char
        } else {
            let c = 256 + n;
            n += 1;
            match char::from_u32(c) {
                Some(c) => c,
                None => '\0',
            }
        };
        b += 1;
    }
    ByteChars(t)
};

/// The byte a GPT-2 byte character stands for.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    match u {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(u as u8),
        0x100..=0x143 => {
            let k = (u - 0x100) as usize;
            (0u8..=255)
                .filter(|&b| !matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF))
                .nth(k)
        }
        _ => None,
    }
}

/// A normal token's text back to bytes. A character outside the byte alphabet is written as
/// llama.cpp writes it: `[UNK_BYTE_0x..<token text>]`.
pub(crate) fn decode_token_text(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut utf8 = [0u8; 4];
                for b in c.encode_utf8(&mut utf8).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

pub(crate) struct Bpe {
    pre: Pre,
    ignore_merges: bool,
    pub(crate) clean_spaces: bool,
    n_vocab: u32,
    /// The interned id of each byte's character (NONE if neither a token nor in a merge).
    byte_sym: [u32; 256],
    /// (left id, right id) -> (rank, merged id).
    ranks: FxHashMap<(u32, u32), (u32, u32)>,
    /// A token whose text is this one raw byte: llama.cpp's last resort for a symbol that is
    /// not a token (only ASCII can match, as token texts are UTF-8).
    single_byte: [Option<u32>; 256],
}

impl Bpe {
    pub(crate) fn new(
        vocab: &Vocab,
        token_to_id: &FxHashMap<Box<[u8]>, u32>,
        info: PreInfo,
    ) -> Bpe {
        let n_vocab = vocab.tokens.len() as u32;
        // Merge results that are not tokens get ids from `n_vocab` up.
        let mut extra_ids: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
        let mut intern = |s: &[u8]| -> u32 {
            if let Some(&id) = token_to_id.get(s) {
                return id;
            }
            if let Some(&id) = extra_ids.get(s) {
                return id;
            }
            let id = n_vocab + extra_ids.len() as u32;
            extra_ids.insert(s.into(), id);
            id
        };
        let mut ranks = FxHashMap::default();
        ranks.reserve(vocab.merges.len());
        let mut joined = Vec::new();
        for (rank, m) in vocab.merges.iter().enumerate() {
            let b = m.as_bytes();
            // llama.cpp splits at the first space after the first byte; a merge without one
            // pairs two empty strings, which no symbol ever is.
            let Some(pos) = b.iter().skip(1).position(|&c| c == b' ').map(|p| p + 1) else {
                continue;
            };
            let (l, r) = (&b[..pos], &b[pos + 1..]);
            if l.is_empty() || r.is_empty() {
                continue;
            }
            joined.clear();
            joined.extend_from_slice(l);
            joined.extend_from_slice(r);
            let key = (intern(l), intern(r));
            let merged = intern(&joined);
            // The first occurrence of a pair keeps its rank.
            ranks.entry(key).or_insert((rank as u32, merged));
        }
        let mut byte_sym = [NONE; 256];
        for (b, slot) in byte_sym.iter_mut().enumerate() {
            let mut utf8 = [0u8; 4];
            let s = byte_to_char(b as u8).encode_utf8(&mut utf8).as_bytes();
            *slot = token_to_id
                .get(s)
                .or_else(|| extra_ids.get(s))
                .copied()
                .unwrap_or(NONE);
        }
        let mut single_byte = [None; 256];
        for (b, slot) in single_byte.iter_mut().enumerate() {
            *slot = token_to_id.get(&[b as u8][..]).copied();
        }
        Bpe {
            pre: info.pre,
            ignore_merges: info.ignore_merges,
            clean_spaces: info.clean_spaces,
            n_vocab,
            byte_sym,
            ranks,
            single_byte,
        }
    }

    pub(crate) fn session(&self) -> BpeSession<'_> {
        BpeSession {
            bpe: self,
            words: Vec::new(),
            symbols: Vec::new(),
            heap: BinaryHeap::new(),
            encoded: String::new(),
            cache: FxHashMap::default(),
            cached_ids: Vec::new(),
        }
    }
}

#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    /// Bytes of the word this symbol covers; 0 once merged into its left neighbour.
    len: u32,
    prev: u32,
    next: u32,
}

/// Scratch for one `encode` call: buffers reused across words, and the word cache.
pub(crate) struct BpeSession<'a> {
    bpe: &'a Bpe,
    words: Vec<Range<usize>>,
    symbols: Vec<Symbol>,
    /// (rank, left, right, size): the smallest rank, then the leftmost, pops first.
    heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>>,
    encoded: String,
    cache: FxHashMap<Box<[u8]>, (u32, u32)>,
    cached_ids: Vec<u32>,
}

/// Words longer than this are encoded without caching; they rarely repeat.
const CACHE_MAX_WORD: usize = 48;

impl BpeSession<'_> {
    pub(crate) fn encode(&mut self, tok: &Tokenizer, text: &str, out: &mut Vec<u32>) {
        let mut words = std::mem::take(&mut self.words);
        split_words(self.bpe.pre, text, &mut words);
        for w in &words {
            let word = &text.as_bytes()[w.clone()];
            if word.len() <= CACHE_MAX_WORD {
                if let Some(&(start, len)) = self.cache.get(word) {
                    out.extend_from_slice(&self.cached_ids[start as usize..(start + len) as usize]);
                    continue;
                }
                let start = out.len();
                self.encode_word(tok, word, out);
                let ids = &out[start..];
                let at = self.cached_ids.len() as u32;
                self.cached_ids.extend_from_slice(ids);
                self.cache.insert(word.into(), (at, ids.len() as u32));
            } else {
                self.encode_word(tok, word, out);
            }
        }
        self.words = words;
    }

    fn encode_word(&mut self, tok: &Tokenizer, word: &[u8], out: &mut Vec<u32>) {
        let bpe = self.bpe;
        if bpe.ignore_merges {
            self.encoded.clear();
            self.encoded.extend(word.iter().map(|&b| byte_to_char(b)));
            if let Some(id) = tok.token_id(&self.encoded) {
                out.push(id);
                return;
            }
        }
        let n = word.len() as u32;
        let syms = &mut self.symbols;
        syms.clear();
        syms.extend(word.iter().enumerate().map(|(i, &b)| Symbol {
            id: bpe.byte_sym[b as usize],
            len: 1,
            prev: if i == 0 { NONE } else { i as u32 - 1 },
            next: if i as u32 + 1 == n {
                NONE
            } else {
                i as u32 + 1
            },
        }));
        let heap = &mut self.heap;
        heap.clear();
        let push_pair = |heap: &mut BinaryHeap<_>, syms: &[Symbol], l: u32, r: u32| {
            if l == NONE || r == NONE {
                return;
            }
            let (a, b) = (syms[l as usize], syms[r as usize]);
            if let Some(&(rank, _)) = bpe.ranks.get(&(a.id, b.id)) {
                heap.push(Reverse((rank, l, r, a.len + b.len)));
            }
        };
        for i in 1..n {
            push_pair(heap, syms, i - 1, i);
        }
        while let Some(Reverse((_, l, r, size))) = heap.pop() {
            let (a, b) = (syms[l as usize], syms[r as usize]);
            if a.len == 0 || b.len == 0 || a.len + b.len != size {
                continue;
            }
            let Some(&(_, merged)) = bpe.ranks.get(&(a.id, b.id)) else {
                continue;
            };
            let left = &mut syms[l as usize];
            left.id = merged;
            left.len = size;
            left.next = b.next;
            let prev = left.prev;
            syms[r as usize].len = 0;
            if b.next != NONE {
                syms[b.next as usize].prev = l;
            }
            push_pair(heap, syms, prev, l);
            push_pair(heap, syms, l, b.next);
        }
        let mut i = 0;
        let mut start = 0usize;
        while i != NONE {
            let s = syms[i as usize];
            if s.id < bpe.n_vocab {
                out.push(s.id);
            } else {
                // Not a token: llama.cpp looks up each byte of the symbol's spelled text alone.
                let mut spelled = String::new();
                spelled.extend(
                    word[start..start + s.len as usize]
                        .iter()
                        .map(|&b| byte_to_char(b)),
                );
                out.extend(spelled.bytes().filter_map(|b| bpe.single_byte[b as usize]));
            }
            start += s.len as usize;
            i = s.next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c), "byte {b} maps to a character already used");
            assert_eq!(char_to_byte(c), Some(b), "byte {b} -> {c:?}");
        }
        // The published table's anchors: space is U+0120 'Ġ', newline U+010A 'Ċ'.
        assert_eq!(byte_to_char(b' '), '\u{120}');
        assert_eq!(byte_to_char(b'\n'), '\u{10A}');
        assert_eq!(byte_to_char(0xAD), '\u{143}');
    }
}
