//! The binary's commands: arguments in, library calls, output and exit code
//! out. Commands return the exit code they want; errors are printed once, in
//! `main`, with the code the error stands for.

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
use mage_secrets::{Error, Settings};

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

/// Parses the command line, runs it, and returns the process exit code.
pub fn main() -> i32 {
    process::harden();
    complete::answer_if_asked(Cli::command);
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
                reporter.diagnostics(diagnostics);
            }
            reporter.error(&err.to_string());
            err.exit_code()
        }
    }
}

fn run(cli: Cli, reporter: &Reporter) -> mage_secrets::Result<i32> {
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
            let mut out = std::io::stdout().lock();
            complete::write_registration(shell, &mut out)
                .map_err(|e| Error::io("write to", "standard output", e))?;
            Ok(0)
        }
    }
}
