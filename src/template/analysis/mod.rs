//! What a template contains, found from minijinja's lexer: where each
//! `{{ … }}` is, which text is YAML, and every call to `mage_secret_var` and
//! `env_var` with its literal name (or a note that the name is computed).
//! Static, so references in branches a render would not take are found too.
//!
//! This is the crate's only use of minijinja's `unstable_machinery`; the
//! minijinja version is pinned in Cargo.toml for that reason.

use std::ops::Range;

use minijinja::machinery::{Span, Token, Tokenizer};
use minijinja::syntax::SyntaxConfig;

use super::literal_scan::scan_simple;

mod calls;

use super::quoting::{expression_contexts, QuotingContext, Segment};
use calls::collect_references;

/// A template function whose references are tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    SecretVar,
    EnvVar,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::SecretVar => "mage_secret_var",
            Function::EnvVar => "env_var",
        }
    }

    pub(super) fn from_ident(ident: &str) -> Option<Function> {
        match ident {
            "mage_secret_var" => Some(Function::SecretVar),
            "env_var" => Some(Function::EnvVar),
            _ => None,
        }
    }
}

/// One call to a tracked function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub function: Function,
    /// The literal name, or `None` when it is computed.
    pub name: Option<String>,
    /// `env_var` called with a default.
    pub has_default: bool,
    /// Byte offset of the function name in the source.
    pub offset: usize,
}

/// One `{{ … }}` in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpressionSite {
    /// From `{{` to `}}`, delimiters included.
    pub outer: Range<usize>,
    /// The expression between the delimiters.
    pub inner: Range<usize>,
    /// `{{-` / `-}}`.
    pub trim_before: bool,
    pub trim_after: bool,
    pub context: QuotingContext,
    /// The expression is exactly a call of ours with literal arguments,
    /// which can be evaluated without compiling it.
    pub call: Option<SimpleCall>,
    /// The expression is one call of `mage_secret_var`, `env_var` or
    /// `json_value` and nothing else: its value is escaped for its quoting
    /// context. Anything else (filters, `~`, conditionals) is text the user
    /// shaped, placed as Mage places it.
    pub bare: bool,
}

/// Whether the tokens of an expression are one call of a value function.
fn is_bare_call(tokens: &[(Token<'_>, Span)]) -> bool {
    let [(Token::Ident(f), _), (Token::ParenOpen, _), rest @ ..] = tokens else {
        return false;
    };
    if !matches!(*f, "mage_secret_var" | "env_var" | "json_value") {
        return false;
    }
    let mut depth = 1usize;
    for (i, (token, _)) in rest.iter().enumerate() {
        match token {
            Token::ParenOpen | Token::BracketOpen | Token::BraceOpen => depth += 1,
            Token::ParenClose | Token::BracketClose | Token::BraceClose => {
                depth -= 1;
                if depth == 0 {
                    return i + 1 == rest.len();
                }
            }
            _ => {}
        }
    }
    false
}

/// `mage_secret_var('name')`, `env_var('NAME')` or `env_var('NAME', default)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimpleCall {
    pub function: Function,
    pub name: String,
    pub default: Option<Literal>,
}

/// A literal default of `env_var`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Int(u64),
}

/// Recognises a [`SimpleCall`] in the tokens between `{{` and `}}`.
fn simple_call(tokens: &[(Token<'_>, Span)]) -> Option<SimpleCall> {
    let string = |t: &Token<'_>| match t {
        Token::Str(s) => Some((*s).to_string()),
        Token::String(s) => Some(s.to_string()),
        _ => None,
    };
    match tokens {
        [(Token::Ident(f), _), (Token::ParenOpen, _), (name, _), (Token::ParenClose, _)] => {
            Some(SimpleCall {
                function: Function::from_ident(f)?,
                name: string(name)?,
                default: None,
            })
        }
        [(Token::Ident("env_var"), _), (Token::ParenOpen, _), (name, _), (Token::Comma, _), (default, _), (Token::ParenClose, _)] =>
        {
            let default = match default {
                Token::Int(i) => Literal::Int(*i),
                other => Literal::Str(string(other)?),
            };
            Some(SimpleCall {
                function: Function::EnvVar,
                name: string(name)?,
                default: Some(default),
            })
        }
        _ => None,
    }
}
/// The static facts about one template.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub segments: Vec<Segment>,
    pub expressions: Vec<ExpressionSite>,
    pub references: Vec<Reference>,
    /// Any `{% … %}` tag (other than raw blocks, which become text).
    pub has_tags: bool,
    /// Every identifier inside `{{ }}` and `{% %}` (names, attributes,
    /// keywords, filters): a superset of the variables the template uses.
    pub identifiers: std::collections::HashSet<String, foldhash::fast::RandomState>,
    /// Filters, tests and called names, for checking them against Jinja2's
    /// and Mage's (see [`super::names`]).
    pub uses: super::names::NameUses,
}

/// A lexer error: message and byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    pub message: String,
    pub offset: Option<usize>,
}

/// The references of the part of `source` before the construct that does
/// not lex, so that one broken tag does not hide every other problem.
pub fn references_before(source: &str, error: &LexError) -> Vec<Reference> {
    let end = error.offset.unwrap_or(source.len()).min(source.len());
    let end = (0..=end)
        .rev()
        .find(|i| source.is_char_boundary(*i))
        .unwrap_or(0);
    let cut = ["{{", "{%", "{#"]
        .iter()
        .filter_map(|d| source[..end].rfind(d))
        .max()
        .unwrap_or(0);
    Analysis::of(&source[..cut])
        .map(|a| a.references)
        .unwrap_or_default()
}

/// Whether a text has any template syntax at all.
pub fn has_template_syntax(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

fn range(span: &Span) -> Range<usize> {
    span.start_offset as usize..span.end_offset as usize
}

impl Analysis {
    /// The innermost block tag (`if`, `for`, `macro`, …) still open at
    /// `offset`: its keyword and where it starts.
    pub fn enclosing_block<'s>(&self, source: &'s str, offset: usize) -> Option<(&'s str, usize)> {
        const OPENERS: &[&str] = &[
            "if",
            "for",
            "macro",
            "call",
            "filter",
            "with",
            "block",
            "autoescape",
        ];
        let mut open: Vec<(&str, usize)> = Vec::new();
        for segment in &self.segments {
            let Segment::Tag(r) = segment else { continue };
            if r.end > offset {
                break;
            }
            let keyword = source[r.clone()]
                .trim_start_matches("{%")
                .trim_start_matches(['-', '+'])
                .split_whitespace()
                .next()
                .unwrap_or("");
            if OPENERS.contains(&keyword) {
                open.push((keyword, r.start));
            } else if keyword
                .strip_prefix("end")
                .is_some_and(|k| OPENERS.contains(&k))
            {
                open.pop();
            }
        }
        open.pop()
    }

    /// Whether the template is text and simple calls only (besides the final
    /// newline the lexer drops), so that it renders without the engine.
    pub fn is_simple(&self, source: &str) -> bool {
        let last = self.segments.len().saturating_sub(1);
        self.expressions
            .iter()
            .all(|e| e.call.is_some() && !e.trim_before && !e.trim_after)
            && self.segments.iter().enumerate().all(|(i, s)| match s {
                Segment::Tag(r) => {
                    i == last
                        && r.end == source.len()
                        && matches!(&source[r.clone()], "\n" | "\r\n")
                }
                _ => true,
            })
    }

    /// Analyses `source`.
    pub fn of(source: &str) -> Result<Analysis, LexError> {
        if let Some(analysis) = scan_simple(source) {
            // Every debug build (so the whole test suite) and the fuzz
            // target hold the scan to the lexer.
            #[cfg(any(fuzzing, debug_assertions))]
            assert_eq!(
                Analysis::lex(source).as_ref(),
                Ok(&analysis),
                "the scan and the lexer disagree on {source:?}"
            );
            return Ok(analysis);
        }
        Analysis::lex(source)
    }

    /// Analyses `source` with minijinja's lexer.
    fn lex(source: &str) -> Result<Analysis, LexError> {
        let mut tokenizer = Tokenizer::new(source, "<template>", false, SyntaxConfig::default());
        let mut tokens: Vec<(Token<'_>, Span)> = Vec::new();
        loop {
            match tokenizer.next_token() {
                Ok(Some(t)) => tokens.push(t),
                Ok(None) => break,
                Err(e) => {
                    return Err(LexError {
                        message: e.detail().unwrap_or("syntax error").to_string(),
                        offset: e.range().map(|r| r.start),
                    })
                }
            }
        }
        let mut analysis = Analysis::default();
        let mut pos = 0usize;
        let mut i = 0;
        let gap = |analysis: &mut Analysis, pos: usize, start: usize| {
            if start > pos {
                analysis.segments.push(Segment::Tag(pos..start));
            }
        };
        while i < tokens.len() {
            let (token, span) = &tokens[i];
            let r = range(span);
            match token {
                Token::TemplateData(_) => {
                    gap(&mut analysis, pos, r.start);
                    analysis.segments.push(Segment::Raw(r.clone()));
                    pos = r.end;
                    i += 1;
                }
                Token::VariableStart | Token::BlockStart => {
                    let is_block = matches!(token, Token::BlockStart);
                    let end_index = (i + 1..tokens.len())
                        .find(|&j| {
                            matches!(
                                (&tokens[j].0, is_block),
                                (Token::VariableEnd, false) | (Token::BlockEnd, true)
                            )
                        })
                        // Unclosed (the parser reports it): up to the end.
                        .unwrap_or(tokens.len());
                    let closing = tokens.get(end_index).map(|(_, span)| range(span));
                    let body = &tokens[i + 1..end_index];
                    let end = match (&closing, body.last()) {
                        (Some(c), _) => c.end,
                        (None, Some((_, last))) => range(last).end,
                        (None, None) => r.end,
                    }
                    .max(r.end);
                    gap(&mut analysis, pos, r.start);
                    if is_block {
                        analysis.note_tokens(body, true);
                        analysis.has_tags = true;
                        analysis.segments.push(Segment::Tag(r.start..end));
                    } else {
                        analysis.note_expression(source, r.clone(), body, closing, end);
                    }
                    pos = end;
                    i = end_index + 1;
                }
                _ => i += 1,
            }
        }
        gap(&mut analysis, pos, source.len());
        let contexts = expression_contexts(source, &analysis.segments);
        for (site, context) in analysis.expressions.iter_mut().zip(contexts) {
            site.context = context;
        }
        Ok(analysis)
    }

    /// Records the names and calls in the tokens of one tag or expression.
    fn note_tokens(&mut self, body: &[(Token<'_>, Span)], is_block: bool) {
        collect_references(body, &mut self.references);
        super::names::collect_uses(body, is_block, &mut self.uses);
        for (t, _) in body {
            if let Token::Ident(name) = t {
                if !self.identifiers.contains(*name) {
                    self.identifiers.insert((*name).to_string());
                }
            }
        }
    }

    /// Records one `{{ … }}`: `start` is the range of its `{{`, `body` its
    /// tokens, `closing` the range of its `}}` (`None` when unclosed) and
    /// `end` where it ends.
    pub(super) fn note_expression(
        &mut self,
        source: &str,
        start: Range<usize>,
        body: &[(Token<'_>, Span)],
        closing: Option<Range<usize>>,
        end: usize,
    ) {
        self.note_tokens(body, false);
        self.segments.push(Segment::Expression(start.start..end));
        let inner = match body {
            [] => start.end..start.end,
            inner => range(&inner[0].1).start..range(&inner[inner.len() - 1].1).end,
        };
        self.expressions.push(ExpressionSite {
            outer: start.start..end,
            inner,
            trim_before: source[start].ends_with('-'),
            trim_after: closing.is_some_and(|c| source[c].starts_with('-')),
            context: QuotingContext::Plain,
            call: simple_call(body),
            bare: is_bare_call(body),
        });
    }

    /// Lexes the one `{{ … }}` that starts at `open` in a text without
    /// tags or comments, as the whole text's lexing would (from text,
    /// the lexer's state depends only on what follows), and records it.
    /// Where it ends, or `None` when it is unclosed or does not lex.
    pub(super) fn lex_expression_at(
        &mut self,
        source: &str,
        open: usize,
        end: usize,
    ) -> Option<usize> {
        let mut tokenizer = Tokenizer::new(
            &source[open..end],
            "<template>",
            false,
            SyntaxConfig::default(),
        );
        let shift = |mut span: Span| {
            span.start_offset += open as u32;
            span.end_offset += open as u32;
            span
        };
        let (Token::VariableStart, start) = tokenizer.next_token().ok()?? else {
            return None;
        };
        let mut body = Vec::new();
        loop {
            match tokenizer.next_token().ok()?? {
                (Token::VariableEnd, closing) => {
                    let closing = range(&shift(closing));
                    let close_end = closing.end;
                    self.note_expression(
                        source,
                        range(&shift(start)),
                        &body,
                        Some(closing),
                        close_end,
                    );
                    return Some(close_end);
                }
                (token, span) => body.push((token, shift(span))),
            }
        }
    }

    /// The expression whose inner source contains `offset`.
    pub fn expression_at(&self, offset: usize) -> Option<&ExpressionSite> {
        let idx = self
            .expressions
            .partition_point(|e| e.inner.start <= offset)
            .checked_sub(1)?;
        let site = &self.expressions[idx];
        (offset <= site.inner.end).then_some(site)
    }

    /// Environment variable names referenced literally inside `range`.
    pub fn env_var_names_in(&self, range: Range<usize>) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .references
            .iter()
            .filter(|r| r.function == Function::EnvVar && range.contains(&r.offset))
            .filter_map(|r| r.name.as_deref())
            .collect();
        names.dedup();
        names
    }

    /// Secret names referenced literally inside `range` of the source.
    pub fn secret_names_in(&self, range: Range<usize>) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .references
            .iter()
            .filter(|r| r.function == Function::SecretVar && range.contains(&r.offset))
            .filter_map(|r| r.name.as_deref())
            .collect();
        names.dedup();
        names
    }
}

#[cfg(test)]
mod tests;
