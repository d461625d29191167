//! libyaml's events, read fast from the block YAML config files are made
//! of: mappings and sequences written one entry per line, scalars plain,
//! single- or double-quoted on one line, comments and blank lines.
//!
//! [`events`] gives exactly the events (kinds, byte ranges, styles, kept
//! values) that [`Parser`](super::libyaml::Parser) gives for the same text,
//! or `None` when the text uses anything else (flow collections, block
//! scalars, tags, anchors, aliases, document markers, directives, complex
//! keys, scalars over several lines, tabs, other line breaks, a byte order
//! mark) or is not valid YAML: the caller then asks libyaml, which also
//! words the errors. A `None` is never wrong, only slower; a `Some` must be
//! what libyaml reads. The unit tests and the fuzz target compare the two.

use memchr::{memchr, memchr2, memchr3};

use super::libyaml::{Event, EventKind};

/// A block collection being read, with its indentation column.
#[derive(Clone, Copy)]
enum Open {
    Map(usize),
    Seq(usize),
    /// A sequence at its parent mapping's own column (`key:⏎- item`).
    Indentless(usize),
}

/// A node whose value may start on a following line: after `key:` or `-`
/// with nothing else on the line. `mark` is where libyaml puts the empty
/// scalar if none comes; `indent` the column of the collection it is in.
#[derive(Clone, Copy)]
struct Pending {
    mark: usize,
    indent: usize,
    /// After a mapping key: a `-` at the key's own column starts a sequence.
    after_key: bool,
}

/// Whether libyaml's reader takes every character, and the text has
/// nothing this reader leaves to libyaml at the character level: tabs,
/// carriage returns and the other line breaks (NEL, LS, PS), a byte order
/// mark.
fn plain_characters(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Sixteen ASCII bytes at a time, without a branch per byte.
        if let Some(chunk) = bytes.get(i..i + 16) {
            let fine = chunk.iter().fold(true, |fine, &b| {
                fine & ((b.wrapping_sub(0x20) < 0x5f) | (b == b'\n'))
            });
            if fine {
                i += 16;
                continue;
            }
        }
        let b = bytes[i];
        if b < 0x80 {
            if !(b == b'\n' || (0x20..0x7f).contains(&b)) {
                return false;
            }
            i += 1;
            continue;
        }
        let Some(c) = text[i..].chars().next() else {
            return false;
        };
        let c32 = c as u32;
        let fine = c32 >= 0xA0 && !matches!(c32, 0x2028 | 0x2029 | 0xFEFF | 0xFFFE | 0xFFFF);
        if !fine {
            return false;
        }
        i += c.len_utf8();
    }
    true
}

/// A scalar read on one line: its byte range, whether plain, and where
/// the line goes on after it.
struct Scalar {
    start: usize,
    end: usize,
    style: Style,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

/// The reader of one text: positions are byte offsets.
struct Reader<'t, K> {
    text: &'t [u8],
    keep: K,
    values: &'t mut Vec<Vec<u8>>,
    out: Vec<Event>,
}

/// Whether position `i` is a blank, a line end or the end of the text.
fn blankz(b: &[u8], i: usize) -> bool {
    matches!(b.get(i), None | Some(b' ' | b'\n'))
}

impl<K: Fn(usize, usize) -> bool> Reader<'_, K> {
    fn push(&mut self, e: Event) {
        self.out.push(e);
    }

    fn end(&mut self, at: usize) {
        self.push(Event::blank(EventKind::CollectionEnd, at, at));
    }

    fn empty_scalar(&mut self, at: usize) {
        let mut e = Event::blank(EventKind::Scalar, at, at);
        e.plain = true;
        e.plain_untagged = true;
        if (self.keep)(at, at) {
            self.values.push(Vec::new());
            e.value = Some(self.values.len() - 1);
        }
        self.push(e);
    }

    fn scalar(&mut self, s: &Scalar) -> Option<()> {
        let mut e = Event::blank(EventKind::Scalar, s.start, s.end);
        e.plain = s.style == Style::Plain;
        e.plain_untagged = e.plain;
        e.double_quoted = s.style == Style::Double;
        if (self.keep)(s.start, s.end) {
            let raw = &self.text[s.start..s.end];
            let value = match s.style {
                Style::Plain => raw.to_vec(),
                Style::Single => single_quoted_value(&raw[1..raw.len() - 1]),
                Style::Double => double_quoted_value(&raw[1..raw.len() - 1])?,
            };
            self.values.push(value);
            e.value = Some(self.values.len() - 1);
        }
        self.push(e);
        Some(())
    }

    /// A scalar starting at `at` (not a blank) and ending on this line, or
    /// `None` where it is not one this reader knows.
    fn scan_scalar(&self, at: usize, line_end: usize) -> Option<Scalar> {
        let b = self.text;
        match b[at] {
            b'"' => {
                let mut i = at + 1;
                loop {
                    let found = memchr3(b'"', b'\\', b'\n', &b[i..line_end]).map(|k| i + k)?;
                    match b[found] {
                        b'"' => {
                            return Some(Scalar {
                                start: at,
                                end: found + 1,
                                style: Style::Double,
                            })
                        }
                        b'\\' => i = found + 1 + escape_length(&b[found + 1..line_end])?,
                        _ => return None,
                    }
                }
            }
            b'\'' => {
                let mut i = at + 1;
                loop {
                    let found = memchr(b'\'', &b[i..line_end]).map(|k| i + k)?;
                    if b.get(found + 1) == Some(&b'\'') && found + 1 < line_end {
                        i = found + 2;
                        continue;
                    }
                    return Some(Scalar {
                        start: at,
                        end: found + 1,
                        style: Style::Single,
                    });
                }
            }
            // Indicators: flow collections, comments, anchors, aliases,
            // tags, block scalars, directives, reserved characters.
            b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'%'
            | b'@' | b'`' => None,
            // `- `, `? `, `: ` are indicators; followed by anything else
            // they start a plain scalar.
            b'-' | b'?' | b':' if blankz(b, at + 1) => None,
            _ => {
                // It ends before `: `, ` #` or the line's end, blanks
                // trimmed.
                let mut i = at;
                let stop = loop {
                    let Some(k) = memchr2(b':', b'#', &b[i..line_end]) else {
                        break line_end;
                    };
                    let j = i + k;
                    if (b[j] == b':' && blankz(b, j + 1)) || (b[j] == b'#' && b[j - 1] == b' ') {
                        break j;
                    }
                    i = j + 1;
                };
                let end = at + b[at..stop].trim_ascii_end().len();
                Some(Scalar {
                    start: at,
                    end,
                    style: Style::Plain,
                })
            }
        }
    }

    /// What follows a node on its line: blanks, then a comment or the end.
    fn rest_is_blank(&self, from: usize, line_end: usize) -> bool {
        let b = self.text;
        let next = from + b[from..line_end].iter().take_while(|&&c| c == b' ').count();
        next == line_end || (b[next] == b'#' && next > from)
    }

    /// `key: value` (or `key:` alone) at `at`, in a mapping at `indent`.
    /// The key is read already. Returns the pending value, if any.
    fn mapping_entry(
        &mut self,
        key: &Scalar,
        colon: usize,
        line_end: usize,
        indent: usize,
    ) -> Option<Option<Pending>> {
        let b = self.text;
        // libyaml looks for a simple key's `:` within 1024 characters.
        if colon - key.start >= 1000 {
            return None;
        }
        self.scalar(key)?;
        let after = colon + 1;
        let value = after
            + b[after..line_end]
                .iter()
                .take_while(|&&c| c == b' ')
                .count();
        if value == line_end || (b[value] == b'#' && value > after) {
            return Some(Some(Pending {
                mark: after,
                indent,
                after_key: true,
            }));
        }
        let scalar = self.scan_scalar(value, line_end)?;
        // A plain value stops at `: ` (a second key: refused) or ` #`.
        if !self.rest_is_blank(scalar.end, line_end) {
            return None;
        }
        self.scalar(&scalar)?;
        Some(None)
    }

    /// A key at `at`: its scalar and its `:`, or `None` when the line holds
    /// no `key:` there.
    fn key_at(&self, at: usize, line_end: usize) -> Option<(Scalar, usize)> {
        let key = self.scan_scalar(at, line_end)?;
        let b = self.text;
        let colon = key.end
            + b[key.end..line_end]
                .iter()
                .take_while(|&&c| c == b' ')
                .count();
        (colon < line_end && b[colon] == b':' && blankz(b, colon + 1)).then_some((key, colon))
    }

    /// A block mapping whose first key is at `at` (column `column`).
    fn open_mapping(
        &mut self,
        at: usize,
        line_end: usize,
        column: usize,
        stack: &mut Vec<Open>,
    ) -> Option<Option<Pending>> {
        let (key, colon) = self.key_at(at, line_end)?;
        self.push(mapping_start(at));
        stack.push(Open::Map(column));
        self.mapping_entry(&key, colon, line_end, column)
    }

    /// The node after a `-` at `dash` (its column is the sequence's
    /// indent): nothing (pending), a compact mapping, or a scalar.
    fn sequence_entry(
        &mut self,
        dash: usize,
        line_start: usize,
        line_end: usize,
        stack: &mut Vec<Open>,
    ) -> Option<Option<Pending>> {
        let b = self.text;
        let indent = dash - line_start;
        let at = dash
            + 1
            + b[dash + 1..line_end]
                .iter()
                .take_while(|&&c| c == b' ')
                .count();
        if at == line_end || (b[at] == b'#' && at > dash + 1) {
            return Some(Some(Pending {
                mark: dash + 1,
                indent,
                after_key: false,
            }));
        }
        if b[at] == b'-' && blankz(b, at + 1) {
            return None; // `- - item`
        }
        if let Some((key, colon)) = self.key_at(at, line_end) {
            self.push(mapping_start(at));
            stack.push(Open::Map(at - line_start));
            return self.mapping_entry(&key, colon, line_end, at - line_start);
        }
        let scalar = self.scan_scalar(at, line_end)?;
        if !self.rest_is_blank(scalar.end, line_end) {
            return None;
        }
        self.scalar(&scalar)?;
        Some(None)
    }
}

fn mapping_start(at: usize) -> Event {
    let mut e = Event::blank(EventKind::CollectionStart, at, at);
    e.mapping = true;
    e
}

/// The length of a double-quoted escape after its `\`, `None` for one
/// libyaml refuses or that continues the line.
fn escape_length(after: &[u8]) -> Option<usize> {
    let hex = match after.first()? {
        b'0' | b'a' | b'b' | b't' | b'n' | b'v' | b'f' | b'r' | b'e' | b' ' | b'"' | b'/'
        | b'\\' | b'N' | b'_' | b'L' | b'P' => return Some(1),
        b'x' => 2,
        b'u' => 4,
        b'U' => 8,
        _ => return None,
    };
    let digits = after.get(1..1 + hex)?;
    let code = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
    if !digits.iter().all(u8::is_ascii_hexdigit) || char::from_u32(code).is_none() {
        return None;
    }
    Some(1 + hex)
}

fn single_quoted_value(inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        out.push(inner[i]);
        i += if inner[i] == b'\'' { 2 } else { 1 };
    }
    out
}

fn double_quoted_value(inner: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let Some(at) = memchr(b'\\', &inner[i..]) else {
            out.extend_from_slice(&inner[i..]);
            break;
        };
        out.extend_from_slice(&inner[i..i + at]);
        i += at;
        let code = inner[i + 1];
        let simple: Option<char> = match code {
            b'0' => Some('\0'),
            b'a' => Some('\u{7}'),
            b'b' => Some('\u{8}'),
            b't' => Some('\t'),
            b'n' => Some('\n'),
            b'v' => Some('\u{b}'),
            b'f' => Some('\u{c}'),
            b'r' => Some('\r'),
            b'e' => Some('\u{1b}'),
            b' ' => Some(' '),
            b'"' => Some('"'),
            b'/' => Some('/'),
            b'\\' => Some('\\'),
            b'N' => Some('\u{85}'),
            b'_' => Some('\u{a0}'),
            b'L' => Some('\u{2028}'),
            b'P' => Some('\u{2029}'),
            _ => None,
        };
        let length = escape_length(&inner[i + 1..])?;
        let c = match simple {
            Some(c) => c,
            None => {
                let digits = std::str::from_utf8(&inner[i + 2..i + 1 + length]).ok()?;
                char::from_u32(u32::from_str_radix(digits, 16).ok()?)?
            }
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        i += 1 + length;
    }
    Some(out)
}

/// libyaml's events for `text` (as [`Parser`](super::libyaml::Parser)
/// gives them, the stream's end left out), with the values of the scalars
/// `keep` asks for pushed onto `values`; `None` when the text is not of
/// the kind this reader knows (see the module).
pub(super) fn events(
    text: &str,
    keep: impl Fn(usize, usize) -> bool,
    values: &mut Vec<Vec<u8>>,
) -> Option<Vec<Event>> {
    if !plain_characters(text) {
        return None;
    }
    let kept = values.len();
    let mut reader = Reader {
        text: text.as_bytes(),
        keep,
        values,
        out: Vec::with_capacity(16 + text.len() / 16),
    };
    let read = read(&mut reader);
    if read.is_none() {
        reader.values.truncate(kept);
        return None;
    }
    Some(reader.out)
}

fn read<K: Fn(usize, usize) -> bool>(r: &mut Reader<'_, K>) -> Option<()> {
    let b = r.text;
    r.push(Event::blank(EventKind::Other, 0, 0)); // the stream's start
    let mut stack: Vec<Open> = Vec::new();
    let mut pending: Option<Pending> = None;
    let mut started = false;
    let mut line_start = 0;
    while line_start < b.len() {
        let line_end = memchr(b'\n', &b[line_start..]).map_or(b.len(), |i| line_start + i);
        let first = line_start
            + b[line_start..line_end]
                .iter()
                .take_while(|&&c| c == b' ')
                .count();
        let next_line = line_end + 1;
        if first == line_end || b[first] == b'#' {
            line_start = next_line;
            continue;
        }
        let column = first - line_start;
        if column == 0
            && (b[first..].starts_with(b"---") || b[first..].starts_with(b"..."))
            && blankz(b, first + 3)
        {
            return None;
        }
        let dash = b[first] == b'-' && blankz(b, first + 1);
        // A node after `key:` or `-` on an earlier line: here, when deeper
        // (or a `-` at the key's own column), or else an empty scalar.
        let nested = match pending.take() {
            Some(p) if column > p.indent || (p.after_key && dash && column == p.indent) => Some(p),
            Some(p) => {
                r.empty_scalar(p.mark);
                None
            }
            None => None,
        };
        pending = if let Some(p) = nested {
            if dash {
                let mut e = Event::blank(EventKind::CollectionStart, first, first);
                if column == p.indent {
                    e.end = first + 1;
                    stack.push(Open::Indentless(column));
                } else {
                    stack.push(Open::Seq(column));
                }
                r.push(e);
                r.sequence_entry(first, line_start, line_end, &mut stack)?
            } else {
                r.open_mapping(first, line_end, column, &mut stack)?
            }
        } else {
            // Close what this line's column ends.
            loop {
                match stack.last() {
                    Some(Open::Indentless(i)) if column < *i || !dash => {}
                    Some(Open::Map(i) | Open::Seq(i)) if *i > column => {}
                    _ => break,
                }
                stack.pop();
                r.end(first);
            }
            match stack.last().copied() {
                Some(Open::Map(i)) if i == column && !dash => {
                    let (key, colon) = r.key_at(first, line_end)?;
                    r.mapping_entry(&key, colon, line_end, column)?
                }
                Some(Open::Seq(i) | Open::Indentless(i)) if i == column && dash => {
                    r.sequence_entry(first, line_start, line_end, &mut stack)?
                }
                None if !started => {
                    started = true;
                    let mut doc = Event::blank(EventKind::Other, first, first);
                    doc.document = true;
                    r.push(doc);
                    // The document's root: a mapping or a sequence.
                    if dash {
                        r.push(Event::blank(EventKind::CollectionStart, first, first));
                        stack.push(Open::Seq(column));
                        r.sequence_entry(first, line_start, line_end, &mut stack)?
                    } else {
                        r.open_mapping(first, line_end, column, &mut stack)?
                    }
                }
                _ => return None,
            }
        };
        line_start = next_line;
    }
    if !started {
        return Some(());
    }
    let end = b.len();
    if let Some(p) = pending {
        r.empty_scalar(p.mark);
    }
    for _ in stack.drain(..) {
        r.end(end);
    }
    r.push(Event::blank(EventKind::Other, end, end)); // the document's end
    Some(())
}

#[cfg(test)]
mod tests;
