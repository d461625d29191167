//! `check`: proves, without printing a value, that every reference in a
//! project resolves in an environment. References are found statically
//! (branches a render would not take are checked too) and looked up by
//! existence alone, so another environment of the same database can be
//! checked without its key. With the environment's own key, each file is
//! also rendered in memory and parsed as YAML.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::diagnostic::{line_col, Diagnostic, Kind};
use crate::environment::{FastMap, FastSet};
use crate::error::{not_set_message, Result};
use crate::parallel::{in_parallel_ticking, Tick};
use crate::project::{read_text, ProjectFiles};
use crate::secret::{describe_chain, Scope};
use crate::store::{ScopeFilter, SecretStore};
use std::sync::Arc;

use crate::secret::SecretValue;
use crate::template::analysis::{self, Function};
use crate::template::{functions, Engine, EnvVars, RenderMode, RenderOptions, SecretSource};

mod python;
mod table;

use python::python_file;
pub use table::{presence_table, PresenceRow, PresenceTable};

/// Which (scope, name) pairs an environment holds.
#[derive(Debug, Clone)]
pub struct Presence {
    pub environment: String,
    /// Per name, the scopes that hold it: a lookup allocates nothing.
    names: FastMap<String, FastSet<Scope>>,
}

impl Presence {
    /// An environment holding exactly these (scope, name) pairs.
    pub fn of(environment: &str, names: impl IntoIterator<Item = (Scope, String)>) -> Presence {
        let mut by_name: FastMap<String, FastSet<Scope>> = FastMap::default();
        for (scope, name) in names {
            by_name.entry(name).or_default().insert(scope);
        }
        Presence {
            environment: environment.to_string(),
            names: by_name,
        }
    }

    /// Reads the names of one environment (one query, no decryption).
    pub fn load(store: &dyn SecretStore, environment: &str) -> Result<Presence> {
        let mut names: FastMap<String, FastSet<Scope>> = FastMap::default();
        for info in store.list(environment, &ScopeFilter::All)? {
            names.entry(info.name).or_default().insert(info.scope);
        }
        Ok(Presence {
            environment: environment.to_string(),
            names,
        })
    }

    /// The first scope of `chain` that holds `name`.
    pub fn resolve<'c>(&self, chain: &'c [Scope], name: &str) -> Option<&'c Scope> {
        let scopes = self.names.get(name)?;
        chain.iter().find(|s| scopes.contains(*s))
    }
}

impl crate::Environment {
    /// The names this environment holds, for [`check`].
    pub fn presence(&self) -> Result<Presence> {
        Presence::load(self.store().as_ref(), self.uuid())
    }
}

/// How to check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Unset `env_var`s without default are errors, not warnings.
    pub strict_env: bool,
    /// Functions Mage provides at run time besides its own.
    pub allow_unknown: Vec<String>,
    /// Names that cannot be checked (computed from a secret's value without
    /// the key, or from values Mage has only at run time) are warnings.
    pub allow_unverifiable: bool,
}

/// One reference as checked.
#[derive(Clone, Debug, Serialize)]
pub struct CheckedReference {
    pub function: &'static str,
    /// `None` when computed.
    pub name: Option<String>,
    pub line: usize,
    pub col: usize,
    /// The scope the secret was found in (for `mage_secret_var`).
    pub found_in: Option<String>,
    pub has_default: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    #[serde(serialize_with = "crate::diagnostic::serialize_path")]
    pub path: PathBuf,
    /// The scopes the file's secrets are looked up in, most specific first.
    pub scopes: Vec<String>,
    pub references: Vec<CheckedReference>,
}

/// The outcome of a check.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub environment: String,
    /// Whether rendered files were parsed as YAML (needs the environment's key).
    pub yaml_checked: bool,
    pub files: Vec<FileReport>,
    /// Every problem, in file order: the same items the text output lists.
    pub problems: Vec<Diagnostic>,
}

impl CheckReport {
    pub fn errors(&self) -> usize {
        self.problems.iter().filter(|d| d.is_error()).count()
    }

    pub fn warnings(&self) -> usize {
        self.problems.len() - self.errors()
    }

    pub fn references(&self) -> usize {
        self.files.iter().map(|f| f.references.len()).sum()
    }
}

/// Checks every file of `project` against `presence`. Each file is rendered
/// strictly: with `engine` (the environment's own, with its key), exactly as
/// `render` would, YAML parse included; without it, with a stand-in for each
/// present secret's value, which evaluates every name that does not depend
/// on a value (`{% set %}`, loops over literals, `env_var`, macros, indirect
/// calls). What the render asks for is its verdict; references it did not
/// reach (a branch not taken) are checked by existence on top.
pub fn check(
    project: &ProjectFiles,
    presence: &Presence,
    engine: Option<&Engine>,
    vars: Arc<dyn EnvVars>,
    options: &CheckOptions,
    tick: Tick<'_>,
) -> CheckReport {
    let stand_in;
    let (engine, with_key) = match engine {
        Some(e) => (e, true),
        None => {
            stand_in = Engine::new(Arc::new(Placeholders(presence.clone())), vars.clone());
            (&stand_in, false)
        }
    };
    let per_file = in_parallel_ticking(project.files.len(), tick, |i| {
        check_file(
            project,
            &project.files[i],
            presence,
            (engine, with_key),
            &*vars,
            options,
        )
    });
    let mut report = CheckReport {
        environment: presence.environment.clone(),
        yaml_checked: with_key,
        files: Vec::with_capacity(per_file.len()),
        problems: project.diagnostics.clone(),
    };
    for (file, problems) in per_file {
        report.problems.extend(problems);
        report.files.extend(file);
    }
    report.problems.extend(walk_warnings(project));
    project.localize(&mut report.problems);
    for file in &mut report.files {
        file.path = project.display_path(&file.path);
    }
    report
}

/// The walk's own warnings, once per run: files Mage does not render that
/// name `mage_secret_var`, and what the walk skipped.
pub fn walk_warnings(project: &ProjectFiles) -> Vec<Diagnostic> {
    let mut warnings: Vec<Diagnostic> = project.unrendered_secret_warning().into_iter().collect();
    if let Some(summary) = project.skip_summary() {
        warnings.push(Diagnostic::warning(Kind::Skipped, summary));
    }
    warnings
}

/// Secrets without their key: a present secret's value is a stand-in.
struct Placeholders(Presence);

impl SecretSource for Placeholders {
    fn lookup(&self, chain: &[Scope], name: &str) -> Result<Option<Arc<SecretValue>>> {
        Ok(self
            .0
            .resolve(chain, name)
            .map(|_| Arc::new(SecretValue::new(functions::placeholder(name)))))
    }
    fn environment(&self) -> &str {
        &self.0.environment
    }
}

/// Checks one file: its report (none when it cannot be read) and problems.
fn check_file(
    project: &ProjectFiles,
    rel: &std::path::Path,
    presence: &Presence,
    (engine, with_key): (&Engine, bool),
    vars: &dyn EnvVars,
    options: &CheckOptions,
) -> (Option<FileReport>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let source = match read_text(&project.root, rel) {
        Ok(s) => zeroize::Zeroizing::new(s),
        Err(d) => return (None, vec![*d]),
    };
    if rel.extension().is_some_and(|e| e == "py") {
        return python_file(rel, &source, presence);
    }
    let chain = project.chain(rel);
    let mut file = FileReport {
        path: rel.to_path_buf(),
        scopes: chain.iter().map(Scope::to_string).collect(),
        references: Vec::new(),
    };
    if !analysis::has_template_syntax(&source) {
        // Plain YAML Mage loads: it must parse (a merge-conflict marker
        // fails Mage's load), whatever the environment.
        if crate::project::is_yaml_document(rel) {
            problems.extend(
                crate::template::plain_yaml_problems(&source)
                    .into_iter()
                    .map(|d| d.in_file(rel)),
            );
        }
        return (Some(file), problems);
    }
    let strict = RenderOptions {
        lenient: false,
        raw: false,
        direct: false,
        allow_unknown: options.allow_unknown.clone(),
        max_output: None,
    };
    let strict = crate::project::file_options(rel, &strict);
    let rendered = engine.render(
        rel,
        &source,
        &chain,
        &strict,
        crate::project::is_yaml_document(rel),
    );
    drop(rendered.output.map(zeroize::Zeroizing::new));
    // What the render asked for and did not find is its own verdict.
    let asked: HashSet<(Kind, String)> = rendered
        .diagnostics
        .iter()
        .filter_map(|d| Some((d.kind, d.name.clone()?)))
        .collect();
    // Without the key the values are stand-ins: of the YAML findings only the
    // template's own broken YAML, which no value touches, holds for the
    // environment.
    let own_yaml = |d: &Diagnostic| {
        d.help
            .as_deref()
            .is_some_and(|h| h.starts_with("the template's own YAML is broken here"))
            || d.message.starts_with("YAML does not parse")
    };
    let diagnostics = rendered
        .diagnostics
        .into_iter()
        .filter(|d| with_key || !matches!(d.kind, Kind::Yaml | Kind::Quoting) || own_yaml(d));
    for mut d in diagnostics {
        // `check` may look at another environment than the data dir's.
        if d.kind == Kind::MissingSecret {
            if let Some(help) = d.help.as_mut().filter(|h| h.starts_with("set it with")) {
                if let Some(end) = help
                    .find('`')
                    .and_then(|a| help[a + 1..].find('`').map(|b| a + b + 2))
                {
                    help.insert_str(end, " in that environment's data dir");
                }
            }
        }
        problems.push(match d.kind {
            Kind::UnsetEnvVar if !options.strict_env && d.is_error() => d.into_warning(),
            Kind::ComputedName if options.allow_unverifiable => d.into_warning(),
            _ => d,
        });
    }
    let whole = rendered.mode != RenderMode::Partial;
    // A render that stopped (syntax, a failing expression, an unknown name)
    // did not reach everything: static findings keep their weight.
    let finished = !problems
        .iter()
        .any(|d| matches!(d.kind, Kind::Syntax | Kind::Render | Kind::UnknownName) && d.is_error());
    let kept = |offset: usize| rendered.kept.iter().any(|r| r.contains(&offset));
    // Whether a tag (a condition, a loop, a `set`) reads a secret's value:
    // without the key, its stand-in may take another branch than the value.
    let reads_values = !rendered.secrets.is_empty() && tags_read_secrets(&source);
    file.references.reserve_exact(rendered.references.len());
    for r in &rendered.references {
        let (checked, problem) = check_reference(r, &source, &chain, presence, vars, options);
        file.references.push(checked);
        let Some(problem) = problem else { continue };
        let kind_asked = |k| {
            r.name
                .as_ref()
                .is_some_and(|n| asked.contains(&(k, n.clone())))
        };
        let problem = match (&r.name, problem.kind) {
            // The render reported this name itself.
            (Some(_), Kind::MissingSecret) if kind_asked(Kind::MissingSecret) => continue,
            (Some(_), Kind::MissingSecret) if kind_asked(Kind::InvalidName) => continue,
            (Some(_), Kind::UnsetEnvVar) if kind_asked(Kind::UnsetEnvVar) => continue,
            // Not reached by a render without the key, in a file whose
            // conditions may read secrets' values (stood in for here): the
            // real values may take the branch.
            (Some(_), Kind::MissingSecret)
                if finished && (whole || !kept(r.offset)) && !with_key && reads_values =>
            {
                let message = format!(
                    "{} (not reached by the render without this environment's key, but a condition on a secret's value may reach it there)",
                    problem.message
                );
                let d = Diagnostic { message, ..problem }
                    .with_help("check with the environment's own data dir (its key), or pass --allow-unverifiable");
                if options.allow_unverifiable {
                    d.into_warning()
                } else {
                    d
                }
            }
            // Not reached by this render (a branch not taken here), and not
            // kept for Mage to evaluate: it cannot fail this environment.
            (Some(_), Kind::MissingSecret) if finished && (whole || !kept(r.offset)) => {
                let message = format!(
                    "{} (not used in this environment: the render does not reach it)",
                    problem.message
                );
                Diagnostic { message, ..problem }.into_warning()
            }
            // A name Mage computes at run time from values only it has.
            (None, Kind::ComputedName) if kept(r.offset) => {
                let d = Diagnostic::error(
                    Kind::ComputedName,
                    "cannot be checked: the name is computed from values Mage has only at run time",
                )
                .with_help("use a literal name, or pass --allow-unverifiable")
                .at(&source, checked_line(&file), checked_col(&file));
                if options.allow_unverifiable {
                    d.into_warning()
                } else {
                    d
                }
            }
            // Evaluated by the render where it is reached.
            (None, Kind::ComputedName) => continue,
            _ => problem,
        };
        problems.push(problem.in_file(rel));
    }
    (Some(file), problems)
}

/// Whether any `{% … %}` tag of `source` calls a function that reads a
/// secret's value.
fn tags_read_secrets(source: &str) -> bool {
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("%}") else {
            return after.contains("mage_secret_var") || after.contains("json_value");
        };
        let tag = &after[..close];
        if tag.contains("mage_secret_var") || tag.contains("json_value") {
            return true;
        }
        rest = &after[close + 2..];
    }
    false
}

fn checked_line(file: &FileReport) -> usize {
    file.references.last().map_or(1, |r| r.line)
}

fn checked_col(file: &FileReport) -> usize {
    file.references.last().map_or(1, |r| r.col)
}

fn check_reference(
    r: &analysis::Reference,
    source: &str,
    chain: &[Scope],
    presence: &Presence,
    vars: &dyn EnvVars,
    options: &CheckOptions,
) -> (CheckedReference, Option<Diagnostic>) {
    let (line, col) = line_col(source, r.offset);
    let mut checked = CheckedReference {
        function: r.function.name(),
        name: r.name.clone(),
        line,
        col,
        found_in: None,
        has_default: r.has_default,
    };
    let at = |d: Diagnostic| Some(d.at(source, line, col));
    let problem = match (&r.name, r.function) {
        (None, f) => at(Diagnostic::warning(
            Kind::ComputedName,
            format!(
                "cannot be checked statically: the name passed to {} is computed",
                f.name()
            ),
        )),
        (Some(name), Function::SecretVar) => match presence.resolve(chain, name) {
            Some(scope) => {
                checked.found_in = Some(scope.to_string());
                None
            }
            None => at(Diagnostic::error(
                Kind::MissingSecret,
                not_set_message(name, &presence.environment, &describe_chain(chain)),
            )
            .named(name)
            .with_help(format!(
                "set it with `mage-secrets set {name}` in that environment's data dir"
            ))),
        },
        (Some(name), Function::EnvVar) => {
            if r.has_default || vars.get(name).is_some() {
                None
            } else {
                let make = if options.strict_env {
                    Diagnostic::error
                } else {
                    Diagnostic::warning
                };
                at(make(
                    Kind::UnsetEnvVar,
                    format!("environment variable '{name}' is not set and env_var has no default"),
                )
                .named(name)
                .with_help(format!(
                    "export {name}, or give env_var a default: env_var('{name}', 'default')"
                )))
            }
        }
    };
    (checked, problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    struct Vars(HashMap<String, String>);
    impl EnvVars for Vars {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }

    fn presence(names: &[(&str, &str)]) -> Presence {
        let mut by_name: FastMap<String, FastSet<Scope>> = FastMap::default();
        for (s, n) in names {
            by_name
                .entry(n.to_string())
                .or_default()
                .insert(Scope::parse(s).unwrap());
        }
        Presence {
            environment: "env-1".into(),
            names: by_name,
        }
    }

    fn project_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ProjectFiles) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let mut project = crate::project::walk(
            dir.path(),
            &crate::project::Selection::new(&[], &[]).unwrap(),
            None,
        )
        .unwrap();
        project.display_base = Some(project.root.clone());
        (dir, project)
    }

    #[test]
    fn static_check_finds_every_kind_of_problem() {
        let (_dir, project) = project_with(&[
            ("io_config.yaml", "a: {{ mage_secret_var('here') }}\n{% if false %}b: {{ mage_secret_var('gone') }}{% endif %}\n# c: {{ mage_secret_var('commented') }}\n"),
            ("pipelines/etl/metadata.yaml", "executor_type: \"{{ mage_secret_var('token') }}\"\nexecutor_config:\n  namespace: \"{{ mage_secret_var(p ~ 'x') }}\"\nblocks:\n- executor_type: \"{{ env_var('UNSET_VAR') }} {{ env_var('UNSET_VAR', 'd') }} {{ env_var('SET_VAR') }}\"\n"),
            ("data_loaders/broken.yaml", "a: {{ mage_secret_var('x' }}\n"),
        ]);
        let p = presence(&[("global", "here"), ("pipeline:other", "token")]);
        let vars = Vars(
            [("SET_VAR".to_string(), "1".to_string())]
                .into_iter()
                .collect(),
        );
        let vars: Arc<dyn EnvVars> = Arc::new(vars);
        let report = check(
            &project,
            &p,
            None,
            vars.clone(),
            &CheckOptions::default(),
            &crate::parallel::no_tick,
        );
        let problems: Vec<String> = report.problems.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            problems,
            vec![
                "data_loaders/broken.yaml:1:27: error: template syntax error: syntax error: unexpected `}`, expected `,`",
                "data_loaders/broken.yaml:1:7: error: secret 'x' is not set in environment env-1",
                // Only in a YAML comment: Mage's None there changes nothing.
                "io_config.yaml:3:9: warning: secret 'commented' is not set in environment env-1 (only inside a YAML comment, which it leaves as None)",
                // In a branch the render does not take in this environment.
                "io_config.yaml:2:21: warning: secret 'gone' is not set in environment env-1 (not used in this environment: the render does not reach it)",
                "pipelines/etl/metadata.yaml:1:20: error: secret 'token' is not set in environment env-1 (scopes searched: pipeline:etl, global)",
                "pipelines/etl/metadata.yaml:5:22: warning: environment variable 'UNSET_VAR' is not set and env_var has no default",
                // `p` is only Mage's at run time: the name cannot be known.
                "pipelines/etl/metadata.yaml:3:18: error: cannot be checked: the name is computed from values Mage has only at run time",
            ]
        );
        assert!(!report.yaml_checked);
        assert_eq!(report.references(), 9);
        let strict = check(
            &project,
            &p,
            None,
            vars,
            &CheckOptions {
                strict_env: true,
                ..CheckOptions::default()
            },
            &crate::parallel::no_tick,
        );
        assert_eq!(strict.errors(), report.errors() + 1);
    }

    #[test]
    fn presence_resolves_through_the_chain() {
        let p = presence(&[("global", "a"), ("pipeline:etl", "b")]);
        let etl = Scope::Pipeline("etl".into()).chain();
        assert_eq!(p.resolve(&etl, "a"), Some(&Scope::Global));
        assert_eq!(p.resolve(&etl, "b"), Some(&Scope::Pipeline("etl".into())));
        assert_eq!(p.resolve(&[Scope::Global], "b"), None);
        let _ = Path::new("");
    }
}
