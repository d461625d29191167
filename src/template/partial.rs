//! Partial rendering, expression by expression: for a file that also uses
//! names only Mage knows at run time. Known `{{ … }}` are substituted (and
//! protected from Mage's second pass); every other construct is kept byte
//! for byte.

use minijinja::value::Value;

use super::analysis::{self, Analysis};
use super::diagnostics::template_error;
use super::functions::{self, RenderScope};
use super::pysyntax;
use super::quoting::Segment;
use super::{is_raw_marker, Engine, FileSource, RenderOptions, Sink, KNOWN_NAMES};
use crate::diagnostic::Kind;

/// Stand-in for a runtime expression when a partially rendered file is
/// parsed as YAML.
const RUNTIME_PLACEHOLDER: &str = "mage_runtime_value";

impl Engine {
    pub(super) fn render_partial(
        &self,
        source: &str,
        analysis: &Analysis,
        ctx: Value,
        scope: &RenderScope,
        options: &RenderOptions,
        sink: &mut Sink,
    ) -> Option<()> {
        // What becomes of each expression, decided (and compiled) once.
        // Python syntax in an expression rendered here is rewritten (see
        // `pysyntax`); one kept for Mage is left as written.
        // (A literal call is evaluated directly, not compiled.)
        let compiled: Vec<bool> = analysis
            .expressions
            .iter()
            .map(|site| {
                site.call.is_none() && self.runtime_use(&source[site.outer.clone()]) == Some(false)
            })
            .collect();
        let rewrites: Vec<Option<pysyntax::Rewritten>> = analysis
            .expressions
            .iter()
            .zip(&compiled)
            .map(|(site, &compiled)| {
                compiled
                    .then(|| pysyntax::rewrite(&source[site.outer.clone()]))
                    .flatten()
            })
            .collect();
        let plans: Vec<Plan<'_>> = analysis
            .expressions
            .iter()
            .zip(&compiled)
            .zip(&rewrites)
            .map(|((site, &compiled), rewritten)| {
                self.plan(source, site, compiled, rewritten.as_ref())
            })
            .collect();
        let mut sites = analysis.expressions.iter().zip(&plans).zip(&rewrites);
        let mut trim_next = false;
        let segments = &analysis.segments;
        let mut failed = false;
        let file = FileSource {
            source,
            analysis,
            options,
        };
        for (idx, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Raw(r) | Segment::Tag(r) => {
                    let mut text = &source[r.clone()];
                    let whitespace_only = text.trim().is_empty();
                    if trim_next && whitespace_only {
                        trim_next = false;
                        continue;
                    }
                    if trim_next {
                        text = text.trim_start();
                        trim_next = false;
                    }
                    // `{{-` of a substituted expression trims the text before it.
                    let next_trims = matches!(segments.get(idx + 1), Some(Segment::Expression(_)))
                        && sites.clone().next().is_some_and(|((s, plan), _)| {
                            s.trim_before && !matches!(plan, Plan::Keep)
                        });
                    if next_trims {
                        text = text.trim_end();
                    }
                    // Template text and tags stay live for Mage's pass.
                    let stand_in = if matches!(segment, Segment::Tag(_)) && !whitespace_only {
                        sink.kept.push(r.clone());
                        // No YAML check can see through a kept `{% … %}`
                        // (it changes the structure) but a raw block's
                        // markers, which only keep its text from Mage;
                        // comments vanish.
                        if (text.starts_with("{%") && !is_raw_marker(text)) || text.contains('\n') {
                            sink.tags_kept = true;
                        }
                        ""
                    } else {
                        text
                    };
                    sink.asm.kept(text, stand_in, r.clone());
                }
                Segment::Expression(_) => {
                    let ((site, plan), rewritten) =
                        sites.next().expect("one site per expression segment");
                    let rewritten = rewritten.as_ref();
                    let outer = &source[site.outer.clone()];
                    let evaluated = match plan {
                        Plan::Call(call) => Some(
                            functions::eval_simple(call, scope, &*self.secrets, &*self.vars)
                                .map(|p| zeroize::Zeroizing::new(p.as_str().to_string()))
                                .map_err(|e| {
                                    let message = e.to_string();
                                    scope.fail(e);
                                    minijinja::Error::new(
                                        minijinja::ErrorKind::InvalidOperation,
                                        message,
                                    )
                                }),
                        ),
                        Plan::Compiled(tmpl) => {
                            Some(tmpl.render(ctx.clone()).map(zeroize::Zeroizing::new))
                        }
                        Plan::Keep => {
                            sink.kept.push(site.outer.clone());
                            None
                        }
                    };
                    if let Some(result) = evaluated {
                        match result {
                            Ok(text) => self.place(
                                &text,
                                site.bare,
                                site.context,
                                &file,
                                site.inner.clone(),
                                sink,
                            ),
                            Err(e) => {
                                sink.errors.push(template_error(
                                    source,
                                    site.outer.start,
                                    &e,
                                    Kind::Render,
                                    rewritten,
                                ));
                                failed = true;
                            }
                        }
                        trim_next = site.trim_after;
                    } else {
                        sink.asm
                            .kept(outer, RUNTIME_PLACEHOLDER, site.inner.clone());
                        if outer.contains('\n') {
                            sink.tags_kept = true;
                        }
                    }
                }
            }
        }
        (!failed).then_some(())
    }

    /// Whether a template is rendered partially, decided without compiling
    /// it whole: it has no tags, so nothing in it declares a name and its
    /// variables are those of its expressions; every expression compiles on
    /// its own (a syntax error anywhere is left to the whole compile, which
    /// reports it); and one of them uses a name only Mage knows at run time.
    pub(super) fn certainly_partial(&self, source: &str, analysis: &Analysis) -> bool {
        if analysis.has_tags
            || analysis
                .identifiers
                .iter()
                .all(|n| KNOWN_NAMES.contains(&n.as_str()))
        {
            return false;
        }
        // An expression left unclosed at the end is a syntax error of the
        // whole template, which the whole compile reports.
        if analysis
            .expressions
            .iter()
            .any(|s| !source[s.outer.clone()].ends_with("}}"))
        {
            return false;
        }
        let mut runtime = false;
        for site in analysis.expressions.iter().filter(|s| s.call.is_none()) {
            match self.runtime_use(&source[site.outer.clone()]) {
                None => return false,
                Some(uses) => runtime |= uses,
            }
        }
        runtime
    }

    /// Whether the expression `outer` (as written, Python syntax and all)
    /// compiles on its own (`None` when not) and, when it does, whether it
    /// uses a name only Mage knows at run time. Remembered per text.
    fn runtime_use(&self, outer: &str) -> Option<bool> {
        if let Some(known) = self.expression_uses.get(outer) {
            return known;
        }
        let rewritten = pysyntax::rewrite(outer);
        let text = rewritten.as_ref().map_or(outer, |r| r.text.as_str());
        let found = self.env.template_from_str(text).ok().map(|template| {
            template
                .undeclared_variables(false)
                .iter()
                .any(|n| !KNOWN_NAMES.contains(&n.as_str()))
        });
        self.expression_uses.remember(outer, found);
        found
    }

    /// What becomes of one expression: a literal call is evaluated, one
    /// `compiled` (its names all ours) is compiled from its `rewritten`
    /// text (or as written), any other is kept for Mage.
    fn plan<'s>(
        &'s self,
        source: &'s str,
        site: &'s analysis::ExpressionSite,
        compiled: bool,
        rewritten: Option<&'s pysyntax::Rewritten>,
    ) -> Plan<'s> {
        if let Some(call) = &site.call {
            return Plan::Call(call);
        }
        if !compiled {
            return Plan::Keep;
        }
        let text = rewritten.map_or(&source[site.outer.clone()], |r| r.text.as_str());
        match self.env.template_from_str(text) {
            Ok(t) => Plan::Compiled(t),
            Err(_) => Plan::Keep,
        }
    }
}

/// Expression texts and what [`Engine::runtime_use`] found for each, shared
/// by the render threads. Bounded: past [`ExpressionUses::MAX`] texts, new
/// ones are worked out each time.
#[derive(Default)]
pub(super) struct ExpressionUses(
    std::sync::Mutex<std::collections::HashMap<Box<str>, Option<bool>>>,
);

impl ExpressionUses {
    const MAX: usize = 4096;

    fn get(&self, text: &str) -> Option<Option<bool>> {
        self.lock().get(text).copied()
    }

    fn remember(&self, text: &str, found: Option<bool>) {
        let mut uses = self.lock();
        if uses.len() < Self::MAX {
            uses.insert(text.into(), found);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Box<str>, Option<bool>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a partial render does with one expression.
enum Plan<'s> {
    /// A literal call, evaluated directly.
    Call(&'s analysis::SimpleCall),
    /// Names all ours: rendered with this template.
    Compiled(minijinja::Template<'s, 's>),
    /// Kept byte for byte for Mage.
    Keep,
}
