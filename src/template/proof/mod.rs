//! The proof that every substituted value reaches Mage as the value meant.
//!
//! The quoting scanner decides how a value is escaped from the template
//! source alone; this module has the last word. It parses the text Mage's
//! YAML loader will read with libyaml's event API (positions, no values
//! built) and checks each substituted place against the events:
//!
//! - the place lies inside one scalar, and for a bare call that scalar's
//!   loaded value contains the value exactly (in order, for several places
//!   in one scalar);
//! - or, in plain context, the place is exactly one flow collection (a JSON
//!   or Python-printed object or list, which Mage also reads as one);
//! - or the place touches no event at all and lies in a comment.
//!
//! Anything else (a value cut by ` #`, trimmed spaces, a key or an item
//! injected, a line end changed by a block scalar) is a [`Finding`] naming
//! the place. Plain scalars are also resolved as PyYAML resolves them (YAML
//! 1.1), so that a value Mage would read as another type than its text
//! (`yes`, `0123`, `1_000`, `12:30`) is reported.
//!
//! Findings never carry a value or anything computed from one: the caller
//! names the secret and the place.

use std::ops::Range;

use super::libyaml::{Event, EventKind, Parser};
use super::quoting::QuotingContext;
use super::yaml11::{resolves_otherwise, unloadable};

/// One substituted place in the text the YAML loader reads.
#[derive(Clone, Debug)]
pub struct Place {
    /// Byte range of the substituted text.
    pub range: Range<usize>,
    /// For a bare call, the value itself (what Mage must read there); `None`
    /// for an expression the user shaped, whose text is placed as Mage
    /// places it and is only checked to stay within one node.
    pub intended: Option<zeroize::Zeroizing<String>>,
    /// The quoting context the scanner found in the template.
    pub context: QuotingContext,
}

/// What the proof found wrong at a place (by index into the places).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The output does not parse: libyaml's fixed message, the byte range
    /// the failing node spans (from where the last node read starts to
    /// where the parser stopped).
    Syntax { message: String, span: Range<usize> },
    /// The place's text is not one value: it spans or creates structure
    /// (keys, items, documents), or lies partly outside its scalar (a ` #`
    /// starts a comment, spaces trimmed).
    Structure { place: usize },
    /// The place lies in one scalar, but the loaded scalar does not hold the
    /// value exactly (line ends folded, indentation taken, escapes read).
    Changed { place: usize },
    /// The place is between quotes (or in a block scalar) in the template,
    /// but is read inside a scalar of another style: text before it ran
    /// an earlier scalar on over the place's own.
    Swallowed { place: usize },
    /// The scalar is plain and PyYAML resolves it to another type or text
    /// than its characters (a warning: Mage reads it so).
    Resolved { place: usize },
    /// The scalar is plain and PyYAML resolves it to a tag its loader
    /// cannot construct (`<<` outside a merge, `=`): Mage's load fails.
    Unloadable { place: usize },
}

/// A collection being read.
struct Open {
    flow: bool,
    mapping: bool,
    next_is_key: bool,
}

/// Whether a non-empty range and an event touch: the event overlaps the
/// range, or starts strictly inside it.
fn touches(event: &Event, range: &Range<usize>) -> bool {
    event.start < range.end && event.end > range.start
}

/// Why Mage's `yaml.full_load` fails on text libyaml parses: more than one
/// document, an alias to no anchor, a tag it cannot construct, a list or
/// mapping as a key (unhashable), or a tab where PyYAML's scanner allows
/// none (outside quotes, block scalar text and comments).
fn load_failure(text: &str, events: &[Event]) -> Option<Finding> {
    let fail = |message: &str, span: Range<usize>| Finding::Syntax {
        message: message.to_string(),
        span,
    };
    if let Some(second) = events.iter().filter(|e| e.document).nth(1) {
        return Some(fail(
            "expected a single document in the stream (Mage loads one)",
            second.start..second.end.max(second.start + 1),
        ));
    }
    for e in events {
        if let Some(why) = e.unloadable {
            return Some(fail(why, e.start..e.end));
        }
        if e.kind == EventKind::CollectionStart && e.key {
            return Some(fail(
                "found an unhashable key (a list or a mapping used as a mapping key)",
                e.start..e.end,
            ));
        }
    }
    // Quoted and block scalars; a block scalar's header line (its `|` or
    // `>` and what follows on that line) takes no tab in PyYAML.
    // PyYAML takes a block scalar's indicators (`|`/`>`, then chomping
    // and indentation) only when a space or the line's end follows them.
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::Scalar && e.block)
    {
        let Some(at) = text[e.start..e.end].find(['|', '>']).map(|i| e.start + i) else {
            continue;
        };
        let after = text[at + 1..]
            .char_indices()
            .take(2)
            .take_while(|(_, c)| matches!(c, '+' | '-' | '1'..='9'))
            .last()
            .map_or(at + 1, |(i, c)| at + 1 + i + c.len_utf8());
        if !text[after..].starts_with([' ', '\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
            && after < text.len()
        {
            return Some(fail(
                "expected a space or a line break after a block scalar's indicators (PyYAML reads its header so)",
                at..after + 1,
            ));
        }
    }
    let quoted: Vec<(Range<usize>, bool)> = events
        .iter()
        .filter(|e| e.kind == EventKind::Scalar && !e.plain)
        .map(|e| {
            let start = if e.block {
                text[e.start..e.end]
                    .find(['\n', '\r'])
                    .map_or(e.end, |i| e.start + i)
            } else {
                e.start
            };
            (start..e.end, e.block)
        })
        .collect();
    for (at, _) in text.match_indices('\t') {
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let in_scalar = quoted.iter().find(|(r, _)| r.start <= at && at < r.end);
        let fine = match in_scalar {
            // Block scalar text, but not a tab that indents its line.
            Some((_, true)) => text[line_start..at].chars().any(|c| c != ' '),
            Some((_, false)) => true,
            // A comment: after a `#` that starts one (at a line's start or
            // after a space), outside any quoted scalar.
            None => text[line_start..at].char_indices().any(|(i, c)| {
                let pos = line_start + i;
                c == '#'
                    && (i == 0 || text[..pos].ends_with([' ', '\t']))
                    && !quoted.iter().any(|(r, _)| r.start <= pos && pos < r.end)
            }),
        };
        if !fine {
            return Some(fail(
                "found character '\\t' that cannot start any token (PyYAML allows tabs only in quotes, block scalar text and comments)",
                at..at + 1,
            ));
        }
    }
    None
}

/// Every event libyaml reads in `text`, or the syntax error where it stops.
fn libyaml_events(
    text: &str,
    values: &mut Vec<Vec<u8>>,
    keep: impl Fn(usize, usize) -> bool + Copy,
) -> Result<Vec<Event>, Finding> {
    let mut events: Vec<Event> = Vec::new();
    let mut parser = Parser::new(text.as_bytes());
    loop {
        match parser.next(values, keep) {
            Ok(Some(e)) => events.push(e),
            Ok(None) => return Ok(events),
            Err((message, at, context_at)) => {
                // The failing node starts at or after the last node read.
                let from = events
                    .iter()
                    .rev()
                    .find(|e| e.kind != EventKind::Other)
                    .map_or(0, |e| e.start);
                let from = context_at.map_or(from, |c| c.min(from)).min(at);
                return Err(Finding::Syntax {
                    message,
                    span: from..at.max(from),
                });
            }
        }
    }
}

/// Under the fuzzer and in debug builds (every test): the line reader's events are libyaml's.
#[cfg(any(fuzzing, debug_assertions))]
fn assert_same_as_libyaml(
    text: &str,
    events: &[Event],
    values: &[Vec<u8>],
    keep: impl Fn(usize, usize) -> bool + Copy,
) {
    let mut slow_values = Vec::new();
    let slow = libyaml_events(text, &mut slow_values, keep)
        .unwrap_or_else(|e| panic!("read by lines, refused by libyaml: {e:?} {text:?}"));
    assert_eq!(format!("{events:?}"), format!("{slow:?}"), "{text:?}");
    assert_eq!(values, slow_values.as_slice(), "{text:?}");
}

/// Parses `text` (every document) and checks every place. Places must be
/// in text order and not overlap.
pub fn prove(text: &str, places: &[Place]) -> Vec<Finding> {
    let mut values: Vec<Vec<u8>> = Vec::new();
    let holds_place = |start: usize, end: usize| {
        let i = places.partition_point(|p| p.range.end < start);
        places
            .get(i)
            .is_some_and(|p| p.range.start <= end && p.range.end >= start)
    };
    // Config files are mostly block YAML that a line reader reads exactly
    // as libyaml does, many times faster; anything else goes to libyaml.
    let mut events = match super::yaml_lines::events(text, holds_place, &mut values) {
        Some(events) => {
            #[cfg(any(fuzzing, debug_assertions))]
            assert_same_as_libyaml(text, &events, &values, holds_place);
            events
        }
        None => match libyaml_events(text, &mut values, holds_place) {
            Ok(events) => events,
            Err(syntax) => return vec![syntax],
        },
    };
    // Which nodes are keys, and which lie inside a flow collection.
    let mut open: Vec<Open> = Vec::new();
    for e in &mut events {
        let inside_flow = open.last().is_some_and(|o| o.flow);
        let is_node = matches!(
            e.kind,
            EventKind::Scalar | EventKind::CollectionStart | EventKind::Alias
        );
        if is_node {
            if let Some(parent) = open.last_mut() {
                e.key = parent.mapping && parent.next_is_key;
                if parent.mapping {
                    parent.next_is_key = !parent.next_is_key;
                }
            }
        }
        match e.kind {
            EventKind::CollectionStart => open.push(Open {
                flow: e.flow,
                mapping: e.mapping,
                next_is_key: true,
            }),
            EventKind::CollectionEnd => {
                open.pop();
            }
            _ => {}
        }
        e.flow |= inside_flow;
    }
    let mut findings = Vec::new();
    if let Some(load) = load_failure(text, &events) {
        findings.push(load);
        return findings;
    }
    // Events come in text order of their start marks.
    let mut cursor: Option<(usize, usize)> = None; // (event, offset in its value)
    let mut touching: Vec<usize> = Vec::new();
    for (index, place) in places.iter().enumerate() {
        let range = &place.range;
        if range.is_empty() {
            if place.intended.is_some() && place.context == QuotingContext::Plain {
                // An empty value alone in plain context reads as None.
                let alone = !events.iter().any(|e| {
                    e.kind == EventKind::Scalar
                        && e.start < e.end
                        && e.start <= range.start
                        && range.end <= e.end
                });
                if alone {
                    findings.push(Finding::Resolved { place: index });
                }
            }
            continue;
        }
        let first = events.partition_point(|e| e.end <= range.start && e.start <= range.start);
        // A place that spans lines may also make empty nodes right after
        // it (`⏎?` starts a key whose key and value are empty): those count.
        // Printable ASCII (most places) holds no line break, tab or BOM.
        let plain_ascii = text.as_bytes()[range.clone()]
            .iter()
            .all(|b| (b' '..=b'~').contains(b));
        let spans_lines = !plain_ascii
            && text[range.clone()].contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']);
        let empty_right_after = |e: &Event| spans_lines && e.start == e.end && e.start == range.end;
        touching.clear();
        touching.extend(
            (first..events.len())
                .take_while(|&i| events[i].start < range.end || empty_right_after(&events[i]))
                .filter(|&i| touches(&events[i], range) || empty_right_after(&events[i])),
        );
        // PyYAML takes a tab outside quotes, block scalars and comments for
        // the start of a token and fails; it counts no column for a BOM,
        // which libyaml skips at a line start: both are safe only escaped.
        let tab = !plain_ascii && text[range.clone()].contains('\t');
        let bom = !plain_ascii && text[range.clone()].contains('\u{feff}');
        // A comment ends at a line break: text after one is YAML, even when
        // it makes only empty events next to the place (`?` starts a key).
        let leaves_comment = spans_lines && place.context == QuotingContext::Comment && {
            let t = &text[range.clone()];
            t.find(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
                .is_some_and(|at| !t[at..].trim().is_empty())
        };
        if leaves_comment {
            findings.push(Finding::Structure { place: index });
            continue;
        }
        match touching.as_slice() {
            [] => {
                // YAML ignores only comments and white space: non-blank
                // text touching no event lies in a comment.
                if bom {
                    findings.push(Finding::Unloadable { place: index });
                } else if place.context != QuotingContext::Comment {
                    if tab {
                        findings.push(Finding::Unloadable { place: index });
                    } else if place.intended.is_some() {
                        findings.push(Finding::Structure { place: index });
                    }
                }
            }
            [only] if events[*only].kind == EventKind::Scalar => {
                let e = &events[*only];
                let value = e.value.map(|v| &values[v]);
                // Written where the template has plain YAML, but read inside
                // a block scalar begun earlier: its indentation pulled the
                // template's own text into that scalar.
                if place.context == QuotingContext::Plain && e.block && e.start < range.start {
                    findings.push(Finding::Structure { place: index });
                    continue;
                }
                if bom && !e.double_quoted {
                    findings.push(Finding::Unloadable { place: index });
                    continue;
                }
                if e.plain && (tab || (e.flow && text[range.clone()].contains('?'))) {
                    // PyYAML takes a tab outside quotes, block scalars and
                    // comments for the start of a token, and ends a plain
                    // scalar in a flow collection at `?`: it fails or
                    // reads another structure where libyaml does not.
                    findings.push(Finding::Unloadable { place: index });
                    continue;
                }
                if e.properties && e.start >= range.start && e.start < range.end {
                    // A tag or an anchor written by the value: PyYAML may
                    // fail on it, and it is not part of the value read.
                    findings.push(Finding::Unloadable { place: index });
                    continue;
                }
                if e.plain_untagged && value.is_some_and(|v| unloadable(v)) {
                    findings.push(Finding::Unloadable { place: index });
                    continue;
                }
                if place.context == QuotingContext::Comment {
                    findings.push(Finding::Structure { place: index });
                    continue;
                }
                let Some(intended) = &place.intended else {
                    // Text the user shaped is placed as Mage places it:
                    // it need only stay within this one node, and not start
                    // a node of its own on a line it begins (a new key).
                    let breaks_before = text[range.start..e.start.clamp(range.start, range.end)]
                        .contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']);
                    if breaks_before {
                        findings.push(Finding::Structure { place: index });
                    }
                    continue;
                };
                // A value written between quotes is read from a scalar of
                // that style, or its node was swallowed: text the user
                // shaped before it (a raw `\` ending a double-quoted
                // scalar) ran that scalar on over this one, which then
                // holds the value's text but is not its node. Written
                // where the template has plain YAML (raw: plain values are
                // not escaped), it is read from a plain scalar: a quoted one
                // begun before it swallowed it (a raw `'` left an earlier
                // single-quoted scalar open), and one its own text begins
                // (a `'` or `"` it starts with) reads other text than it.
                let style_kept = match place.context {
                    QuotingContext::DoubleQuoted => e.double_quoted,
                    QuotingContext::SingleQuoted => !(e.plain || e.block || e.double_quoted),
                    QuotingContext::Block { .. } => e.block,
                    QuotingContext::Plain => e.plain,
                    QuotingContext::Comment => true,
                };
                if !style_kept {
                    if place.context == QuotingContext::Plain && e.start >= range.start {
                        findings.push(Finding::Structure { place: index });
                    } else {
                        findings.push(Finding::Swallowed { place: index });
                    }
                    continue;
                }
                // A value that begins a line of a scalar begun on an earlier
                // line: YAML drops the white space a quoted or plain
                // scalar's continuation line starts with, and counts that
                // of a block scalar's first line into its indentation (when
                // no indicator gives it), so a value's own leading space or
                // tab there is lost.
                // (Asked only of a value that starts with white space, and
                // only back to its scalar's start: no long line is scanned
                // once per place.)
                let line_start = intended
                    .starts_with([' ', '\t'])
                    .then(|| {
                        text[e.start.min(range.start)..range.start]
                            .rfind(['\n', '\r'])
                            .map(|i| e.start + i + 1)
                    })
                    .flatten();
                if line_start.is_some_and(|line_start| {
                    text[line_start..range.start]
                        .bytes()
                        .all(|b| b == b' ' || b == b'\t')
                        && (!e.block || first_block_line_unindicated(text, e.start, line_start))
                }) {
                    findings.push(Finding::Changed { place: index });
                    continue;
                }
                // A raw `\` just before it (text an expression shaped)
                // escapes the value's first character in double quotes.
                if e.double_quoted
                    && text[..range.start]
                        .bytes()
                        .rev()
                        .take_while(|b| *b == b'\\')
                        .count()
                        % 2
                        == 1
                {
                    findings.push(Finding::Changed { place: index });
                    continue;
                }
                if !(e.start <= range.start && range.end <= e.end) {
                    findings.push(Finding::Structure { place: index });
                    continue;
                }
                let Some(value) = value else {
                    findings.push(Finding::Changed { place: index });
                    continue;
                };
                if e.block && intended.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
                    // PyYAML and libyaml differ on these line breaks in block
                    // and single-quoted scalars.
                    findings.push(Finding::Changed { place: index });
                    continue;
                }
                let from = match cursor {
                    Some((ev, offset)) if ev == *only => offset,
                    _ => 0,
                };
                let rest = &value[from.min(value.len())..];
                // Most often the scalar is the value, or starts with it.
                let found = if rest.starts_with(intended.as_bytes()) {
                    Some(0)
                } else {
                    memchr::memmem::find(rest, intended.as_bytes())
                };
                match found {
                    Some(at) => {
                        cursor = Some((*only, from + at + intended.len()));
                        if e.plain_untagged && resolves_otherwise(value) {
                            findings.push(Finding::Resolved { place: index });
                        }
                        if e.plain && intended.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
                            findings.push(Finding::Changed { place: index });
                        }
                    }
                    None => findings.push(Finding::Changed { place: index }),
                }
            }
            [open, .., close] if place.context == QuotingContext::Plain => {
                // A flow collection that is exactly the value (as Mage reads
                // a JSON object): one node from its first to its last byte.
                let trimmed_start = range.start
                    + (text[range.clone()].len() - text[range.clone()].trim_start().len());
                let trimmed_end = range.start + text[range.clone()].trim_end().len();
                let (o, c) = (&events[*open], &events[*close]);
                let mut depth = 0i64;
                let mut balanced = true;
                // Per open collection: is it a mapping, and is the next node a key?
                let mut open_maps: Vec<(bool, bool)> = Vec::new();
                for &i in &touching {
                    let node = matches!(
                        events[i].kind,
                        EventKind::CollectionStart | EventKind::Scalar
                    );
                    if node {
                        if let Some((true, key)) = open_maps.last_mut() {
                            // PyYAML cannot hash a collection used as a key.
                            if *key && events[i].kind == EventKind::CollectionStart {
                                balanced = false;
                            }
                            *key = !*key;
                        }
                    }
                    match events[i].kind {
                        EventKind::CollectionStart => {
                            depth += 1;
                            open_maps.push((events[i].mapping, true));
                        }
                        EventKind::CollectionEnd => {
                            depth -= 1;
                            open_maps.pop();
                        }
                        EventKind::Other | EventKind::Alias => balanced = false,
                        // `=` or a stray `<<` inside: PyYAML cannot build it.
                        EventKind::Scalar => {
                            if events[i].plain_untagged
                                && events[i].value.is_some_and(|v| unloadable(&values[v]))
                            {
                                balanced = false;
                            }
                        }
                    }
                    if events[i].properties {
                        balanced = false;
                    }
                    if depth <= 0 && i != *close {
                        balanced = false;
                    }
                }
                let is_node = balanced
                    && depth == 0
                    && !o.key
                    && o.kind == EventKind::CollectionStart
                    && c.kind == EventKind::CollectionEnd
                    && o.start == trimmed_start
                    && c.end == trimmed_end
                    && matches!(text.as_bytes().get(trimmed_start), Some(b'{' | b'['));
                if !is_node {
                    findings.push(Finding::Structure { place: index });
                }
            }
            _ => findings.push(Finding::Structure { place: index }),
        }
    }
    findings
}

/// Whether the line at `line_start` is the first line with content of the
/// block scalar whose header starts at `start`, and the header gives no
/// indentation indicator (so that line's indentation sets the scalar's).
fn first_block_line_unindicated(text: &str, start: usize, line_start: usize) -> bool {
    let header_end = text[start..line_start]
        .find(['\n', '\r'])
        .map_or(line_start, |i| start + i);
    let header = &text[start..header_end];
    let indicated = header.find(['|', '>']).is_some_and(|at| {
        header[at + 1..]
            .bytes()
            .take(2)
            .any(|b| (b'1'..=b'9').contains(&b))
    });
    !indicated
        && text[header_end..line_start]
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests;
