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
fn a_scalar_an_expression_starts_is_a_node_of_its_line() {
    // The next item, as deep, starts a node of its own.
    assert_eq!(
        contexts("hosts:\n  - {{h}}\n  - \"{{p}}\"\n"),
        vec![Plain, DoubleQuoted]
    );
    assert_eq!(contexts("a: {{x}}\nb: '{{y}}'"), vec![Plain, SingleQuoted]);
    // A deeper line continues it: its quotes are text.
    assert_eq!(contexts("a: {{x}}\n  \"{{y}}\""), vec![Plain, Plain]);
    assert_eq!(
        contexts("hosts:\n  - {{h}}\n    \"{{p}}\"\n"),
        vec![Plain, Plain]
    );
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

mod byte_reading {
    use super::super::*;
    use proptest::prelude::*;

    impl Scanner {
        /// The character-by-character reading [`Scanner::feed`] must equal.
        fn feed_by_char(&mut self, text: &str) {
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
                        let rest: String =
                            std::iter::once(c).chain(chars.clone().take(3)).collect();
                        if line_start
                            && self.line_indent == 0
                            && is_document_marker(rest.as_bytes())
                        {
                            self.document_marker();
                            chars.next();
                            chars.next();
                            continue;
                        }
                        if line_start && c != '#' {
                            self.continue_plain_line();
                        }
                        let byte = |c: char| if c.is_ascii() { c as u8 } else { 0x80 };
                        self.normal(byte(c), chars.peek().copied().map(byte))
                    }
                }
                self.after_space = c == ' ' || c == '\t';
            }
        }
    }

    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " ", "  ", "\t", "\n", "\n  ", "\r", "\u{85}", "\u{2028}", "\u{2029}", "¢", "é", "😀",
            "\u{e2}", "k", "key", ":", ": ", "-", "- ", "?", "? ", "#", " #", "\"", "'", "''",
            "\\", "\\\"", "|", ">", "|-", "[", "]", "{", "}", ",", "!", "&", "!!str ", "&a ",
            "x y", "---", "--- ", "...", "... ", "-- ",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Reading by bytes leaves the scanner as reading by characters
        /// does, after every piece.
        #[test]
        fn bytes_read_as_characters(pieces in prop::collection::vec(
            prop::collection::vec(piece(), 0..8).prop_map(|p| p.concat()), 0..8)
        ) {
            let (mut fast, mut slow) = (Scanner::new(), Scanner::new());
            for (n, text) in pieces.iter().enumerate() {
                fast.feed(text);
                slow.feed_by_char(text);
                prop_assert_eq!(&fast, &slow, "after {:?}", &pieces[..=n]);
                // Pieces alternate with expressions.
                prop_assert_eq!(fast.context_at_expression(), slow.context_at_expression());
                fast.expression();
                slow.expression();
            }
        }
    }
}
