//! Whole-template rendering (Mage's semantics): a file of text and literal
//! calls is evaluated directly, anything else by minijinja with output
//! spans, so each expression's output is escaped for its quoting context.

use minijinja::value::Value;
use minijinja::OutputSpanKind;

use super::analysis::Analysis;
use super::diagnostics::template_error;
use super::functions::{self, RenderScope};
use super::quoting::{QuotingContext, Segment};
use super::{Engine, FileSource, OutSpan, RenderOptions, Sink};
use crate::diagnostic::Kind;

impl Engine {
    /// Renders a template of text and [`analysis::SimpleCall`]s.
    pub(super) fn render_simple(
        &self,
        source: &str,
        analysis: &Analysis,
        scope: &RenderScope,
        options: &RenderOptions,
        sink: &mut Sink,
    ) -> Option<String> {
        let mut out = String::with_capacity(source.len() + 64);
        let mut sites = analysis.expressions.iter();
        let file = FileSource {
            source,
            analysis,
            options,
        };
        for segment in &analysis.segments {
            match segment {
                Segment::Raw(r) => {
                    let start = out.len();
                    out.push_str(&source[r.clone()]);
                    sink.spans.push(OutSpan {
                        output: start..out.len(),
                        source: r.clone(),
                        expression: false,
                    });
                }
                Segment::Expression(_) => {
                    let site = sites.next().expect("one site per expression segment");
                    let call = site
                        .call
                        .as_ref()
                        .expect("simple templates have simple calls");
                    let text =
                        match functions::eval_simple(call, scope, &*self.secrets, &*self.vars) {
                            Ok(text) => text,
                            Err(e) => {
                                scope.fail(e);
                                return None;
                            }
                        };
                    let start = out.len();
                    if let Some(escaped) =
                        self.escaped(text.as_str(), site.context, &file, site.inner.clone(), sink)
                    {
                        out.push_str(&escaped);
                    }
                    sink.spans.push(OutSpan {
                        output: start..out.len(),
                        source: site.inner.clone(),
                        expression: true,
                    });
                }
                Segment::Tag(_) => {} // the final newline, dropped as Jinja does
            }
        }
        Some(out)
    }

    pub(super) fn render_whole(
        &self,
        template: &minijinja::Template<'_, '_>,
        ctx: Value,
        source: &str,
        analysis: &Analysis,
        options: &RenderOptions,
        sink: &mut Sink,
    ) -> Option<String> {
        let (raw_output, spans) = match template.render_with_spans(ctx) {
            Ok(r) => r,
            Err(e) => {
                sink.errors
                    .push(template_error(source, 0, &e, Kind::Render));
                return None;
            }
        };
        let mut out = String::with_capacity(raw_output.len() + 16);
        let mut last = 0;
        for span in &spans {
            let range = span.output_range();
            out.push_str(&raw_output[last..range.start]);
            let text = &raw_output[range.clone()];
            let start = out.len();
            let source_range = span.source_range();
            match span.kind() {
                OutputSpanKind::Expression => {
                    let site = analysis.expression_at(source_range.start);
                    let context = site.map_or(QuotingContext::Plain, |s| s.context);
                    if let Some(escaped) = self.escaped(
                        text,
                        context,
                        &FileSource {
                            source,
                            analysis,
                            options,
                        },
                        source_range.clone(),
                        sink,
                    ) {
                        out.push_str(&escaped);
                    }
                }
                _ => out.push_str(text),
            }
            sink.spans.push(OutSpan {
                output: start..out.len(),
                source: source_range,
                expression: span.kind() == OutputSpanKind::Expression,
            });
            last = range.end;
        }
        out.push_str(&raw_output[last..]);
        Some(out)
    }
}
