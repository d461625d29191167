//! Which database an environment lives in. A data dir records, in
//! `<data dir>/mage-secrets/database`, where the database that holds its
//! environment is (an absolute SQLite path, or a PostgreSQL URL without its
//! password). Using the environment with another database — a forgotten
//! `--database`, a relative path run from elsewhere — is refused before
//! anything is opened or created, so an environment is never split across
//! two databases and no empty database appears by accident.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{self, Existing};
use crate::settings::{DatabaseLocation, Settings};

const HEADER: &str = "# The database of this mage-secrets environment (never a password).\n# mage-secrets refuses to use the environment with another database; if the\n# database moved, write its new place on the next line.\n";

/// Where the record lives.
pub fn record_path(settings: &Settings) -> PathBuf {
    settings.own_dir().join("database")
}

/// A database's place as recorded: an absolute SQLite path, or the URL
/// without its password.
pub fn describe(location: &DatabaseLocation) -> String {
    match location {
        DatabaseLocation::Sqlite(path) => crate::project::absolute(path).display().to_string(),
        DatabaseLocation::Postgres(url) => url.redacted(),
    }
}

/// The recorded place, if the data dir has a record.
pub fn read(settings: &Settings) -> Result<Option<String>> {
    let path = record_path(settings);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path, e)),
    }
}

/// Refuses `location` when the data dir records another database.
pub fn check(settings: &Settings, location: &DatabaseLocation) -> Result<()> {
    let Some(recorded) = read(settings)? else {
        return Ok(());
    };
    let current = describe(location);
    if same_database(&recorded, &current) {
        return Ok(());
    }
    Err(Error::Setup(format!(
        "the environment of data dir {} lives in database {recorded}, but this run uses {current}; pass --database {} (or set MAGE_SECRETS_DATABASE to it). If that database moved, write its new place into {}",
        settings.data_dir.display(),
        shell_word(&recorded),
        record_path(settings).display()
    )))
}

/// Whether two recorded places name one database. A PostgreSQL URL may
/// rightly change its role, port (a pooler or proxy) or options while naming
/// the same database, so PostgreSQL places are compared by database name.
pub fn same_database(recorded: &str, current: &str) -> bool {
    match (postgres_database(recorded), postgres_database(current)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => recorded == current,
        _ => false,
    }
}

/// The database name of a PostgreSQL URL.
fn postgres_database(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    Some(path.split(['?', '#']).next().unwrap_or(""))
}

fn shell_word(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Records `location` as the environment's database, unless a record is there.
pub fn record(settings: &Settings, location: &DatabaseLocation) -> Result<()> {
    let path = record_path(settings);
    let text = format!("{HEADER}{}\n", describe(location));
    match fsutil::write_atomic(&path, text.as_bytes(), 0o600, Existing::Keep) {
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Whether `path` holds a record (for `doctor`).
pub fn exists(settings: &Settings) -> bool {
    Path::new(&record_path(settings)).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_is_refused_naming_the_recorded_one() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::for_data_dir(dir.path());
        fs::create_dir_all(settings.own_dir()).unwrap();
        let own = DatabaseLocation::Sqlite(settings.own_dir().join("secrets.db"));
        check(&settings, &own).unwrap();
        record(&settings, &own).unwrap();
        check(&settings, &own).unwrap();
        let other = DatabaseLocation::Sqlite(dir.path().join("other db.db"));
        let err = check(&settings, &other).unwrap_err().to_string();
        assert!(err.contains("lives in database"), "{err}");
        assert!(err.contains("--database /"), "{err}");
        assert!(err.contains("other db.db"), "{err}");
        let pg = DatabaseLocation::parse("postgres://u:hunter2@h/db").unwrap();
        let err = check(&settings, &pg).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(same_database(
            "postgres://a:***@h:1/db?x=1",
            "postgres://b@proxy:2/db"
        ));
        assert!(!same_database("postgres://h/db", "postgres://h/other"));
        assert!(!same_database("postgres://h/db", "/x/db"));
        // The first record stays.
        record(&settings, &other).unwrap();
        check(&settings, &own).unwrap();
    }
}
