//! Shell completion: clap's dynamic completion. The shell's registration
//! script (from `mage-secrets completions SHELL`, or `COMPLETE=SHELL
//! mage-secrets`) calls the binary back at each Tab, so completions always
//! match this binary's arguments, and secret names come from the current
//! environment. Completing reads names only — never a value, never the key —
//! and never creates an environment or a database.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::CompletionCandidate;
use mage_secrets::secret::Scope;
use mage_secrets::settings::DatabaseLocation;
use mage_secrets::store::{self, ScopeFilter};
use mage_secrets::Settings;

/// The variable that switches the binary into completion mode.
pub const VAR: &str = "COMPLETE";

/// Answers a completion request and exits, when the shell asked for one.
pub fn answer_if_asked(factory: fn() -> clap::Command) {
    clap_complete::CompleteEnv::with_factory(factory)
        .var(VAR)
        .complete();
}

/// Writes the registration script for `shell`.
pub fn write_registration(
    shell: clap_complete::Shell,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let Some(completer) = shells.completer(&name) else {
        return Err(std::io::Error::other(format!(
            "no completion support for {name}"
        )));
    };
    completer.write_registration(VAR, "mage-secrets", "mage-secrets", "mage-secrets", out)
}

/// Completes a secret name from the environment the command line names
/// (`--data-dir`, `--database`, `--pipeline`, else their variables and
/// defaults).
pub fn secret_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let words: Vec<OsString> = std::env::args_os().collect();
    let flags = Flags::scan(&words);
    let mut names = names_in(&flags).unwrap_or_default();
    names.retain(|n| n.starts_with(current));
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The options of the line being completed that choose the environment.
#[derive(Debug, Default, PartialEq, Eq)]
struct Flags {
    data_dir: Option<PathBuf>,
    database: Option<String>,
    pipeline: Option<String>,
}

impl Flags {
    fn scan(words: &[OsString]) -> Flags {
        let mut flags = Flags::default();
        let words: Vec<&str> = words.iter().filter_map(|w| w.to_str()).collect();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            for (flag, slot) in [("--data-dir", 0), ("--database", 1), ("--pipeline", 2)] {
                let value = if word == flag {
                    words.get(i + 1).map(|v| v.to_string())
                } else {
                    word.strip_prefix(flag)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(str::to_string)
                };
                if let Some(value) = value {
                    match slot {
                        0 => flags.data_dir = Some(PathBuf::from(value)),
                        1 => flags.database = Some(value),
                        _ => flags.pipeline = Some(value),
                    }
                }
            }
            i += 1;
        }
        flags
    }
}

/// Names visible from the scope (pipeline and global), without creating
/// anything: no uuid file or no database file means no names.
fn names_in(flags: &Flags) -> Option<Vec<String>> {
    let settings = Settings::resolve(flags.data_dir.clone(), flags.database.clone()).ok()?;
    let uuid = std::fs::read_to_string(settings.uuid_path()).ok()?;
    let uuid = uuid.trim();
    uuid::Uuid::parse_str(uuid).ok()?;
    let location = settings.database_location().ok()?;
    if let DatabaseLocation::Sqlite(path) = &location {
        if !path.is_file() {
            return None;
        }
    }
    let store = store::open_existing(&location).ok()?;
    let scope = Scope::from_pipeline(flags.pipeline.as_deref()).ok()?;
    let mut names = Vec::new();
    for scope in scope.chain() {
        names.extend(
            store
                .list(uuid, &ScopeFilter::One(scope))
                .ok()?
                .into_iter()
                .map(|info| info.name),
        );
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(words: &[&str]) -> Flags {
        Flags::scan(&words.iter().map(OsString::from).collect::<Vec<_>>())
    }

    #[test]
    fn flags_are_read_in_both_spellings() {
        assert_eq!(
            scan(&[
                "mage-secrets",
                "--data-dir",
                "d",
                "get",
                "--pipeline=etl",
                "x"
            ]),
            Flags {
                data_dir: Some("d".into()),
                database: None,
                pipeline: Some("etl".into())
            }
        );
        assert_eq!(
            scan(&["mage-secrets", "--database=s.db", "get", "--data-dir"]),
            Flags {
                data_dir: None,
                database: Some("s.db".into()),
                pipeline: None
            }
        );
    }
}
