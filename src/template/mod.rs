//! The template engine: one minijinja environment with Mage's functions and
//! Jinja2's printing, and the rendering of one file's source. Pure: values
//! come through [`SecretSource`] and [`EnvVars`], nothing here touches disk.
//!
//! A file whose every name is one of ours is rendered as a whole template
//! (Mage's semantics). A file that also uses names only Mage knows at run
//! time (`variables('x')`, `execution_date`, …) is rendered expression by
//! expression: known `{{ … }}` are substituted, everything else is kept byte
//! for byte for Mage to evaluate later.

pub mod analysis;
pub mod functions;
pub mod python;
pub mod quoting;

use std::ops::Range;
use std::sync::Arc;

use minijinja::value::Value;
use minijinja::{AutoEscape, OutputSpanKind, UndefinedBehavior};

use crate::diagnostic::{line_col, Diagnostic, Kind};
use crate::secret::{not_set_message, Scope};
use analysis::{Analysis, Function};
pub use functions::{EnvVars, ProcessEnv, SecretSource};
use functions::{Missing, RenderScope, SCOPE_VAR};
use quoting::{escape, QuotingContext, Segment};

/// Names a file may use and still be rendered as a whole template.
const KNOWN_NAMES: &[&str] = &[
    "mage_secret_var",
    "env_var",
    "json_value",
    // minijinja's global functions that Jinja2 also has.
    "range",
    "dict",
    "namespace",
];

/// Upper bound on the work one template may do (loops, macros), so a
/// hostile template ends with an error instead of running forever.
const FUEL: u64 = 50_000_000;

/// Stand-in for a runtime expression when a partially rendered file is
/// parsed as YAML.
const RUNTIME_PLACEHOLDER: &str = "mage_runtime_value";

/// How to render.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Render missing values as `None` with a warning, as Mage does.
    pub lenient: bool,
    /// Insert values raw, without quote-aware escaping (Mage's bytes).
    pub raw: bool,
    /// Pipeline scope for `render_str` (files in a project get theirs from their path).
    pub pipeline: Option<String>,
    /// Globs selecting files instead of `*.yaml`/`*.yml`.
    pub include: Vec<String>,
    /// Globs removing files from the selection.
    pub exclude: Vec<String>,
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
}

impl Engine {
    pub fn new(secrets: Arc<dyn SecretSource>, vars: Arc<dyn EnvVars>) -> Engine {
        let environment_uuid = secrets.environment().to_string();
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_fuel(Some(FUEL));
        env.set_formatter(|out, _state, value| {
            let mut text = String::new();
            python::write_value(&mut text, value);
            out.write_str(&text).map_err(minijinja::Error::from)
        });
        env.add_function(
            "mage_secret_var",
            functions::mage_secret_var(secrets.clone()),
        );
        env.add_function("env_var", functions::env_var(vars.clone()));
        env.add_function("json_value", functions::json_value);
        Engine {
            env,
            environment_uuid,
            secrets,
            vars,
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
        };
        if !analysis::has_template_syntax(source) {
            file.output = Some(source.to_string());
            return file;
        }
        let located = |d: Diagnostic| d.in_file(path);
        let analysis = match Analysis::of(source) {
            Ok(a) => a,
            Err(e) => {
                file.diagnostics.push(located(lex_error(source, &e)));
                return file;
            }
        };
        file.references = analysis.references.clone();
        let scope = RenderScope::new(chain.to_vec());
        let mut sink = Sink::default();
        let rendered = if analysis.is_simple(source) {
            // Text and literal calls only: evaluated directly, with exactly
            // the engine's result, at a fraction of the cost.
            file.mode = RenderMode::Whole;
            self.render_simple(source, &analysis, &scope, options, &mut sink)
        } else {
            let name = path.display().to_string();
            let template = match self.env.template_from_named_str(&name, source) {
                Ok(t) => t,
                Err(e) => {
                    file.diagnostics
                        .push(located(template_error(source, 0, &e, Kind::Syntax)));
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
                self.render_whole(&template, ctx, source, &analysis, options, &mut sink)
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
        file.diagnostics
            .extend(sink.errors.into_iter().map(located));
        for missing in scope.missing() {
            for d in self.missing_diagnostics(&missing, source, &analysis, chain, options.lenient) {
                file.diagnostics.push(located(d));
            }
        }
        let used = scope.used();
        file.secrets = {
            let mut names: Vec<String> = used.iter().map(|(n, _)| n.clone()).collect();
            names.sort();
            names.dedup();
            names
        };
        let Some(output) = rendered else { return file };
        if file.diagnostics.iter().any(Diagnostic::is_error) {
            return file;
        }
        if check_yaml {
            let probe = sink.probe.as_deref().unwrap_or(&output);
            if !sink.skip_yaml {
                if let Some(d) = yaml_problem(probe, source, &sink.spans, &analysis) {
                    file.diagnostics.push(located(d));
                    return file;
                }
            }
        }
        file.output = Some(output);
        file
    }

    /// Renders a template of text and [`analysis::SimpleCall`]s.
    fn render_simple(
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

    fn render_whole(
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

    /// An expression's output escaped for its quoting context, or `None`
    /// (with an error recorded) when it cannot be placed there.
    fn escaped<'t>(
        &self,
        text: &'t str,
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
        if options.raw {
            return Some(std::borrow::Cow::Borrowed(text));
        }
        match escape(text, context) {
            Ok(escaped) => Some(escaped),
            Err(e) => {
                let names = analysis.secret_names_in(source_range.clone());
                let what = if names.is_empty() {
                    String::new()
                } else {
                    format!(" (secrets: {})", names.join(", "))
                };
                sink.errors.push(
                    Diagnostic::error(
                        Kind::Quoting,
                        format!("cannot place this value in single quotes{what}: {e}"),
                    )
                    .at_offset(source, source_range.start),
                );
                None
            }
        }
    }

    fn render_partial(
        &self,
        source: &str,
        analysis: &Analysis,
        ctx: Value,
        scope: &RenderScope,
        options: &RenderOptions,
        sink: &mut Sink,
    ) -> Option<String> {
        let mut out = String::with_capacity(source.len() + 16);
        let mut probe = String::with_capacity(source.len() + 16);
        // What becomes of each expression, decided (and compiled) once.
        let plans: Vec<Plan<'_>> = analysis
            .expressions
            .iter()
            .map(|site| self.plan(source, site))
            .collect();
        let mut sites = analysis.expressions.iter().zip(&plans);
        let mut trim_next = false;
        let segments = &analysis.segments;
        let mut failed = false;
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
                        && sites
                            .clone()
                            .next()
                            .is_some_and(|(s, plan)| s.trim_before && !matches!(plan, Plan::Keep));
                    if next_trims {
                        text = text.trim_end();
                    }
                    let out_start = out.len();
                    out.push_str(text);
                    if matches!(segment, Segment::Tag(_)) && !whitespace_only {
                        // A kept `{% … %}` or `{# … #}`: no YAML check for
                        // tags (they change the structure); comments vanish.
                        if text.starts_with("{%") || text.contains('\n') {
                            sink.skip_yaml = true;
                        }
                    } else {
                        probe.push_str(text);
                    }
                    sink.spans.push(OutSpan {
                        output: out_start..out.len(),
                        source: r.clone(),
                        expression: false,
                    });
                }
                Segment::Expression(_) => {
                    let (site, plan) = sites.next().expect("one site per expression segment");
                    let outer = &source[site.outer.clone()];
                    let out_start = out.len();
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
                        Plan::Keep => None,
                    };
                    if let Some(result) = evaluated {
                        match result {
                            Ok(text) => {
                                let escaped = self.escaped(
                                    &text,
                                    site.context,
                                    &FileSource {
                                        source,
                                        analysis,
                                        options,
                                    },
                                    site.inner.clone(),
                                    sink,
                                );
                                if let Some(escaped) = escaped {
                                    probe.push_str(&escaped);
                                    if analysis::has_template_syntax(&escaped) {
                                        // Mage renders this file again at run time:
                                        // keep the value from being evaluated there.
                                        out.push_str("{% raw %}");
                                        out.push_str(&escaped.replace(
                                            "{% endraw %}",
                                            "{% endraw %}{{ '{% endraw %}' }}{% raw %}",
                                        ));
                                        out.push_str("{% endraw %}");
                                    } else {
                                        out.push_str(&escaped);
                                    }
                                }
                            }
                            Err(e) => {
                                sink.errors.push(template_error(
                                    source,
                                    site.outer.start,
                                    &e,
                                    Kind::Render,
                                ));
                                failed = true;
                            }
                        }
                        trim_next = site.trim_after;
                    } else {
                        out.push_str(outer);
                        probe.push_str(RUNTIME_PLACEHOLDER);
                        if outer.contains('\n') {
                            sink.skip_yaml = true;
                        }
                    }
                    sink.spans.push(OutSpan {
                        output: out_start..out.len(),
                        source: site.inner.clone(),
                        expression: true,
                    });
                }
            }
        }
        sink.probe = Some(probe);
        (!failed).then_some(out)
    }

    /// Whether a partial render evaluates an expression (a literal call, or
    /// one whose names are all ours, compiled here once) or keeps it.
    fn plan<'s>(&'s self, source: &'s str, site: &'s analysis::ExpressionSite) -> Plan<'s> {
        if let Some(call) = &site.call {
            return Plan::Call(call);
        }
        match self.env.template_from_str(&source[site.outer.clone()]) {
            Ok(t)
                if t.undeclared_variables(false)
                    .iter()
                    .all(|n| KNOWN_NAMES.contains(&n.as_str())) =>
            {
                Plan::Compiled(t)
            }
            _ => Plan::Keep,
        }
    }

    fn missing_diagnostics(
        &self,
        missing: &Missing,
        source: &str,
        analysis: &Analysis,
        chain: &[Scope],
        lenient: bool,
    ) -> Vec<Diagnostic> {
        let (function, name, message) = match missing {
            Missing::Secret(name) => (
                Function::SecretVar,
                name,
                not_set_message(name, &self.environment_uuid, chain),
            ),
            Missing::EnvVar(name) => (
                Function::EnvVar,
                name,
                format!("environment variable '{name}' is not set and env_var has no default"),
            ),
        };
        let help = match function {
            Function::SecretVar => format!("set it with `mage-secrets set {name}`"),
            Function::EnvVar => {
                format!("export {name}, or give env_var a default: env_var('{name}', 'default')")
            }
        };
        let (message, make): (String, fn(Kind, String) -> Diagnostic) = if lenient {
            (format!("{message}; rendered as None"), Diagnostic::warning)
        } else {
            (message, Diagnostic::error)
        };
        let kind = match function {
            Function::SecretVar => Kind::MissingSecret,
            Function::EnvVar => Kind::UnsetEnvVar,
        };
        let mut places: Vec<usize> = analysis
            .references
            .iter()
            .filter(|r| r.function == function && r.name.as_deref() == Some(name.as_str()))
            .map(|r| r.offset)
            .collect();
        if places.is_empty() {
            // A computed name: point at the first computed call.
            places.extend(
                analysis
                    .references
                    .iter()
                    .find(|r| r.function == function && r.name.is_none())
                    .map(|r| r.offset),
            );
        }
        if places.is_empty() {
            return vec![make(kind, message).named(name).with_help(help)];
        }
        places
            .into_iter()
            .map(|o| {
                make(kind, message.clone())
                    .named(name)
                    .with_help(help.clone())
                    .at_offset(source, o)
            })
            .collect()
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

/// The file being rendered, as the output assembly needs it.
#[derive(Clone, Copy)]
struct FileSource<'a> {
    source: &'a str,
    analysis: &'a Analysis,
    options: &'a RenderOptions,
}

/// The diagnostic for a template the lexer rejects.
fn lex_error(source: &str, e: &analysis::LexError) -> Diagnostic {
    let d = Diagnostic::error(
        Kind::Syntax,
        format!("template syntax error: {}", e.message),
    );
    match e.offset {
        Some(o) => d.at_offset(source, o),
        None => d,
    }
}

/// Syntax errors of a template, placed in `path` (compiled by a bare
/// environment: names need not exist for this).
pub fn syntax_errors(path: &std::path::Path, source: &str) -> Vec<Diagnostic> {
    match Analysis::of(source) {
        Err(e) => return vec![lex_error(source, &e).in_file(path)],
        // Text and literal calls only: valid by construction.
        Ok(a) if a.is_simple(source) => return Vec::new(),
        Ok(_) => {}
    }
    let env = minijinja::Environment::new();
    match env.template_from_str(source) {
        Ok(_) => Vec::new(),
        Err(e) => vec![template_error(source, 0, &e, Kind::Syntax).in_file(path)],
    }
}

/// Collected while assembling one file's output.
#[derive(Default)]
struct Sink {
    errors: Vec<Diagnostic>,
    spans: Vec<OutSpan>,
    /// For partial renders: the output with runtime expressions replaced by
    /// a placeholder, for the YAML check.
    probe: Option<String>,
    skip_yaml: bool,
}

/// Which source produced a range of the output.
struct OutSpan {
    output: Range<usize>,
    source: Range<usize>,
    expression: bool,
}

/// A minijinja error placed in the file: `base` is the offset of the
/// compiled text within the file.
fn template_error(source: &str, base: usize, e: &minijinja::Error, kind: Kind) -> Diagnostic {
    if e.kind() == minijinja::ErrorKind::TemplateNotFound {
        let d = Diagnostic::error(
            Kind::Render,
            "{% include %}, {% import %} and {% extends %} are refused: each file is rendered on its own, and nothing outside it is read",
        );
        return match e.range() {
            Some(r) => d.at_offset(source, base + r.start),
            None => d,
        };
    }
    let mut message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message.push_str(&format!(": {c}"));
        cause = c.source();
    }
    let prefix = if kind == Kind::Syntax {
        "template syntax error: "
    } else {
        "template error: "
    };
    let d = Diagnostic::error(kind, format!("{prefix}{message}"));
    match (e.range(), e.line()) {
        (Some(r), _) => d.at_offset(source, base + r.start),
        (None, Some(line)) if base == 0 => d.at(source, line, 1),
        _ => d.at_offset(source, base),
    }
}

/// Parses `output` as YAML (every document); on failure, a diagnostic placed
/// in the template, naming the secrets substituted on the failing line and
/// never showing a value.
fn yaml_problem(
    output: &str,
    source: &str,
    spans: &[OutSpan],
    analysis: &Analysis,
) -> Option<Diagnostic> {
    use serde::Deserialize;
    // Syntax only, like PyYAML's loader in Mage: duplicate keys are allowed.
    let err = serde_yaml::Deserializer::from_str(output)
        .find_map(|doc| serde::de::IgnoredAny::deserialize(doc).err())?;
    let index = err.location().map_or(0, |l| l.index()).min(output.len());
    // The output line holding the error, and the source offset it maps to.
    let line_start = output[..index].rfind('\n').map_or(0, |i| i + 1);
    let line_end = output[index..]
        .find('\n')
        .map_or(output.len(), |i| index + i);
    let mut names: Vec<&str> = Vec::new();
    let mut source_offset = None;
    for span in spans {
        let overlaps = span.output.start <= line_end && span.output.end >= line_start;
        if !overlaps {
            continue;
        }
        if span.expression {
            names.extend(analysis.secret_names_in(span.source.clone()));
        }
        if source_offset.is_none() && span.output.end >= index {
            source_offset = Some(if span.expression {
                span.source.start
            } else {
                span.source.start
                    + index
                        .saturating_sub(span.output.start)
                        .min(span.source.len())
            });
        }
    }
    names.sort();
    names.dedup();
    let message = yaml_message(&err.to_string());
    let (out_line, _) = line_col(output, index);
    let secrets = if names.is_empty() {
        String::new()
    } else {
        format!(" (secrets substituted on this line: {})", names.join(", "))
    };
    let d = Diagnostic::error(
        Kind::Yaml,
        format!("rendered YAML does not parse: {message} (output line {out_line}){secrets}"),
    )
    .with_help("put the expression in quotes (\"{{ … }}\") so that its value is escaped as a string, or fix the YAML around it");
    Some(match source_offset {
        Some(o) => d.at_offset(source, o),
        None => d.at_offset(source, source.len()),
    })
}

/// The parser's message without serde_yaml's output position (the
/// diagnostic gives the template's). libyaml's messages are fixed texts; any
/// that quotes something (it could be part of a value) is replaced whole,
/// rather than searched for values, which would itself tell about them.
fn yaml_message(raw: &str) -> String {
    let message = raw.split(" at line ").next().unwrap_or(raw);
    if message.contains(['"', '\'', '`']) {
        "syntax error".to_string()
    } else {
        message.to_string()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::secret::SecretValue;
    use std::collections::HashMap;
    use std::path::Path;

    /// Secrets from a map: (scope, name) → value.
    pub struct MapSource(pub HashMap<(Scope, String), Arc<SecretValue>>);

    impl MapSource {
        pub fn of(pairs: &[(&str, &str)]) -> MapSource {
            MapSource(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let (scope, name) = match k.split_once('/') {
                            Some((p, n)) => (Scope::Pipeline(p.to_string()), n.to_string()),
                            None => (Scope::Global, k.to_string()),
                        };
                        ((scope, name), Arc::new(SecretValue::new(v.to_string())))
                    })
                    .collect(),
            )
        }
    }

    impl SecretSource for MapSource {
        fn lookup(&self, chain: &[Scope], name: &str) -> crate::Result<Option<Arc<SecretValue>>> {
            Ok(chain
                .iter()
                .find_map(|s| self.0.get(&(s.clone(), name.to_string())).cloned()))
        }
        fn environment(&self) -> &str {
            "test-env"
        }
    }

    struct MapVars(HashMap<String, String>);
    impl EnvVars for MapVars {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    pub fn engine(secrets: &[(&str, &str)]) -> Engine {
        let vars = MapVars(
            [("HOME".to_string(), "/home/u".to_string())]
                .into_iter()
                .collect(),
        );
        Engine::new(Arc::new(MapSource::of(secrets)), Arc::new(vars))
    }

    fn render_with(secrets: &[(&str, &str)], src: &str, options: &RenderOptions) -> FileRender {
        engine(secrets).render(Path::new("f.yaml"), src, &[Scope::Global], options, true)
    }

    fn render(secrets: &[(&str, &str)], src: &str) -> Result<String, Vec<String>> {
        let r = render_with(secrets, src, &RenderOptions::default());
        r.output
            .ok_or_else(|| r.diagnostics.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn whole_templates_render_like_jinja2() {
        let src = "a: \"{{ mage_secret_var('pw') }}\"\n{# note #}\n{% if true %}b: {{ env_var('HOME') }}{% endif %}\nc: {{ env_var('NOPE', 'dflt') }}\n";
        assert_eq!(
            render(&[("pw", "p")], src).unwrap(),
            "a: \"p\"\n\nb: /home/u\nc: dflt"
        );
        assert_eq!(
            render(&[], "x: {{ json_value('{\"a\": [1, 2]}', 'a') }}").unwrap(),
            "x: [1, 2]"
        );
        assert_eq!(
            render(&[], "x: {{ none }} {{ true }}").unwrap(),
            "x: None True"
        );
    }

    #[test]
    fn values_are_escaped_by_quoting_context() {
        let v = "a\"b'c\\d\ne";
        let src =
            "dq: \"{{ mage_secret_var('v') }}\"\nurl: \"pre-{{ mage_secret_var('v') }}-post\"\n";
        let out = render(&[("v", v)], src).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
        assert_eq!(doc["dq"].as_str().unwrap(), v);
        assert_eq!(doc["url"].as_str().unwrap(), format!("pre-{v}-post"));
        let sq = render(&[("v", "it's")], "sq: '{{ mage_secret_var(\"v\") }}'").unwrap();
        assert_eq!(sq, "sq: 'it''s'");
        let err = render(&[("v", "l1\nl2")], "sq: '{{ mage_secret_var(\"v\") }}'").unwrap_err();
        assert!(
            err[0].contains(
                "f.yaml:1:9: error: cannot place this value in single quotes (secrets: v)"
            ),
            "{err:?}"
        );
        let raw = render_with(
            &[("v", "a\"b")],
            "dq: \"{{ mage_secret_var('v') }}\"",
            &RenderOptions {
                raw: true,
                ..Default::default()
            },
        );
        assert!(
            raw.output.is_none(),
            "raw insertion breaks the YAML, which is reported"
        );
    }

    #[test]
    fn values_are_never_evaluated() {
        let out = render(
            &[("v", "{{ mage_secret_var('other') }}"), ("other", "NO")],
            "k: \"{{ mage_secret_var('v') }}\"",
        )
        .unwrap();
        assert_eq!(out, "k: \"{{ mage_secret_var('other') }}\"");
    }

    #[test]
    fn runtime_expressions_are_kept_byte_for_byte() {
        let src = "pw: \"{{ mage_secret_var('pw') }}\"\nstart: {{ n_days_ago(1) }}\ntable: \"{{ variables('t') }}\"\n{# kept #}\n";
        let r = render_with(&[("pw", "x\"y")], src, &RenderOptions::default());
        assert_eq!(r.mode, RenderMode::Partial);
        assert_eq!(
            r.output.unwrap(),
            "pw: \"x\\\"y\"\nstart: {{ n_days_ago(1) }}\ntable: \"{{ variables('t') }}\"\n{# kept #}\n"
        );
        let tags = "{% if variables('x') %}\npw: {{ mage_secret_var('pw') }}\n{% endif %}\n";
        assert_eq!(
            render(&[("pw", "p")], tags).unwrap(),
            "{% if variables('x') %}\npw: p\n{% endif %}\n"
        );
        let protected = render(
            &[("pw", "{{ boom }}")],
            "a: {{ mage_secret_var('pw') }}\nb: {{ variables('x') }}\n",
        )
        .unwrap();
        assert_eq!(
            protected,
            "a: {% raw %}{{ boom }}{% endraw %}\nb: {{ variables('x') }}\n"
        );
    }

    #[test]
    fn whitespace_control_of_substituted_expressions_is_applied() {
        let src = "k: [x,  {{- mage_secret_var('pw') -}}  , y]\nt: {{ variables('t') }}\n";
        assert_eq!(
            render(&[("pw", "p")], src).unwrap(),
            "k: [x,p, y]\nt: {{ variables('t') }}\n"
        );
        let upper = "a: x \n {{- mage_secret_var('pw') | upper }}\nb: {{ variables('t') }}\n";
        assert_eq!(
            render(&[("pw", "p")], upper).unwrap(),
            "a: xP\nb: {{ variables('t') }}\n"
        );
    }

    #[test]
    fn yaml_messages_never_quote() {
        assert_eq!(
            yaml_message("mapping values are not allowed in this context at line 2 column 9"),
            "mapping values are not allowed in this context"
        );
        assert_eq!(
            yaml_message("invalid type: string \"hunter2\", expected a map"),
            "syntax error"
        );
    }

    #[test]
    fn every_missing_value_is_reported_with_its_place() {
        let src = "a: {{ mage_secret_var('one') }}\nb: {{ mage_secret_var('two') }}\nc: {{ env_var('UNSET') }}\nd: {{ mage_secret_var('one') }}\n";
        let err = render(&[], src).unwrap_err();
        assert_eq!(
            err,
            vec![
                "f.yaml:1:7: error: secret 'one' is not set in environment test-env",
                "f.yaml:4:7: error: secret 'one' is not set in environment test-env",
                "f.yaml:2:7: error: secret 'two' is not set in environment test-env",
                "f.yaml:3:7: error: environment variable 'UNSET' is not set and env_var has no default",
            ]
        );
        let lenient = render_with(
            &[],
            src,
            &RenderOptions {
                lenient: true,
                ..Default::default()
            },
        );
        assert_eq!(
            lenient.output.unwrap(),
            "a: None\nb: None\nc: None\nd: None"
        );
        assert!(lenient.diagnostics.iter().all(|d| !d.is_error()));
        assert_eq!(lenient.diagnostics.len(), 4);
    }

    #[test]
    fn pipeline_scope_comes_first() {
        let e = engine(&[("k", "global"), ("etl/k", "pipeline")]);
        let chain = Scope::Pipeline("etl".into()).chain();
        let r = e.render(
            Path::new("p.yaml"),
            "k: {{ mage_secret_var('k') }}",
            &chain,
            &RenderOptions::default(),
            true,
        );
        assert_eq!(r.output.unwrap(), "k: pipeline");
        let r = e.render(
            Path::new("p.yaml"),
            "k: {{ mage_secret_var('k') }}",
            &[Scope::Global],
            &RenderOptions::default(),
            true,
        );
        assert_eq!(r.output.unwrap(), "k: global");
    }

    #[test]
    fn syntax_and_yaml_errors_are_placed_without_values() {
        let err = render(&[], "a: 1\nb: {{ mage_secret_var('x' }}\n").unwrap_err();
        assert!(err[0].starts_with("f.yaml:2:"), "{err:?}");
        assert!(err[0].contains("syntax error"), "{err:?}");
        let secret = "SENTINEL: value";
        let err = render(
            &[("pw", secret)],
            "a: b\nkey: {{ mage_secret_var('pw') }}: c\n",
        )
        .unwrap_err();
        assert!(err[0].contains("rendered YAML does not parse"), "{err:?}");
        assert!(
            err[0].contains("secrets substituted on this line: pw"),
            "{err:?}"
        );
        assert!(err[0].starts_with("f.yaml:2:"), "{err:?}");
        assert!(!err.join("\n").contains("SENTINEL"));
    }

    #[test]
    fn includes_and_imports_are_refused() {
        let err = render(&[], "{% include '/etc/passwd' %}").unwrap_err();
        assert!(err[0].contains("are refused"), "{err:?}");
    }
}

#[cfg(test)]
mod properties {
    use super::tests::engine;
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;

    fn adversarial() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "\"", "\\", "'", "\n", "\t", "#", ": ", " ", "{{", "}}", "{%", "é", "日本", "a", "Z9",
            "\r", "- ", "%", "''", "\\n", "&x", "*y", "!t", "[", "]", ",", "null", "~",
        ]);
        prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
    }

    fn field(output: &str, key: &str) -> String {
        let doc: serde_yaml::Value = serde_yaml::from_str(output).expect("rendered YAML parses");
        doc[key].as_str().expect("a string").to_string()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn quoted_values_read_back_exactly(value in adversarial()) {
            let e = engine(&[("v", &value)]);
            let render = |src: &str| e.render(Path::new("p.yaml"), src, &[Scope::Global], &RenderOptions::default(), true);

            let dq = render("key: \"{{ mage_secret_var('v') }}\"\n");
            prop_assert_eq!(field(dq.output.as_deref().unwrap(), "key"), value.clone());

            let url = render("url: \"pre-{{ mage_secret_var('v') }}-post\"\n");
            prop_assert_eq!(field(url.output.as_deref().unwrap(), "url"), format!("pre-{value}-post"));

            let sq = render("key: '{{ mage_secret_var('v') }}'\n");
            if value.contains(['\n', '\r']) {
                prop_assert!(sq.output.is_none());
                prop_assert_eq!(sq.diagnostics[0].kind, Kind::Quoting);
                prop_assert!(sq.diagnostics[0].message.contains("use double quotes"));
            } else {
                prop_assert_eq!(field(sq.output.as_deref().unwrap(), "key"), value.clone());
            }
        }
    }
}
