//! The binary's commands: arguments in (`args`), validated once into a
//! request (`request`), library calls, output and exit status out
//! (`output`). Commands return the `ExitCode` they want; errors are printed
//! once, here, with their causes and the code the error stands for.

mod allocator;
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
use std::os::unix::fs::MetadataExt;

use mage_secrets::settings::GivenKey;
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
pub fn main() -> u8 {
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
    code.code()
}

fn run(cli: Cli, reporter: &Reporter) -> mage_secrets::Result<ExitCode> {
    let settings = Settings::resolve_with_key_file(
        cli.data_dir.clone(),
        cli.database.clone(),
        cli.key_file.as_deref(),
    )?;
    if let Some(given) = &settings.key {
        forget_key_descriptor(given);
    }
    if !cli.keep_key_env {
        // Read above; commands this process starts (--exec, run) do not
        // inherit it. Nothing else runs yet: no thread reads the
        // environment concurrently.
        std::env::remove_var(mage_secrets::settings::KEY_VAR);
    }
    match &settings.key {
        Some(given) => {
            reporter.detail(&format!("key from {}", given.origin));
            if cli.data_dir.is_some() {
                // MAGE_DATA_DIR is often set in Mage's containers: said, not warned.
                reporter.detail(&format!(
                    "data dir {} is not used: the key opens the environment {} names",
                    settings.data_dir.display(),
                    mage_secrets::settings::ENVIRONMENT_VAR
                ));
            }
        }
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

/// A key read from a descriptor this process inherited (`--key-file -`,
/// `/dev/fd/N`, or a link to one) is not handed on to the commands it starts
/// (`run`, `--exec`): a file redirected there could be read again from the
/// start. Every inherited descriptor on the key's file or pipe is found by
/// its device and inode: standard input becomes /dev/null, another is
/// closed on exec.
fn forget_key_descriptor(given: &GivenKey) {
    let Some(source) = given.source else {
        return;
    };
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = fds
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if fd == 1 || fd == 2 {
            continue;
        }
        let Ok(meta) = std::fs::metadata(format!("/proc/self/fd/{fd}")) else {
            continue;
        };
        if (meta.dev(), meta.ino()) != source {
            continue;
        }
        if fd == 0 {
            if let Ok(null) = std::fs::File::open("/dev/null") {
                // SAFETY: dup2 onto fd 0 of a descriptor we own; nothing
                // else reads standard input concurrently (no thread yet).
                unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0) };
            }
        } else {
            // SAFETY: only the descriptor's flags change; a descriptor that
            // is not open makes fcntl fail, which changes nothing.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}
