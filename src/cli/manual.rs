//! `man`: the manual page, generated from the same clap definitions as
//! `--help` (clap_mangen), so the two never disagree.

use clap::CommandFactory;
use mage_secrets::{Error, ExitCode, Result};

use super::args::Cli;
use super::output::write_stdout;

/// Writes the page of mage-secrets, or of one command, to stdout.
pub fn man(command: Option<&str>) -> Result<ExitCode> {
    let mut cli = Cli::command().disable_help_subcommand(true);
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => cli.find_subcommand(name).cloned().ok_or_else(|| {
            Error::Usage(format!(
                "no command '{name}'; the commands are: {}",
                cli.get_subcommands()
                    .map(|c| c.get_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| Error::io("render", "the manual page", e))?;
    write_stdout(&[&roff])?;
    Ok(ExitCode::Success)
}
