//! Secrets named by Mage's Python blocks: calls of Mage's
//! `get_secret_value('name', …)` (imported from
//! `mage_ai.data_preparation.shared.secrets`, or from this crate's Python
//! package `mage_secrets`), found with a tokenizer of Python's own rules, so
//! that a call inside a string or a comment is not one.

use std::ops::Range;

/// One call of `get_secret_value` in a Python file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRead {
    /// The name, when the first argument is one plain string literal.
    pub name: Option<String>,
    /// Byte offset of the call's name.
    pub offset: usize,
    /// `pipeline_uuid='…'` given as a literal: the pipeline scope is read
    /// first, as the helper does.
    pub pipeline: Option<String>,
}

/// The modules `get_secret_value` is Mage's (or ours) when imported from.
const MODULES: &[&str] = &["mage_ai.data_preparation.shared.secrets", "mage_secrets"];

const FUNCTION: &str = "get_secret_value";

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token<'s> {
    Name(&'s str),
    /// A string literal; its value when it is plain (no f-prefix, no
    /// escapes, not bytes).
    Str(Option<String>),
    Op(char),
}

/// Python's tokens of `source` with their byte ranges: names, string
/// literals (every prefix and quote form), one-character operators;
/// comments, numbers and whitespace are skipped.
fn tokens(source: &str) -> Vec<(Token<'_>, Range<usize>)> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' | b'"' => {
                let (token, end) = string(source, i, "");
                out.push((token, i..end));
                i = end;
            }
            c if c == b'_' || c.is_ascii_alphabetic() || c >= 0x80 => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric() || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                let word = &source[start..i];
                let is_prefix = word.len() <= 2
                    && word
                        .chars()
                        .all(|c| matches!(c.to_ascii_lowercase(), 'r' | 'b' | 'u' | 'f'));
                if is_prefix && i < bytes.len() && matches!(bytes[i], b'\'' | b'"') {
                    let (token, end) = string(source, i, word);
                    out.push((token, start..end));
                    if word.to_ascii_lowercase().contains('f') {
                        out.extend(fields(source, i, end));
                    }
                    i = end;
                } else {
                    out.push((Token::Name(word), start..i));
                }
            }
            c if c.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
            }
            c if c.is_ascii_whitespace() || c == b'\\' => i += 1,
            c => {
                out.push((Token::Op(c as char), i..i + 1));
                i += 1;
            }
        }
    }
    out
}

/// The tokens of an f-string's replacement fields (`{expr}`, not `{{`),
/// with their places in `source`; the literal runs from its quote at
/// `start` to `end`.
fn fields(source: &str, start: usize, end: usize) -> Vec<(Token<'_>, Range<usize>)> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < end {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'{' => {
                let mut depth = 1;
                let mut j = i + 1;
                while j < end && depth > 0 {
                    match bytes[j] {
                        b'{' => depth += 1,
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                let inner = (i + 1)..(j - usize::from(depth == 0)).max(i + 1);
                out.extend(
                    tokens(&source[inner.clone()])
                        .into_iter()
                        .map(|(t, r)| (t, r.start + inner.start..r.end + inner.start)),
                );
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// A string literal starting at `start` (its quote) with `prefix`: the
/// token and the offset after it. An unterminated literal ends the text.
fn string<'s>(source: &'s str, start: usize, prefix: &str) -> (Token<'s>, usize) {
    let bytes = source.as_bytes();
    let quote = bytes[start];
    let triple = bytes.get(start..start + 3) == Some(&[quote, quote, quote][..]);
    let open = if triple { 3 } else { 1 };
    let raw = prefix.to_ascii_lowercase().contains('r');
    let mut i = start + open;
    let mut escapes = false;
    let end_of_body;
    loop {
        if i >= bytes.len() {
            end_of_body = bytes.len();
            break;
        }
        let c = bytes[i];
        if c == b'\\' {
            escapes = true;
            i += 2;
            continue;
        }
        if !triple && c == b'\n' {
            end_of_body = i;
            break;
        }
        if c == quote && (!triple || bytes.get(i..i + 3) == Some(&[quote, quote, quote][..])) {
            end_of_body = i;
            i += open;
            break;
        }
        i += 1;
    }
    let lower = prefix.to_ascii_lowercase();
    let plain = !lower.contains('f') && !lower.contains('b') && (raw || !escapes);
    let body = &source[(start + open).min(end_of_body)..end_of_body];
    (
        Token::Str(plain.then(|| body.to_string())),
        i.min(bytes.len()),
    )
}

/// Every call of Mage's `get_secret_value` in a Python file: as a name
/// imported from one of [`MODULES`], or as an attribute of the module
/// (`mage_secrets.get_secret_value(…)`).
pub fn secret_reads(source: &str) -> Vec<SecretRead> {
    let tokens = tokens(source);
    let name = |i: usize| match tokens.get(i) {
        Some((Token::Name(n), _)) => Some(*n),
        _ => None,
    };
    let op = |i: usize, c: char| matches!(tokens.get(i), Some((Token::Op(o), _)) if *o == c);
    // `from MODULE import …, get_secret_value [as alias], …`, and
    // `import MODULE [as alias]`.
    let mut callables: Vec<String> = Vec::new();
    let mut modules: Vec<String> = Vec::new();
    let dotted = |mut i: usize| -> (String, usize) {
        let mut text = String::new();
        while let Some(n) = name(i) {
            text.push_str(n);
            if op(i + 1, '.') {
                text.push('.');
                i += 2;
            } else {
                return (text, i + 1);
            }
        }
        (text, i)
    };
    let mut i = 0;
    while i < tokens.len() {
        match name(i) {
            Some("from") => {
                let (module, mut j) = dotted(i + 1);
                let ours = MODULES.contains(&module.as_str());
                if name(j) == Some("import") {
                    j += 1;
                    if ours && op(j, '*') {
                        callables.push(FUNCTION.to_string());
                    }
                    while j < tokens.len() {
                        if op(j, '(') || op(j, ')') || op(j, ',') {
                            j += 1;
                            continue;
                        }
                        let Some(imported) = name(j) else { break };
                        let bound = if name(j + 1) == Some("as") {
                            name(j + 2).unwrap_or(imported)
                        } else {
                            imported
                        };
                        if ours && imported == FUNCTION {
                            callables.push(bound.to_string());
                        }
                        // `from mage_ai.data_preparation.shared import secrets`
                        if MODULES.contains(&format!("{module}.{imported}").as_str()) {
                            modules.push(bound.to_string());
                        }
                        j += if name(j + 1) == Some("as") { 3 } else { 1 };
                        if !(op(j, ',') || op(j, ')')) {
                            break;
                        }
                    }
                }
                i = j.max(i + 1);
            }
            Some("import") => {
                let (module, j) = dotted(i + 1);
                if MODULES.contains(&module.as_str()) {
                    let bound = if name(j) == Some("as") {
                        name(j + 1).map(str::to_string).unwrap_or(module)
                    } else {
                        module
                    };
                    modules.push(bound);
                }
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    let mut reads = Vec::new();
    for (k, (token, range)) in tokens.iter().enumerate() {
        let Token::Name(n) = token else { continue };
        if !op(k + 1, '(') {
            continue;
        }
        let direct = callables.iter().any(|c| c == n) && !(k > 0 && op(k - 1, '.'));
        let through_module = *n == FUNCTION
            && k >= 2
            && op(k - 1, '.')
            && modules.iter().any(|m| {
                // `a.b.get_secret_value(`: the dotted name before the dot.
                let parts: Vec<&str> = m.split('.').collect();
                let n_parts = parts.len();
                k >= 2 * n_parts
                    && parts.iter().enumerate().all(|(p, part)| {
                        let at = k - 2 * (n_parts - p);
                        name(at) == Some(*part) && (p == 0 || op(at - 1, '.'))
                    })
            });
        if !(direct || through_module) {
            continue;
        }
        // The first argument, positional or `name=`.
        let mut a = k + 2;
        if name(a) == Some("name") && op(a + 1, '=') {
            a += 2;
        }
        let literal = match (tokens.get(a), tokens.get(a + 1)) {
            (Some((Token::Str(value), _)), Some((Token::Op(',' | ')'), _))) => value.clone(),
            _ => None,
        };
        // `pipeline_uuid='…'` among the call's arguments (same depth).
        let mut pipeline = None;
        let mut depth = 0usize;
        let mut p = k + 1;
        while p < tokens.len() {
            match &tokens[p].0 {
                Token::Op('(' | '[' | '{') => depth += 1,
                Token::Op(')' | ']' | '}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Token::Name("pipeline_uuid") if depth == 1 && op(p + 1, '=') => {
                    if let Some((Token::Str(Some(v)), _)) = tokens.get(p + 2) {
                        pipeline = Some(v.clone());
                    }
                }
                _ => {}
            }
            p += 1;
        }
        reads.push(SecretRead {
            name: literal,
            offset: range.start,
            pipeline,
        });
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<Option<String>> {
        secret_reads(source).into_iter().map(|r| r.name).collect()
    }

    #[test]
    fn calls_of_the_imported_helper_are_found() {
        let src = "from mage_ai.data_preparation.shared.secrets import get_secret_value\n\
                   pw = get_secret_value('pg_password')\n\
                   user = get_secret_value(name=\"pg_user\", entity='x')\n\
                   other = get_secret_value(prefix + 'x')\n";
        assert_eq!(
            names(src),
            vec![Some("pg_password".into()), Some("pg_user".into()), None]
        );
    }

    #[test]
    fn strings_comments_and_other_functions_are_not_calls() {
        let src = "from mage_ai.data_preparation.shared.secrets import (\n    get_secret_value as gsv,\n)\n\
                   # get_secret_value('in_comment')\n\
                   s = \"get_secret_value('in_string')\"\n\
                   t = '''\nget_secret_value('in_triple')\n'''\n\
                   x = other.get_secret_value('not_ours')\n\
                   y = gsv('aliased')\n\
                   z = gsv(f'{a}')\n";
        assert_eq!(names(src), vec![Some("aliased".into()), None]);
    }

    #[test]
    fn f_strings_star_imports_parent_imports_and_pipelines() {
        let src = "from mage_secrets import get_secret_value\n\
                   a = f\"{get_secret_value('in_f')}:{{literal}}\"\n";
        assert_eq!(names(src), vec![Some("in_f".into())]);
        let star = "from mage_ai.data_preparation.shared.secrets import *\nget_secret_value('s')\n";
        assert_eq!(names(star), vec![Some("s".into())]);
        let parent =
            "from mage_ai.data_preparation.shared import secrets\nsecrets.get_secret_value('p')\n";
        assert_eq!(names(parent), vec![Some("p".into())]);
        let scoped = "from mage_secrets import get_secret_value\nget_secret_value('x', pipeline_uuid='etl', f(a=(1)))\n";
        let reads = secret_reads(scoped);
        assert_eq!(reads[0].pipeline.as_deref(), Some("etl"));
    }

    #[test]
    fn without_the_import_nothing_is_mages() {
        assert!(names("get_secret_value('x')\n").is_empty());
        let module = "import mage_secrets\nv = mage_secrets.get_secret_value('ours')\n";
        assert_eq!(names(module), vec![Some("ours".into())]);
        let aliased =
            "import mage_ai.data_preparation.shared.secrets as s\nv = s.get_secret_value('a')\n";
        assert_eq!(names(aliased), vec![Some("a".into())]);
    }
}
