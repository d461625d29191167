//! The YAML quoting context of each `{{ … }}` in a template, read from the
//! template source, and the escaping a value needs to land in that context
//! as the exact string it is.
//!
//! Mage pastes values raw, so a password with a `"` breaks
//! `password: "{{ mage_secret_var('pw') }}"`. Here a value inside a
//! double-quoted scalar is escaped by YAML's double-quoted rules, inside a
//! single-quoted scalar `'` is doubled, inside a block scalar continuation
//! lines are indented, and in plain context it is inserted raw (so a JSON
//! object may still become a YAML mapping, as in Mage). A value that needs no
//! escaping comes out byte for byte as Mage would write it.

use std::borrow::Cow;
use std::ops::Range;

/// Where in the YAML text an expression's output lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotingContext {
    /// Outside quotes: raw insertion.
    Plain,
    /// Inside `"…"`.
    DoubleQuoted,
    /// Inside `'…'`.
    SingleQuoted,
    /// Inside a `|` or `>` block scalar whose content is indented `indent` spaces.
    Block { indent: usize },
    /// Inside a `#` comment.
    Comment,
}

/// A piece of template source, as the lexer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Template data: YAML text.
    Raw(Range<usize>),
    /// A `{{ … }}` expression: contributes scalar content.
    Expression(Range<usize>),
    /// A `{% … %}` tag or `{# … #}` comment: contributes nothing.
    Tag(Range<usize>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Normal,
    Double,
    Single,
    Comment,
    Block { parent_indent: usize },
}

#[cfg_attr(test, derive(Debug, PartialEq, Clone))]
/// A line-oriented scanner of just enough YAML to know whether a position is
/// inside a quoted scalar, a block scalar, a comment, or plain text.
struct Scanner {
    state: State,
    flow_depth: usize,
    /// A quote here would open a quoted scalar.
    token_start: bool,
    /// The previous word was an indicator (`key:`, `-`, `?`) or a node
    /// property (`!tag`, `&anchor`): whitespace after it starts a token.
    after_indicator: bool,
    /// Only indentation so far on this line.
    at_line_start: bool,
    line_indent: usize,
    /// Indent of the line that holds a `|`/`>` indicator.
    block_pending: Option<usize>,
    /// Indent of the line where the plain scalar being written started.
    node_indent: usize,
    /// The previous character was whitespace (or a line start).
    after_space: bool,
    /// Skip the next character (after `\` in double quotes).
    escape_next: bool,
    /// A plain scalar is being written on this line.
    in_plain: bool,
    /// The previous line ended inside a plain scalar whose node sits at
    /// this indentation: a deeper line continues it.
    plain_continues_above: Option<usize>,
}

impl Scanner {
    fn new() -> Scanner {
        Scanner {
            state: State::Normal,
            flow_depth: 0,
            token_start: true,
            after_indicator: false,
            at_line_start: true,
            line_indent: 0,
            block_pending: None,
            node_indent: 0,
            after_space: true,
            escape_next: false,
            in_plain: false,
            plain_continues_above: None,
        }
    }

    fn context(&self) -> QuotingContext {
        match self.state {
            State::Normal => QuotingContext::Plain,
            State::Double => QuotingContext::DoubleQuoted,
            State::Single => QuotingContext::SingleQuoted,
            State::Comment => QuotingContext::Comment,
            State::Block { .. } => QuotingContext::Block {
                indent: self.line_indent,
            },
        }
    }

    /// The context an expression starting here is in.
    fn context_at_expression(&mut self) -> QuotingContext {
        if let State::Block { parent_indent } = self.state {
            if self.at_line_start && self.line_indent <= parent_indent {
                self.state = State::Normal;
                self.token_start = true;
            }
        }
        self.context()
    }

    /// An expression's output is scalar content.
    fn expression(&mut self) {
        if self.state == State::Normal {
            self.continue_plain_line();
            // A scalar the expression starts is a node of this line (as a
            // word starting one is): a deeper line continues it, a line as
            // deep does not.
            if !self.in_plain {
                self.node_indent = self.line_indent;
            }
            self.token_start = false;
            self.after_indicator = false;
            self.in_plain = true;
        }
        self.at_line_start = false;
        self.after_space = false;
    }

    fn newline(&mut self) {
        if self.state == State::Comment {
            // A comment may follow a block indicator: `key: | # note`.
            self.state = State::Normal;
        }
        if self.state == State::Normal {
            if let Some(parent_indent) = self.block_pending.take() {
                self.state = State::Block { parent_indent };
            }
        }
        self.plain_continues_above =
            (self.state == State::Normal && self.in_plain).then_some(if self.flow_depth > 0 {
                0
            } else {
                self.node_indent
            });
        self.in_plain = false;
        self.at_line_start = true;
        self.line_indent = 0;
        self.after_space = true;
        if self.state == State::Normal {
            self.token_start = true;
            self.after_indicator = false;
        }
    }

    /// Feeds template text. Works on bytes: every character with a meaning
    /// here is ASCII, or a line break (NEL, LS, PS) found by its bytes;
    /// the bytes of any other character act as that character would, and
    /// runs of bytes that change nothing are skipped.
    fn feed(&mut self, text: &str) {
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let line_break = line_break_len(b, i);
            if line_break > 0 {
                if self.state == State::Double {
                    self.escape_next = false;
                }
                self.newline();
                i += line_break;
                continue;
            }
            if self.at_line_start && (c == b' ' || c == b'\t') {
                self.line_indent += 1;
                i += 1;
                continue;
            }
            let line_start = self.at_line_start;
            self.at_line_start = false;
            if let State::Block { parent_indent } = self.state {
                if line_start && self.line_indent <= parent_indent && c != b'\r' {
                    self.state = State::Normal;
                    self.token_start = true;
                } else {
                    // Block text to the line's end.
                    i = next_line_break(b, i + 1);
                    continue;
                }
            }
            let inert: &[bool; 256] = match self.state {
                State::Comment | State::Block { .. } => {
                    let end = next_line_break(b, i + 1);
                    self.after_space = matches!(b[end - 1], b' ' | b'\t');
                    i = end;
                    continue;
                }
                State::Double => {
                    if self.escape_next {
                        self.escape_next = false;
                    } else if c == b'\\' {
                        self.escape_next = true;
                    } else if c == b'"' {
                        self.close_quote();
                    }
                    &DOUBLE_INERT
                }
                State::Single => {
                    if c == b'\'' {
                        if b.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            self.close_quote();
                        }
                    }
                    &SINGLE_INERT
                }
                State::Normal => {
                    if line_start && self.line_indent == 0 && is_document_marker(&b[i..]) {
                        self.document_marker();
                        i += 3;
                        continue;
                    }
                    if line_start && c != b'#' {
                        self.continue_plain_line();
                    }
                    self.normal(c, b.get(i + 1).copied());
                    &NORMAL_INERT
                }
            };
            self.after_space = c == b' ' || c == b'\t';
            i += 1;
            // What follows in the same state and changes nothing more.
            if inert[usize::from(c)] && i < b.len() && inert[usize::from(b[i])] {
                while i < b.len() && inert[usize::from(b[i])] {
                    i += 1;
                }
                self.after_space = matches!(b[i - 1], b' ' | b'\t');
            }
            // Inside a plain scalar of block context, past its first
            // character, only `#` (a comment after a space), `:` (before a
            // space) and line breaks change anything: spaces and punctuation
            // too are skipped.
            if self.state == State::Normal
                && self.in_plain
                && !self.after_indicator
                && !self.token_start
                && !self.at_line_start
                && self.flow_depth == 0
            {
                let run = b[i..]
                    .iter()
                    .position(|&x| !PLAIN_INERT[usize::from(x)])
                    .map_or(b.len(), |at| i + at);
                if run > i {
                    self.after_space = matches!(b[run - 1], b' ' | b'\t');
                    i = run;
                }
            }
        }
    }

    /// At the first character of a line (or an expression there): a line
    /// deeper than the node of a plain scalar left open continues it, so a
    /// quote there is text, not the start of a quoted scalar.
    fn continue_plain_line(&mut self) {
        if let Some(above) = self.plain_continues_above.take() {
            if self.line_indent > above || self.flow_depth > 0 {
                self.token_start = false;
                self.in_plain = true;
            }
        }
    }

    /// `---` or `...` at a line's start, then a blank: a document's start
    /// or end. What follows on the line (after `---`) is a new node, as
    /// after `- `; nothing above continues past it.
    fn document_marker(&mut self) {
        self.plain_continues_above = None;
        self.flow_depth = 0;
        self.in_plain = false;
        self.after_indicator = true;
        self.token_start = false;
        self.after_space = false;
    }

    fn close_quote(&mut self) {
        self.state = State::Normal;
        self.token_start = false;
        self.after_indicator = false;
    }

    fn normal(&mut self, c: u8, next: Option<u8>) {
        let followed_by_space = matches!(next, None | Some(b' ' | b'\t' | b'\r' | b'\n'));
        let was_plain = std::mem::take(&mut self.in_plain);
        match c {
            b' ' | b'\t' => {
                self.in_plain = was_plain;
                if self.after_indicator {
                    self.token_start = true;
                    self.after_indicator = false;
                }
            }
            b'#' if self.after_space => self.state = State::Comment,
            b'"' if self.token_start => self.state = State::Double,
            b'\'' if self.token_start => self.state = State::Single,
            b'|' | b'>' if self.token_start && self.flow_depth == 0 => {
                self.block_pending = Some(self.line_indent);
                self.token_start = false;
            }
            b'[' | b'{' if self.token_start || self.flow_depth > 0 => {
                self.flow_depth += 1;
                self.token_start = true;
            }
            b']' | b'}' if self.flow_depth > 0 => {
                self.flow_depth -= 1;
                self.token_start = false;
            }
            b',' if self.flow_depth > 0 => self.token_start = true,
            b':' if followed_by_space => {
                self.after_indicator = true;
                self.token_start = false;
            }
            b':' if self.flow_depth > 0 => self.token_start = true,
            b'-' | b'?' if self.token_start && followed_by_space => {
                self.after_indicator = true;
                self.token_start = false;
            }
            b'!' | b'&' if self.token_start => {
                // A node property: the scalar starts after the next space.
                self.after_indicator = true;
                self.token_start = false;
            }
            _ => {
                // Inside a word: a property word keeps waiting for its space.
                if !self.after_indicator || self.after_space {
                    self.after_indicator = false;
                }
                if !was_plain {
                    self.node_indent = self.line_indent;
                }
                self.in_plain = !self.after_indicator;
                self.token_start = false;
            }
        }
    }
}

/// Whether `rest` (from a line's first column) starts with a document
/// marker: `---` or `...` followed by a blank or a line break. (One at the
/// end of a text before an expression is not taken for one: what the
/// expression prints decides, and plain is the stricter reading.)
fn is_document_marker(rest: &[u8]) -> bool {
    (rest.starts_with(b"---") || rest.starts_with(b"..."))
        && matches!(rest.get(3), Some(b' ' | b'\t' | b'\r' | b'\n'))
}

/// Bytes that, read after one like them in the same state, change nothing:
/// in plain text, word bytes; in quotes, all but the closing quote, `\`
/// and line breaks. Non-ASCII bytes count, except the first bytes of NEL
/// (0xC2) and of LS/PS (0xE2), which may break a line.
const fn inert_table(special: &[u8]) -> [bool; 256] {
    let mut table = [true; 256];
    table[b'\n' as usize] = false;
    table[0xC2] = false;
    table[0xE2] = false;
    let mut i = 0;
    while i < special.len() {
        table[special[i] as usize] = false;
        i += 1;
    }
    table
}

static NORMAL_INERT: [bool; 256] = inert_table(b" \t#\"'|>[]{},:-?!&");
static PLAIN_INERT: [bool; 256] = inert_table(b"#:");
static DOUBLE_INERT: [bool; 256] = inert_table(b"\"\\");
static SINGLE_INERT: [bool; 256] = inert_table(b"'");

/// The length of the line break at `i` (LF, NEL, LS, PS), or 0.
fn line_break_len(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'\n' => 1,
        0xC2 if b.get(i + 1) == Some(&0x85) => 2,
        0xE2 if b.get(i + 1) == Some(&0x80) && matches!(b.get(i + 2), Some(0xA8 | 0xA9)) => 3,
        _ => 0,
    }
}

/// Where the next line break at or after `from` starts, or the end.
fn next_line_break(b: &[u8], mut from: usize) -> usize {
    while let Some(at) = memchr::memchr3(b'\n', 0xC2, 0xE2, &b[from.min(b.len())..]) {
        let at = from + at;
        if line_break_len(b, at) > 0 {
            return at;
        }
        from = at + 1;
    }
    b.len()
}

/// The quoting context of every [`Segment::Expression`], in order.
pub fn expression_contexts(source: &str, segments: &[Segment]) -> Vec<QuotingContext> {
    let mut scanner = Scanner::new();
    let mut out = Vec::new();
    // Text after the last expression decides no context: it is not read
    // (in a file whose settings close with plain lines, half of it).
    let through = segments
        .iter()
        .rposition(|s| matches!(s, Segment::Expression(_)))
        .map_or(0, |last| last + 1);
    for segment in &segments[..through] {
        match segment {
            Segment::Raw(r) => scanner.feed(&source[r.clone()]),
            Segment::Expression(_) => {
                out.push(scanner.context_at_expression());
                scanner.expression();
            }
            Segment::Tag(_) => {}
        }
    }
    out
}

/// Why a value cannot be placed in its context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuotingError {
    /// A line break (or another character YAML forbids) inside single quotes.
    SingleQuotedLineBreak,
    SingleQuotedControl,
}

impl std::fmt::Display for QuotingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotingError::SingleQuotedLineBreak => f.write_str(
                "the value has a line break, which a single-quoted YAML scalar cannot hold; use double quotes around the expression",
            ),
            QuotingError::SingleQuotedControl => f.write_str(
                "the value has a control character, which a single-quoted YAML scalar cannot hold; use double quotes around the expression",
            ),
        }
    }
}

/// Escapes `value` so that it reads back exactly in `context`.
pub fn escape(value: &str, context: QuotingContext) -> Result<Cow<'_, str>, QuotingError> {
    match context {
        QuotingContext::Plain | QuotingContext::Comment => Ok(Cow::Borrowed(value)),
        QuotingContext::DoubleQuoted => Ok(escape_double(value)),
        QuotingContext::SingleQuoted => escape_single(value),
        QuotingContext::Block { indent } => Ok(indent_block(value, indent)),
    }
}

fn needs_double_escape(c: char) -> bool {
    matches!(
        c,
        '"' | '\\' | '\u{7f}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
    ) || (c < ' ' && c != '\t')
        || ('\u{80}'..='\u{9f}').contains(&c)
}

fn escape_double(value: &str) -> Cow<'_, str> {
    // Printable ASCII without `"` and `\` (most values): nothing to escape.
    let printable_ascii = value
        .bytes()
        .all(|b| matches!(b, b' '..=b'~' | b'\t') && b != b'"' && b != b'\\');
    if printable_ascii || !value.chars().any(needs_double_escape) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if needs_double_escape(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn escape_single(value: &str) -> Result<Cow<'_, str>, QuotingError> {
    // Printable ASCII (most values): no line break, no control character.
    let printable_ascii = value.bytes().all(|b| matches!(b, b' '..=b'~' | b'\t'));
    if printable_ascii {
        return Ok(if value.contains('\'') {
            Cow::Owned(value.replace('\'', "''"))
        } else {
            Cow::Borrowed(value)
        });
    }
    if value.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']) {
        return Err(QuotingError::SingleQuotedLineBreak);
    }
    if value
        .chars()
        .any(|c| (c < ' ' && c != '\t') || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c))
    {
        return Err(QuotingError::SingleQuotedControl);
    }
    if value.contains('\'') {
        Ok(Cow::Owned(value.replace('\'', "''")))
    } else {
        Ok(Cow::Borrowed(value))
    }
}

fn indent_block(value: &str, indent: usize) -> Cow<'_, str> {
    if !value.contains('\n') {
        return Cow::Borrowed(value);
    }
    let pad = " ".repeat(indent);
    let mut out = String::with_capacity(value.len() + indent * 4);
    for (i, line) in value.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
            }
        }
        out.push_str(line);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests;
