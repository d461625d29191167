//! The fast path of template analysis: a file of text and `{{ … }}`
//! expressions only (the most common Mage config) is analysed with a byte
//! scan instead of minijinja's lexer; only expressions other than
//! `{{ f('literal') }}` are lexed, each on its own.

use std::ops::Range;

use super::analysis::{Analysis, ExpressionSite, Function, Literal, Reference, SimpleCall};
use super::quoting::{expression_contexts, QuotingContext, Segment};

/// The analysis of the most common template, text and expressions only,
/// found without lexing the text: a `{{ f('literal') }}` is read with a
/// byte scan, any other expression is lexed on its own. Returns `None` for
/// anything else (tags, comments, whitespace control, an expression that
/// does not lex or is unclosed), which the lexer then handles. Gives
/// exactly what [`Analysis::lex`] gives for the templates it accepts.
pub(super) fn scan_simple(source: &str) -> Option<Analysis> {
    let bytes = source.as_bytes();
    let mut opens = Vec::new();
    for i in memchr::memchr_iter(b'{', bytes) {
        match bytes.get(i + 1) {
            Some(b'%' | b'#') => return None,
            Some(b'{') if opens.last().is_none_or(|&last| last + 1 != i) => opens.push(i),
            _ => {}
        }
    }
    // The lexer drops one trailing `\n`, then one trailing `\r`.
    let trimmed = source.strip_suffix('\n').unwrap_or(source);
    let end = trimmed.strip_suffix('\r').unwrap_or(trimmed).len();
    let mut analysis = Analysis::default();
    analysis.segments.reserve(opens.len() * 2 + 2);
    analysis.expressions.reserve(opens.len());
    analysis.references.reserve(opens.len());
    let mut pos = 0;
    for open in opens {
        if open < pos {
            continue; // inside the previous expression
        }
        if open + 2 > end {
            break;
        }
        if open > pos {
            analysis.segments.push(Segment::Raw(pos..open));
        }
        let body_start = open + 2;
        if matches!(bytes.get(body_start), Some(b'-' | b'+')) {
            return None;
        }
        let simple = closing_braces(&bytes[body_start..end]).and_then(|close| {
            let body = &source[body_start..body_start + close];
            if body.ends_with(['-', '+']) {
                return None;
            }
            parse_simple_call(body).map(|call| (call, body_start + close))
        });
        let Some(((call, inner, ident_offset), close)) = simple else {
            // Any other expression: lexed on its own.
            let close_end = analysis.lex_expression_at(source, open, end)?;
            if matches!(bytes[close_end - 3], b'-' | b'+') {
                return None;
            }
            pos = close_end;
            continue;
        };
        let inner = body_start + inner.start..body_start + inner.end;
        analysis.references.push(Reference {
            function: call.function,
            name: Some(call.name.clone()),
            has_default: call.default.is_some(),
            offset: body_start + ident_offset,
        });
        if !analysis.identifiers.contains(call.function.name()) {
            analysis
                .identifiers
                .insert(call.function.name().to_string());
        }
        analysis.segments.push(Segment::Expression(open..close + 2));
        analysis.expressions.push(ExpressionSite {
            outer: open..close + 2,
            inner,
            trim_before: false,
            trim_after: false,
            context: QuotingContext::Plain,
            call: Some(call),
            bare: true,
        });
        pos = close + 2;
    }
    if end > pos {
        analysis.segments.push(Segment::Raw(pos..end));
    }
    if source.len() > end {
        analysis.segments.push(Segment::Tag(end..source.len()));
    }
    let contexts = expression_contexts(source, &analysis.segments);
    for (site, context) in analysis.expressions.iter_mut().zip(contexts) {
        site.context = context;
    }
    Some(analysis)
}

/// Where the first `}}` starts (a one-shot substring search costs more to
/// set up than the few bytes of an expression take to scan).
fn closing_braces(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'}', &bytes[from..]) {
        let at = from + i;
        if bytes.get(at + 1) == Some(&b'}') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Parses `f('a')`, `env_var('A', 'd')` or `env_var('A', 3)` with spaces or
/// tabs between tokens: the call, the range from its first to its last
/// token, and the offset of the function name.
fn parse_simple_call(body: &str) -> Option<(SimpleCall, Range<usize>, usize)> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && (bytes[*i] == b' ' || bytes[*i] == b'\t') {
            *i += 1;
        }
    };
    let expect = |i: &mut usize, b: u8| -> Option<()> {
        skip_ws(i);
        (bytes.get(*i) == Some(&b)).then(|| *i += 1)
    };
    let string = |i: &mut usize| -> Option<String> {
        skip_ws(i);
        let quote = *bytes.get(*i).filter(|q| **q == b'\'' || **q == b'"')?;
        let start = *i + 1;
        // (All ASCII: a byte scan finds exactly what a char scan would.)
        let len = memchr::memchr(quote, &bytes[start..])?;
        let text = &body[start..start + len];
        if text
            .bytes()
            .any(|b| matches!(b, b'\\' | b'\'' | b'"' | b'{' | b'}' | b'\n' | b'\r'))
        {
            return None;
        }
        *i = start + len + 1;
        Some(text.to_string())
    };
    skip_ws(&mut i);
    let ident_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
        i += 1;
    }
    let function = Function::from_ident(&body[ident_start..i])?;
    expect(&mut i, b'(')?;
    let name = string(&mut i)?;
    skip_ws(&mut i);
    let default = if bytes.get(i) == Some(&b',') && function == Function::EnvVar {
        i += 1;
        skip_ws(&mut i);
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > 0 {
            let text = &body[i..i + digits];
            if text.len() > 1 && text.starts_with('0') {
                return None;
            }
            i += digits;
            Some(Literal::Int(text.parse().ok()?))
        } else {
            Some(Literal::Str(string(&mut i)?))
        }
    } else {
        None
    };
    expect(&mut i, b')')?;
    let last = i;
    skip_ws(&mut i);
    if i != bytes.len() {
        return None;
    }
    Some((
        SimpleCall {
            function,
            name,
            default,
        },
        ident_start..last,
        ident_start,
    ))
}
