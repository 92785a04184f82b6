//! A fast JSON writer for the records, byte for byte what `serde_json`
//! writes for them (tested), several times faster on the long trace strings
//! that dominate them: the escaper skips 8 bytes at a time where nothing
//! needs escaping.

use crate::log::{SearchLog, ThreadLog};
use crate::record::{ProblemRecord, TraceRecord};
use apr_trace::TraceDict;
use std::cell::{Cell, RefCell};

const HEX: &[u8; 16] = b"0123456789abcdef";
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit (if any) marks the first byte of `w` (little
/// endian) that is below 0x20, `"` or `\\`. Borrows only run upwards, so the
/// lowest flag is exact; bytes >= 0x80 are never flagged.
#[inline]
fn escape_mask(w: u64) -> u64 {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (below_space | quote | backslash) & HIGHS
}

/// The escape of byte `c`, `None` if it needs none; `Some(b"")` stands for
/// the `\u00XX` form.
#[inline]
fn escape_of(c: u8) -> Option<&'static [u8]> {
    match c {
        b'"' => Some(b"\\\""),
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'\t' => Some(b"\\t"),
        0x08 => Some(b"\\b"),
        0x0c => Some(b"\\f"),
        0..=0x1f => Some(b""),
        _ => None,
    }
}

/// Appends `s` as a JSON string, escaped as `serde_json` escapes it.
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    out.reserve(b.len() + b.len() / 16 + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    let escape_at = |out: &mut Vec<u8>, j: usize, start: &mut usize| {
        let c = b[j];
        if let Some(esc) = escape_of(c) {
            out.extend_from_slice(&b[*start..j]);
            if esc.is_empty() {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 0xf) as usize]);
            } else {
                out.extend_from_slice(esc);
            }
            *start = j + 1;
        }
    };
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let m = escape_mask(w);
        if m == 0 {
            i += 8;
            continue;
        }
        let j = i + (m.trailing_zeros() / 8) as usize;
        escape_at(out, j, &mut start);
        i = j + 1;
    }
    while i < b.len() {
        escape_at(out, i, &mut start);
        i += 1;
    }
    out.extend_from_slice(&b[start..]);
    out.push(b'"');
}

fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_f64(out: &mut Vec<u8>, x: f64) {
    // serde_json writes finite floats with ryu and non-finite ones as null.
    serde_json::to_writer(&mut *out, &x).expect("writing to a Vec cannot fail");
}

fn key(out: &mut Vec<u8>, k: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn push_list<T>(out: &mut Vec<u8>, v: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f(out, x);
    }
    out.push(b']');
}

fn push_dict(out: &mut Vec<u8>, d: &TraceDict) {
    out.extend_from_slice(b"{\"main_calls\":");
    push_list(out, &d.main_calls, |o, s| push_str(o, s));
    out.extend_from_slice(b",\"sub_calls\":");
    push_list(out, &d.sub_calls, |o, round| push_list(o, round, push_dict));
    out.push(b'}');
}

fn push_problem_fields(
    out: &mut Vec<u8>,
    nums: &[u64],
    target: u64,
    solution: &[String],
    optimal_path: &str,
    start_size: usize,
) {
    out.extend_from_slice(b"{\"nums\":");
    push_list(out, nums, |o, n| push_u64(o, *n));
    key(out, "target");
    push_u64(out, target);
    key(out, "solution");
    push_list(out, solution, |o, s| push_str(o, s));
    key(out, "optimal_path");
    push_str(out, optimal_path);
    key(out, "start_size");
    push_u64(out, start_size as u64);
}

impl ProblemRecord {
    /// Appends the record as one JSON line (with `\n`), as `serde_json` writes it.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        push_problem_fields(
            out,
            &self.nums,
            self.target,
            &self.solution,
            &self.optimal_path,
            self.start_size,
        );
        out.extend_from_slice(b"}\n");
    }
}

/// Something that appends a JSON value.
type Writer<'a> = dyn FnMut(&mut Vec<u8>) + 'a;

impl TraceRecord {
    /// Appends the record as one JSON line (with `\n`), as `serde_json` writes it.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        let mut dict = self
            .trace_dict
            .as_ref()
            .map(|d| move |o: &mut Vec<u8>| push_dict(o, d));
        self.write_json_head(
            out,
            &mut |o| push_str(o, &self.search_path),
            dict.as_mut().map(|f| f as &mut Writer<'_>),
        );
        self.write_json_tail(out);
    }

    /// Appends the fields up to `trace_dict` (included), with `search_path`
    /// and `trace_dict` written by the callbacks.
    pub(crate) fn write_json_head(
        &self,
        out: &mut Vec<u8>,
        search_path: &mut Writer<'_>,
        trace_dict: Option<&mut Writer<'_>>,
    ) {
        push_problem_fields(
            out,
            &self.nums,
            self.target,
            &self.solution,
            &self.optimal_path,
            self.start_size,
        );
        key(out, "search_path");
        search_path(out);
        key(out, "rating");
        push_f64(out, self.rating);
        key(out, "search_type");
        push_str(out, &self.search_type);
        if let Some(h) = &self.heuristic {
            key(out, "heuristic");
            push_str(out, h);
        }
        if let Some(p) = self.promising_threshold {
            key(out, "promising_threshold");
            push_f64(out, p);
        }
        key(out, "beam_size");
        push_u64(out, self.beam_size as u64);
        if let Some(b) = self.sub_call_beam_size {
            key(out, "sub_call_beam_size");
            push_u64(out, b as u64);
        }
        if let Some(d) = trace_dict {
            key(out, "trace_dict");
            d(out);
        }
    }

    /// Appends the token-count fields and the end of the line (what follows
    /// [`write_json_head`](Self::write_json_head)).
    pub(crate) fn write_json_tail(&self, out: &mut Vec<u8>) {
        let ints = [
            ("token_count", self.token_count),
            ("longest_seq_token_count", self.longest_seq_token_count),
        ];
        for (k, v) in ints {
            if let Some(v) = v {
                key(out, k);
                push_u64(out, v as u64);
            }
        }
        let floats = [
            ("avg_seq_token_count", self.avg_seq_token_count),
            ("avg_sub_seq_token_count", self.avg_sub_seq_token_count),
            ("sub_call_count", self.sub_call_count),
        ];
        for (k, v) in floats {
            if let Some(v) = v {
                key(out, k);
                push_f64(out, v);
            }
        }
        let ints = [
            ("sequential_token_count", self.sequential_token_count),
            ("child_thread_count", self.child_thread_count),
        ];
        for (k, v) in ints {
            if let Some(v) = v {
                key(out, k);
                push_u64(out, v as u64);
            }
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Appends the JSON line of a solver's log: `skeleton` holds every field
/// but `search_path`, `trace_dict` and the token counts. The calls are
/// rendered here into the output (JSON-escaped as they are written), the
/// root's last call once, and their tokens are counted from the same lines
/// as they are rendered.
pub(crate) fn write_log_record(
    mut skeleton: TraceRecord,
    log: &SearchLog,
    with_dict: bool,
    out: &mut Vec<u8>,
) {
    let calls = &log.root.calls;
    let last = calls.last().map_or(&[][..], Vec::as_slice);
    let before_last = match calls.len() {
        0 | 1 => &[][..],
        n => calls[n - 2].as_slice(),
    };
    let span = Cell::new((0, 0));
    let last_counts = Cell::new((0, 0));
    // Each rendered call's (tokens, tokens shared with the thread's
    // previous call), in the order the accounting visits them.
    let counts = RefCell::new(Vec::new());
    let mut search_path = |o: &mut Vec<u8>| {
        o.push(b'"');
        let start = o.len();
        last_counts.set(log.push_call_json(last, before_last, o));
        span.set((start, o.len()));
        o.push(b'"');
    };
    let mut dict = |o: &mut Vec<u8>| {
        let last = Some((span.get(), last_counts.get()));
        push_log_thread(o, log, &log.root, last, &mut counts.borrow_mut());
    };
    skeleton.write_json_head(
        out,
        &mut search_path,
        if with_dict { Some(&mut dict) } else { None },
    );
    let stats = if with_dict {
        log.stats_from_counts(&counts.into_inner())
    } else if calls.len() == 1 && log.root.children.is_empty() {
        log.stats_from_counts(&[last_counts.get()])
    } else {
        log.token_stats()
    };
    skeleton.set_tokens(&stats);
    skeleton.write_json_tail(out);
}

/// `{"main_calls":[...],"sub_calls":[[...]]}` of a thread log, appending
/// each call's token counts to `counts`; `last` is where the root's last
/// call already stands in `out`, and its counts.
fn push_log_thread(
    out: &mut Vec<u8>,
    log: &SearchLog,
    t: &ThreadLog,
    last: Option<((usize, usize), (usize, usize))>,
    counts: &mut Vec<(usize, usize)>,
) {
    out.extend_from_slice(b"{\"main_calls\":[");
    let mut prev: &[crate::log::Event] = &[];
    for (i, call) in t.calls.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        match last {
            Some(((s, e), c)) if i + 1 == t.calls.len() => {
                out.extend_from_within(s..e);
                counts.push(c);
            }
            _ => counts.push(log.push_call_json(call, prev, out)),
        }
        out.push(b'"');
        prev = call;
    }
    out.extend_from_slice(b"],\"sub_calls\":");
    push_list(out, &t.children, |o, round| {
        push_list(o, round, |o, c| push_log_thread(o, log, c, None, counts))
    });
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_str(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "",
            "abc",
            "Moving to Node #0\nCurrent State: 70:[98, 3], Operations: ['98-65=33']\n",
            "q\"uote\\back\tslash\r\u{8}\u{c}\u{1}\u{1f}\u{7f}é漢字\n",
            "12345678\"2345678\n",
            "\"\"\"\"\"\"\"\"\"",
        ] {
            let mut v = Vec::new();
            push_str(&mut v, s);
            assert_eq!(String::from_utf8(v).unwrap(), serde_str(s), "{s:?}");
        }
        // Every single byte value, at every offset within a word.
        for c in 0u8..0x80 {
            for pad in 0..9 {
                let s = format!("{}{}tail", "x".repeat(pad), c as char);
                let mut v = Vec::new();
                push_str(&mut v, &s);
                assert_eq!(String::from_utf8(v).unwrap(), serde_str(&s));
            }
        }
    }
}
