//! The tokenizer of the trace language.
//!
//! A word-level vocabulary chosen for short sequences: every fixed phrase of
//! the grammar is one token (`Current State: `, `, Resulting Numbers: `,
//! `<Calling Sub Searches>` ...), numbers are split into chunks of at most
//! three digits from the left (every digit string of length 1 to 3 is a token,
//! so all numbers below 1000 are one token), `\n` and every other printable
//! ASCII character are tokens, and anything else is `<unk>`. No token crosses a
//! line end, so token counts add up line by line.
//!
//! The same vocabulary exists twice: as a Hugging Face `tokenizers`
//! tokenizer (WordLevel model, a regex `Split` pre-tokenizer, a `Fuse`
//! decoder), saved as a standard `tokenizer.json`, and as a hand-written
//! lexer ([`TraceTokenizer`]) that gives the same ids tens of times faster.
//! Tests check that both agree.

use crate::error::{Error, Result};
use crate::line::{Conditioning, Line, LineRef, Trace};
use crate::render::Sink;

/// Padding token id.
pub const PAD_ID: u32 = 0;
/// Begin-of-sequence token id.
pub const BOS_ID: u32 = 1;
/// End-of-sequence token id.
pub const EOS_ID: u32 = 2;
/// Unknown-character token id.
pub const UNK_ID: u32 = 3;
/// Special tokens, in id order.
pub const SPECIAL_TOKENS: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

/// Fixed phrases, one token each, in matching priority (a phrase comes
/// before any phrase that is a prefix of it).
pub const PHRASES: [&str; 33] = [
    "Current State: ",
    ", Operations: ",
    "Exploring Operation: ",
    ", Resulting Numbers: ",
    "Generated Node #",
    " from Operation: ",
    " Operation: ",
    "Moving to Node #",
    " equal: Goal Reached",
    " unequal: No Solution",
    "No solution found in sub search",
    "No solution found.",
    "Start Sub Search at level ",
    ": Moving to Node #",
    "Exit Sub Search at level ",
    "<Calling Sub Searches>",
    "<Start Sub Search ",
    "> Moving to Node #",
    "<End Calling Sub Searches>",
    "<Sub Searches>",
    "<Goal Reached in Sub Search ",
    "<No Solution in Sub Search ",
    " at level ",
    " at Node #",
    "<End Sub Searches>",
    "Sub Call Budget: ",
    "Token Budget: ",
    "', '",
    "['",
    "']",
    "[]",
    ", ",
    ": ",
];

const PHRASE_BASE: u32 = SPECIAL_TOKENS.len() as u32;
const DIGIT_BASE: u32 = PHRASE_BASE + PHRASES.len() as u32;
/// Ids of digit strings: length 1 at +0, length 2 at +10, length 3 at +110.
const DIGIT_OFFSETS: [u32; 4] = [0, 0, 10, 110];
const NEWLINE_ID: u32 = DIGIT_BASE + 1110;
const CHAR_BASE: u32 = NEWLINE_ID + 1;

/// The printable ASCII characters other than digits that have a token.
fn single_chars() -> impl Iterator<Item = u8> {
    (0x20u8..0x7f).filter(|c| !c.is_ascii_digit())
}

/// Size of the vocabulary.
pub const VOCAB_SIZE: u32 = CHAR_BASE + 85;

/// The fast native tokenizer of the trace language.
#[derive(Clone, Debug)]
pub struct TraceTokenizer {
    /// Token strings by id.
    vocab: Vec<String>,
    /// For each first byte, the phrases starting with it (index into PHRASES).
    by_first: [Vec<u8>; 256],
    /// Token id of each single ASCII character (0 where there is none).
    char_ids: [u32; 128],
}

impl Default for TraceTokenizer {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`Sink`] that writes nothing and counts the tokens the renderer
/// reports.
struct TokenCounter(usize);

impl Sink for TokenCounter {
    #[inline(always)]
    fn put(&mut self, _s: &str) {}
    #[inline(always)]
    fn put_ascii(&mut self, _b: u8) {}
    #[inline(always)]
    fn newline(&mut self) {}
    #[inline(always)]
    fn put_small(&mut self, _n: u16) {}
    #[inline(always)]
    fn tokens(&mut self, n: usize) {
        self.0 += n;
    }
}

impl TraceTokenizer {
    /// Builds the vocabulary.
    pub fn new() -> TraceTokenizer {
        let mut vocab: Vec<String> = SPECIAL_TOKENS.iter().map(|s| s.to_string()).collect();
        vocab.extend(PHRASES.iter().map(|s| s.to_string()));
        for len in 1..=3u32 {
            for v in 0..10u32.pow(len) {
                vocab.push(format!("{v:0width$}", width = len as usize));
            }
        }
        vocab.push("\n".to_string());
        let mut char_ids = [0u32; 128];
        for c in single_chars() {
            char_ids[c as usize] = vocab.len() as u32;
            vocab.push((c as char).to_string());
        }
        debug_assert_eq!(vocab.len() as u32, VOCAB_SIZE);
        let mut by_first: [Vec<u8>; 256] = std::array::from_fn(|_| Vec::new());
        for (i, p) in PHRASES.iter().enumerate() {
            by_first[p.as_bytes()[0] as usize].push(i as u8);
        }
        TraceTokenizer {
            vocab,
            by_first,
            char_ids,
        }
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The token string of an id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize).map(String::as_str)
    }

    /// Lexes `text`, calling `emit` with each token id; the core of
    /// [`encode`](Self::encode) and [`count`](Self::count).
    fn lex(&self, text: &str, mut emit: impl FnMut(u32)) {
        let b = text.as_bytes();
        let mut p = 0;
        'outer: while p < b.len() {
            let c = b[p];
            for &i in &self.by_first[c as usize] {
                let ph = PHRASES[i as usize].as_bytes();
                if b[p..].starts_with(ph) {
                    emit(PHRASE_BASE + u32::from(i));
                    p += ph.len();
                    continue 'outer;
                }
            }
            if c.is_ascii_digit() {
                let mut len = 1;
                let mut v = u32::from(c - b'0');
                while len < 3 && p + len < b.len() && b[p + len].is_ascii_digit() {
                    v = v * 10 + u32::from(b[p + len] - b'0');
                    len += 1;
                }
                emit(DIGIT_BASE + DIGIT_OFFSETS[len] + v);
                p += len;
            } else if c == b'\n' {
                emit(NEWLINE_ID);
                p += 1;
            } else if c < 128 {
                let id = self.char_ids[c as usize];
                emit(if id == 0 { UNK_ID } else { id });
                p += 1;
            } else {
                emit(UNK_ID);
                // Skip the rest of this UTF-8 scalar: one <unk> per character.
                p += 1;
                while p < b.len() && (b[p] & 0xC0) == 0x80 {
                    p += 1;
                }
            }
        }
    }

    /// Token ids of `text` (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut v = Vec::with_capacity(text.len() / 3 + 1);
        self.lex(text, |id| v.push(id));
        v
    }

    /// The ids a model is fed for one call: `<s>`, the conditioning
    /// prefix when given, then `text` (no `</s>`).
    pub fn call_ids(&self, prefix: Option<Conditioning>, text: &str) -> Vec<u32> {
        let mut s = String::new();
        if let Some(c) = prefix {
            crate::render::push_conditioning(&mut s, c);
        }
        s.push_str(text);
        let mut ids = Vec::with_capacity(s.len() / 3 + 2);
        ids.push(BOS_ID);
        self.lex(&s, |id| ids.push(id));
        ids
    }

    /// Number of tokens of `text` (no BOS/EOS).
    pub fn count(&self, text: &str) -> usize {
        let mut n = 0;
        self.lex(text, |_| n += 1);
        n
    }

    /// The text of token ids; special tokens are skipped, unknown ids too.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut s = String::with_capacity(ids.len() * 3);
        for &id in ids {
            if id >= PHRASE_BASE {
                if let Some(t) = self.vocab.get(id as usize) {
                    s.push_str(t);
                }
            }
        }
        s
    }

    /// Number of tokens of one line's text and its `\n`, computed from the
    /// typed line without rendering it (equal to `count(render(line))`).
    pub fn count_line(line: &Line) -> usize {
        Self::count_line_ref(line.as_ref())
    }

    /// [`count_line`](Self::count_line) of a borrowed line. The renderer
    /// counts the tokens of each piece as it writes it; this runs it into a
    /// sink that only counts, so counting and rendering cannot disagree
    /// ([`LineWriter::line`](crate::render::LineWriter::line) returns the same
    /// count while it writes the text).
    pub fn count_line_ref(line: LineRef<'_>) -> usize {
        let mut c = TokenCounter(0);
        crate::render::push_line_ref(&mut c, line);
        c.0
    }

    /// Number of tokens of a conditioning prefix (trailing space included).
    pub fn count_conditioning(c: Conditioning) -> usize {
        let mut t = TokenCounter(0);
        crate::render::push_conditioning(&mut t, c);
        t.0
    }

    /// Number of tokens of a typed call (no BOS/EOS), without rendering it.
    pub fn count_trace(trace: &Trace) -> usize {
        trace.prefix.map_or(0, Self::count_conditioning)
            + trace.lines.iter().map(Self::count_line).sum::<usize>()
    }

    /// The regex of the Hugging Face pre-tokenizer that isolates the same
    /// pieces as the native lexer.
    pub fn split_pattern() -> String {
        let mut alts: Vec<String> = PHRASES.iter().map(|p| regex_escape(p)).collect();
        alts.push("[0-9]{1,3}".into());
        alts.push("\\n".into());
        alts.push(".".into());
        alts.join("|")
    }

    /// The equivalent Hugging Face tokenizer, built with the `tokenizers` crate.
    pub fn to_hf(&self) -> Result<tokenizers::Tokenizer> {
        use tokenizers::decoders::fuse::Fuse;
        use tokenizers::models::wordlevel::WordLevel;
        use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
        use tokenizers::{AddedToken, SplitDelimiterBehavior};
        let err = |e: tokenizers::Error| Error::Tokenizer(e.to_string());
        let vocab = self
            .vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token(SPECIAL_TOKENS[UNK_ID as usize].to_string())
            .build()
            .map_err(err)?;
        let mut tok = tokenizers::Tokenizer::new(model);
        let split = Split::new(
            SplitPattern::Regex(Self::split_pattern()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(err)?;
        tok.with_pre_tokenizer(Some(split));
        tok.with_decoder(Some(Fuse::new()));
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|s| AddedToken::from(s.to_string(), true))
            .collect();
        tok.add_special_tokens(&specials);
        Ok(tok)
    }

    /// The `tokenizer.json` text of the equivalent Hugging Face tokenizer.
    pub fn to_hf_json(&self) -> Result<String> {
        self.to_hf()?
            .to_string(true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Loads a `tokenizer.json` with the `tokenizers` crate.
pub fn load_hf(path: &std::path::Path) -> Result<tokenizers::Tokenizer> {
    tokenizers::Tokenizer::from_file(path)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_line_by_hand() {
        let t = TraceTokenizer::new();
        let ids = t.encode("Current State: 70:[98, 3], Operations: ['98-65=33']\n");
        let toks: Vec<&str> = ids.iter().map(|&i| t.token(i).unwrap()).collect();
        assert_eq!(
            toks,
            [
                "Current State: ",
                "70",
                ":",
                "[",
                "98",
                ", ",
                "3",
                "]",
                ", Operations: ",
                "['",
                "98",
                "-",
                "65",
                "=",
                "33",
                "']",
                "\n"
            ]
        );
        assert_eq!(t.vocab_size(), VOCAB_SIZE as usize);
    }

    #[test]
    fn long_numbers_split_in_threes_from_the_left() {
        let t = TraceTokenizer::new();
        let toks: Vec<String> = t
            .encode("1234567,0070")
            .iter()
            .map(|&i| t.token(i).unwrap().to_string())
            .collect();
        assert_eq!(toks, ["123", "456", "7", ",", "007", "0"]);
    }

    #[test]
    fn unknown_characters() {
        let t = TraceTokenizer::new();
        assert_eq!(t.encode("é\t"), [UNK_ID, UNK_ID]);
        assert_eq!(
            t.decode(&t.encode("Moving to Node #0,1\n")),
            "Moving to Node #0,1\n"
        );
    }

    #[test]
    fn hf_tokenizer_agrees_with_native() {
        let t = TraceTokenizer::new();
        let hf = t.to_hf().unwrap();
        for text in [
            "Sub Call Budget: 6 Moving to Node #0\nCurrent State: 70:[98, 3, 34, 65], Operations: []\n",
            "<Start Sub Search 10 at level 1> Moving to Node #0,10\n1234,70 unequal: No Solution\n",
            "Generated Node #2: [34, 65, 101] from Operation: 98+3=101\nx y é!\n",
        ] {
            let enc = hf.encode(text, false).unwrap();
            assert_eq!(enc.get_ids(), t.encode(text).as_slice(), "{text:?}");
            assert_eq!(hf.decode(enc.get_ids(), true).unwrap(), text.replace('é', ""));
        }
    }
}
