//! One file's output, put together piece by piece, in two forms: the bytes
//! written, and the text Mage's YAML loader will read once Mage's own Jinja
//! pass has run over those bytes. The places where values were substituted
//! are recorded in the second form, for the proof.
//!
//! Mage renders every YAML file it loads with `jinja2.Template(text)`, so
//! any `{{`, `{%` or `{#` in our output (from a value, a `{% raw %}` block,
//! or text) would be evaluated a second time. Each one is written as a
//! Jinja expression printing that pair, `{{ '{{' }}`: a fixed text that no
//! value can close (unlike a `{% raw %}` block, which a value holding
//! `{% endraw %}`, in any of its spellings, would end). A `{` at the end of
//! a piece is held back until the next piece shows whether it would start
//! a delimiter. Runtime expressions and tags kept for Mage stay live.

use std::ops::Range;

use super::proof::Place;
use super::quoting::QuotingContext;

/// Which source produced a range of the loader's text.
#[derive(Clone, Debug)]
pub struct Span {
    pub yaml: Range<usize>,
    pub source: Range<usize>,
}

/// The output of one file, being assembled.
#[derive(Debug, Default)]
pub struct Assembly {
    /// The bytes written.
    pub out: String,
    /// What Mage's YAML loader reads after its Jinja pass.
    pub yaml: String,
    /// Substituted places in `yaml`, in order.
    pub places: Vec<Place>,
    /// The source range of the expression behind each place.
    pub place_sources: Vec<Range<usize>>,
    /// Source of every range of `yaml`, in order.
    pub spans: Vec<Span>,
    /// Write `{{`, `{%`, `{#` so that Mage's Jinja pass gives them back.
    protect: bool,
    /// A `{` not yet written, from the end of a protected piece.
    held_brace: bool,
}

impl Assembly {
    pub fn new(capacity: usize, protect: bool) -> Assembly {
        Assembly {
            out: String::with_capacity(capacity),
            yaml: String::with_capacity(capacity),
            protect,
            ..Assembly::default()
        }
    }

    /// Text of ours (template data, a raw block, an expression's output):
    /// protected for Mage's pass.
    pub fn text(&mut self, text: &str, source: Range<usize>) {
        let start = self.yaml.len();
        self.yaml.push_str(text);
        self.write_protected(text);
        self.spans.push(Span {
            yaml: start..self.yaml.len(),
            source,
        });
    }

    /// An expression's substituted output `shown` (escaped for its context
    /// when it is a bare call, whose value is `intended`).
    pub fn value(
        &mut self,
        shown: &str,
        intended: Option<&str>,
        context: QuotingContext,
        source: Range<usize>,
    ) {
        let start = self.yaml.len();
        self.text(shown, source.clone());
        self.places.push(Place {
            range: start..self.yaml.len(),
            intended: intended.map(|s| zeroize::Zeroizing::new(s.to_string())),
            context,
        });
        self.place_sources.push(source);
    }

    /// A construct kept for Mage to evaluate (a runtime expression, a tag,
    /// template text of a partially rendered file): written live; the
    /// loader reads `stand_in` in its place.
    pub fn kept(&mut self, text: &str, stand_in: &str, source: Range<usize>) {
        self.release_brace(text.chars().next());
        self.out.push_str(text);
        let start = self.yaml.len();
        self.yaml.push_str(stand_in);
        self.spans.push(Span {
            yaml: start..self.yaml.len(),
            source,
        });
    }

    /// Ends the output. `whole`: the file was rendered as a whole template,
    /// whose final newline Jinja dropped; Mage's pass over the output drops
    /// one more, so one is added back. Otherwise the output keeps the
    /// template's final newline, which Mage's pass drops, as the loader's
    /// text does.
    pub fn finish(&mut self, whole: bool) {
        self.release_brace(None);
        if whole {
            if self.out.ends_with('\n') {
                self.out.push('\n');
            } else if self.out.ends_with('\r') {
                self.out.push('\r');
            }
        } else if let Some(stripped) = self
            .yaml
            .strip_suffix("\r\n")
            .or_else(|| self.yaml.strip_suffix(['\n', '\r']))
        {
            let len = stripped.len();
            self.yaml.truncate(len);
        }
    }

    fn release_brace(&mut self, next: Option<char>) {
        if std::mem::take(&mut self.held_brace) {
            if matches!(next, Some('{' | '%' | '#')) {
                self.out.push_str("{{ '{' }}");
            } else {
                self.out.push('{');
            }
        }
    }

    fn write_protected(&mut self, text: &str) {
        if !self.protect {
            self.out.push_str(text);
            return;
        }
        self.release_brace(text.chars().next());
        let bytes = text.as_bytes();
        let mut last = 0;
        let mut i = 0;
        while let Some(found) = memchr::memchr(b'{', &bytes[i..]) {
            let at = i + found;
            match bytes.get(at + 1) {
                Some(&c @ (b'{' | b'%' | b'#')) => {
                    self.out.push_str(&text[last..at]);
                    self.out.push_str(match c {
                        b'{' => "{{ '{{' }}",
                        b'%' => "{{ '{%' }}",
                        _ => "{{ '{#' }}",
                    });
                    last = at + 2;
                    i = at + 2;
                }
                Some(_) => i = at + 1,
                None => {
                    self.out.push_str(&text[last..at]);
                    self.held_brace = true;
                    return;
                }
            }
        }
        self.out.push_str(&text[last..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(pieces: &[&str]) -> String {
        let mut a = Assembly::new(0, true);
        for p in pieces {
            a.text(p, 0..0);
        }
        a.finish(false);
        a.out
    }

    #[test]
    fn delimiters_are_printed_by_expressions() {
        assert_eq!(protected(&["a {{ 7*7 }} b"]), "a {{ '{{' }} 7*7 }} b");
        assert_eq!(protected(&["{%endraw%}{#"]), "{{ '{%' }}endraw%}{{ '{#' }}");
        assert_eq!(protected(&["{{{"]), "{{ '{{' }}{");
        assert_eq!(protected(&["x{", "{y"]), "x{{ '{' }}{y");
        assert_eq!(protected(&["x{", "%"]), "x{{ '{' }}%");
        assert_eq!(protected(&["x{", "y"]), "x{y");
        assert_eq!(protected(&["x{"]), "x{");
        assert_eq!(protected(&["{ a: 1 }"]), "{ a: 1 }");
    }

    #[test]
    fn kept_constructs_stay_live_and_a_held_brace_cannot_join_them() {
        let mut a = Assembly::new(0, true);
        a.text("v{", 0..0);
        a.kept("{{ variables('x') }}", "x", 0..0);
        a.finish(false);
        assert_eq!(a.out, "v{{ '{' }}{{ variables('x') }}");
        assert_eq!(a.yaml, "v{x");
    }

    #[test]
    fn final_newlines_survive_mages_pass() {
        let mut a = Assembly::new(0, true);
        a.text("a: |\n  x\n", 0..0);
        a.finish(true);
        assert_eq!(a.out, "a: |\n  x\n\n");
        assert_eq!(a.yaml, "a: |\n  x\n");
        let mut p = Assembly::new(0, true);
        p.kept("a: {{ variables('x') }}\n", "a: x\n", 0..0);
        p.finish(false);
        assert_eq!(p.out, "a: {{ variables('x') }}\n");
        assert_eq!(p.yaml, "a: x");
    }
}
