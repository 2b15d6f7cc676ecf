//! `signoff-yaml`: a small YAML tree that remembers where every node came from, built under input budgets.
//!
//! `saphyr-parser` gives us a stream of events with spans; we build our own tree from it so
//! that we can (1) keep the line and column of every node, (2) stop early on hostile input:
//! too many bytes, nesting too deep, or aliases that expand into too many nodes (the
//! "billion laughs" attack), and (3) resolve plain scalars the way YAML 1.2's core schema
//! does, which is what the Forge CLI's YAML loader does for the values we care about.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

mod fast;
pub mod input;

pub use compact_str::CompactString;
use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

/// A 1-based line and column in the source text (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Limits that keep a hostile file from using unbounded time or memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Largest input accepted, in bytes. Real manifests are a few kilobytes.
    pub max_bytes: usize,
    /// Deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// Most nodes in the tree after aliases are expanded.
    pub max_nodes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_nodes: 200_000,
        }
    }
}

/// The value of a node, with plain scalars resolved by the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string; short ones (most keys and values) are stored inline, without allocating.
    Str(CompactString),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// One node of the tree and the place where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// Why a text could not be turned into a tree. Each carries the place where it was noticed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("input is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{line}:{column}: input is not valid UTF-8")]
    NotUtf8 { line: u32, column: u32 },
    #[error("{}: nesting is deeper than the limit of {limit} levels", .pos)]
    TooDeep { pos: Pos, limit: usize },
    /// The node budget was hit. `from_aliases` of the nodes counted were copies made by
    /// aliases: when it is large, the file is an alias bomb; when it is zero, it is simply big.
    #[error(
        "{}: the file makes {nodes} nodes, more than the limit of {limit}{}",
        .pos,
        if *.from_aliases > 0 { format!(" ({from_aliases} of them copies made by aliases)") } else { String::new() }
    )]
    TooManyNodes {
        pos: Pos,
        limit: usize,
        nodes: usize,
        from_aliases: usize,
    },
    #[error("{}: alias refers to an unknown anchor", .pos)]
    UnknownAnchor { pos: Pos },
    #[error("{}: {message}", .pos)]
    Syntax { pos: Pos, message: String },
    #[error("the document is empty")]
    Empty,
}

impl ParseError {
    /// The place the error was noticed, when there is one.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            ParseError::TooLarge { .. } | ParseError::Empty => None,
            ParseError::NotUtf8 { line, column } => Some(Pos {
                line: *line,
                column: *column,
            }),
            ParseError::TooDeep { pos, .. }
            | ParseError::TooManyNodes { pos, .. }
            | ParseError::UnknownAnchor { pos }
            | ParseError::Syntax { pos, .. } => Some(*pos),
        }
    }
}

/// One step of a path into the tree: a mapping key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Something odd about the YAML that is still loadable (duplicate keys, several documents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlWarning {
    pub pos: Pos,
    pub message: String,
}

/// A parsed document: the root node and the warnings met on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
    pub warnings: Vec<YamlWarning>,
}

/// Parses bytes (which must be UTF-8) into a tree, within `budget`.
pub fn parse_bytes(bytes: &[u8], budget: Budget) -> Result<Document, ParseError> {
    if bytes.len() > budget.max_bytes {
        return Err(ParseError::TooLarge {
            size: bytes.len(),
            limit: budget.max_bytes,
        });
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_str(text, budget),
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // The prefix is valid UTF-8 by construction, so the lossy decode is exact.
            let prefix = String::from_utf8_lossy(good);
            let line = prefix.matches('\n').count() as u32 + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
            Err(ParseError::NotUtf8 { line, column })
        }
    }
}

/// Parses text into a tree, within `budget`. Only the first document of a stream is kept.
pub fn parse_str(text: &str, budget: Budget) -> Result<Document, ParseError> {
    if text.len() > budget.max_bytes {
        return Err(ParseError::TooLarge {
            size: text.len(),
            limit: budget.max_bytes,
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Plain block YAML takes the fast scanner; anything else, or anything it is unsure of,
    // takes saphyr-parser. Both feed the same builder.
    if let Some(doc) = fast::parse(text, Builder::new(budget)) {
        return Ok(doc);
    }
    Builder::new(budget).run(saphyr_events(text))
}

/// Parses with saphyr-parser only, never the fast scanner. For differential tests.
#[doc(hidden)]
pub fn parse_str_general(text: &str, budget: Budget) -> Result<Document, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Builder::new(budget).run(saphyr_events(text))
}

/// Whether the fast scanner accepts `text` (for tests and benchmarks).
#[doc(hidden)]
pub fn fast_path_accepts(text: &str) -> bool {
    fast::parse(text, Builder::new(Budget::default())).is_some()
}

fn saphyr_events(text: &str) -> impl Iterator<Item = Result<(Event<'_>, Pos), ParseError>> {
    Parser::new_from_str(text).map(|item| {
        item.map_err(scan_error).map(|(event, span)| {
            let pos = Pos {
                line: span.start.line() as u32,
                column: span.start.col() as u32 + 1,
            };
            (event, pos)
        })
    })
}

impl Node {
    /// A short name of the node's kind, for messages: "a mapping", "a string", ...
    #[inline]
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    #[inline]
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    #[inline]
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    #[inline]
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    #[inline]
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value under `key` in a mapping. Keys are compared with surrounding white space
    /// ignored, because real manifests contain keys such as `"scopes "`. When a key occurs
    /// twice the last one wins, as in the JavaScript loaders the Forge CLI uses.
    #[inline]
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// Like [`Node::get`], but also returns the key node (for its position).
    #[inline]
    pub fn get_entry(&self, key: &str) -> Option<(&Node, &Node)> {
        let entries = self.as_map()?;
        entries
            .iter()
            .rev()
            .find(|(k, _)| k.is_key(key))
            .map(|(k, v)| (k, v))
    }

    /// Whether this node is a scalar whose text, white space trimmed, is `key`. Allocates
    /// only for non-string scalars (`true`, `3`).
    #[inline]
    pub fn is_key(&self, key: &str) -> bool {
        match &self.value {
            // Exact first: keys with surrounding white space are rare.
            Value::Str(s) => {
                let s = s.as_str();
                match s.len().cmp(&key.len()) {
                    std::cmp::Ordering::Equal => s == key,
                    std::cmp::Ordering::Greater => has_outer_space(s) && s.trim() == key,
                    std::cmp::Ordering::Less => false,
                }
            }
            Value::Null | Value::Seq(_) | Value::Map(_) => false,
            _ => self.scalar_text().is_some_and(|t| t == key),
        }
    }

    /// The text of a scalar, whatever its resolved type (`true`, `3`, `abc`), or `None` for
    /// collections and null. Borrowed for strings, so asking is cheap.
    #[inline]
    pub fn scalar_text(&self) -> Option<Cow<'_, str>> {
        match &self.value {
            Value::Str(s) => Some(Cow::Borrowed(s.as_str())),
            Value::Bool(b) => Some(Cow::Owned(b.to_string())),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Float(f) => Some(Cow::Owned(f.to_string())),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Like [`Node::scalar_text`], as an owned string.
    pub fn scalar_string(&self) -> Option<String> {
        self.scalar_text().map(Cow::into_owned)
    }

    /// The node at `path` below this one, following mapping keys and list indexes.
    pub fn at(&self, path: &[Seg<'_>]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match seg {
                Seg::Key(k) => node.get(k)?,
                Seg::Index(i) => node.as_seq()?.get(*i)?,
            };
        }
        Some(node)
    }

    /// The tree as JSON, for deserializing with serde. Positions are dropped; look them up
    /// again with [`Node::at`] when an error names a path. Non-string keys become their text,
    /// and numbers JSON cannot hold (NaN, infinities) become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.to_string()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.scalar_text()
                                .map_or_else(|| k.canonical(), Cow::into_owned),
                            v.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// A canonical rendering used to compare two nodes while ignoring layout and positions.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        match &self.value {
            Value::Null => out.push('~'),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&f.to_string()),
            Value::Str(s) => out.push_str(&format!("{s:?}")),
            Value::Seq(items) => {
                out.push('[');
                for item in items {
                    item.write_canonical(out);
                    out.push(',');
                }
                out.push(']');
            }
            Value::Map(entries) => {
                let mut parts: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{}:{}", k.canonical(), v.canonical()))
                    .collect();
                parts.sort();
                out.push('{');
                out.push_str(&parts.join(","));
                out.push('}');
            }
        }
    }

    fn count(&self) -> usize {
        match &self.value {
            Value::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.count() + v.count())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }
}

/// A collection under construction. Its children wait on the builder's scratch stacks (from
/// `start` on) until it ends, so that each finished collection is one allocation of exactly
/// its size instead of a vector grown by doubling.
enum Open {
    Seq {
        pos: Pos,
        anchor: usize,
        start: usize,
    },
    Map {
        pos: Pos,
        anchor: usize,
        start: usize,
        pending_key: Option<Node>,
    },
}

pub(crate) struct Builder {
    budget: Budget,
    stack: Vec<Open>,
    /// Items of the open sequences, innermost last.
    items: Vec<Node>,
    /// Entries of the open mappings, innermost last.
    entries: Vec<(Node, Node)>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    /// Of `nodes`, how many were copies made by aliases.
    aliased: usize,
    root: Option<Node>,
    warnings: Vec<YamlWarning>,
    documents: usize,
}

impl Builder {
    pub(crate) fn new(budget: Budget) -> Self {
        Builder {
            budget,
            // Room for the open collections of a typical manifest, so that the scratch stacks
            // rarely grow: a grown stack is a large reallocation, and those are costly.
            stack: Vec::with_capacity(16),
            items: Vec::with_capacity(64),
            entries: Vec::with_capacity(32),
            anchors: HashMap::new(),
            nodes: 0,
            aliased: 0,
            root: None,
            warnings: Vec::new(),
            documents: 0,
        }
    }

    fn run<'a>(
        mut self,
        events: impl Iterator<Item = Result<(Event<'a>, Pos), ParseError>>,
    ) -> Result<Document, ParseError> {
        for item in events {
            let (event, pos) = item?;
            self.event(event, pos)?;
        }
        self.finish()
    }

    /// Takes one event into the tree.
    pub(crate) fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), ParseError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    self.warnings.push(YamlWarning {
                        pos,
                        message:
                            "the file holds more than one YAML document; only the first is read"
                                .into(),
                    });
                }
            }
            // Later documents are scanned for syntax errors but not built.
            _ if self.documents > 1 => {}
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = style != ScalarStyle::Plain;
                let forced_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if quoted || forced_str {
                    Value::Str(CompactString::from(text.as_ref()))
                } else {
                    resolve_plain(&text)
                };
                self.scalar(value, pos, anchor)?;
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(ParseError::UnknownAnchor { pos });
                };
                let mut node = target.clone();
                let n = node.count();
                self.aliased = self.aliased.saturating_add(n);
                self.count(n, pos)?;
                node.pos = pos;
                self.push(node, 0)?;
            }
            Event::SequenceStart(anchor, _) => self.start_seq(pos, anchor)?,
            Event::MappingStart(anchor, _) => self.start_map(pos, anchor)?,
            Event::SequenceEnd | Event::MappingEnd => self.end(pos)?,
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// Takes a scalar whose value is already resolved. The fast scanner calls this and the
    /// collection methods below directly, without making events.
    pub(crate) fn scalar(
        &mut self,
        value: Value,
        pos: Pos,
        anchor: usize,
    ) -> Result<(), ParseError> {
        self.count(1, pos)?;
        self.push(Node { value, pos }, anchor)
    }

    pub(crate) fn start_seq(&mut self, pos: Pos, anchor: usize) -> Result<(), ParseError> {
        self.open(pos)?;
        self.stack.push(Open::Seq {
            pos,
            anchor,
            start: self.items.len(),
        });
        Ok(())
    }

    pub(crate) fn start_map(&mut self, pos: Pos, anchor: usize) -> Result<(), ParseError> {
        self.open(pos)?;
        self.stack.push(Open::Map {
            pos,
            anchor,
            start: self.entries.len(),
            pending_key: None,
        });
        Ok(())
    }

    /// Ends the innermost open collection.
    pub(crate) fn end(&mut self, pos: Pos) -> Result<(), ParseError> {
        let Some(open) = self.stack.pop() else {
            return Err(ParseError::Syntax {
                pos,
                message: "unbalanced end of collection".into(),
            });
        };
        let (node, anchor) = match open {
            Open::Seq { pos, anchor, start } => (
                Node {
                    value: Value::Seq(self.items.split_off(start)),
                    pos,
                },
                anchor,
            ),
            Open::Map {
                pos, anchor, start, ..
            } => {
                let entries = self.entries.split_off(start);
                (
                    Node {
                        value: Value::Map(self.merge_keys(entries)),
                        pos,
                    },
                    anchor,
                )
            }
        };
        self.push(node, anchor)
    }

    /// The finished document.
    pub(crate) fn max_depth(&self) -> usize {
        self.budget.max_depth
    }

    pub(crate) fn finish(self) -> Result<Document, ParseError> {
        let root = self.root.ok_or(ParseError::Empty)?;
        if root.is_null() {
            return Err(ParseError::Empty);
        }
        Ok(Document {
            root,
            warnings: self.warnings,
        })
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), ParseError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.budget.max_nodes {
            return Err(ParseError::TooManyNodes {
                pos,
                limit: self.budget.max_nodes,
                nodes: self.nodes,
                from_aliases: self.aliased,
            });
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos) -> Result<(), ParseError> {
        if self.stack.len() >= self.budget.max_depth {
            return Err(ParseError::TooDeep {
                pos,
                limit: self.budget.max_depth,
            });
        }
        self.count(1, pos)
    }

    /// Places a finished node in its parent (or as the root) and records its anchor.
    fn push(&mut self, node: Node, anchor: usize) -> Result<(), ParseError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq { .. }) => self.items.push(node),
            Some(Open::Map {
                start, pending_key, ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    if let Some(text) = key.scalar_text() {
                        let trimmed = if has_outer_space(&text) {
                            text.trim()
                        } else {
                            &text
                        };
                        let dup = self.entries[*start..]
                            .iter()
                            .find(|(k, _)| k.is_key(trimmed));
                        if let Some((first, _)) = dup {
                            self.warnings.push(YamlWarning {
                                pos: key.pos,
                                message: format!(
                                    "duplicate key `{}` (first at {}); the last one is used",
                                    trimmed, first.pos
                                ),
                            });
                        }
                    }
                    self.entries.push((key, node));
                }
            },
        }
        Ok(())
    }

    /// Applies YAML merge keys (`<<: *base`): entries of the merged mappings that the mapping
    /// does not set itself are added. Real manifests use them to share module settings.
    fn merge_keys(&mut self, entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
        let is_merge = |k: &Node| k.as_str() == Some("<<");
        if !entries.iter().any(|(k, _)| is_merge(k)) {
            return entries;
        }
        let mut own: Vec<(Node, Node)> = Vec::new();
        let mut merged: Vec<(Node, Node)> = Vec::new();
        for (k, v) in entries {
            if !is_merge(&k) {
                own.push((k, v));
                continue;
            }
            let sources: Vec<Node> = match v.value {
                Value::Map(_) => vec![v],
                Value::Seq(items) => items,
                _ => {
                    self.warnings.push(YamlWarning {
                        pos: v.pos,
                        message: format!("merge key `<<` needs a mapping, found {}", v.kind()),
                    });
                    continue;
                }
            };
            for source in sources {
                if let Value::Map(src) = source.value {
                    merged.extend(src);
                }
            }
        }
        for (k, v) in merged {
            let text = k.scalar_text();
            let present = own
                .iter()
                .any(|(o, _)| text.is_some() && o.scalar_text() == text);
            if !present {
                own.push((k, v));
            }
        }
        own
    }
}

fn scan_error(e: ScanError) -> ParseError {
    let m = e.marker();
    ParseError::Syntax {
        pos: Pos {
            line: m.line() as u32,
            column: m.col() as u32 + 1,
        },
        message: e.info().to_string(),
    }
}

#[inline]
/// Whether `s` may start or end with white space (`str::trim` also trims non-ASCII spaces,
/// so any non-ASCII byte at an end counts).
fn has_outer_space(s: &str) -> bool {
    let outer = |b: u8| b.is_ascii_whitespace() || b >= 0x80;
    let bytes = s.as_bytes();
    bytes.first().is_some_and(|&b| outer(b)) || bytes.last().is_some_and(|&b| outer(b))
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub(crate) fn resolve_plain(text: &str) -> Value {
    // Most scalars in a manifest are words: only these first characters can start a null,
    // a boolean or a number.
    let first = text.as_bytes().first().copied().unwrap_or(b'~');
    if !matches!(
        first,
        b'~' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'.' | b'+' | b'-' | b'0'..=b'9'
    ) {
        return Value::Str(CompactString::from(text));
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    // Other words starting with those letters (`true`, `function`) are strings.
    if first.is_ascii_alphabetic() {
        return Value::Str(CompactString::from(text));
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return Value::Int(i);
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return Value::Int(i);
        }
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Int(i);
        }
    }
    if looks_like_float(digits) {
        if let Ok(f) = text.parse::<f64>() {
            return Value::Float(f);
        }
    }
    Value::Str(CompactString::from(text))
}

/// `[0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?` with at least one digit before the exponent.
fn looks_like_float(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut parts = mantissa.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next().unwrap_or("");
    let digits_ok = int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(int.is_empty() && frac.is_empty());
    let exp_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    });
    digits_ok && exp_ok && (mantissa.contains('.') || exponent.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document, ParseError> {
        parse_str(text, Budget::default())
    }

    #[test]
    fn positions_are_one_based() {
        let doc = parse("a:\n  b: [1, x]\n").unwrap();
        let b = doc.root.get("a").unwrap().get("b").unwrap();
        assert_eq!(b.pos, Pos { line: 2, column: 6 });
        let items = b.as_seq().unwrap();
        assert_eq!(items[0].value, Value::Int(1));
        assert_eq!(
            items[1].pos,
            Pos {
                line: 2,
                column: 10
            }
        );
    }

    #[test]
    fn core_schema() {
        let doc = parse("[~, true, 'true', 0x1f, 1.5e3, .inf, 12abc, '']").unwrap();
        let v: Vec<_> = doc
            .root
            .as_seq()
            .unwrap()
            .iter()
            .map(|n| n.value.clone())
            .collect();
        assert_eq!(v[0], Value::Null);
        assert_eq!(v[1], Value::Bool(true));
        assert_eq!(v[2], Value::Str("true".into()));
        assert_eq!(v[3], Value::Int(31));
        assert_eq!(v[4], Value::Float(1500.0));
        assert_eq!(v[5], Value::Float(f64::INFINITY));
        assert_eq!(v[6], Value::Str("12abc".into()));
        assert_eq!(v[7], Value::Str(CompactString::default()));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = parse("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\nagain: *b\n").unwrap();
        let use_ = doc.root.get("use").unwrap();
        assert_eq!(use_.get("x").unwrap().value, Value::Int(1));
        assert_eq!(use_.get("y").unwrap().value, Value::Int(3));
        assert_eq!(
            doc.root.get("again").unwrap().get("y").unwrap().value,
            Value::Int(2)
        );
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(matches!(parse(&text), Err(ParseError::TooManyNodes { .. })));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let block: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        let err = parse(&block).unwrap_err();
        assert!(
            matches!(err, ParseError::TooDeep { limit: 64, .. }),
            "{err:?}"
        );
        // Flow nesting is stopped by the scanner itself, also with a position.
        let flow = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&flow).unwrap_err().pos().is_some());
    }

    #[test]
    fn large_input_is_refused_before_parsing() {
        let text = "a: b\n".repeat(2_000_000);
        assert!(matches!(parse(&text), Err(ParseError::TooLarge { .. })));
    }

    #[test]
    fn bad_utf8_names_the_place() {
        let err = parse_bytes(b"a: 1\nb: \xff\n", Budget::default()).unwrap_err();
        assert_eq!(err, ParseError::NotUtf8 { line: 2, column: 4 });
    }

    #[test]
    fn duplicate_keys_warn_and_last_wins() {
        let doc = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(doc.root.get("a").unwrap().value, Value::Int(2));
        assert_eq!(doc.warnings.len(), 1);
        assert_eq!(doc.warnings[0].pos, Pos { line: 2, column: 1 });
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: c\n").unwrap_err();
        assert!(matches!(err, ParseError::Syntax { .. }), "{err:?}");
        assert!(err.pos().is_some());
    }

    #[test]
    fn paths_and_json() {
        let doc = parse("a:\n  - {b: 1}\n  - {b: .nan}\n").unwrap();
        let node = doc
            .root
            .at(&[Seg::Key("a"), Seg::Index(1), Seg::Key("b")])
            .unwrap();
        assert_eq!(node.pos, Pos { line: 3, column: 9 });
        assert_eq!(
            doc.root.to_json(),
            serde_json::json!({"a": [{"b": 1}, {"b": null}]})
        );
    }

    #[test]
    fn empty_documents_are_errors() {
        assert_eq!(parse("# only a comment\n").unwrap_err(), ParseError::Empty);
        assert_eq!(parse("---\n").unwrap_err(), ParseError::Empty);
    }
}
