//! The template engine: one minijinja environment with Mage's functions and
//! Jinja2's printing, and the rendering of one file's source. Pure: values
//! come through [`SecretSource`] and [`EnvVars`], nothing here touches disk.
//!
//! A file whose every name is one of ours is rendered as a whole template
//! (Mage's semantics). A file that also uses names only Mage knows at run
//! time (`variables('x')`, `execution_date`, …) is rendered expression by
//! expression: known `{{ … }}` are substituted, everything else is kept byte
//! for byte for Mage to evaluate later.
//!
//! Here: the engine's set-up and the dispatch to a strategy. The strategies
//! are `whole` and `partial`; `yaml_check` checks an output, `diagnostics`
//! places every error in the template source.

pub mod analysis;
pub mod assembly;
mod diagnostics;
pub mod functions;
mod guards;
pub mod jinja2;
mod libyaml;
mod literal_scan;
pub mod names;
mod partial;
pub mod proof;
pub mod pysyntax;
pub mod python;
pub mod quoting;
pub mod raw_fields;
mod whole;
mod yaml11;
mod yaml_check;
mod yaml_lines;

#[cfg(test)]
mod tests;

pub(crate) use guards::{fits_output, format_widths_fit};
use guards::{output_limit_error, withhold_values, OUTPUT_LEFT};
pub use guards::{size_text, DEFAULT_MAX_OUTPUT};
use std::ops::Range;
use std::sync::Arc;

use minijinja::value::Value;
use minijinja::{AutoEscape, UndefinedBehavior};

use crate::diagnostic::{Diagnostic, Kind};
use crate::secret::Scope;
use analysis::{Analysis, Function};
use assembly::Assembly;
pub use diagnostics::syntax_errors;
use diagnostics::{lex_error, template_error};
pub use functions::{EnvVars, ProcessEnv, SecretSource};
use functions::{RenderScope, SCOPE_VAR};
use quoting::{escape, QuotingContext};

/// Names a file may use and still be rendered as a whole template.
const KNOWN_NAMES: &[&str] = &[
    "mage_secret_var",
    "env_var",
    "json_value",
    // Jinja2's global functions.
    "range",
    "dict",
    "namespace",
    "lipsum",
    "cycler",
    "joiner",
    // What Python syntax is rewritten to (see `pysyntax`).
    "__tuple",
    "__percent",
    "__loopable",
];

/// Upper bound on the work one template may do (loops, macros), so a
/// hostile template ends with an error instead of running forever.
const FUEL: u64 = 50_000_000;

/// How to render.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Render missing values as `None` with a warning, as Mage does.
    pub lenient: bool,
    /// Insert values raw, without quote-aware escaping (Mage's bytes).
    pub raw: bool,
    /// The output is read directly (dbt, a program), not through Mage's
    /// Jinja pass: `{{`, `{%`, `{#` are written as they are, unprotected.
    pub direct: bool,
    /// Functions Mage provides at run time besides its own (calls kept).
    pub allow_unknown: Vec<String>,
    /// The largest output one file may render to, in bytes
    /// ([`DEFAULT_MAX_OUTPUT`] when `None`): a loop or a repeated string
    /// that would make more is an error for that file, not an exhausted
    /// memory.
    pub max_output: Option<usize>,
}

/// Why a YAML file without template syntax would fail Mage's load (it does
/// not parse), placed in the file.
pub fn plain_yaml_problems(source: &str) -> Vec<Diagnostic> {
    yaml_check::plain(source)
}

/// How a file was produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderMode {
    /// No template syntax: copied as is.
    Copied,
    /// Rendered as a whole template.
    Whole,
    /// Known expressions substituted, runtime expressions kept.
    Partial,
}

/// The outcome of rendering one file.
#[derive(Debug)]
pub struct FileRender {
    /// The output, when there was no error.
    pub output: Option<String>,
    pub mode: RenderMode,
    /// Errors and warnings, placed in the template source.
    pub diagnostics: Vec<Diagnostic>,
    /// Secret names the output holds values of.
    pub secrets: Vec<String>,
    /// Every call to `mage_secret_var` and `env_var` in the template,
    /// rendered or not (empty when the template does not lex).
    pub references: Vec<analysis::Reference>,
    /// Source ranges kept for Mage to evaluate at run time (partial renders).
    pub kept: Vec<Range<usize>>,
}

impl FileRender {
    /// The output, wiped when dropped, with the warnings that go with it;
    /// or `Error::Render` with every diagnostic when the file failed.
    pub fn into_output(self) -> crate::Result<(zeroize::Zeroizing<String>, Vec<Diagnostic>)> {
        match self.output {
            Some(output) if !self.diagnostics.iter().any(Diagnostic::is_error) => {
                Ok((zeroize::Zeroizing::new(output), self.diagnostics))
            }
            _ => Err(crate::Error::Render(self.diagnostics)),
        }
    }
}

/// One minijinja environment for a whole run.
pub struct Engine {
    env: minijinja::Environment<'static>,
    environment_uuid: String,
    secrets: Arc<dyn SecretSource>,
    vars: Arc<dyn EnvVars>,
    /// What each expression text of partial renders was found to be (see
    /// `Engine::runtime_use`): the same runtime expressions recur across a
    /// project's files, and compiling one to learn its names costs more
    /// than rendering the rest of its file.
    expression_uses: partial::ExpressionUses,
}

impl Engine {
    pub fn new(secrets: Arc<dyn SecretSource>, vars: Arc<dyn EnvVars>) -> Engine {
        let environment_uuid = secrets.environment().to_string();
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_fuel(Some(FUEL));
        jinja2::install(&mut env);
        pysyntax::install(&mut env);
        env.set_formatter(|out, _state, value| {
            let mut text = String::new();
            python::write_value(&mut text, value)
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.0))?;
            let left = OUTPUT_LEFT.get();
            if text.len() > left {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "output limit reached",
                ));
            }
            OUTPUT_LEFT.set(left - text.len());
            out.write_str(&text).map_err(minijinja::Error::from)
        });
        env.add_function(
            "mage_secret_var",
            functions::mage_secret_var(secrets.clone()),
        );
        env.add_function("env_var", functions::env_var(vars.clone()));
        env.add_function("json_value", functions::json_value_recorded);
        Engine {
            env,
            environment_uuid,
            secrets,
            vars,
            expression_uses: partial::ExpressionUses::default(),
        }
    }

    /// Renders one file. `path` names it in diagnostics; `chain` is its scope
    /// chain; `check_yaml` parses the output as YAML.
    pub fn render(
        &self,
        path: &std::path::Path,
        source: &str,
        chain: &[Scope],
        options: &RenderOptions,
        check_yaml: bool,
    ) -> FileRender {
        let mut file = FileRender {
            output: None,
            mode: RenderMode::Copied,
            diagnostics: Vec::new(),
            secrets: Vec::new(),
            references: Vec::new(),
            kept: Vec::new(),
        };
        let limit = options.max_output.unwrap_or(DEFAULT_MAX_OUTPUT);
        OUTPUT_LEFT.set(limit);
        if !analysis::has_template_syntax(source) {
            if check_yaml {
                let problems = yaml_check::plain(source);
                if !problems.is_empty() {
                    file.diagnostics
                        .extend(problems.into_iter().map(|d| d.in_file(path)));
                    return file;
                }
            }
            file.output = Some(source.to_string());
            return file;
        }
        let located = |d: Diagnostic| d.in_file(path);
        // Jinja2 reads `\r\n` and `\r` as `\n` everywhere in a template.
        let normalized = normalize_newlines(source);
        let source: &str = &normalized;
        let analysis = match Analysis::of(source) {
            Ok(a) => a,
            Err(e) => {
                file.diagnostics.push(located(lex_error(source, &e)));
                // What comes before the broken construct is still checked.
                file.references = analysis::references_before(source, &e);
                return file;
            }
        };
        file.references = analysis.references.clone();
        let unknown = names::problems(source, &analysis, &options.allow_unknown);
        if !unknown.is_empty() {
            // Mage fails on these (or renders them as errors at run time).
            file.diagnostics.extend(unknown.into_iter().map(located));
            return file;
        }
        let scope = RenderScope::new(chain.to_vec());
        let mut sink = Sink {
            errors: Vec::new(),
            asm: Assembly::new(source.len() + 64, !options.direct),
            tags_kept: false,
            kept: Vec::new(),
        };
        let rendered = if analysis.is_simple(source) {
            // Text and literal calls only: evaluated directly, with exactly
            // the engine's result, at a fraction of the cost.
            file.mode = RenderMode::Whole;
            self.render_simple(source, &analysis, &scope, options, &mut sink)
        } else if self.certainly_partial(source, &analysis) {
            file.mode = RenderMode::Partial;
            let ctx = Value::from(std::collections::BTreeMap::from([(
                SCOPE_VAR,
                Value::from_dyn_object(scope.clone()),
            )]));
            self.render_partial(source, &analysis, ctx, &scope, options, &mut sink)
        } else {
            let name = path.display().to_string();
            let rewritten = pysyntax::rewrite(source);
            let compiled = rewritten.as_ref().map_or(source, |r| r.text.as_str());
            let template = match self.env.template_from_named_str(&name, compiled) {
                Ok(t) => t,
                Err(e) => {
                    file.diagnostics.push(located(template_error(
                        source,
                        0,
                        &e,
                        Kind::Syntax,
                        rewritten.as_ref(),
                    )));
                    return file;
                }
            };
            // Identifiers are a superset of the variables used: when they
            // are all ours the (costly) exact analysis is not needed.
            let whole = analysis
                .identifiers
                .iter()
                .all(|n| KNOWN_NAMES.contains(&n.as_str()))
                || template
                    .undeclared_variables(false)
                    .iter()
                    .all(|n| KNOWN_NAMES.contains(&n.as_str()));
            let ctx = Value::from(std::collections::BTreeMap::from([(
                SCOPE_VAR,
                Value::from_dyn_object(scope.clone()),
            )]));
            if whole {
                file.mode = RenderMode::Whole;
                let file_source = FileSource {
                    source,
                    analysis: &analysis,
                    options,
                };
                self.render_whole(&template, rewritten.as_ref(), ctx, &file_source, &mut sink)
            } else {
                file.mode = RenderMode::Partial;
                self.render_partial(source, &analysis, ctx, &scope, options, &mut sink)
            }
        };
        if let Some(failure) = scope.take_failure() {
            // A store failure (tampered row, I/O) is not a template problem.
            sink.errors.clear();
            sink.errors
                .push(Diagnostic::error(Kind::Render, failure.to_string()));
        }
        file.kept = std::mem::take(&mut sink.kept);
        file.diagnostics
            .extend(sink.errors.into_iter().map(located));
        for missing in scope.missing() {
            for d in self.missing_diagnostics(
                &missing,
                source,
                &analysis,
                chain,
                options.lenient,
                file.mode == RenderMode::Partial,
            ) {
                file.diagnostics.push(located(d));
            }
        }
        let used = scope.take_used();
        withhold_values(&mut file.diagnostics, &used, source, &analysis);
        file.secrets = {
            let mut names: Vec<String> = used.into_iter().map(|(n, _)| n).collect();
            names.sort();
            names.dedup();
            names
        };
        // Past the limit: one error for the file, whatever failed with it.
        let over = file
            .diagnostics
            .iter()
            .any(|d| d.message.contains("output limit reached"))
            || sink.asm.out.len() > limit;
        if over {
            file.diagnostics
                .retain(|d| d.kind != Kind::Render && d.kind != Kind::Syntax);
            file.diagnostics.push(located(Diagnostic::error(
                Kind::Render,
                output_limit_error(limit),
            )));
            return file;
        }
        if rendered.is_none() || file.diagnostics.iter().any(Diagnostic::is_error) {
            return file;
        }
        let mut asm = sink.asm;
        asm.finish(file.mode == RenderMode::Whole);
        if check_yaml {
            let mut findings = yaml_check::check(&asm, source, &analysis, sink.tags_kept);
            if file.mode == RenderMode::Whole {
                findings.extend(self.unplaced_empty_values(&asm, source, &analysis, &scope));
            }
            let failed = findings.iter().any(Diagnostic::is_error);
            file.diagnostics.extend(findings.into_iter().map(located));
            if failed {
                return file;
            }
        }
        file.output = Some(asm.out);
        file
    }

    /// Warnings for literal calls in plain context whose value is empty and
    /// that left no place (the engine records no span for empty output):
    /// PyYAML reads an empty plain value as None.
    fn unplaced_empty_values(
        &self,
        asm: &Assembly,
        source: &str,
        analysis: &Analysis,
        scope: &RenderScope,
    ) -> Vec<Diagnostic> {
        analysis
            .expressions
            .iter()
            .filter(|site| site.context == QuotingContext::Plain && site.bare)
            .filter(|site| !asm.place_sources.contains(&site.inner))
            .filter(|site| {
                let Some(call) = &site.call else { return false };
                match call.function {
                    Function::SecretVar => self
                        .secrets
                        .lookup(&scope.chain, &call.name)
                        .ok()
                        .flatten()
                        .is_some_and(|v| v.as_str().is_empty()),
                    Function::EnvVar => match (self.vars.get(&call.name), &call.default) {
                        (Some(v), _) => v.is_empty(),
                        (None, Some(analysis::Literal::Str(d))) => d.is_empty(),
                        _ => false,
                    },
                }
            })
            .map(|site| yaml_check::empty_value_warning(source, analysis, site.inner.clone()))
            .collect()
    }

    /// Places an expression's output: a bare call's value escaped for its
    /// quoting context (or an error recorded when it cannot be placed
    /// there); the text of an expression the user shaped as it is, as Mage
    /// places it.
    fn place(
        &self,
        text: &str,
        bare: bool,
        context: QuotingContext,
        file: &FileSource<'_>,
        source_range: Range<usize>,
        sink: &mut Sink,
    ) {
        let intended = bare.then_some(text);
        if let Some(escaped) = self.escaped(text, bare, context, file, source_range.clone(), sink) {
            sink.asm.value(&escaped, intended, context, source_range);
        }
    }

    /// An expression's output escaped for its quoting context, or `None`
    /// (with an error recorded) when it cannot be placed there.
    fn escaped<'t>(
        &self,
        text: &'t str,
        bare: bool,
        context: QuotingContext,
        file: &FileSource<'_>,
        source_range: Range<usize>,
        sink: &mut Sink,
    ) -> Option<std::borrow::Cow<'t, str>> {
        let FileSource {
            source,
            analysis,
            options,
        } = *file;
        if options.raw || !bare {
            return Some(std::borrow::Cow::Borrowed(text));
        }
        match escape(text, context) {
            Ok(escaped) => Some(escaped),
            Err(e) => {
                let names = analysis.secret_names_in(source_range.clone());
                let vars = analysis.env_var_names_in(source_range.clone());
                let what = if !names.is_empty() {
                    format!(" (secrets: {})", names.join(", "))
                } else if !vars.is_empty() {
                    format!(" (environment variables: {})", vars.join(", "))
                } else {
                    String::new()
                };
                let d = Diagnostic::error(
                    Kind::Quoting,
                    format!("cannot place this value in single quotes{what}: {e}"),
                );
                let d = match names.first() {
                    Some(name) => d.named(name),
                    None => d,
                };
                sink.errors.push(d.at_offset(source, source_range.start));
                None
            }
        }
    }
}

/// The file being rendered, as the output assembly needs it.
#[derive(Clone, Copy)]
struct FileSource<'a> {
    source: &'a str,
    analysis: &'a Analysis,
    options: &'a RenderOptions,
}

/// Collected while assembling one file's output.
struct Sink {
    errors: Vec<Diagnostic>,
    asm: Assembly,
    /// A partial render kept a tag that may change the YAML structure.
    tags_kept: bool,
    /// Source ranges kept for Mage (partial renders).
    kept: Vec<Range<usize>>,
}

/// `{% raw %}` or `{% endraw %}` (with any whitespace control).
fn is_raw_marker(tag: &str) -> bool {
    let inner = tag
        .strip_prefix("{%")
        .and_then(|t| t.strip_suffix("%}"))
        .map(|t| {
            t.trim_start_matches(['-', '+'])
                .trim_end_matches(['-', '+'])
                .trim()
        });
    matches!(inner, Some("raw" | "endraw"))
}

/// Jinja2 reads every `\r\n` and lone `\r` of a template as `\n`.
fn normalize_newlines(source: &str) -> std::borrow::Cow<'_, str> {
    if !source.contains('\r') {
        return std::borrow::Cow::Borrowed(source);
    }
    std::borrow::Cow::Owned(source.replace("\r\n", "\n").replace('\r', "\n"))
}
