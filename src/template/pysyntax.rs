//! Python syntax that minijinja reads differently from Jinja2, made to
//! mean what it means in Jinja2 by rewriting the template text before it is
//! compiled (the offsets of everything the rewrite inserts map back to the
//! original, so diagnostics and output spans point at the user's text):
//!
//! - `(a, b)` is a tuple in Jinja2 (printed `('a', 2)`), a list in minijinja:
//!   it becomes `__tuple(a, b)`.
//! - `'%s-%d' % (a, b)` is Python's printf formatting in Jinja2, an error in
//!   minijinja: `x % y` becomes `__percent(x, y)`, which formats when `x` is
//!   a string and is Python's modulo otherwise.
//! - `{% for c in 'abc' %}` knows its length in Jinja2 (`loop.length`,
//!   `loop.last`, `loop.revindex`), not in minijinja: the iterated value
//!   goes through `__loopable(…)`, which turns a string into its characters.

use minijinja::machinery::{Span, Token, Tokenizer};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};

use super::python::PyTuple;

/// A template text with the rewrites applied.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub text: String,
    /// (offset in `text` where an insertion starts, its length, the
    /// original offset it stands at), in order.
    inserts: Vec<(usize, usize, usize)>,
}

impl Rewritten {
    /// The original offset of `offset` in the rewritten text.
    pub fn original(&self, offset: usize) -> usize {
        let mut shift = 0;
        for &(start, len, orig) in &self.inserts {
            if offset < start {
                break;
            }
            if offset < start + len {
                return orig;
            }
            shift += len;
        }
        offset - shift
    }
}

/// Maps an offset of a compiled text back to its source.
pub fn original(rewritten: Option<&Rewritten>, offset: usize) -> usize {
    rewritten.map_or(offset, |r| r.original(offset))
}

/// Registers the helpers the rewrite calls.
pub fn install(env: &mut Environment<'static>) {
    env.add_function("__tuple", |items: minijinja::value::Rest<Value>| {
        PyTuple::value(items.0)
    });
    env.add_function("__percent", percent);
    env.add_function("__loopable", |v: Value| {
        if v.kind() == ValueKind::String {
            let chars: Vec<Value> = v
                .as_str()
                .unwrap_or_default()
                .chars()
                .map(Value::from)
                .collect();
            Value::from(chars)
        } else {
            v
        }
    });
}

/// Python's `x % y`: printf-style formatting of a string (a tuple gives the
/// arguments, a dict the named ones), else the modulo of numbers with the
/// sign of the divisor.
fn percent(left: Value, right: Value) -> Result<Value, Error> {
    if let Some(format) = left.as_str() {
        super::format_widths_fit(format, true)?;
        let args: Vec<Value> = if let Some(t) = right.downcast_object_ref::<PyTuple>() {
            t.0.clone()
        } else if super::jinja2::is_dict(&right) {
            let pairs = right
                .try_iter()?
                .map(|k| {
                    let v = right.get_item(&k)?;
                    Ok((k.to_string(), v))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            vec![Value::from(Kwargs::from_iter(pairs))]
        } else {
            vec![right]
        };
        return minijinja::formatting::format(
            minijinja::formatting::FormatStyle::Printf,
            format,
            &args,
        )
        .map(Value::from);
    }
    let zero = || Error::new(ErrorKind::InvalidOperation, "integer modulo by zero");
    if left.is_integer() && right.is_integer() {
        let a = i128::try_from(left)?;
        let b = i128::try_from(right)?;
        if b == 0 {
            return Err(zero());
        }
        let r = a % b;
        return Ok(Value::from(if r != 0 && (r < 0) != (b < 0) {
            r + b
        } else {
            r
        }));
    }
    if left.kind() == ValueKind::Number && right.kind() == ValueKind::Number {
        let a = f64::try_from(left)?;
        let b = f64::try_from(right)?;
        if b == 0.0 {
            return Err(Error::new(ErrorKind::InvalidOperation, "float modulo"));
        }
        let r = a % b;
        return Ok(Value::from(if r != 0.0 && (r < 0.0) != (b < 0.0) {
            r + b
        } else {
            r
        }));
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "unsupported operand types for %: {} and {}",
            left.kind(),
            right.kind()
        ),
    ))
}

type Tokens<'s> = Vec<(Token<'s>, Span)>;

/// One insertion: at `offset` in the original, `text`; `rank` orders
/// insertions at one offset (lower first).
struct Insert {
    offset: usize,
    rank: (u8, i64),
    text: &'static str,
}

/// The rewritten template, or `None` when it needs no rewrite (or does not
/// lex, which the compiler then reports).
pub fn rewrite(source: &str) -> Option<Rewritten> {
    if !source.contains('(') && !source.contains('%') && !source.contains("for") {
        return None;
    }
    let mut tokenizer = Tokenizer::new(source, "<template>", false, SyntaxConfig::default());
    let mut tokens: Tokens<'_> = Vec::new();
    loop {
        match tokenizer.next_token() {
            Ok(Some(t)) => tokens.push(t),
            Ok(None) => break,
            Err(_) => return None,
        }
    }
    let mut inserts: Vec<Insert> = Vec::new();
    let mut percents: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_block = matches!(tokens[i].0, Token::BlockStart);
        if !matches!(tokens[i].0, Token::VariableStart | Token::BlockStart) {
            i += 1;
            continue;
        }
        let end = (i + 1..tokens.len())
            .find(|&j| matches!(tokens[j].0, Token::VariableEnd | Token::BlockEnd))
            .unwrap_or(tokens.len());
        let body = &tokens[i + 1..end];
        rewrite_tag(body, is_block, &mut inserts, &mut percents);
        i = end + 1;
    }
    if inserts.is_empty() && percents.is_empty() {
        return None;
    }
    inserts.sort_by_key(|ins| (ins.offset, ins.rank));
    let mut text = String::with_capacity(source.len() + inserts.len() * 12);
    let mut mapped = Vec::with_capacity(inserts.len());
    let mut pos = 0;
    for ins in &inserts {
        push_replacing(&mut text, source, pos, ins.offset, &percents);
        pos = ins.offset;
        mapped.push((text.len(), ins.text.len(), ins.offset));
        text.push_str(ins.text);
    }
    push_replacing(&mut text, source, pos, source.len(), &percents);
    Some(Rewritten {
        text,
        inserts: mapped,
    })
}

/// Copies `source[from..to]`, turning each `%` operator into `,`.
fn push_replacing(out: &mut String, source: &str, from: usize, to: usize, percents: &[usize]) {
    let mut pos = from;
    for &p in percents.iter().filter(|&&p| p >= from && p < to) {
        out.push_str(&source[pos..p]);
        out.push(',');
        pos = p + 1;
    }
    out.push_str(&source[pos..to]);
}

fn start(t: &(Token<'_>, Span)) -> usize {
    t.1.start_offset as usize
}

fn end(t: &(Token<'_>, Span)) -> usize {
    t.1.end_offset as usize
}

fn is_open(t: &Token<'_>) -> bool {
    matches!(t, Token::ParenOpen | Token::BracketOpen | Token::BraceOpen)
}

fn is_close(t: &Token<'_>) -> bool {
    matches!(
        t,
        Token::ParenClose | Token::BracketClose | Token::BraceClose
    )
}

/// The index of the token closing the group opened at `i`.
fn closing(body: &[(Token<'_>, Span)], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, (t, _)) in body.iter().enumerate().skip(i) {
        if is_open(t) {
            depth += 1;
        } else if is_close(t) {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// The index of the token opening the group closed at `i`.
fn opening(body: &[(Token<'_>, Span)], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    for j in (0..=i).rev() {
        let t = &body[j].0;
        if is_close(t) {
            depth += 1;
        } else if is_open(t) {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// Words that end an operand (lower precedence than `%`, or statements).
const STOPS: &[&str] = &[
    "and",
    "or",
    "not",
    "if",
    "else",
    "in",
    "for",
    "set",
    "with",
    "macro",
    "call",
    "filter",
    "print",
    "elif",
    "recursive",
    "import",
    "from",
    "as",
    "block",
];

fn rewrite_tag(
    body: &[(Token<'_>, Span)],
    is_block: bool,
    inserts: &mut Vec<Insert>,
    percents: &mut Vec<usize>,
) {
    let head = match body.first() {
        Some((Token::Ident(h), _)) if is_block => Some(*h),
        _ => None,
    };
    // Where expressions start: after `in` of a for, after `=` of a set.
    let first_expr = match head {
        Some("for") => body
            .iter()
            .position(|(t, _)| matches!(t, Token::Ident("in")))
            .map_or(body.len(), |p| p + 1),
        Some("set") => body
            .iter()
            .position(|(t, _)| matches!(t, Token::Assign))
            .map_or(body.len(), |p| p + 1),
        Some("macro") => body.len(),
        _ => 0,
    };
    if head == Some("for") && first_expr < body.len() {
        let mut depth = 0usize;
        let mut last = first_expr;
        for (j, (t, _)) in body.iter().enumerate().skip(first_expr) {
            if is_open(t) {
                depth += 1;
            } else if is_close(t) {
                depth = depth.saturating_sub(1);
            } else if depth == 0 && matches!(t, Token::Ident("if" | "recursive")) {
                break;
            }
            last = j;
        }
        inserts.push(Insert {
            offset: start(&body[first_expr]),
            rank: (0, 0),
            text: "__loopable(",
        });
        inserts.push(Insert {
            offset: end(&body[last]),
            rank: (2, 0),
            text: ")",
        });
    }
    for i in first_expr..body.len() {
        match &body[i].0 {
            Token::ParenOpen => {
                let called = i > 0
                    && match &body[i - 1].0 {
                        Token::Ident(name) => !STOPS.contains(name) && *name != "is",
                        t => is_close(t) || matches!(t, Token::Str(_) | Token::String(_)),
                    };
                let caller_args = i > 0 && matches!(body[i - 1].0, Token::Ident("call")) && i == 1;
                if called || caller_args {
                    continue;
                }
                let Some(close) = closing(body, i) else {
                    continue;
                };
                let mut depth = 0usize;
                let mut comma = false;
                for (t, _) in &body[i + 1..close] {
                    if is_open(t) {
                        depth += 1;
                    } else if is_close(t) {
                        depth = depth.saturating_sub(1);
                    } else if depth == 0 && matches!(t, Token::Comma) {
                        comma = true;
                    }
                }
                if comma || close == i + 1 {
                    inserts.push(Insert {
                        offset: start(&body[i]),
                        rank: (1, 0),
                        text: "__tuple",
                    });
                }
            }
            Token::Mod => {
                let (Some(l), Some(r)) =
                    (left_operand(body, i, first_expr), right_operand(body, i))
                else {
                    continue;
                };
                percents.push(start(&body[i]));
                // At one offset, the outer call opens first and closes last.
                inserts.push(Insert {
                    offset: start(&body[l]),
                    rank: (0, -(r as i64)),
                    text: "__percent(",
                });
                inserts.push(Insert {
                    offset: end(&body[r]),
                    rank: (2, -(l as i64)),
                    text: ")",
                });
            }
            _ => {}
        }
    }
}

/// The first token of the left operand of the `%` at `m` (a chain of
/// `*`, `/`, `//`, `%`, `**` over unary, postfix and filter expressions).
fn left_operand(body: &[(Token<'_>, Span)], m: usize, floor: usize) -> Option<usize> {
    let mut k = m.checked_sub(1)?;
    let mut first = None;
    loop {
        if k < floor {
            break;
        }
        let t = &body[k].0;
        let take = match t {
            t if is_close(t) => {
                let open = opening(body, k)?;
                if open < floor {
                    break;
                }
                first = Some(open);
                if open == 0 {
                    break;
                }
                k = open - 1;
                continue;
            }
            Token::Ident(name) => {
                !STOPS.contains(name)
                    || (*name == "not" && k > 0 && matches!(body[k - 1].0, Token::Ident("is")))
            }
            Token::Str(_)
            | Token::String(_)
            | Token::Int(_)
            | Token::Int128(_)
            | Token::Float(_)
            | Token::Dot
            | Token::Pipe
            | Token::Mul
            | Token::Div
            | Token::FloorDiv
            | Token::Mod
            | Token::Pow => true,
            Token::Minus | Token::Plus => {
                // Unary when it follows an operator or starts the operand.
                let unary = k == floor
                    || k == 0
                    || matches!(
                        body[k - 1].0,
                        Token::Mul
                            | Token::Div
                            | Token::FloorDiv
                            | Token::Mod
                            | Token::Pow
                            | Token::Minus
                            | Token::Plus
                            | Token::Tilde
                            | Token::Comma
                            | Token::Colon
                            | Token::Assign
                    )
                    || is_open(&body[k - 1].0)
                    || matches!(&body[k - 1].0, Token::Ident(n) if STOPS.contains(n));
                if !unary {
                    break;
                }
                true
            }
            _ => false,
        };
        if !take {
            break;
        }
        first = Some(k);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    // An operand cannot start with an operator.
    let f = first?;
    match body[f].0 {
        Token::Mul
        | Token::Div
        | Token::FloorDiv
        | Token::Mod
        | Token::Pow
        | Token::Dot
        | Token::Pipe => None,
        _ => Some(f),
    }
}

/// The last token of the right operand of the `%` at `m`: a unary
/// expression with its postfix, filters and tests, and any `** x`.
fn right_operand(body: &[(Token<'_>, Span)], m: usize) -> Option<usize> {
    let mut j = m + 1;
    loop {
        while matches!(body.get(j)?.0, Token::Minus | Token::Plus) {
            j += 1;
        }
        // The primary.
        let t = &body.get(j)?.0;
        let mut last = if is_open(t) { closing(body, j)? } else { j };
        // Postfix: .attr, [sub], (call), |filter(args), is [not] test(args).
        loop {
            match body.get(last + 1).map(|t| &t.0) {
                Some(Token::Dot) => last += 2,
                Some(Token::BracketOpen | Token::ParenOpen) => {
                    last = closing(body, last + 1)?;
                }
                Some(Token::Pipe) => {
                    last += 2;
                    if matches!(body.get(last + 1).map(|t| &t.0), Some(Token::ParenOpen)) {
                        last = closing(body, last + 1)?;
                    }
                }
                Some(Token::Ident("is")) => {
                    last += 2;
                    if matches!(body.get(last).map(|t| &t.0), Some(Token::Ident("not"))) {
                        last += 1;
                    }
                    if matches!(body.get(last + 1).map(|t| &t.0), Some(Token::ParenOpen)) {
                        last = closing(body, last + 1)?;
                    }
                }
                _ => break,
            }
        }
        if last >= body.len() {
            return None;
        }
        if matches!(body.get(last + 1).map(|t| &t.0), Some(Token::Pow)) {
            j = last + 2;
            continue;
        }
        return Some(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(src: &str) -> String {
        rewrite(src).map_or_else(|| src.to_string(), |r| r.text)
    }

    #[test]
    fn tuples_percent_and_loops_are_rewritten() {
        assert_eq!(rw("{{ ('a', 2) }}"), "{{ __tuple('a', 2) }}");
        assert_eq!(rw("{{ f('a', 2) }}"), "{{ f('a', 2) }}");
        assert_eq!(rw("{{ (1 + 2) * 3 }}"), "{{ (1 + 2) * 3 }}");
        assert_eq!(rw("{{ x in ('a',) }}"), "{{ x in __tuple('a',) }}");
        assert_eq!(
            rw("{{ '%s-%d' % ('a', 3) }}"),
            "{{ __percent('%s-%d' , __tuple('a', 3)) }}"
        );
        assert_eq!(
            rw("{{ a ~ b % c|upper ~ d }}"),
            "{{ a ~ __percent(b , c|upper) ~ d }}"
        );
        assert_eq!(
            rw("{{ a % b % c }}"),
            "{{ __percent(__percent(a , b) , c) }}"
        );
        assert_eq!(
            rw("{{ x.y(1) % -z[0] }}"),
            "{{ __percent(x.y(1) , -z[0]) }}"
        );
        assert_eq!(rw("{{ 1 + 7 % 3 }}"), "{{ 1 + __percent(7 , 3) }}");
        assert_eq!(
            rw("{% for (a, b) in 'xy' if a %}{% endfor %}"),
            "{% for (a, b) in __loopable('xy') if a %}{% endfor %}"
        );
        assert_eq!(
            rw("{% macro m(a, b) %}{% endmacro %}"),
            "{% macro m(a, b) %}{% endmacro %}"
        );
        assert_eq!(
            rw("{% call(a, b) m() %}{% endcall %}"),
            "{% call(a, b) m() %}{% endcall %}"
        );
        assert_eq!(
            rw("{% raw %}{{ (1, 2) }}{% endraw %}"),
            "{% raw %}{{ (1, 2) }}{% endraw %}"
        );
    }

    #[test]
    fn offsets_map_back_to_the_source() {
        let src = "{{ ('a', 2) }} {{ oops }}";
        let r = rewrite(src).unwrap();
        let at = r.text.find("oops").unwrap();
        assert_eq!(r.original(at), src.find("oops").unwrap());
        assert_eq!(
            r.original(r.text.find("__tuple").unwrap()),
            src.find('(').unwrap()
        );
    }
}
