//! The binary's commands: arguments in, library calls, output and exit code
//! out. Commands return the exit code they want; errors are printed once, in
//! `main`, with the code the error stands for.

mod args;
mod check;
mod output;
mod render;
mod secrets;
mod watch;

use clap::{CommandFactory, Parser};
use mage_secrets::{Error, Settings};

pub use args::Cli;
use args::Command;
use output::Reporter;

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let reporter = Reporter::new(cli.color, cli.quiet, cli.verbose);
    match run(cli, &reporter) {
        Ok(code) => code,
        Err(err) => {
            if let Error::Render(diagnostics) = &err {
                for d in diagnostics {
                    reporter.diagnostic(d);
                }
            }
            reporter.error(&err.to_string());
            err.exit_code()
        }
    }
}

fn run(cli: Cli, reporter: &Reporter) -> mage_secrets::Result<i32> {
    let settings = Settings::resolve(cli.data_dir.clone(), cli.database.clone())?;
    reporter.detail(&format!("data dir: {}", settings.data_dir.display()));
    match cli.command {
        Command::Set {
            name,
            scope,
            from_file,
        } => secrets::set(
            &settings,
            reporter,
            &name,
            scope.pipeline.as_deref(),
            from_file.as_deref(),
        ),
        Command::Get { name, scope } => {
            secrets::get(&settings, reporter, &name, scope.pipeline.as_deref())
        }
        Command::List {
            scope,
            all_scopes,
            format,
        } => secrets::list(
            &settings,
            reporter,
            scope.pipeline.as_deref(),
            all_scopes,
            format,
        ),
        Command::Delete { name, scope } => {
            secrets::delete(&settings, reporter, &name, scope.pipeline.as_deref())
        }
        Command::Env => secrets::env(&settings, reporter),
        Command::RotateKey { dry_run } => secrets::rotate_key(&settings, reporter, dry_run),
        Command::Doctor => secrets::doctor(&settings, reporter),
        Command::ImportMage {
            mage_data_dir,
            mage_database,
            dry_run,
            overwrite,
        } => {
            let source = mage_secrets::mage_import::MageSource {
                data_dir: mage_data_dir.unwrap_or_else(|| settings.data_dir.clone()),
                database: mage_database,
            };
            secrets::import_mage(&settings, reporter, &source, dry_run, overwrite)
        }
        Command::Render {
            path,
            out,
            render: flags,
            mode,
        } => render::render(
            &settings,
            reporter,
            &path,
            out.as_deref(),
            &flags.options(),
            mode,
        ),
        Command::Check {
            path,
            environment,
            all_environments,
            strict_env,
            format,
            select,
        } => {
            let target = match (environment, all_environments) {
                (Some(uuid), _) => check::Target::Other(uuid),
                (None, true) => check::Target::All,
                (None, false) => check::Target::Own,
            };
            check::check(
                &settings, reporter, &path, &target, strict_env, format, &select,
            )
        }
        Command::Watch {
            path,
            out,
            debounce,
            exec,
            render: flags,
            mode,
        } => {
            let options = mage_secrets::watch::WatchOptions {
                render: flags.options(),
                mode,
                debounce: std::time::Duration::from_millis(debounce),
                exec,
            };
            watch::watch(&settings, reporter, &path, &out, options)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "mage-secrets",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    }
}
