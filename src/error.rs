//! The one error type of the crate. Each variant carries what failed and
//! where, and its message says what to do; `exit_code` maps it to the
//! contract's exit codes (1: the thing asked for does not hold, 2: usage or
//! the tool's environment). No variant ever holds a secret value.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid secret name '{name}': {reason} (names match ^[A-Za-z_][A-Za-z0-9_]*$, at most 255 bytes)")]
    InvalidName { name: String, reason: &'static str },

    #[error("secret value is {size} bytes; the limit is 1 MiB (1048576 bytes)")]
    ValueTooLarge { size: usize },

    #[error("secret value is not valid UTF-8 (byte {offset}); values must be text")]
    ValueNotUtf8 { offset: usize },

    /// The command line asks for something that cannot be (exit 2).
    #[error("{0}")]
    Usage(String),

    /// Something the command names is not there: an environment, a
    /// profile, a Mage installation (exit 2).
    #[error("{0}")]
    NotFound(String),

    /// The tool's surroundings are not as it needs them: a data dir that is
    /// a file, an output that is a folder, a watch the system refuses
    /// (exit 2).
    #[error("{0}")]
    Setup(String),

    /// Stopped on purpose at a named step (`MAGE_SECRETS_FAULT`): how the
    /// crash tests stop a key rotation between two steps. Exit 86.
    #[error("stopped at fault point {0} (MAGE_SECRETS_FAULT)")]
    Fault(String),

    #[error("{}", not_set_message(.name, .env_uuid, .scopes))]
    SecretNotSet {
        name: String,
        env_uuid: String,
        /// The scopes searched, as `secret::describe_chain` gives them.
        scopes: String,
    },

    #[error("key file {} is missing, but the database holds {count} secret(s) for this environment ({env_uuid}); a new key would make them unreadable. Restore the key file into data dir {}, or pass the data dir that holds it with --data-dir", .key_path.display(), .data_dir.display())]
    KeyLost {
        data_dir: PathBuf,
        key_path: PathBuf,
        env_uuid: String,
        count: u64,
    },

    #[error("key file {} does not open environment {env_uuid} (its key check fails): it is another environment's key or has been replaced. Restore this data dir's own key file", .key_path.display())]
    WrongKey { key_path: PathBuf, env_uuid: String },

    #[error("secret '{name}' ({scope}) in environment {env_uuid} could not be decrypted although the key is right: the row was modified or copied from another name or environment. Set it again with `mage-secrets set {name}`")]
    Tampered {
        name: String,
        scope: String,
        env_uuid: String,
    },

    #[error("the key from {origin} does not open environment {env_uuid} (its key check fails): it is another environment's key, or an old one. Give this environment's key (`mage-secrets env --export-key` where its data dir is)")]
    GivenKeyWrong { origin: String, env_uuid: String },

    #[error("the key of environment {env_uuid} was rotated by another process while this one ran; nothing was written. Run the command again")]
    KeyRotated { env_uuid: String },

    #[error("key file {}: {problem}", .path.display())]
    KeyFile { path: PathBuf, problem: String },

    #[error("uuid file {}: {problem}", .path.display())]
    UuidFile { path: PathBuf, problem: String },

    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("database {location}: {cause}. The connection was lost after the change was sent to be committed, so whether it was stored is unknown: check with `mage-secrets list` (or `get`) once the database answers, and repeat the command if the change is not there")]
    CommitUnknown { location: String, cause: String },

    #[error("database {location}: {cause}. The connection was lost while the key rotation was being committed, so whether it was stored is unknown. {} was kept: the next command decides by the database's key check which key is current, so every secret stays readable. Run `mage-secrets doctor` once the database answers", .key_new.display())]
    RotationUnknown {
        location: String,
        cause: String,
        key_new: PathBuf,
    },

    #[error("database {location}: {message}")]
    Database {
        location: String,
        message: String,
        /// The driver's error, when there is one (printed as the cause).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    #[error("{}", render_failures(.0))]
    Render(Vec<Diagnostic>),

    /// A rename of an output set failed after others succeeded.
    #[error("cannot replace {}: {source}; {replaced} of {total} changed output(s) were replaced before it, so the output folder mixes old and new files. Fix the cause and render again: the next render finishes the set", .path.display())]
    OutputsMixed {
        path: PathBuf,
        replaced: usize,
        total: usize,
        #[source]
        source: std::io::Error,
    },

    /// A render or check found nothing to work on (a mistyped path in CI
    /// must not pass).
    #[error("{0}")]
    NothingSelected(String),
}

/// The one message for a secret missing from a scope chain (`scopes`, as
/// `secret::describe_chain` gives it). The chain is named unless it is
/// global alone, the default, which needs no mention.
pub fn not_set_message(name: &str, environment: &str, scopes: &str) -> String {
    let searched = if scopes.is_empty() || scopes == "global" {
        String::new()
    } else {
        format!(" (scopes searched: {scopes})")
    };
    format!("secret '{name}' is not set in environment {environment}{searched}")
}

fn render_failures(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    format!("{errors} problem(s) found; nothing was written")
}

/// The exit status of a run, as the contract names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: done, and what was asked for holds.
    Success,
    /// 1: what was asked for does not hold (a missing secret, a template
    /// that fails, problems `check` or `doctor` found).
    NotHeld,
    /// 2: a usage error, or a failure of the tool's surroundings (I/O,
    /// database, key).
    Trouble,
    /// 86: stopped at a fault point, for the crash tests.
    Fault,
    /// 126: `run`'s command was found but could not be started.
    CannotStart,
    /// 127: `run`'s command was not found.
    CommandNotFound,
}

impl ExitCode {
    /// The number the process exits with.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::NotHeld => 1,
            ExitCode::Trouble => 2,
            ExitCode::Fault => 86,
            ExitCode::CannotStart => 126,
            ExitCode::CommandNotFound => 127,
        }
    }
}

impl Error {
    /// The process exit status this error stands for.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::SecretNotSet { .. } | Error::Render(_) | Error::NothingSelected(_) => {
                ExitCode::NotHeld
            }
            Error::Fault(_) => ExitCode::Fault,
            _ => ExitCode::Trouble,
        }
    }

    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
