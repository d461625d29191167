//! `check --all-environments`: each referenced secret against every
//! environment of a database, and what only a per-environment check finds.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::{check, walk_warnings, CheckOptions, Presence};
use crate::diagnostic::{line_col, Diagnostic, Kind};
use crate::error::Result;
use crate::parallel::no_tick;
use crate::project::{read_text, ProjectFiles};
use crate::secret::Scope;
use crate::store::SecretStore;
use crate::template::analysis::{self, Analysis, Function};
use crate::template::{self, EnvVars};

/// One referenced secret (with the scopes it is looked up in) against every
/// environment of a database.
#[derive(Clone, Debug, Serialize)]
pub struct PresenceRow {
    pub name: String,
    pub scopes: Vec<String>,
    /// Environment uuid → present.
    pub present: BTreeMap<String, bool>,
    /// Where it is first referenced.
    #[serde(serialize_with = "crate::diagnostic::serialize_path")]
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

/// Each referenced secret × each environment.
#[derive(Clone, Debug, Serialize)]
pub struct PresenceTable {
    pub environments: Vec<String>,
    pub secrets: Vec<PresenceRow>,
    /// Problems that keep files from being analysed (unreadable, syntax).
    pub problems: Vec<Diagnostic>,
}

impl PresenceTable {
    /// Every secret present in every environment.
    pub fn complete(&self) -> bool {
        self.secrets.iter().all(|r| r.present.values().all(|p| *p))
    }
}

/// Builds the table for `project` over every environment in `store`.
pub fn presence_table(
    project: &ProjectFiles,
    store: &dyn SecretStore,
    vars: Arc<dyn EnvVars>,
    options: &CheckOptions,
) -> Result<PresenceTable> {
    let environments = store.environments()?;
    let presences = environments
        .iter()
        .map(|e| Presence::load(store, e))
        .collect::<Result<Vec<_>>>()?;
    let mut table = PresenceTable {
        environments,
        secrets: Vec::new(),
        problems: project.diagnostics.clone(),
    };
    let mut seen: HashSet<(String, Vec<Scope>)> = HashSet::new();
    for rel in &project.files {
        let source = match read_text(&project.root, rel) {
            Ok(s) => s,
            Err(d) => {
                table.problems.push(*d);
                continue;
            }
        };
        // (name, offset) of each literal reference, with the file's chain.
        // (name, offset, scope chain) of each literal reference.
        let names: Vec<(String, usize, Vec<Scope>)> = if rel.extension().is_some_and(|e| e == "py")
        {
            crate::python_blocks::secret_reads(&source)
                .into_iter()
                .filter_map(|r| {
                    let chain = match r.pipeline {
                        Some(p) => vec![Scope::Pipeline(p), Scope::Global],
                        None => vec![Scope::Global],
                    };
                    Some((r.name?, r.offset, chain))
                })
                .collect()
        } else {
            if !analysis::has_template_syntax(&source) {
                continue;
            }
            table.problems.extend(template::syntax_errors(rel, &source));
            let Ok(analysis) = Analysis::of(&source) else {
                continue;
            };
            let chain = project.chain(rel);
            analysis
                .references
                .iter()
                .filter(|r| r.function == Function::SecretVar)
                .filter_map(|r| Some((r.name.clone()?, r.offset, chain.clone())))
                .collect()
        };
        for (name, offset, chain) in &names {
            if !seen.insert((name.clone(), chain.clone())) {
                continue;
            }
            let (line, col) = line_col(&source, *offset);
            table.secrets.push(PresenceRow {
                name: name.clone(),
                scopes: chain.iter().map(Scope::to_string).collect(),
                present: presences
                    .iter()
                    .map(|p| (p.environment.clone(), p.resolve(chain, name).is_some()))
                    .collect(),
                file: rel.clone(),
                line,
                col,
            });
        }
    }
    table
        .secrets
        .sort_by(|a, b| (&a.name, &a.scopes).cmp(&(&b.name, &b.scopes)));
    // What the table cannot show: names computed by the templates, and
    // failures that do not depend on a value, found by checking each
    // environment as `--environment` does (values stood in for). A literal
    // name missing somewhere is a row of the table already.
    let mut shown: HashSet<String> = HashSet::new();
    let mut per_environment = Vec::new();
    for presence in &presences {
        let report = check(project, presence, None, vars.clone(), options, &no_tick);
        for d in report.problems {
            let in_table = d.kind == Kind::MissingSecret && d.name.is_some();
            let walk = matches!(d.kind, Kind::Skipped | Kind::NotRendered);
            if d.is_error() && !in_table && !walk && shown.insert(d.to_string()) {
                per_environment.push(d);
            }
        }
    }
    table.problems.extend(walk_warnings(project));
    project.localize(&mut table.problems);
    // Placed by `check` already.
    table.problems.extend(per_environment);
    for row in &mut table.secrets {
        row.file = project.display_path(&row.file);
    }
    Ok(table)
}
