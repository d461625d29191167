//! Command-line arguments (clap derive). Values of secrets never come from
//! argv: process lists and shell history would show them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use super::complete;

/// The heading global options are listed under in every command's help.
const GLOBAL: &str = "Global options";

const ABOUT: &str = "Encrypted secrets and a config preprocessor for Mage projects";

const EXAMPLES: &str = "\
Examples:
  echo 's3cr3t' | mage-secrets set pg_password     store a secret (from a pipe)
  mage-secrets get pg_password                      print it
  mage-secrets --data-dir ~/.mage_prod list         list a prod environment's names
  mage-secrets render . --out build/                resolved copies of a project";

#[derive(Parser, Debug)]
#[command(name = "mage-secrets", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// The environment's data dir [default: ~/.mage_data]
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "DIR", env = "MAGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database: a SQLite path or a postgres:// URL [default: <data dir>/mage-secrets/secrets.db]
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        value_name = "URL",
        env = "MAGE_SECRETS_DATABASE",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// Read the key from PATH (- for stdin, or /dev/fd/N) instead of MAGE_SECRETS_KEY or the data dir
    #[arg(long, global = true, help_heading = GLOBAL, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Pass MAGE_SECRETS_KEY on to commands mage-secrets starts (--exec, run)
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub keep_key_env: bool,

    /// When to color diagnostics
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Print only errors
    #[arg(short, long, global = true, help_heading = GLOBAL, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more: -v the data dir, database and environment; -vv also where each came from and per-file steps
    #[arg(short, long, global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Github,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Store a secret: the value comes from a pipe, a no-echo prompt, or --from-file
    #[command(after_help = "\
Examples:
  echo 's3cr3t' | mage-secrets set pg_password      one trailing newline is dropped
  mage-secrets set pg_password                       prompts twice, without echo
  mage-secrets set tls_key --from-file key.pem       the file's bytes, exactly
  echo 'x' | mage-secrets set api_key --pipeline etl visible to pipelines/etl/ only")]
    Set {
        /// Secret name (letters, digits, _; not starting with a digit)
        #[arg(add = ArgValueCompleter::new(complete::secret_names))]
        name: String,
        #[command(flatten)]
        scope: PipelineArg,
        /// Read the value from this file, byte for byte
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// Store an empty value from standard input (refused otherwise)
        #[arg(long)]
        allow_empty: bool,
        /// Never a value: values come from stdin, a prompt or --from-file (a hint is printed)
        #[arg(hide = true, num_args = 0.., allow_hyphen_values = true)]
        extra: Vec<std::ffi::OsString>,
    },

    /// Print a secret's value (exit 1 if it is not set)
    #[command(after_help = "\
Examples:
  mage-secrets get pg_password
  mage-secrets get api_key --pipeline etl            pipeline scope, then global")]
    Get {
        /// Secret name
        #[arg(add = ArgValueCompleter::new(complete::secret_names))]
        name: String,
        #[command(flatten)]
        scope: PipelineArg,
    },

    /// List secret names, scopes and update times (never values)
    #[command(after_help = "\
Examples:
  mage-secrets list
  mage-secrets list --pipeline etl
  mage-secrets list --all-scopes --format json")]
    List {
        #[command(flatten)]
        scope: PipelineArg,
        /// List every scope
        #[arg(long, conflicts_with = "pipeline")]
        all_scopes: bool,
        /// Output format: a table, or one JSON document
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
    },

    /// Delete a secret (exit 1 if it is not set)
    #[command(after_help = "\
Examples:
  mage-secrets delete pg_password
  mage-secrets delete api_key --pipeline etl")]
    Delete {
        /// Secret name
        #[arg(add = ArgValueCompleter::new(complete::secret_names))]
        name: String,
        #[command(flatten)]
        scope: PipelineArg,
    },

    /// Show the environment: data dir, uuid, name, database, key file, secret count
    #[command(after_help = "\
Examples:
  mage-secrets env
  mage-secrets --data-dir ~/.mage_prod env
  mage-secrets env --export-key | gh secret set MAGE_SECRETS_KEY   the key, for a CI secret store
  mage-secrets env --name prod                  name it; then check --environment prod

The key comes from --key-file, else MAGE_SECRETS_KEY (with MAGE_SECRETS_ENVIRONMENT naming
the environment), else the data dir's key file; `env` says which, never the key itself.")]
    Env {
        /// Print the environment's key (the key file's text) to stdout, to load into a CI's
        /// secret store; refused when stdout is a terminal unless --force
        #[arg(long, conflicts_with_all = ["name", "clear_name"])]
        export_key: bool,

        /// With --export-key: print the key even to a terminal
        #[arg(long, requires = "export_key")]
        force: bool,

        /// Give the environment a name, unique in its database (letters, digits, _ - .)
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Remove the environment's name
        #[arg(long, conflicts_with = "name")]
        clear_name: bool,
    },

    /// Re-seal every secret of the environment under a new key (crash-safe)
    #[command(
        name = "rotate-key",
        after_help = "\
Examples:
  mage-secrets rotate-key --dry-run        how many secrets would be re-sealed
  mage-secrets rotate-key

The new key replaces <data dir>/mage-secrets/key; back it up afterwards."
    )]
    RotateKey {
        /// Say how many secrets would be re-sealed, change nothing
        #[arg(long)]
        dry_run: bool,
    },

    /// Check permissions, key, uuid, database and that every secret opens
    #[command(after_help = "\
Examples:
  mage-secrets doctor
  mage-secrets --data-dir ~/.mage_prod doctor

Exit status: 0 all good, 1 a problem was found (each with its fix).")]
    Doctor,

    /// Bring secrets over from a Mage installation (its database and key)
    #[command(
        name = "import-mage",
        after_help = "\
Examples:
  mage-secrets import-mage --dry-run                  names and scopes that would be imported
  mage-secrets import-mage                            from ~/.mage_data (Mage's default)
  mage-secrets import-mage --mage-data-dir /srv/mage --mage-database /srv/mage/proj/mage-ai.db

Rows of other Mage environments, or that do not open with Mage's key, are listed and skipped."
    )]
    ImportMage {
        /// Mage's data dir (holds secrets/key) [default: this data dir]
        #[arg(long, value_name = "DIR")]
        mage_data_dir: Option<PathBuf>,
        /// Mage's database: a SQLite path or sqlite:/// URL [default: MAGE_DATABASE_CONNECTION_URL, else <mage data dir>/<project>/mage-ai.db]
        #[arg(long, value_name = "URL")]
        mage_database: Option<String>,
        /// List what would be imported; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Replace secrets that are already set here
        #[arg(long)]
        overwrite: bool,
    },

    /// Render a project's YAML into resolved copies, or one file to stdout
    #[command(after_help = "\
Examples:
  mage-secrets render . --out build/                 every YAML file of the project
  mage-secrets render io_config.yaml                 one file, to stdout
  mage-secrets render . --out build/ --lenient       missing values become None, as in Mage
  mage-secrets render . --out build/ --exclude 'dbt/**'
  mage-secrets render . --out build/ --dry-run --diff  review a deploy, values masked
  mage-secrets render . --out build/ --prune         also remove outputs whose source is gone")]
    Render {
        /// A project folder, or one file
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Output folder (required for a project); for one file, the output file (a folder if it is one or ends in /)
        #[arg(long, value_name = "DIR|FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        render: RenderFlags,
        /// Permissions of output files (octal); folders get x where r is set
        #[arg(long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
        mode: u32,
        /// List what would be new, changed, unchanged and pruned; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Show each change as a unified diff, every substituted value masked
        #[arg(long)]
        diff: bool,
        /// Remove outputs whose source is gone (in a folder mage-secrets rendered into)
        #[arg(long)]
        prune: bool,
    },

    /// Prove that every referenced secret exists in an environment (never shows a value)
    #[command(after_help = "\
Examples:
  mage-secrets check .                                      this data dir's environment
  mage-secrets check . --format github                      annotations in GitHub Actions
  mage-secrets --database prod.db check . --environment 1f0c…  another environment, no key needed
  mage-secrets --database shared.db check . --all-environments

Exit status: 0 nothing wrong, 1 problems found, 2 the check could not run.")]
    Check {
        /// A project folder, or one file
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Check this environment of the database by existence alone (no key needed): a name, a uuid or a unique uuid prefix
        #[arg(long, value_name = "ENV", conflicts_with = "all_environments")]
        environment: Option<String>,
        /// A table of each referenced secret in each environment of the database
        #[arg(long)]
        all_environments: bool,
        /// Unset env_var()s without a default are errors, not warnings
        #[arg(long)]
        strict_env: bool,
        /// Names that cannot be checked (computed from a secret's value without the key, or from values Mage has only at run time) are warnings, not errors
        #[arg(long)]
        allow_unverifiable: bool,
        /// Output format: diagnostics on stderr, one JSON document, or GitHub Actions annotations
        #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
        format: CheckFormat,
        #[command(flatten)]
        select: SelectFlags,
    },

    /// Render once, then re-render on file changes and on secret-store changes
    #[command(after_help = "\
Examples:
  mage-secrets watch . --out build/
  mage-secrets watch . --out build/ --exec 'docker compose restart mage'
  mage-secrets watch . --out build/ --debounce 200

The changed output paths reach --exec in MAGE_SECRETS_CHANGED, one per line.
-v prints a line per written file; without it, counts.
Ctrl-C or SIGTERM stops it after the batch in progress.")]
    Watch {
        /// The project folder
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Output folder
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Quiet period (ms) that ends a batch of file events
        #[arg(long, value_name = "MS", default_value_t = 50)]
        debounce: u64,
        /// Run this shell command after the first render and after each batch that changed an output
        #[arg(long, value_name = "CMD")]
        exec: Option<String>,
        /// Run --exec only after changes, not after the first render
        #[arg(long, requires = "exec")]
        no_initial_exec: bool,
        #[command(flatten)]
        render: RenderFlags,
        /// Permissions of output files (octal); folders get x where r is set
        #[arg(long, value_name = "MODE", default_value = "0600", value_parser = parse_mode)]
        mode: u32,
    },

    /// Run a command with the visible secrets in its environment
    #[command(after_help = "\
Examples:
  mage-secrets run -- python load.py                 every global secret, under its name
  mage-secrets run --pipeline etl -- mage run . etl  pipeline scope over global
  mage-secrets run --only pg_password --prefix APP_ -- env

The command replaces mage-secrets (same pid): signals reach it, and its exit
status is run's. Values are passed in its environment, never on a command line.")]
    Run {
        #[command(flatten)]
        scope: PipelineArg,
        /// Only these secrets (comma-separated names; each must be set)
        #[arg(long, value_name = "N1,N2", value_delimiter = ',')]
        only: Vec<String>,
        /// Prefix for every variable name (APP_ gives APP_pg_password)
        #[arg(long, value_name = "PREFIX", default_value = "")]
        prefix: String,
        /// The command and its arguments, after --
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },

    /// Print a shell completion script
    #[command(after_help = "\
Examples:
  mage-secrets completions bash > /etc/bash_completion.d/mage-secrets
  mage-secrets completions zsh > ~/.zfunc/_mage-secrets")]
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the manual page (roff), of mage-secrets or of one command
    #[command(after_help = "\
Examples:
  mage-secrets man | man -l -
  mage-secrets man > /usr/local/share/man/man1/mage-secrets.1
  mage-secrets man check | man -l -")]
    Man {
        /// A command, for its own page (mage-secrets-COMMAND)
        command: Option<String>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct PipelineArg {
    /// Pipeline scope: visible only to files under pipelines/<P>/
    #[arg(long, value_name = "P")]
    pub pipeline: Option<String>,
}

// Flags shared by the commands that render.
#[derive(Args, Debug, Clone)]
pub struct RenderFlags {
    /// Render a missing value as None with a warning (Mage's behaviour)
    #[arg(long)]
    pub lenient: bool,
    /// Insert values raw, without YAML quote-aware escaping (Mage's bytes)
    #[arg(long)]
    pub raw: bool,
    /// Outputs are read by another program (dbt run by hand, a script), not by Mage: {{, {%
    /// and {# are written as they are, without the protection for Mage's Jinja pass
    #[arg(long)]
    pub direct: bool,
    /// The largest output one file may render to (bytes, or with KiB, MiB, GiB) [default: 64MiB]
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_output: Option<usize>,
    #[command(flatten)]
    pub select: SelectFlags,
}

// Which files of a project a command reads.
#[derive(Args, Debug, Clone)]
pub struct SelectFlags {
    /// Select files matching GLOB instead of *.yaml/*.yml (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out files matching GLOB (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// A function your Mage deployment provides at run time: calls to it are kept for Mage, not refused as unknown (repeatable, or comma-separated)
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub allow_unknown: Vec<String>,
}

fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_bytes: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit '{other}': give bytes, or a number with KiB, MiB or GiB"
            ))
        }
    };
    let n: usize = digits.parse().map_err(|_| {
        "give a number of bytes, or one with KiB, MiB or GiB (e.g. 64MiB)".to_string()
    })?;
    match n.checked_mul(unit_bytes) {
        Some(0) => Err("the limit must be more than 0 bytes".into()),
        Some(bytes) => Ok(bytes),
        None => Err("that limit is larger than this machine can address".into()),
    }
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && mode & 0o600 == 0o600 => Ok(mode),
        Ok(_) => Err(
            "the mode must be at most 0777 and let the owner read and write (0600 at least)".into(),
        ),
        Err(_) => Err(format!("'{text}' is not an octal mode such as 0600")),
    }
}
