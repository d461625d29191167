//! The YAML check of a rendered file: every document must parse, and a
//! failure is placed in the template and names the secrets substituted on
//! the failing line, never a value.

use super::analysis::Analysis;
use super::OutSpan;
use crate::diagnostic::{line_col, Diagnostic, Kind};

/// Parses `output` as YAML (every document); on failure, a diagnostic placed
/// in the template, naming the secrets substituted on the failing line and
/// never showing a value.
pub(super) fn yaml_problem(
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
pub(super) fn yaml_message(raw: &str) -> String {
    let message = raw.split(" at line ").next().unwrap_or(raw);
    if message.contains(['"', '\'', '`']) {
        "syntax error".to_string()
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
