//! Pre-tokenizer splits for byte-level BPE: the text of one fragment is cut into words before
//! any merge runs, and merges never cross a word boundary. Which split applies is named by
//! `tokenizer.ggml.pre`; the splits here reproduce what llama.cpp does for each name (its
//! hand-written matchers for the GPT-2, Llama-3 and Qwen2 patterns, and its std::regex passes
//! over a category-collapsed text for the others), including their behaviour at the end of a
//! fragment, where `\s+(?!\S)` keeps the whole whitespace run.
//!
//! This module owns character classes and word boundaries only; it knows nothing of vocabularies.

use std::ops::Range;
use unicode_general_category::{get_general_category, GeneralCategory as Gc};

/// The pre-tokenizer a byte-level BPE vocabulary was trained with (`tokenizer.ggml.pre`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pre {
    /// llama.cpp's `default`: punctuation runs, then the GPT-2 pattern, then digit runs cut in threes.
    Default,
    /// GPT-2's pattern `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// Llama-3's pattern: case-insensitive contractions, one leading non-letter before letters,
    /// numbers in groups of up to three, newlines kept with the whitespace before them.
    Llama3,
    /// SmolLM2 (and StarCoder): every digit alone, then the GPT-2 pattern.
    Smollm,
    /// Qwen2: the Llama-3 pattern with every digit alone.
    Qwen2,
}

/// What a `tokenizer.ggml.pre` name implies besides the split, as llama.cpp sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreInfo {
    pub pre: Pre,
    /// A word that is itself a token is emitted whole, without merging (Llama-3).
    pub ignore_merges: bool,
    /// BOS is added unless `tokenizer.ggml.add_bos_token` says otherwise.
    pub add_bos_default: bool,
    /// Decoding removes the spaces before `?!.,` and some contractions (llama.cpp's `clean_spaces`).
    pub clean_spaces: bool,
}

impl Pre {
    /// The names llama.cpp maps to these splits. `None` for any other name: an unknown
    /// pre-tokenizer is an error for the caller, never a silent default.
    pub fn from_gguf_name(name: &str) -> Option<PreInfo> {
        let info = |pre, ignore_merges, add_bos_default, clean_spaces| PreInfo {
            pre,
            ignore_merges,
            add_bos_default,
            clean_spaces,
        };
        Some(match name {
            "default" => info(Pre::Default, false, false, true),
            "gpt-2" | "phi-2" => info(Pre::Gpt2, false, false, true),
            "llama3" | "llama-v3" | "llama-bpe" => info(Pre::Llama3, true, true, true),
            "smollm" => info(Pre::Smollm, false, false, false),
            "qwen2" | "deepseek-r1-qwen" => info(Pre::Qwen2, false, false, false),
            _ => return None,
        })
    }

    /// The `tokenizer.ggml.pre` names [`Pre::from_gguf_name`] accepts, for error messages.
    pub const KNOWN_NAMES: &'static str =
        "default, gpt-2, phi-2, llama3, llama-v3, llama-bpe, smollm, qwen2, deepseek-r1-qwen";
}

pub(crate) const LETTER: u8 = 1;
pub(crate) const NUMBER: u8 = 2;
pub(crate) const PUNCT: u8 = 4;
pub(crate) const SPACE: u8 = 8;
/// Marks a position past the end of the fragment: llama.cpp's empty flag set, the one value
/// that no character has.
const OUTSIDE: u8 = 0x80;
/// Any character inside the fragment has at least this bit, so "not letter, number or space"
/// is never confused with "outside".
const INSIDE: u8 = 0x40;

const fn ascii_class(b: u8) -> u8 {
    let c = b as char;
    let mut f = INSIDE;
    if c.is_ascii_alphabetic() {
        f |= LETTER;
    }
    if c.is_ascii_digit() {
        f |= NUMBER;
    }
    // Unicode White_Space among ASCII: \t \n \v \f \r and space.
    if matches!(b, 9..=13 | 32) {
        f |= SPACE;
    }
    // General category P among ASCII (the S ones, $+<=>^`|~, are not).
    if matches!(
        c,
        '!' | '"'
            | '#'
            | '%'
            | '&'
            | '\''
            | '('
            | ')'
            | '*'
            | ','
            | '-'
            | '.'
            | '/'
            | ':'
            | ';'
            | '?'
            | '@'
            | '['
            | '\\'
            | ']'
            | '_'
            | '{'
            | '}'
    ) {
        f |= PUNCT;
    }
    f
}

static ASCII_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = ascii_class(i as u8);
        i += 1;
    }
    t
};

/// The class bits of one character: general category L, N or P, and White_Space.
pub(crate) fn char_class(c: char) -> u8 {
    if c.is_ascii() {
        return ASCII_CLASS[c as usize];
    }
    let mut f = INSIDE;
    match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter => f |= LETTER,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => f |= NUMBER,
        Gc::ConnectorPunctuation
        | Gc::DashPunctuation
        | Gc::OpenPunctuation
        | Gc::ClosePunctuation
        | Gc::InitialPunctuation
        | Gc::FinalPunctuation
        | Gc::OtherPunctuation => f |= PUNCT,
        _ => {}
    }
    if c.is_whitespace() {
        f |= SPACE;
    }
    f
}

/// One fragment decoded to characters, with their classes and byte offsets.
struct Chars {
    chars: Vec<char>,
    class: Vec<u8>,
    /// Byte offset of each character, plus the total length at the end.
    byte: Vec<usize>,
}

impl Chars {
    fn new(text: &str) -> Chars {
        let n = text.len();
        let mut chars = Vec::with_capacity(n);
        let mut class = Vec::with_capacity(n);
        let mut byte = Vec::with_capacity(n + 1);
        for (i, c) in text.char_indices() {
            chars.push(c);
            class.push(char_class(c));
            byte.push(i);
        }
        byte.push(n);
        Chars { chars, class, byte }
    }
}

/// A view of one piece `[lo, hi)` of the characters: reads outside it see nothing, as the
/// patterns must not look across piece boundaries.
struct Piece<'a> {
    c: &'a Chars,
    lo: usize,
    hi: usize,
}

impl Piece<'_> {
    #[inline]
    fn ch(&self, i: usize) -> Option<char> {
        (self.lo <= i && i < self.hi).then(|| self.c.chars[i])
    }
    #[inline]
    fn class(&self, i: usize) -> u8 {
        if self.lo <= i && i < self.hi {
            self.c.class[i]
        } else {
            OUTSIDE
        }
    }
    #[inline]
    fn is(&self, i: usize, bits: u8) -> bool {
        self.class(i) & bits != 0
    }
    /// Length of a contraction `'s 't 'm 'd 're 've 'll` at `i`, or 0.
    fn contraction(&self, i: usize, any_case: bool) -> usize {
        if self.ch(i) != Some('\'') {
            return 0;
        }
        let lower = |c: Option<char>| c.map(|c| if any_case { c.to_ascii_lowercase() } else { c });
        match lower(self.ch(i + 1)) {
            Some('s' | 't' | 'm' | 'd') => 2,
            Some(a @ ('r' | 'v' | 'l')) => {
                let b = lower(self.ch(i + 2));
                let ok = matches!(
                    (a, b),
                    ('r', Some('e')) | ('v', Some('e')) | ('l', Some('l'))
                );
                if ok {
                    3
                } else {
                    0
                }
            }
            _ => 0,
        }
    }
    /// The whitespace-run rules shared by the patterns: `\s+(?!\S)` leaves the last space for
    /// the word after it unless the run ends the piece; `\s+` takes the rest.
    fn space_run_end(&self, pos: usize) -> usize {
        let mut n = 0;
        while self.is(pos + n, SPACE) {
            n += 1;
        }
        if n > 1 && pos + n < self.hi {
            pos + n - 1
        } else if n > 0 {
            pos + n
        } else {
            pos + 1
        }
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` on one piece.
fn split_gpt2(p: &Piece, out: &mut Vec<usize>) {
    let mut pos = p.lo;
    while pos < p.hi {
        let k = p.contraction(pos, false);
        if k > 0 {
            pos += k;
            out.push(pos);
            continue;
        }
        let lead_space = p.ch(pos) == Some(' ');
        let head = if lead_space { pos + 1 } else { pos };
        let hc = p.class(head);
        let run = |pos: &mut usize, keep: &dyn Fn(u8) -> bool| {
            *pos = head;
            while keep(p.class(*pos)) {
                *pos += 1;
            }
        };
        if hc & LETTER != 0 {
            run(&mut pos, &|c| c & LETTER != 0);
        } else if hc & NUMBER != 0 {
            run(&mut pos, &|c| c & NUMBER != 0);
        } else if hc & (SPACE | LETTER | NUMBER | OUTSIDE) == 0 {
            run(&mut pos, &|c| c & (SPACE | LETTER | NUMBER | OUTSIDE) == 0);
        } else {
            pos = p.space_run_end(pos);
        }
        out.push(pos);
    }
}

/// The Llama-3 pattern (`digits_max` 3) and Qwen2's (`digits_max` 1) on one piece:
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
fn split_llama3(p: &Piece, digits_max: usize, out: &mut Vec<usize>) {
    let is_nl = |c: Option<char>| matches!(c, Some('\r' | '\n'));
    let mut pos = p.lo;
    while pos < p.hi {
        let k = p.contraction(pos, true);
        if k > 0 {
            pos += k;
            out.push(pos);
            continue;
        }
        let c = p.ch(pos);
        let cls = p.class(pos);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !is_nl(c) && cls & NUMBER == 0 && (cls & LETTER != 0 || p.is(pos + 1, LETTER)) {
            pos += 1;
            while p.is(pos, LETTER) {
                pos += 1;
            }
            out.push(pos);
            continue;
        }
        // \p{N}{1,N}
        if cls & NUMBER != 0 {
            let mut n = 0;
            while p.is(pos, NUMBER) {
                pos += 1;
                n += 1;
                if n == digits_max {
                    out.push(pos);
                    n = 0;
                }
            }
            if n > 0 {
                out.push(pos);
            }
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        let head = if c == Some(' ') { pos + 1 } else { pos };
        let not_word = |cls: u8| cls & (SPACE | LETTER | NUMBER | OUTSIDE) == 0;
        // At the end of the piece a lone space also lands here (the class after it is empty but
        // the space itself is inside); the result is the same one-space word either way.
        let hc = p.class(head);
        if hc & (SPACE | LETTER | NUMBER) == 0 && cls & OUTSIDE == 0 {
            pos = head;
            while not_word(p.class(pos)) {
                pos += 1;
            }
            while is_nl(p.ch(pos)) {
                pos += 1;
            }
            out.push(pos);
            continue;
        }
        // \s*[\r\n]+ : up to the last newline of the whitespace run; else \s+(?!\S) | \s+
        let mut n = 0;
        let mut last_nl_end = None;
        while p.is(pos + n, SPACE) {
            if is_nl(p.ch(pos + n)) {
                last_nl_end = Some(pos + n + 1);
            }
            n += 1;
        }
        pos = match last_nl_end {
            Some(end) => end,
            None => p.space_run_end(pos),
        };
        out.push(pos);
    }
}

/// Cuts each piece around the maximal runs of characters that `keep` accepts; with
/// `single`, every accepted character is a run of its own (llama.cpp's `\p{N}` pass).
fn isolate_runs(
    c: &Chars,
    pieces: &[usize],
    single: bool,
    keep: impl Fn(char, u8) -> bool,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut lo = 0;
    for &hi in pieces {
        let mut pos = lo;
        while pos < hi {
            let start = pos;
            if keep(c.chars[pos], c.class[pos]) {
                pos += 1;
                while !single && pos < hi && keep(c.chars[pos], c.class[pos]) {
                    pos += 1;
                }
            } else {
                while pos < hi && !keep(c.chars[pos], c.class[pos]) {
                    pos += 1;
                }
            }
            debug_assert!(pos > start);
            out.push(pos);
        }
        lo = hi;
    }
    out
}

/// `[0-9][0-9][0-9]`: non-overlapping ASCII digit triples, left to right, cut out of each piece.
fn isolate_digit_triples(c: &Chars, pieces: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len());
    let mut lo = 0;
    for &hi in pieces {
        let mut pending = lo;
        let mut pos = lo;
        while pos + 3 <= hi {
            if c.chars[pos..pos + 3].iter().all(|d| d.is_ascii_digit()) {
                if pos > pending {
                    out.push(pos);
                }
                pos += 3;
                out.push(pos);
                pending = pos;
            } else {
                pos += 1;
            }
        }
        if hi > pending {
            out.push(hi);
        }
        lo = hi;
    }
    out
}

fn per_piece(c: &Chars, pieces: &[usize], f: impl Fn(&Piece, &mut Vec<usize>)) -> Vec<usize> {
    let mut out = Vec::with_capacity(pieces.len() + c.chars.len() / 4);
    let mut lo = 0;
    for &hi in pieces {
        f(&Piece { c, lo, hi }, &mut out);
        lo = hi;
    }
    out
}

/// Splits `text` into words; `out` receives their byte ranges, in order, covering the text.
pub fn split_words(pre: Pre, text: &str, out: &mut Vec<Range<usize>>) {
    out.clear();
    if text.is_empty() {
        return;
    }
    let c = Chars::new(text);
    let whole = [c.chars.len()];
    let ends = match pre {
        Pre::Gpt2 => per_piece(&c, &whole, split_gpt2),
        Pre::Llama3 => per_piece(&c, &whole, |p, o| split_llama3(p, 3, o)),
        Pre::Qwen2 => per_piece(&c, &whole, |p, o| split_llama3(p, 1, o)),
        Pre::Smollm => {
            let digits = isolate_runs(&c, &whole, true, |_, cls| cls & NUMBER != 0);
            per_piece(&c, &digits, split_gpt2)
        }
        Pre::Default => {
            // `[\p{P}\$\+<=>\^~\|]+`, the GPT-2 pattern, `\p{N}+`, `[0-9][0-9][0-9]`.
            let punct = isolate_runs(&c, &whole, false, |ch, cls| {
                cls & PUNCT != 0 && cls & SPACE == 0
                    || matches!(ch, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|')
            });
            let words = per_piece(&c, &punct, split_gpt2);
            let numbers = isolate_runs(&c, &words, false, |_, cls| cls & NUMBER != 0);
            isolate_digit_triples(&c, &numbers)
        }
    };
    let mut lo = 0;
    for hi in ends {
        out.push(c.byte[lo]..c.byte[hi]);
        lo = hi;
    }
    debug_assert_eq!(lo, c.chars.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: Pre, text: &str) -> Vec<&str> {
        let mut r = Vec::new();
        split_words(pre, text, &mut r);
        r.into_iter().map(|r| &text[r]).collect()
    }

    // Expected splits below are what the published patterns give with Python's `regex` module
    // (each pattern applied in turn, matches and the text between them both kept, as
    // llama.cpp does), not outputs of this code.
    #[test]
    fn gpt2_pattern() {
        assert_eq!(
            words(Pre::Gpt2, "Hello world's  end\t\tx 123!!"),
            ["Hello", " world", "'s", " ", " end", "\t", "\t", "x", " 123", "!!"]
        );
        assert_eq!(words(Pre::Gpt2, "a   "), ["a", "   "]);
        assert_eq!(words(Pre::Gpt2, "I'M"), ["I", "'", "M"]);
    }

    #[test]
    fn llama3_pattern() {
        assert_eq!(
            words(Pre::Llama3, "I'M 12345 ,x\n\n  y"),
            ["I", "'M", " ", "123", "45", " ,", "x", "\n\n", " ", " y"]
        );
        assert_eq!(words(Pre::Qwen2, "12 ab"), ["1", "2", " ab"]);
    }

    #[test]
    fn smollm_and_default() {
        assert_eq!(words(Pre::Smollm, "ab 12c"), ["ab", " ", "1", "2", "c"]);
        assert_eq!(
            words(Pre::Default, "x 1234567 a+=b"),
            ["x", " ", "123", "456", "7", " a", "+=", "b"]
        );
    }
}
