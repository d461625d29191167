//! Whole-template rendering (Mage's semantics): a file of text and literal
//! calls is evaluated directly, anything else by minijinja with output
//! spans, so each expression's output is escaped for its quoting context.

use minijinja::value::Value;
use minijinja::OutputSpanKind;

use super::analysis::Analysis;
use super::diagnostics::template_error;
use super::functions::{self, RenderScope};
use super::pysyntax::{self, Rewritten};
use super::quoting::{QuotingContext, Segment};
use super::{Engine, FileSource, RenderOptions, Sink};
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
    ) -> Option<()> {
        let mut sites = analysis.expressions.iter();
        let file = FileSource {
            source,
            analysis,
            options,
        };
        for segment in &analysis.segments {
            match segment {
                Segment::Raw(r) => sink.asm.text(&source[r.clone()], r.clone()),
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
                    self.place(
                        text.as_str(),
                        true,
                        site.context,
                        &file,
                        site.inner.clone(),
                        sink,
                    );
                }
                Segment::Tag(_) => {} // the final newline, dropped as Jinja does
            }
        }
        Some(())
    }

    pub(super) fn render_whole(
        &self,
        template: &minijinja::Template<'_, '_>,
        rewritten: Option<&Rewritten>,
        ctx: Value,
        file: &FileSource<'_>,
        sink: &mut Sink,
    ) -> Option<()> {
        let FileSource {
            source, analysis, ..
        } = *file;
        let (raw_output, spans) = match template.render_with_spans(ctx) {
            Ok(r) => r,
            Err(e) => {
                sink.errors
                    .push(template_error(source, 0, &e, Kind::Render, rewritten));
                return None;
            }
        };
        let mut last = 0;
        for span in &spans {
            let range = span.output_range();
            if range.start > last {
                sink.asm
                    .text(&raw_output[last..range.start], source.len()..source.len());
            }
            let text = &raw_output[range.clone()];
            // Spans of a rewritten template, mapped back to the source.
            let source_range = {
                let r = span.source_range();
                pysyntax::original(rewritten, r.start)..pysyntax::original(rewritten, r.end)
            };
            match span.kind() {
                OutputSpanKind::Expression => {
                    let site = analysis.expression_at(source_range.start);
                    let context = site.map_or(QuotingContext::Plain, |s| s.context);
                    let bare = site.is_some_and(|s| s.bare);
                    self.place(text, bare, context, file, source_range.clone(), sink);
                }
                _ => sink.asm.text(text, source_range),
            }
            last = range.end;
        }
        if raw_output.len() > last {
            sink.asm
                .text(&raw_output[last..], source.len()..source.len());
        }
        Some(())
    }
}
