//! Arguments turned once into validated requests (just's `Config`): names
//! and scopes checked, globs compiled, `--environment` parsed, before any
//! command touches a data dir, a database or a project. Commands run on a
//! request and the `Context`, and never look at argv.

use std::path::PathBuf;

use mage_secrets::environment_name;
use mage_secrets::mage_import::MageSource;
use mage_secrets::project::Selection;
use mage_secrets::secret;
use mage_secrets::store::ScopeFilter;
use mage_secrets::template::RenderOptions;
use mage_secrets::watch::WatchOptions;
use mage_secrets::{Error, Result, Scope, Settings};

use super::args::{CheckFormat, Command, ListFormat, PipelineArg, RenderFlags, SelectFlags};
use super::output::Reporter;

/// What every command runs with: where the environment is, and how to talk.
pub struct Context {
    pub settings: Settings,
    pub reporter: Reporter,
}

/// A secret named on the command line, in the scope `--pipeline` gives it.
pub struct NamedSecret {
    pub name: String,
    pub scope: Scope,
}

/// Which environment(s) `check` checks.
pub enum Target {
    /// The data dir's own environment (key at hand: YAML is parsed too).
    Own,
    /// Another environment of the database (a name, uuid or uuid prefix,
    /// resolved against the database), by existence alone.
    Other(String),
    /// Every environment of the database.
    All,
}

pub struct ListRequest {
    pub filter: ScopeFilter,
    pub format: ListFormat,
}

pub struct ImportRequest {
    pub source: MageSource,
    pub dry_run: bool,
    pub overwrite: bool,
}

pub struct RenderRequest {
    pub path: PathBuf,
    pub out: Option<PathBuf>,
    pub selection: Selection,
    pub options: RenderOptions,
    pub mode: u32,
    /// List what would change; write nothing.
    pub dry_run: bool,
    /// Show each change as a diff, values masked.
    pub diff: bool,
    /// Remove outputs whose source is gone.
    pub prune: bool,
}

pub struct CheckRequest {
    pub path: PathBuf,
    pub target: Target,
    pub strict_env: bool,
    pub format: CheckFormat,
    pub selection: Selection,
    /// Functions Mage provides at run time besides its own.
    pub allow_unknown: Vec<String>,
    /// Names that cannot be checked are warnings, not errors.
    pub allow_unverifiable: bool,
}

pub struct WatchRequest {
    pub root: PathBuf,
    pub out: PathBuf,
    pub options: WatchOptions,
}

pub struct RunRequest {
    pub scope: Scope,
    /// Only these names (empty: every visible secret).
    pub only: Vec<String>,
    pub prefix: String,
    pub program: std::ffi::OsString,
    pub args: Vec<std::ffi::OsString>,
}

/// `env --name NAME` or `env --clear-name`.
pub enum NameChange {
    Set(String),
    Clear,
}

/// One command, validated.
pub enum Request {
    Set {
        secret: NamedSecret,
        from_file: Option<PathBuf>,
        allow_empty: bool,
    },
    Get(NamedSecret),
    List(ListRequest),
    Delete(NamedSecret),
    Env {
        export_key: bool,
        force: bool,
        name: Option<NameChange>,
    },
    RotateKey {
        dry_run: bool,
    },
    Doctor,
    ImportMage(ImportRequest),
    Render(RenderRequest),
    Check(CheckRequest),
    Watch(WatchRequest),
    Run(RunRequest),
    Completions(clap_complete::Shell),
    /// The manual page of mage-secrets, or of one command.
    Man(Option<String>),
}

impl Request {
    pub fn new(command: Command, settings: &Settings) -> Result<Request> {
        Ok(match command {
            Command::Set {
                name,
                scope,
                from_file,
                allow_empty,
                extra,
            } => {
                if !extra.is_empty() {
                    // The extra argument is most likely the value: never
                    // repeat it.
                    return Err(Error::Usage(format!(
                        "set takes one argument, the name; values never come from the command line (process lists and shell history would show them). Pipe it: printf '%s' \"$VALUE\" | mage-secrets set {name}, or run `mage-secrets set {name}` for a no-echo prompt, or use --from-file FILE"
                    )));
                }
                Request::Set {
                    secret: NamedSecret::new(name, &scope)?,
                    from_file,
                    allow_empty,
                }
            }
            Command::Get { name, scope } => Request::Get(NamedSecret::new(name, &scope)?),
            Command::List {
                scope,
                all_scopes,
                format,
            } => Request::List(ListRequest {
                filter: if all_scopes {
                    ScopeFilter::All
                } else {
                    ScopeFilter::One(Scope::from_pipeline(scope.pipeline.as_deref())?)
                },
                format,
            }),
            Command::Delete { name, scope } => Request::Delete(NamedSecret::new(name, &scope)?),
            Command::Env {
                export_key,
                force,
                name,
                clear_name,
            } => Request::Env {
                export_key,
                force,
                name: match (name, clear_name) {
                    (Some(name), _) => {
                        environment_name::validate_name(&name)?;
                        Some(NameChange::Set(name))
                    }
                    (None, true) => Some(NameChange::Clear),
                    (None, false) => None,
                },
            },
            Command::RotateKey { dry_run } => Request::RotateKey { dry_run },
            Command::Doctor => Request::Doctor,
            Command::ImportMage {
                mage_data_dir,
                mage_database,
                dry_run,
                overwrite,
            } => Request::ImportMage(ImportRequest {
                source: MageSource {
                    data_dir: mage_data_dir.unwrap_or_else(|| settings.data_dir.clone()),
                    database: mage_database,
                },
                dry_run,
                overwrite,
            }),
            Command::Render {
                path,
                out,
                render,
                mode,
                dry_run,
                diff,
                prune,
            } => Request::Render(RenderRequest {
                path,
                out,
                selection: selection(&render.select)?,
                options: render_options(&render),
                mode,
                dry_run,
                diff,
                prune,
            }),
            Command::Check {
                path,
                environment,
                all_environments,
                strict_env,
                allow_unverifiable,
                format,
                select,
            } => {
                let selection = selection(&select)?;
                let target = match (environment, all_environments) {
                    (Some(query), _) => Target::Other(query),
                    (None, true) => Target::All,
                    (None, false) => Target::Own,
                };
                Request::Check(CheckRequest {
                    path,
                    target,
                    strict_env,
                    format,
                    selection,
                    allow_unknown: select.allow_unknown,
                    allow_unverifiable,
                })
            }
            Command::Watch {
                path,
                out,
                debounce,
                exec,
                no_initial_exec,
                render,
                mode,
            } => Request::Watch(WatchRequest {
                root: path,
                out,
                options: WatchOptions {
                    selection: selection(&render.select)?,
                    render: render_options(&render),
                    mode,
                    debounce: std::time::Duration::from_millis(debounce),
                    exec,
                    initial_exec: !no_initial_exec,
                },
            }),
            Command::Run {
                scope,
                only,
                prefix,
                command,
            } => {
                validate_prefix(&prefix)?;
                for name in &only {
                    secret::validate_name(name)?;
                }
                let mut command = command.into_iter();
                let Some(program) = command.next() else {
                    return Err(Error::Usage(
                        "no command given: mage-secrets run [OPTIONS] -- CMD [ARGS]...".into(),
                    ));
                };
                Request::Run(RunRequest {
                    scope: Scope::from_pipeline(scope.pipeline.as_deref())?,
                    only,
                    prefix,
                    program,
                    args: command.collect(),
                })
            }
            Command::Completions { shell } => Request::Completions(shell),
            Command::Man { command } => Request::Man(command),
        })
    }
}

impl NamedSecret {
    fn new(name: String, scope: &PipelineArg) -> Result<NamedSecret> {
        secret::validate_name(&name)?;
        Ok(NamedSecret {
            scope: Scope::from_pipeline(scope.pipeline.as_deref())?,
            name,
        })
    }
}

fn selection(flags: &SelectFlags) -> Result<Selection> {
    Selection::new(&flags.include, &flags.exclude)
}

fn render_options(flags: &RenderFlags) -> RenderOptions {
    RenderOptions {
        lenient: flags.lenient,
        raw: flags.raw,
        direct: flags.direct,
        allow_unknown: flags.select.allow_unknown.clone(),
        max_output: flags.max_output,
    }
}

/// A prefix keeps variable names valid: letters, digits and `_`, not
/// starting with a digit.
fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !prefix.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid --prefix '{}': use letters, digits and _, not starting with a digit (such as APP_)",
            prefix.escape_debug()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_keep_names_valid() {
        assert!(validate_prefix("").is_ok());
        assert!(validate_prefix("APP_").is_ok());
        assert!(validate_prefix("_x1").is_ok());
        assert!(validate_prefix("1A").is_err());
        assert!(validate_prefix("A-B").is_err());
        assert!(validate_prefix("A=B").is_err());
    }
}
