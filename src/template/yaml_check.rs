//! The YAML check of one rendered file: runs the [proof](super::proof) on
//! the text Mage's loader reads and turns its findings into diagnostics
//! placed in the template, naming the secret (or variable) and never
//! showing a value.

use super::analysis::Analysis;
use super::assembly::Assembly;
use super::proof::{self, Finding};
use super::quoting::QuotingContext;
use crate::diagnostic::{line_col, Diagnostic, Kind};

const QUOTE_HELP: &str = "put the expression in double quotes (\"{{ … }}\"), where any value is escaped, or fix the YAML around it";

/// Diagnostics for the assembled file. `tags_kept`: a partial render kept
/// `{% … %}` tags, so the structure Mage sees is only known at run time: a
/// parse failure is then not reported (the tags may be what makes it
/// parse), but every place that parses is still checked.
pub fn check(
    asm: &Assembly,
    source: &str,
    analysis: &Analysis,
    tags_kept: bool,
) -> Vec<Diagnostic> {
    let findings = proof::prove(&asm.yaml, &asm.places);
    // An error at a place: its message after what the place holds.
    let at_place = |place: usize, message: &str, help: &str| {
        let what = describe(asm, analysis, place);
        let d = Diagnostic::error(Kind::Yaml, format!("{what} {message}")).with_help(help);
        placed(d, asm, source, analysis, place)
    };
    let mut out = Vec::new();
    for finding in findings {
        match finding {
            Finding::Syntax { message, span } => {
                if tags_kept {
                    continue;
                }
                out.push(syntax(asm, source, analysis, &message, span));
            }
            Finding::Structure { place } if asm.places[place].context == QuotingContext::Comment => {
                out.push(at_place(
                    place,
                    "would not stay inside its YAML comment: it would change the YAML Mage reads",
                    "move the expression out of the comment, or remove it",
                ));
            }
            Finding::Structure { place } => out.push(at_place(
                place,
                "would not reach Mage as this one value: it would be cut (a ` #` starts a comment), trimmed, or read as more YAML (keys, items) than one value",
                QUOTE_HELP,
            )),
            Finding::Swallowed { place } => out.push(at_place(
                place,
                "would not reach Mage as its own value: text placed before it (an expression's output, not escaped because the expression shapes it) ends an earlier quoted scalar early or late, and that scalar runs on over this one",
                "write the expression before it that shapes a value (a condition, a filter) as a bare call in double quotes (\"{{ mage_secret_var('x') }}\"), where its value is escaped",
            )),
            Finding::Changed { place } => out.push(at_place(
                place,
                "would be read by Mage as a different text here (YAML changes its line ends, indentation or escapes in this kind of scalar)",
                QUOTE_HELP,
            )),
            Finding::Unloadable { place } => out.push(at_place(
                place,
                "would make Mage's loader (PyYAML) fail or read another structure here, where libyaml does not: PyYAML refuses a tab outside quotes and block scalars, ends a plain scalar in a flow collection at `?`, and cannot load `<<` or `=` as a value",
                "put the expression in quotes to keep the value a string",
            )),
            Finding::Resolved { place } => {
                let what = describe(asm, analysis, place);
                out.push(placed(resolved(&what), asm, source, analysis, place));
            }
        }
    }
    out
}

/// A YAML file without template syntax, as Mage's loader reads it: a
/// parse failure (a merge-conflict marker, a tab in an indent) is an error
/// where the parser stopped, since Mage cannot load the file either.
pub fn plain(text: &str) -> Vec<Diagnostic> {
    super::proof::prove(text, &[])
        .into_iter()
        .filter_map(|finding| match finding {
            Finding::Syntax { message, span } => Some(
                Diagnostic::error(Kind::Yaml, format!("YAML does not parse: {message}"))
                    .with_help("fix the YAML: Mage cannot load this file")
                    .at_offset(text, span.end.min(text.len())),
            ),
            _ => None,
        })
        .collect()
}

fn resolved(what: &str) -> Diagnostic {
    Diagnostic::warning(
        Kind::Yaml,
        format!("{what} is read by Mage (PyYAML, YAML 1.1) as another type or text than the value itself, as yes/no/on/off, 0123, 1_000, 1:30, ~, dates and empty values are"),
    )
    .with_help("put the expression in quotes to keep the value a string")
}

/// The warning for an empty value alone in plain context (read as None).
pub fn empty_value_warning(
    source: &str,
    analysis: &Analysis,
    site: std::ops::Range<usize>,
) -> Diagnostic {
    let what = describe_range(analysis, site.clone());
    let d = resolved(&what);
    let d = match analysis.secret_names_in(site.clone()).first() {
        Some(name) => d.named(name),
        None => d,
    };
    d.at_offset(source, site.start)
}

fn placed(
    d: Diagnostic,
    asm: &Assembly,
    source: &str,
    analysis: &Analysis,
    place: usize,
) -> Diagnostic {
    let range = asm.place_sources[place].clone();
    let d = match analysis.secret_names_in(range.clone()).first() {
        Some(name) => d.named(name),
        None => d,
    };
    d.at_offset(source, range.start)
}

/// "the value of secret 'pw'", "the value of environment variable 'HOME'",
/// "the value of this expression": names only, written in the template.
fn describe(asm: &Assembly, analysis: &Analysis, place: usize) -> String {
    describe_range(analysis, asm.place_sources[place].clone())
}

fn describe_range(analysis: &Analysis, range: std::ops::Range<usize>) -> String {
    let secrets = analysis.secret_names_in(range.clone());
    if !secrets.is_empty() {
        let list: Vec<String> = secrets.iter().map(|n| format!("'{n}'")).collect();
        let noun = if list.len() == 1 { "secret" } else { "secrets" };
        return format!("the value of {noun} {}", list.join(", "));
    }
    let vars: Vec<String> = analysis
        .env_var_names_in(range)
        .iter()
        .map(|n| format!("'{n}'"))
        .collect();
    if !vars.is_empty() {
        return format!("the value of environment variable {}", vars.join(", "));
    }
    "the value of this expression".to_string()
}

/// A parse failure, placed where the parser stopped and naming the values
/// whose text spans the failing node (from where the last complete node
/// ended to the end of the line where the parser stopped).
fn syntax(
    asm: &Assembly,
    source: &str,
    analysis: &Analysis,
    message: &str,
    span: std::ops::Range<usize>,
) -> Diagnostic {
    let text = &asm.yaml;
    let at = span.end.min(text.len());
    let from = span.start.min(at);
    let line_start = text[..from].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let mut names: Vec<&str> = Vec::new();
    for (place, range) in asm.places.iter().zip(&asm.place_sources) {
        let r = &place.range;
        let overlaps = r.start <= line_end
            && r.end >= line_start
            && !(r.is_empty() && r.start == line_end && line_end != at);
        if overlaps {
            names.extend(analysis.secret_names_in(range.clone()));
            names.extend(analysis.env_var_names_in(range.clone()));
        }
    }
    if names.is_empty() {
        // The nearest value before the failing place, unless it was escaped
        // for the quotes it was placed in (then it cannot break the
        // structure); text an expression shaped is placed raw, and can (a
        // `#` in it turns the rest of its line into a comment, say).
        if let Some(i) = asm.places.iter().rposition(|p| p.range.start <= at) {
            let escaped = asm.places[i].intended.is_some()
                && matches!(
                    asm.places[i].context,
                    QuotingContext::DoubleQuoted | QuotingContext::SingleQuoted
                );
            if !escaped {
                names.extend(analysis.secret_names_in(asm.place_sources[i].clone()));
                names.extend(analysis.env_var_names_in(asm.place_sources[i].clone()));
            }
        }
    }
    // The template place behind the failing offset.
    let source_offset = asm
        .spans
        .iter()
        .find(|s| s.yaml.end > at || (s.yaml.end == at && s.yaml.start < at))
        .map(|s| {
            if asm.place_sources.contains(&s.source) || s.source.start >= source.len() {
                s.source.start
            } else {
                s.source.start + (at - s.yaml.start).min(s.source.len())
            }
        })
        .unwrap_or(source.len());
    if names.is_empty() {
        // Values that printed nothing leave no place: name the expressions
        // on the template line where the parser stopped.
        let offset = source_offset.min(source.len());
        let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[offset..]
            .find('\n')
            .map_or(source.len(), |i| offset + i);
        for site in &analysis.expressions {
            if site.outer.start <= line_end && site.outer.end >= line_start {
                names.extend(analysis.secret_names_in(site.inner.clone()));
                names.extend(analysis.env_var_names_in(site.inner.clone()));
            }
        }
    }
    names.sort();
    names.dedup();
    let (out_line, _) = line_col(text, at);
    let secrets = if names.is_empty() {
        String::new()
    } else {
        format!(
            " (values whose text spans the failing place: {})",
            names.join(", ")
        )
    };
    let help = if names.is_empty() {
        "the template's own YAML is broken here (no substituted value is involved): fix it"
    } else {
        QUOTE_HELP
    };
    Diagnostic::error(
        Kind::Yaml,
        format!("rendered YAML does not parse: {message} (output line {out_line}){secrets}"),
    )
    .with_help(help)
    .at_offset(source, source_offset.min(source.len()))
}
