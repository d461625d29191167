//! Python blocks in `check`: the secrets their `get_secret_value` calls
//! read, against an environment.

use super::{CheckedReference, FileReport, Presence};
use crate::diagnostic::{line_col, Diagnostic, Kind};
use crate::error::not_set_message;
use crate::secret::Scope;

/// A Python block: each `get_secret_value` call with a literal name is
/// checked in the global scope (a block's call reads it there unless it
/// passes a pipeline); a name computed at run time is a warning.
pub(super) fn python_file(
    rel: &std::path::Path,
    source: &str,
    presence: &Presence,
) -> (Option<FileReport>, Vec<Diagnostic>) {
    let global = [Scope::Global];
    let mut file = FileReport {
        path: rel.to_path_buf(),
        scopes: vec![Scope::Global.to_string()],
        references: Vec::new(),
    };
    let mut problems = Vec::new();
    for read in crate::python_blocks::secret_reads(source) {
        let chain: Vec<Scope> = match &read.pipeline {
            Some(p) => vec![Scope::Pipeline(p.clone()), Scope::Global],
            None => global.to_vec(),
        };
        let (line, col) = line_col(source, read.offset);
        let found = read
            .name
            .as_deref()
            .and_then(|n| presence.resolve(&chain, n));
        let scopes = crate::secret::describe_chain(&chain);
        file.references.push(CheckedReference {
            function: "get_secret_value",
            name: read.name.clone(),
            line,
            col,
            found_in: found.map(|s| s.to_string()),
            has_default: false,
        });
        let problem = match &read.name {
            Some(_) if found.is_some() => continue,
            Some(name) if crate::secret::validate_name(name).is_err() => Diagnostic::error(
                Kind::InvalidName,
                format!(
                    "'{}' is not a valid secret name, so get_secret_value never finds it",
                    crate::diagnostic::printable(name)
                ),
            ),
            Some(name) => Diagnostic::error(
                Kind::MissingSecret,
                format!(
                    "{} (read by get_secret_value: a block gets None)",
                    not_set_message(name, &presence.environment, &scopes)
                ),
            )
            .named(name)
            .with_help(format!(
                "set it with `mage-secrets set {name}` in that environment's data dir"
            )),
            None => Diagnostic::warning(
                Kind::ComputedName,
                "cannot be checked statically: the name passed to get_secret_value is computed",
            ),
        };
        problems.push(problem.at(source, line, col).in_file(rel));
    }
    (Some(file), problems)
}
