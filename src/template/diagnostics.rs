//! Diagnostics of a file's template: lexer and minijinja errors placed in
//! the source, and every place a missing secret or unset variable is used.

use super::analysis::{self, Analysis, Function};
use super::functions::Missing;
use super::quoting::QuotingContext;
use super::Engine;
use crate::diagnostic::{Diagnostic, Kind};
use crate::error::not_set_message;
use crate::secret::{describe_chain, Scope};

impl Engine {
    pub(super) fn missing_diagnostics(
        &self,
        missing: &Missing,
        source: &str,
        analysis: &Analysis,
        chain: &[Scope],
        lenient: bool,
        partial: bool,
    ) -> Vec<Diagnostic> {
        let (function, name, message, help, kind) = match missing {
            Missing::Secret(name) => (
                Function::SecretVar,
                name,
                not_set_message(name, &self.environment_uuid, &describe_chain(chain)),
                format!("set it with `mage-secrets set {name}`"),
                Kind::MissingSecret,
            ),
            Missing::EnvVar(name) => (
                Function::EnvVar,
                name,
                format!("environment variable '{name}' is not set and env_var has no default"),
                format!("export {name}, or give env_var a default: env_var('{name}', 'default')"),
                Kind::UnsetEnvVar,
            ),
            Missing::InvalidName(name) => (
                Function::SecretVar,
                name,
                format!("'{name}' is not a valid secret name, so Mage never finds it"),
                "a secret name is letters, digits and _, not starting with a digit (at most 255 bytes)".to_string(),
                Kind::InvalidName,
            ),
            Missing::JsonPath { secret, path } => {
                let message = match secret {
                    Some(s) => format!("json_value: path '{path}' is not in the JSON of secret '{s}'"),
                    None => format!("json_value: path '{path}' is not in the JSON it reads"),
                };
                let d = if lenient {
                    Diagnostic::warning(Kind::MissingSecret, format!("{message}; rendered as None"))
                } else {
                    Diagnostic::error(Kind::MissingSecret, message)
                }
                .with_help("check the path, or the secret's JSON (`mage-secrets get NAME`)");
                let d = match secret {
                    Some(s) => d.named(s),
                    None => d,
                };
                // The call whose path literal this is, else the first call.
                let literal = [format!("'{path}'"), format!("\"{path}\"")];
                let place = literal
                    .iter()
                    .filter_map(|l| source.find(l.as_str()))
                    .min()
                    .and_then(|at| source[..at].rfind("json_value"))
                    .or_else(|| source.find("json_value"));
                return vec![match place {
                    Some(o) => d.at_offset(source, o),
                    None => d,
                }];
            }
            Missing::Unverifiable(from) => {
                let d = Diagnostic::error(
                    Kind::ComputedName,
                    format!("a secret or variable name here is computed from the value of secret '{from}', which cannot be checked without this environment's key"),
                )
                .named(from)
                .with_help("check with the environment's own data dir (its key), or pass --allow-unverifiable");
                // The computed call whose argument reads `from`: the last
                // computed call that starts before the first read of it.
                let read_at = analysis
                    .references
                    .iter()
                    .filter(|r| r.name.as_deref() == Some(from.as_str()))
                    .map(|r| r.offset)
                    .min();
                let computed = analysis.references.iter().filter(|r| r.name.is_none());
                let place = read_at
                    .and_then(|at| computed.clone().filter(|r| r.offset < at).map(|r| r.offset).max())
                    .or_else(|| computed.map(|r| r.offset).next());
                return vec![match place {
                    Some(o) => d.at_offset(source, o),
                    None => d,
                }];
            }
        };
        let (message, make) = missing_severity(message, lenient);
        let places: Vec<usize> = analysis
            .references
            .iter()
            .filter(|r| r.function == function && r.name.as_deref() == Some(name.as_str()))
            .filter(|r| !r.has_default)
            .map(|r| r.offset)
            .collect();
        if places.is_empty() {
            return self.computed_name_diagnostics(function, source, analysis, lenient);
        }
        // Where every place is inside a YAML comment, the missing value
        // changes nothing Mage reads (it renders `None` in the comment).
        let in_comment = |o: usize| {
            analysis
                .expression_at(o)
                .is_some_and(|s| s.context == QuotingContext::Comment)
        };
        if places.iter().all(|o| in_comment(*o)) {
            return places
                .into_iter()
                .map(|o| {
                    Diagnostic::warning(
                        kind,
                        format!("{message} (only inside a YAML comment, which it leaves as None)"),
                    )
                    .named(name)
                    .with_help(help.clone())
                    .at_offset(source, o)
                })
                .collect();
        }
        places
            .into_iter()
            .map(|o| {
                // In a file kept partly for Mage, a condition around the
                // place is Mage's to evaluate: the value is needed whether
                // or not it holds.
                let help = match analysis.enclosing_block(source, o) {
                    Some((keyword, start)) if partial => format!(
                        "{help}{}. This file uses names only Mage knows at run time, so `{{% {keyword} %}}` at line {} is left for Mage to evaluate, and mage-secrets resolves every reference under it whether or not Mage will use it",
                        if lenient { "" } else { ", or render with --lenient" },
                        crate::diagnostic::line_col(source, start).0
                    ),
                    _ => help.clone(),
                };
                make(kind, message.clone())
                    .named(name)
                    .with_help(help)
                    .at_offset(source, o)
            })
            .collect()
    }
}

impl Engine {
    /// A missing value whose name no literal call gives: the name is
    /// computed (and may come from a value), so it is never echoed; every
    /// computed call is pointed at.
    fn computed_name_diagnostics(
        &self,
        function: Function,
        source: &str,
        analysis: &Analysis,
        lenient: bool,
    ) -> Vec<Diagnostic> {
        let message = match function {
            Function::SecretVar => format!(
                "a secret whose name is computed by this expression is not set in environment {}",
                self.environment_uuid
            ),
            Function::EnvVar => "an environment variable whose name is computed by this expression is not set, and env_var has no default".to_string(),
        };
        let help = "the name is not shown, as it is computed and may come from a value; write it as a literal, or check the expression that computes it";
        let (message, make) = missing_severity(message, lenient);
        let kind = missing_kind(function);
        let computed: Vec<Diagnostic> = analysis
            .references
            .iter()
            .filter(|r| r.function == function && r.name.is_none())
            .map(|r| {
                make(kind, message.clone())
                    .with_help(help)
                    .at_offset(source, r.offset)
            })
            .collect();
        if computed.is_empty() {
            vec![make(kind, message).with_help(help)]
        } else {
            computed
        }
    }
}

/// The diagnostic for a template the lexer rejects.
pub(super) fn lex_error(source: &str, e: &analysis::LexError) -> Diagnostic {
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
        Err(e) => vec![template_error(source, 0, &e, Kind::Syntax, None).in_file(path)],
    }
}

/// A minijinja error placed in the file: `base` is the offset of the
/// compiled text within the file.
pub(super) fn template_error(
    source: &str,
    base: usize,
    e: &minijinja::Error,
    kind: Kind,
    rewritten: Option<&super::pysyntax::Rewritten>,
) -> Diagnostic {
    let at = |offset: usize| base + super::pysyntax::original(rewritten, offset);
    if e.kind() == minijinja::ErrorKind::TemplateNotFound {
        let d = Diagnostic::error(
            Kind::Render,
            "{% include %}, {% import %} and {% extends %} are refused: each file is rendered on its own, and nothing outside it is read",
        );
        return match e.range() {
            Some(r) => d.at_offset(source, at(r.start)),
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
        (Some(r), _) => d.at_offset(source, at(r.start)),
        (None, Some(line)) if base == 0 => d.at(source, line, 1),
        _ => d.at_offset(source, base),
    }
}

/// A missing value is an error, or with `--lenient` a warning that says it
/// rendered as None (as Mage does).
fn missing_severity(message: String, lenient: bool) -> (String, fn(Kind, String) -> Diagnostic) {
    if lenient {
        (format!("{message}; rendered as None"), Diagnostic::warning)
    } else {
        (message, Diagnostic::error)
    }
}

fn missing_kind(function: Function) -> Kind {
    match function {
        Function::SecretVar => Kind::MissingSecret,
        Function::EnvVar => Kind::UnsetEnvVar,
    }
}
