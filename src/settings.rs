//! Which environment and which database a run uses, resolved the way Mage
//! resolves its data folder: explicit flag, then environment variable, then
//! the default `~/.mage_data`. A key may also be given without any data
//! dir (`--key-file`, `MAGE_SECRETS_KEY`, with `MAGE_SECRETS_ENVIRONMENT`
//! naming the environment): CI jobs and containers keep it in their own
//! secret store, and it never touches the disk.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Environment variable naming the data dir (Mage's own).
pub const DATA_DIR_VAR: &str = "MAGE_DATA_DIR";
/// Environment variable naming the database.
pub const DATABASE_VAR: &str = "MAGE_SECRETS_DATABASE";
/// Folder inside the data dir that belongs to mage-secrets.
pub const OWN_FOLDER: &str = "mage-secrets";
/// The default database's file name, in [`OWN_FOLDER`].
pub const DEFAULT_DATABASE_FILE: &str = "secrets.db";
/// Environment variable holding a key (the key file's text).
pub const KEY_VAR: &str = "MAGE_SECRETS_KEY";
/// The longest key text read from `--key-file` (a key file is 45 bytes;
/// room for whitespace around it).
const MAX_KEY_TEXT: usize = 4096;
/// Environment variable naming the environment a given key opens.
pub const ENVIRONMENT_VAR: &str = "MAGE_SECRETS_ENVIRONMENT";

/// Where an environment lives and where its secrets are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// `None`: `<data dir>/mage-secrets/secrets.db`.
    pub database: Option<String>,
    /// A key given without a data dir; `None`: the data dir's key file.
    pub key: Option<GivenKey>,
}

/// Where a given key came from (shown by `env`, named in errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `MAGE_SECRETS_KEY`.
    Variable,
    /// `--key-file PATH` (`-`: standard input).
    File(PathBuf),
}

impl KeyOrigin {
    /// `--key-file -`.
    pub fn is_stdin(&self) -> bool {
        matches!(self, KeyOrigin::File(p) if p.as_os_str() == "-")
    }

    /// The descriptor of this process a key file names: `-`, `/dev/stdin`,
    /// `/dev/fd/N`, `/proc/self/fd/N`.
    pub fn descriptor(&self) -> Option<i32> {
        let KeyOrigin::File(path) = self else {
            return None;
        };
        let text = path.to_str()?;
        match text {
            "-" | "/dev/stdin" => Some(0),
            _ => text
                .strip_prefix("/dev/fd/")
                .or_else(|| text.strip_prefix("/proc/self/fd/"))
                .and_then(|n| n.parse().ok()),
        }
    }

    /// The key was read from standard input, so a command this process
    /// starts must not get it (a file redirected there can be read again).
    pub fn reads_stdin(&self) -> bool {
        self.descriptor() == Some(0)
    }
}

impl std::fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOrigin::Variable => write!(f, "{KEY_VAR}"),
            KeyOrigin::File(_) if self.is_stdin() => f.write_str("--key-file - (standard input)"),
            KeyOrigin::File(p) => write!(f, "--key-file {}", p.display()),
        }
    }
}

/// A key given by `--key-file` or `MAGE_SECRETS_KEY`, and the environment
/// (`MAGE_SECRETS_ENVIRONMENT`: a uuid or a name) it is for. Never written
/// anywhere; its `Debug` output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct GivenKey {
    pub origin: KeyOrigin,
    pub text: Zeroizing<String>,
    pub environment: Option<String>,
    /// The (device, inode) of the file or pipe a key file was read from:
    /// any descriptor this process inherited on it is not handed on.
    pub source: Option<(u64, u64)>,
}

impl std::fmt::Debug for GivenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GivenKey")
            .field("origin", &self.origin)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl GivenKey {
    /// `MAGE_SECRETS_KEY`, if set. Set but empty is an error: a CI secret
    /// that is not available to the job must not fall back to anything.
    pub fn from_env() -> Result<Option<GivenKey>> {
        let Some(value) = std::env::var_os(KEY_VAR) else {
            return Ok(None);
        };
        let text = Zeroizing::new(value.into_string().map_err(|_| {
            Error::Setup(format!(
                "{KEY_VAR} is not text; it holds a key file's base64 text"
            ))
        })?);
        if text.trim().is_empty() {
            return Err(Error::Setup(format!(
                "{KEY_VAR} is set but empty (a CI secret this job cannot read?); set it to the key (`mage-secrets env --export-key` prints it), or unset it to use the data dir's key file"
            )));
        }
        Ok(Some(GivenKey {
            origin: KeyOrigin::Variable,
            text,
            environment: environment_from_env(),
            source: None,
        }))
    }

    /// The key in a file, `-` (standard input) or `/dev/fd/N`.
    pub fn from_file(path: &Path) -> Result<GivenKey> {
        let origin = KeyOrigin::File(path.to_path_buf());
        let stdin = path.as_os_str() == "-";
        let file = if stdin {
            None
        } else {
            Some(std::fs::File::open(path).map_err(|e| {
                if !path.exists() && looks_like_a_key(&path.to_string_lossy()) {
                    // Not echoed: the argument is a key, not a path.
                    Error::Usage(
                        "--key-file takes the path of a file holding the key, and its argument looks like a key itself (not shown); put the key in MAGE_SECRETS_KEY, or pipe it to --key-file -".into(),
                    )
                } else {
                    Error::io("read key file", path, e)
                }
            })?)
        };
        let terminal = match &file {
            None => std::io::stdin().is_terminal(),
            Some(f) => f.is_terminal(),
        };
        if terminal {
            return Err(Error::Usage(format!(
                "{origin} is a terminal; a key is not typed in: pipe the key in, or give a file"
            )));
        }
        let mut text = Zeroizing::new(String::new());
        // At most a little more than a key: /dev/zero is not read forever.
        let limit = MAX_KEY_TEXT as u64 + 1;
        let file_identity = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| (m.dev(), m.ino()));
        let read = match file {
            None => std::io::stdin()
                .lock()
                .take(limit)
                .read_to_string(&mut text),
            Some(f) => f.take(limit).read_to_string(&mut text),
        };
        let read = read.map_err(|e| Error::io("read key file", path, e))?;
        let source = match &file_identity {
            Some(id) => Some(*id),
            None => std::fs::metadata("/proc/self/fd/0")
                .ok()
                .map(|m| (m.dev(), m.ino())),
        };
        if read > MAX_KEY_TEXT {
            return Err(Error::KeyFile {
                path: path.to_path_buf(),
                problem: "is too large to be a key (a key file is 45 bytes)".into(),
            });
        }
        if text.trim().is_empty() {
            return Err(Error::KeyFile {
                path: path.to_path_buf(),
                problem:
                    "is empty; it should hold a key (`mage-secrets env --export-key` prints it)"
                        .into(),
            });
        }
        Ok(GivenKey {
            origin,
            text,
            environment: environment_from_env(),
            source,
        })
    }
}

/// Text that decodes as a key's 32 bytes (a key passed where its path goes).
fn looks_like_a_key(text: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .is_ok_and(|bytes| Zeroizing::new(bytes).len() == 32)
}

fn environment_from_env() -> Option<String> {
    std::env::var(ENVIRONMENT_VAR)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl Settings {
    /// Settings from explicit values, falling back to the process
    /// environment. A key in `MAGE_SECRETS_KEY` takes the place of the data
    /// dir's key file.
    pub fn resolve(data_dir: Option<PathBuf>, database: Option<String>) -> Result<Settings> {
        Settings::resolve_with_key_file(data_dir, database, None)
    }

    /// [`resolve`](Self::resolve), with the key read from `key_file`
    /// (`--key-file`), which wins over `MAGE_SECRETS_KEY` (then not even
    /// read) and the data dir's key file.
    pub fn resolve_with_key_file(
        data_dir: Option<PathBuf>,
        database: Option<String>,
        key_file: Option<&Path>,
    ) -> Result<Settings> {
        let key = match key_file {
            Some(path) => Some(GivenKey::from_file(path)?),
            None => GivenKey::from_env()?,
        };
        let data_dir = match data_dir {
            Some(dir) => dir,
            None => match std::env::var_os(DATA_DIR_VAR).filter(|v| !v.is_empty()) {
                Some(dir) => PathBuf::from(dir),
                // A given key needs no data dir (nor a HOME).
                None if key.is_some() => default_data_dir().unwrap_or_default(),
                None => default_data_dir()?,
            },
        };
        let database =
            database.or_else(|| std::env::var(DATABASE_VAR).ok().filter(|v| !v.is_empty()));
        Ok(Settings {
            data_dir: expand_tilde(&data_dir),
            database,
            key,
        })
    }

    /// Settings the way Mage's `get_secret_value` finds them: from the
    /// process environment alone.
    pub fn from_env() -> Result<Settings> {
        Settings::resolve(None, None)
    }

    /// A data dir with the default database.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            data_dir: data_dir.into(),
            database: None,
            key: None,
        }
    }

    /// `<data dir>/mage-secrets`.
    pub fn own_dir(&self) -> PathBuf {
        self.data_dir.join(OWN_FOLDER)
    }

    pub fn key_path(&self) -> PathBuf {
        self.own_dir().join("key")
    }

    /// Where a rotation writes the new key before it commits.
    pub fn key_new_path(&self) -> PathBuf {
        self.own_dir().join("key.new")
    }

    pub fn uuid_path(&self) -> PathBuf {
        self.own_dir().join("uuid")
    }

    /// The database this run uses.
    pub fn database_location(&self) -> Result<DatabaseLocation> {
        match &self.database {
            None => Ok(DatabaseLocation::Sqlite(
                self.own_dir().join(DEFAULT_DATABASE_FILE),
            )),
            Some(text) => DatabaseLocation::parse(text),
        }
    }
}

fn default_data_dir() -> Result<PathBuf> {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".mage_data")),
        None => Err(Error::Setup(
            "HOME is not set, so the default data dir ~/.mage_data cannot be found; pass --data-dir or set MAGE_DATA_DIR".into(),
        )),
    }
}

fn expand_tilde(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(rest),
            None => path.to_path_buf(),
        },
        Err(_) => path.to_path_buf(),
    }
}

/// A database named by `--database` / `MAGE_SECRETS_DATABASE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite(PathBuf),
    Postgres(PostgresUrl),
}

impl DatabaseLocation {
    /// A path (or `sqlite://PATH`), or a `postgres://` / `postgresql://` URL.
    pub fn parse(text: &str) -> Result<DatabaseLocation> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DatabaseLocation::Postgres(PostgresUrl(text.to_string())));
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(text);
        if path.is_empty() || path.contains("://") {
            return Err(Error::Usage(format!(
                "unsupported database '{}': give a SQLite file path or a postgres:// URL",
                PostgresUrl(text.to_string()).redacted()
            )));
        }
        Ok(DatabaseLocation::Sqlite(expand_tilde(Path::new(path))))
    }

    /// For messages: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            DatabaseLocation::Sqlite(p) => p.display().to_string(),
            DatabaseLocation::Postgres(u) => u.redacted(),
        }
    }
}

/// A server URL; its password never reaches a message.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(pub String);

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgresUrl({})", self.redacted())
    }
}

impl PostgresUrl {
    /// The URL with every password masked (see [`crate::postgres_url::redact`]).
    pub fn redacted(&self) -> String {
        crate::postgres_url::redact(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_locations() {
        assert_eq!(
            DatabaseLocation::parse("/tmp/x.db").unwrap(),
            DatabaseLocation::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            DatabaseLocation::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseLocation::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            DatabaseLocation::parse("postgres://u:p@h:5432/d").unwrap(),
            DatabaseLocation::Postgres(_)
        ));
        assert!(DatabaseLocation::parse("mysql://h/d").is_err());
        assert!(DatabaseLocation::parse("").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let url = PostgresUrl("postgres://me:s3cr3t@db.example:5432/mage?sslmode=require".into());
        assert_eq!(
            url.redacted(),
            "postgres://me:***@db.example:5432/mage?sslmode=require"
        );
        assert_eq!(
            PostgresUrl("postgres://h/d".into()).redacted(),
            "postgres://h/d"
        );
        assert_eq!(
            PostgresUrl("postgres://me@h/d".into()).redacted(),
            "postgres://me@h/d"
        );
        assert_eq!(
            PostgresUrl("postgres://me:p@ss@h/d".into()).redacted(),
            "postgres://me:***@h/d"
        );
    }

    #[test]
    fn default_database_is_inside_the_data_dir() {
        let s = Settings::for_data_dir("/d");
        assert_eq!(
            s.database_location().unwrap(),
            DatabaseLocation::Sqlite("/d/mage-secrets/secrets.db".into())
        );
        assert_eq!(s.key_path(), PathBuf::from("/d/mage-secrets/key"));
    }
}
