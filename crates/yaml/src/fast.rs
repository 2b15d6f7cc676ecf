//! A fast scanner for the plain block YAML that almost every manifest is written in.
//!
//! General YAML parsers spend most of their time on generality; on this machine a 300-line
//! manifest takes saphyr-parser about 100 µs. Real manifests use a small subset: block
//! mappings and sequences, single-line plain or quoted scalars, comments. This module scans
//! exactly that subset and makes the same builder calls, with the same positions, that
//! saphyr-parser's events would (without making the events); the tree builder is shared. At
//! the first thing outside the subset (anchors, tags, flow collections, block scalars,
//! multi-line scalars, tabs, non-ASCII text, several documents, anything odd) it gives up and
//! the caller parses with saphyr-parser instead, so the subset only has to be right, never
//! complete. A differential property test checks that whenever this module answers, it builds
//! the same tree as saphyr-parser's events.

use std::borrow::Cow;

use compact_str::CompactString;
use saphyr_parser::Event;

use crate::{Builder, Document, Pos, Value, resolve_plain};

/// Scans `text` as plain block YAML into `builder`. `None` means "not in the subset (or the
/// builder refused something)": parse it the general way, which also reports any error.
pub(crate) fn parse(text: &str, builder: Builder) -> Option<Document> {
    // Tabs, carriage returns and control characters (which YAML refuses) go to saphyr.
    // No early exit, so the compiler can vectorize the scan.
    let odd = text.bytes().fold(false, |odd, b| {
        odd | ((b < b' ') & (b != b'\n')) | (b >= 0x7f)
    });
    if odd {
        return None;
    }
    let max_depth = builder.max_depth();
    let mut s = Scanner {
        text,
        raw: None,
        next: 0,
        line: 0,
        marker: false,
        builder,
        max_depth,
    };
    s.load(0);
    s.skip_insignificant();
    // Document markers (`---`, `...`, with or without content after them) are saphyr's,
    // except a lone `---` opening the only document. Lines before it are blank or comments,
    // never markers.
    let explicit = match s.current() {
        Some((0, "---")) => {
            s.marker = false;
            s.advance();
            s.skip_insignificant();
            true
        }
        _ => false,
    };
    let (indent, _) = s.current()?;
    if indent != 0 {
        return None;
    }
    s.builder
        .event(Event::DocumentStart(explicit), Pos { line: 1, column: 1 })
        .ok()?;
    s.block(0, 0)?;
    // Anything after the root node (another document, a stray dedent) is for saphyr. Having
    // reached the end, the scanner has seen every line, so `marker` covers them all.
    if s.current().is_some() || s.marker {
        return None;
    }
    s.builder.finish().ok()
}

struct Scanner<'a> {
    text: &'a str,
    /// The current line, without its line break; `None` past the end.
    raw: Option<&'a str>,
    /// Where the line after the current one starts in `text` (past the end when none does).
    next: usize,
    /// Index of the current line.
    line: usize,
    /// Whether a line seen so far is a document marker.
    marker: bool,
    builder: Builder,
    max_depth: usize,
}

/// Characters that may not start a plain scalar or a key (YAML's indicators), apart from `-`,
/// which is handled where it matters.
const INDICATORS: [bool; 256] = table(b"?:,[]{}#&*!|>'\"%@`");

/// Characters that end or refuse a key: `:` (the end when a space or the line end follows),
/// `#` (refused after a space) and those the fast path does not accept inside a key.
const KEY_STOPS: [bool; 256] = table(b":#[]{},'\"&*!|>%@`");

/// Characters that may end a plain value (` #`) or refuse it (`: `).
const VALUE_STOPS: [bool; 256] = table(b"#:");

const fn table(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

impl<'a> Scanner<'a> {
    /// Makes the line starting at byte `start` of the text the current one.
    fn load(&mut self, start: usize) {
        let rest = &self.text[start..];
        let (raw, next) = match line_end(rest.as_bytes()) {
            Some(i) => (&rest[..i], start + i + 1),
            None => (rest, self.text.len() + 1),
        };
        self.marker |= (raw.starts_with("---") || raw.starts_with("..."))
            && matches!(raw.as_bytes().get(3), None | Some(b' '));
        self.raw = Some(raw);
        self.next = next;
    }

    /// Moves to the next line.
    fn advance(&mut self) {
        self.line += 1;
        if self.next <= self.text.len() {
            self.load(self.next);
        } else {
            self.raw = None;
        }
    }

    /// The current line as (indent, content after the indent), if any is left.
    fn current(&self) -> Option<(usize, &'a str)> {
        let raw = self.raw?;
        let content = skip_spaces(raw);
        Some((raw.len() - content.len(), content))
    }

    /// Moves past blank lines and comment lines.
    fn skip_insignificant(&mut self) {
        while let Some((_, content)) = self.current() {
            if content.is_empty() || content.starts_with('#') {
                self.advance();
            } else {
                break;
            }
        }
    }

    /// A scalar for the builder; `plain` ones are resolved by the core schema.
    fn scalar(&mut self, text: &str, plain: bool, pos: Pos) -> Option<()> {
        let value = if plain {
            resolve_plain(text)
        } else {
            Value::Str(CompactString::from(text))
        };
        self.builder.scalar(value, pos, 0).ok()
    }

    fn pos(&self, column: usize) -> Pos {
        Pos {
            line: self.line as u32 + 1,
            column: column as u32 + 1,
        }
    }

    /// A block node whose first line starts at column `col` of the current line (the content
    /// there may follow a `- ` on the same line).
    fn block(&mut self, col: usize, depth: usize) -> Option<()> {
        if depth >= self.max_depth {
            return None;
        }
        let content = self.raw?.get(col..)?;
        if content == "-" || content.starts_with("- ") {
            self.sequence(col, depth, false)
        } else if let Some(first) = split_key(content) {
            self.mapping(col, depth, first)
        } else {
            None
        }
    }

    /// A block mapping whose keys sit at column `indent`; the first key is on the current line
    /// at that column (possibly after a `- `), already split by the caller into key and rest.
    fn mapping(&mut self, indent: usize, depth: usize, first: (&'a str, &'a str)) -> Option<()> {
        self.builder.start_map(self.pos(indent), 0).ok()?;
        let mut first = Some(first);
        loop {
            let (key, rest) = match first.take() {
                Some(split) => split,
                None => {
                    self.skip_insignificant();
                    match self.current() {
                        Some((i, c)) if i == indent => split_key(c)?,
                        Some((i, _)) if i > indent => return None,
                        _ => break,
                    }
                }
            };
            self.scalar(key, true, self.pos(indent))?;
            let colon = indent + key.len();
            let value_col = colon + 1 + (rest.len() - skip_spaces(rest).len());
            let value = skip_spaces(rest);
            if value.is_empty() {
                // saphyr-parser places an empty value at the colon.
                let at = self.pos(colon);
                self.advance();
                self.skip_insignificant();
                match self.current() {
                    Some((i, _)) if i > indent => self.block(i, depth + 1)?,
                    Some((i, c)) if i == indent && (c == "-" || c.starts_with("- ")) => {
                        self.sequence(indent, depth + 1, true)?;
                    }
                    _ => self.null_at(at)?,
                }
            } else {
                self.inline(value, value_col)?;
                self.advance();
            }
        }
        self.builder.end(Pos::default()).ok()
    }

    /// A block sequence whose dashes sit at column `indent`; the first dash is on the current
    /// line. `indentless` is set for a sequence at the same indent as its parent key, whose
    /// start saphyr-parser places at its first item's content.
    fn sequence(&mut self, indent: usize, depth: usize, indentless: bool) -> Option<()> {
        // saphyr-parser places an indentless sequence at its first item's content.
        let start = if indentless {
            let line = self.raw?;
            let value = skip_spaces(&line[indent + 1..]);
            if value.is_empty() {
                return None;
            }
            self.pos(line.len() - value.len())
        } else {
            self.pos(indent)
        };
        self.builder.start_seq(start, 0).ok()?;
        let mut first = true;
        loop {
            if !first {
                self.skip_insignificant();
                match self.current() {
                    Some((i, c)) if i == indent && (c == "-" || c.starts_with("- ")) => {}
                    Some((i, _)) if i > indent => return None,
                    // Only an indentless sequence may be followed by a sibling at its indent
                    // (the parent mapping's next key).
                    Some((i, _)) if i == indent && !indentless => return None,
                    _ => break,
                }
            }
            let line = self.raw?;
            let after_dash = &line[indent + 1..];
            let value = skip_spaces(after_dash);
            let value_col = line.len() - value.len();
            first = false;
            if value.is_empty() {
                let at = self.pos(value_col);
                self.advance();
                self.skip_insignificant();
                match self.current() {
                    Some((i, _)) if i > indent => self.block(i, depth + 1)?,
                    _ => self.null_at(at)?,
                }
            } else if value == "-" || value.starts_with("- ") || value.starts_with('#') {
                return None;
            } else if let Some(first) = split_key(value) {
                self.mapping(value_col, depth + 1, first)?;
            } else {
                self.inline(value, value_col)?;
                self.advance();
            }
        }
        self.builder.end(Pos::default()).ok()
    }

    fn null_at(&mut self, pos: Pos) -> Option<()> {
        self.scalar("", true, pos)
    }

    /// A single-line scalar value starting at column `col` of the current line, followed by
    /// nothing but an optional comment.
    fn inline(&mut self, value: &'a str, col: usize) -> Option<()> {
        let pos = self.pos(col);
        let (text, plain, rest) = match value.as_bytes()[0] {
            b'\'' => {
                let (text, rest) = single_quoted(&value[1..])?;
                (text, false, rest)
            }
            b'"' => {
                let (text, rest) = double_quoted(&value[1..])?;
                (text, false, rest)
            }
            b'-' if value.len() == 1 || value.as_bytes()[1] == b' ' => return None,
            c if INDICATORS[c as usize] => return None,
            _ => {
                // One pass: the scalar ends at ` #`; `: ` inside it, or a final `:`, would
                // make it a key, which is not a value's place.
                let bytes = value.as_bytes();
                let mut end = bytes.len();
                for i in 1..bytes.len() {
                    if !VALUE_STOPS[bytes[i] as usize] {
                        continue;
                    }
                    match bytes[i] {
                        b'#' if bytes[i - 1] == b' ' => {
                            end = i - 1;
                            break;
                        }
                        b':' if bytes.get(i + 1) == Some(&b' ') => return None,
                        _ => {}
                    }
                }
                // The text is ASCII without tabs or line breaks: only spaces are trimmed.
                let text = value[..end].trim_ascii_end();
                if text.ends_with(':') {
                    return None;
                }
                (Cow::Borrowed(text), true, "")
            }
        };
        // After the scalar: nothing, or white space and a comment.
        let trimmed = skip_spaces(rest);
        let comment = trimmed.starts_with('#') && trimmed.len() < rest.len();
        if !(trimmed.is_empty() || comment) {
            return None;
        }
        self.scalar(&text, plain, pos)
    }
}

/// Splits `key: rest` (or `key:` at the end of the line) when `key` is a simple plain key.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let first = *content.as_bytes().first()?;
    if INDICATORS[first as usize]
        || (first == b'-' && matches!(content.as_bytes().get(1), None | Some(b' ')))
    {
        return None;
    }
    // One pass up to the first `:` followed by a space or the end of the line; a character
    // the fast path does not take in keys, or ` #`, before it sends the line to saphyr.
    let bytes = content.as_bytes();
    let mut colon = None;
    for (i, &b) in bytes.iter().enumerate() {
        if !KEY_STOPS[b as usize] {
            continue;
        }
        match b {
            b':' if matches!(bytes.get(i + 1), None | Some(b' ')) => {
                colon = Some(i);
                break;
            }
            b':' => {}
            b'#' if i == 0 || bytes[i - 1] != b' ' => {}
            _ => return None,
        }
    }
    let colon = colon?;
    let key = &content[..colon];
    if key.ends_with(' ') || key == "<<" || key.len() > 512 {
        return None;
    }
    Some((key, &content[colon + 1..]))
}

/// The body of a single-quoted scalar that closes on this line: the text and what follows.
fn single_quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if let Some((_, '\'')) = chars.peek() {
                chars.next();
                out.push('\'');
                continue;
            }
            return Some((Cow::Owned(out), &s[i + 1..]));
        }
        out.push(c);
    }
    None
}

/// The body of a double-quoted scalar that closes on this line, with escapes decoded.
fn double_quoted(s: &str) -> Option<(Cow<'_, str>, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(out), &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let simple = match e {
                    '0' => '\0',
                    'a' => '\x07',
                    'b' => '\x08',
                    't' => '\t',
                    'n' => '\n',
                    'v' => '\x0b',
                    'f' => '\x0c',
                    'r' => '\r',
                    'e' => '\x1b',
                    ' ' => ' ',
                    '"' => '"',
                    '/' => '/',
                    '\\' => '\\',
                    'N' => '\u{85}',
                    '_' => '\u{a0}',
                    'L' => '\u{2028}',
                    'P' => '\u{2029}',
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let (_, h) = chars.next()?;
                            code = code * 16 + h.to_digit(16)?;
                        }
                        char::from_u32(code)?
                    }
                    _ => return None,
                };
                out.push(simple);
            }
            _ => out.push(c),
        }
    }
    None
}

/// `s` without its leading spaces. Byte-wise: the fast path only takes ASCII text.
fn skip_spaces(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| b == b' ').count();
    &s[n..]
}

/// Where the first line break in `bytes` is. Lines are short (a few dozen bytes), too short
/// for `memchr`'s set-up to pay off: this looks at eight bytes at a time with the classic
/// "has a zero byte" trick, which is exact for the lowest match.
fn line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ (ONES * u64::from(b'\n'));
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder();
    tail.iter().position(|&b| b == b'\n').map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_end_finds_the_first_break() {
        for text in [
            "",
            "a",
            "\n",
            "abcdefgh\n",
            "abcdefg\nh\n",
            "abcdefghijklmnopq",
            "x\n\n",
        ] {
            assert_eq!(line_end(text.as_bytes()), text.find('\n'), "{text:?}");
        }
        let long: String = (0..40)
            .map(|i| if i % 13 == 12 { '\n' } else { 'a' })
            .collect();
        for start in 0..long.len() {
            let s = &long[start..];
            assert_eq!(line_end(s.as_bytes()), s.find('\n'), "{s:?}");
        }
    }
}
