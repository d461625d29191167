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

    fn feed(&mut self, text: &str) {
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            // libyaml and PyYAML also break lines at NEL, LS and PS.
            if matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}') {
                if self.state == State::Double {
                    self.escape_next = false;
                }
                self.newline();
                continue;
            }
            if self.at_line_start && (c == ' ' || c == '\t') {
                self.line_indent += 1;
                continue;
            }
            let line_start = self.at_line_start;
            self.at_line_start = false;
            if let State::Block { parent_indent } = self.state {
                if line_start && self.line_indent <= parent_indent && c != '\r' {
                    self.state = State::Normal;
                    self.token_start = true;
                } else {
                    continue;
                }
            }
            match self.state {
                State::Comment | State::Block { .. } => {}
                State::Double => {
                    if self.escape_next {
                        self.escape_next = false;
                    } else if c == '\\' {
                        self.escape_next = true;
                    } else if c == '"' {
                        self.close_quote();
                    }
                }
                State::Single => {
                    if c == '\'' {
                        if chars.peek() == Some(&'\'') {
                            chars.next();
                        } else {
                            self.close_quote();
                        }
                    }
                }
                State::Normal => {
                    if line_start && c != '#' {
                        self.continue_plain_line();
                    }
                    self.normal(c, chars.peek().copied())
                }
            }
            self.after_space = c == ' ' || c == '\t';
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

    fn close_quote(&mut self) {
        self.state = State::Normal;
        self.token_start = false;
        self.after_indicator = false;
    }

    fn normal(&mut self, c: char, next: Option<char>) {
        let followed_by_space = matches!(next, None | Some(' ' | '\t' | '\r' | '\n'));
        let was_plain = std::mem::take(&mut self.in_plain);
        match c {
            ' ' | '\t' => {
                self.in_plain = was_plain;
                if self.after_indicator {
                    self.token_start = true;
                    self.after_indicator = false;
                }
            }
            '#' if self.after_space => self.state = State::Comment,
            '"' if self.token_start => self.state = State::Double,
            '\'' if self.token_start => self.state = State::Single,
            '|' | '>' if self.token_start && self.flow_depth == 0 => {
                self.block_pending = Some(self.line_indent);
                self.token_start = false;
            }
            '[' | '{' if self.token_start || self.flow_depth > 0 => {
                self.flow_depth += 1;
                self.token_start = true;
            }
            ']' | '}' if self.flow_depth > 0 => {
                self.flow_depth -= 1;
                self.token_start = false;
            }
            ',' if self.flow_depth > 0 => self.token_start = true,
            ':' if followed_by_space => {
                self.after_indicator = true;
                self.token_start = false;
            }
            ':' if self.flow_depth > 0 => self.token_start = true,
            '-' | '?' if self.token_start && followed_by_space => {
                self.after_indicator = true;
                self.token_start = false;
            }
            '!' | '&' if self.token_start => {
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

/// The quoting context of every [`Segment::Expression`], in order.
pub fn expression_contexts(source: &str, segments: &[Segment]) -> Vec<QuotingContext> {
    let mut scanner = Scanner::new();
    let mut out = Vec::new();
    for segment in segments {
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
    if !value.chars().any(needs_double_escape) {
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
mod tests {
    use super::*;
    use QuotingContext::*;

    /// Contexts of `{{ }}` markers in a toy template (no tags).
    fn contexts(src: &str) -> Vec<QuotingContext> {
        let mut segments = Vec::new();
        let mut pos = 0;
        while let Some(start) = src[pos..].find("{{").map(|i| i + pos) {
            let end = src[start..].find("}}").unwrap() + start + 2;
            segments.push(Segment::Raw(pos..start));
            segments.push(Segment::Expression(start..end));
            pos = end;
        }
        segments.push(Segment::Raw(pos..src.len()));
        expression_contexts(src, &segments)
    }

    #[test]
    fn quoted_plain_and_mid_scalar_positions() {
        assert_eq!(contexts("a: \"{{x}}\""), vec![DoubleQuoted]);
        assert_eq!(contexts("a: '{{x}}'"), vec![SingleQuoted]);
        assert_eq!(contexts("a: {{x}}"), vec![Plain]);
        assert_eq!(contexts("url: \"pre-{{x}}-post\""), vec![DoubleQuoted]);
        assert_eq!(
            contexts("a: b\"{{x}}\""),
            vec![Plain],
            "quote inside a plain scalar is literal"
        );
        assert_eq!(contexts("a: \"x\" # \"{{x}}\""), vec![Comment]);
        assert_eq!(
            contexts("# a: \"{{x}}\"\nb: \"{{y}}\""),
            vec![Comment, DoubleQuoted]
        );
        assert_eq!(contexts("a: \"it's\" \nb: '{{x}}'"), vec![SingleQuoted]);
        assert_eq!(contexts("a: 'it''s {{x}}'"), vec![SingleQuoted]);
        assert_eq!(contexts("a: \"q\\\" {{x}}\""), vec![DoubleQuoted]);
        assert_eq!(contexts("a: \"{{x}}\" {{y}}"), vec![DoubleQuoted, Plain]);
        assert_eq!(contexts("a:b\"{{x}}\""), vec![Plain]);
        assert_eq!(contexts("a#b: \"{{x}}\""), vec![DoubleQuoted]);
    }

    #[test]
    fn sequences_flow_collections_and_properties() {
        assert_eq!(
            contexts("- \"{{x}}\"\n- '{{y}}'\n- {{z}}"),
            vec![DoubleQuoted, SingleQuoted, Plain]
        );
        assert_eq!(
            contexts("a: [\"{{x}}\", '{{y}}']"),
            vec![DoubleQuoted, SingleQuoted]
        );
        assert_eq!(contexts("a: {k: \"{{x}}\"}"), vec![DoubleQuoted]);
        assert_eq!(contexts("{\"a\":\"{{x}}\"}"), vec![DoubleQuoted]);
        assert_eq!(contexts("a: !!str \"{{x}}\""), vec![DoubleQuoted]);
        assert_eq!(contexts("a: &anchor '{{x}}'"), vec![SingleQuoted]);
        assert_eq!(
            contexts("a: x, \"{{y}}\""),
            vec![Plain],
            "comma is literal outside flow"
        );
    }

    #[test]
    fn comments_after_block_indicators_other_line_breaks_and_plain_continuations() {
        assert_eq!(
            contexts("cert: | # PEM below\n  {{x}}\nother: {{y}}"),
            vec![Block { indent: 2 }, Plain]
        );
        assert_eq!(
            contexts("a: {k: 1, # c\u{85}b: \"{{x}}\"}"),
            vec![DoubleQuoted]
        );
        assert_eq!(contexts("# c\u{2028}b: '{{x}}'"), vec![SingleQuoted]);
        assert_eq!(
            contexts("k: plain text\n  \"{{x}}\"\nj: \"{{y}}\""),
            vec![Plain, DoubleQuoted]
        );
        assert_eq!(contexts("k: {{a}}\n  \"{{x}}\""), vec![Plain, Plain]);
        assert_eq!(contexts("k: a\nj: \"{{x}}\""), vec![DoubleQuoted]);
        assert_eq!(contexts("- a\n- \"{{x}}\""), vec![DoubleQuoted]);
    }

    #[test]
    fn multi_line_quotes_and_block_scalars() {
        assert_eq!(
            contexts("a: \"line one\n  {{x}}\"\nb: {{y}}"),
            vec![DoubleQuoted, Plain]
        );
        assert_eq!(
            contexts("cert: |\n  {{x}}\nnext: {{y}}"),
            vec![Block { indent: 2 }, Plain]
        );
        assert_eq!(
            contexts("cert: >-\n    a \"{{x}}\n\n    {{y}}\nk: '{{z}}'"),
            vec![Block { indent: 4 }, Block { indent: 4 }, SingleQuoted]
        );
        assert_eq!(
            contexts("a:\n  b: |\n    {{x}}\n  c: \"{{y}}\""),
            vec![Block { indent: 4 }, DoubleQuoted]
        );
    }

    #[test]
    fn escaping_by_context() {
        assert_eq!(escape("plain \"v\"", Plain).unwrap(), "plain \"v\"");
        assert_eq!(
            escape("a\"b\\c\nd\te", DoubleQuoted).unwrap(),
            "a\\\"b\\\\c\\nd\te"
        );
        assert_eq!(
            escape("\u{1}\u{85}\u{2028}", DoubleQuoted).unwrap(),
            "\\x01\\x85\\u2028"
        );
        assert_eq!(escape("it's", SingleQuoted).unwrap(), "it''s");
        assert_eq!(
            escape("a\nb", SingleQuoted),
            Err(QuotingError::SingleQuotedLineBreak)
        );
        assert_eq!(
            escape("a\u{1}", SingleQuoted),
            Err(QuotingError::SingleQuotedControl)
        );
        assert_eq!(
            escape("l1\nl2\n\nl4\n", Block { indent: 2 }).unwrap(),
            "l1\n  l2\n\n  l4\n"
        );
        assert!(matches!(
            escape("no escaping", DoubleQuoted).unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            escape("no escaping", SingleQuoted).unwrap(),
            Cow::Borrowed(_)
        ));
    }
}
