//! Environments by name, uuid or uuid prefix: the names people give
//! environments (`prod`), the rule they follow, and how `--environment`
//! finds one environment of a database. Pure logic, no I/O.

use crate::error::{Error, Result};

/// An environment of a database: its uuid and optional name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvironmentEntry {
    pub uuid: String,
    pub name: Option<String>,
}

impl EnvironmentEntry {
    /// `prod (3f60c1e2)` or `3f60c1e2`: how tables and lists show it.
    pub fn short(&self) -> String {
        let prefix = &self.uuid[..self.uuid.len().min(8)];
        match &self.name {
            Some(name) => format!("{name} ({prefix})"),
            None => prefix.to_string(),
        }
    }

    /// `prod (3f60c1e2-…)` or the uuid alone: how messages name it.
    pub fn long(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.uuid),
            None => self.uuid.clone(),
        }
    }
}

/// Longest environment name.
pub const MAX_NAME_LEN: usize = 64;

/// Environment names start with a letter, then letters, digits, `_`, `-`,
/// `.`; at most 64 bytes. A name made only of hex digits and `-` is refused:
/// it could also be read as a uuid prefix.
pub fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 64 bytes")
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("it must start with a letter")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        Some("use letters, digits, _, - and .")
    } else if name.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        Some("it could be read as a uuid prefix; add a letter after f (such as prod, dev_b)")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::Usage(format!(
            "invalid environment name '{}': {reason}",
            name.escape_debug()
        ))),
    }
}

/// Finds the environment `query` means: a name, a full uuid (any case,
/// hyphens or not), or a prefix of exactly one uuid. An ambiguous prefix is
/// an error listing the candidates; nothing found lists what there is.
pub fn resolve<'a>(
    query: &str,
    environments: &'a [EnvironmentEntry],
    database: &str,
) -> Result<&'a EnvironmentEntry> {
    if let Some(e) = environments
        .iter()
        .find(|e| e.name.as_deref() == Some(query))
    {
        return Ok(e);
    }
    let wanted = query.to_ascii_lowercase();
    if let Ok(uuid) = uuid::Uuid::parse_str(&wanted) {
        let full = uuid.hyphenated().to_string();
        if let Some(e) = environments.iter().find(|e| e.uuid == full) {
            return Ok(e);
        }
    } else if !wanted.is_empty() && wanted.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        let matches: Vec<&EnvironmentEntry> = environments
            .iter()
            .filter(|e| e.uuid.starts_with(&wanted))
            .collect();
        match matches.as_slice() {
            [one] => return Ok(one),
            [] => {}
            many => {
                return Err(Error::Usage(format!(
                    "--environment '{query}' matches {} environments of database {database}: {}; give more of the uuid, or a name",
                    many.len(),
                    many.iter().map(|e| e.long()).collect::<Vec<_>>().join(", ")
                )))
            }
        }
    }
    Err(Error::NotFound(format!(
        "--environment '{}' names no environment of database {database} (a name, a uuid or a unique uuid prefix); environments there: {}",
        query.escape_debug(),
        if environments.is_empty() {
            "none".to_string()
        } else {
            environments
                .iter()
                .map(|e| e.long())
                .collect::<Vec<_>>()
                .join(", ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<EnvironmentEntry> {
        vec![
            EnvironmentEntry {
                uuid: "ed791792-0000-4000-8000-000000000001".into(),
                name: Some("prod".into()),
            },
            EnvironmentEntry {
                uuid: "ed7a0000-0000-4000-8000-000000000002".into(),
                name: None,
            },
            EnvironmentEntry {
                uuid: "11111111-0000-4000-8000-000000000003".into(),
                name: Some("dev".into()),
            },
        ]
    }

    #[test]
    fn finds_by_name_uuid_and_unique_prefix() {
        let all = entries();
        let uuid = |q: &str| resolve(q, &all, "db").map(|e| e.uuid.clone());
        assert_eq!(uuid("prod").unwrap(), all[0].uuid);
        assert_eq!(uuid("dev").unwrap(), all[2].uuid);
        assert_eq!(
            uuid("ED791792-0000-4000-8000-000000000001").unwrap(),
            all[0].uuid
        );
        assert_eq!(
            uuid("ed791792000040008000000000000001").unwrap(),
            all[0].uuid
        );
        assert_eq!(uuid("ed7917").unwrap(), all[0].uuid);
        assert_eq!(uuid("ed7a").unwrap(), all[1].uuid);
        assert_eq!(uuid("1").unwrap(), all[2].uuid);
    }

    #[test]
    fn ambiguous_prefix_lists_candidates() {
        let all = entries();
        let err = resolve("ed7", &all, "db").unwrap_err().to_string();
        assert!(err.contains("matches 2 environments"), "{err}");
        assert!(err.contains("prod (ed791792-0000"), "{err}");
        assert!(err.contains("ed7a0000-0000"), "{err}");
    }

    #[test]
    fn unknown_lists_what_there_is() {
        let all = entries();
        for q in [
            "staging",
            "ffff",
            "ed791792-0000-4000-8000-00000000000f",
            "",
        ] {
            let err = resolve(q, &all, "db").unwrap_err().to_string();
            assert!(err.contains("names no environment"), "{q}: {err}");
            assert!(err.contains("dev (11111111"), "{err}");
        }
    }

    #[test]
    fn names_follow_the_rule() {
        for ok in ["prod", "dev_b", "eu-west.1", "x"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1prod",
            "pro d",
            "prod/x",
            "dead",
            "cafe-babe",
            "é",
            &"a".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
