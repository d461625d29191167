//! The binary's commands: arguments in (`args`), validated once into a
//! request (`request`), library calls, output and exit status out
//! (`output`). Commands return the `ExitCode` they want; errors are printed
//! once, here, with their causes and the code the error stands for.

mod args;
mod check;
mod complete;
mod manual;
mod output;
mod process;
mod render;
mod request;
mod run;
mod secrets;
mod watch;

use clap::{CommandFactory, Parser};
use mage_secrets::{Error, ExitCode, Settings};

pub use args::Cli;
use output::Reporter;
use request::{Context, Request};

/// Where the data dir came from, for -vv.
fn data_dir_source(cli: &Cli) -> &'static str {
    if cli.data_dir.is_some() {
        "--data-dir or MAGE_DATA_DIR"
    } else {
        "the default, ~/.mage_data"
    }
}

/// Parses the command line, runs it, and returns the process exit status.
pub fn main() -> std::process::ExitCode {
    process::harden();
    complete::answer_if_asked(Cli::command);
    let code = match Cli::try_parse() {
        Ok(cli) => {
            let reporter = Reporter::new(cli.color, cli.quiet, cli.verbose);
            match run(cli, &reporter) {
                Ok(code) => code,
                Err(err) => {
                    if let Error::Render(diagnostics) = &err {
                        reporter.diagnostics(diagnostics);
                    }
                    reporter.error_chain(&err);
                    err.exit_code()
                }
            }
        }
        // Help and version are on stdout and succeed; usage errors are not.
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::Trouble
            } else {
                ExitCode::Success
            }
        }
    };
    code.code().into()
}

fn run(cli: Cli, reporter: &Reporter) -> mage_secrets::Result<ExitCode> {
    let mut settings = Settings::resolve(cli.data_dir.clone(), cli.database.clone())?;
    if let Some(path) = &cli.key_file {
        settings = settings.with_key_file(path)?;
    }
    if !cli.keep_key_env {
        // Read above; commands this process starts (--exec, run) do not
        // inherit it. Nothing else runs yet: no thread reads the
        // environment concurrently.
        std::env::remove_var(mage_secrets::settings::KEY_VAR);
    }
    match &settings.key {
        Some(given) => reporter.detail(&format!("key from {}", given.origin)),
        None => {
            reporter.detail(&format!("data dir: {}", settings.data_dir.display()));
            reporter.trace(&format!("  from {}", data_dir_source(&cli)));
        }
    }
    // Described without its password.
    match settings.database_location() {
        Ok(location) => reporter.detail(&format!("database: {}", location.describe())),
        Err(_) => reporter.detail("database: (invalid; see the error below)"),
    }
    reporter.trace(&format!(
        "  from {}",
        if cli.database.is_some() {
            "--database or MAGE_SECRETS_DATABASE"
        } else {
            "the default, inside the data dir"
        }
    ));
    let request = Request::new(cli.command, &settings)?;
    let ctx = Context {
        settings,
        reporter: *reporter,
    };
    match request {
        Request::Set {
            secret,
            from_file,
            allow_empty,
        } => secrets::set(&ctx, &secret, from_file.as_deref(), allow_empty),
        Request::Get(secret) => secrets::get(&ctx, &secret),
        Request::List(list) => secrets::list(&ctx, &list),
        Request::Delete(secret) => secrets::delete(&ctx, &secret),
        Request::Env {
            export_key,
            force,
            name,
        } => secrets::env(&ctx, export_key, force, name.as_ref()),
        Request::RotateKey { dry_run } => secrets::rotate_key(&ctx, dry_run),
        Request::Doctor => secrets::doctor(&ctx),
        Request::ImportMage(import) => secrets::import_mage(&ctx, &import),
        Request::Render(render) => render::render(&ctx, &render),
        Request::Check(check) => check::check(&ctx, &check),
        Request::Watch(watch) => watch::watch(&ctx, watch),
        Request::Run(run) => run::run(&ctx, &run),
        Request::Man(command) => manual::man(command.as_deref()),
        Request::Completions(shell) => {
            let mut script = Vec::new();
            complete::write_registration(shell, &mut script)
                .map_err(|e| Error::io("write", "the completion script", e))?;
            output::write_stdout(&[&script])?;
            Ok(ExitCode::Success)
        }
    }
}
