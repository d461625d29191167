//! What a secret is, independent of where it is stored: its name, the scope it
//! lives in, and the limits on its value. Every entry point validates through
//! here, so the store never sees a name Mage would reject.

use std::fmt;

use zeroize::Zeroizing;

use crate::error::Error;

/// Longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// Checks a secret name against Mage's rule `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("it is longer than 255 bytes")
    } else if name.as_bytes()[0].is_ascii_digit() {
        Some("it starts with a digit")
    } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Some("only letters, digits and '_' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            name: printable(name),
            reason,
        }),
    }
}

/// Checks a value's size; values may be empty.
pub fn validate_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge { size: value.len() });
    }
    Ok(())
}

/// A name shortened and stripped of control characters so that it can be
/// shown in a one-line message.
fn printable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if name.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// A decrypted secret value, wiped from memory when dropped. Its `Debug`
/// output never shows the value.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: String) -> SecretValue {
        SecretValue(Zeroizing::new(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(..)")
    }
}

/// Where a secret is visible: the whole project, or one pipeline's files.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    Pipeline(String),
}

impl Scope {
    /// Scope for `--pipeline P` (or none).
    pub fn from_pipeline(pipeline: Option<&str>) -> Result<Scope, Error> {
        match pipeline {
            None => Ok(Scope::Global),
            Some(p) => {
                validate_pipeline(p)?;
                Ok(Scope::Pipeline(p.to_string()))
            }
        }
    }

    /// Parses the stored form (`global` or `pipeline:<uuid>`).
    pub fn parse(text: &str) -> Option<Scope> {
        if text == "global" {
            Some(Scope::Global)
        } else {
            text.strip_prefix("pipeline:")
                .filter(|p| validate_pipeline(p).is_ok())
                .map(|p| Scope::Pipeline(p.to_string()))
        }
    }

    /// The scopes a lookup from this scope searches, most specific first.
    pub fn chain(&self) -> Vec<Scope> {
        match self {
            Scope::Global => vec![Scope::Global],
            Scope::Pipeline(_) => vec![self.clone(), Scope::Global],
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("global"),
            Scope::Pipeline(p) => write!(f, "pipeline:{p}"),
        }
    }
}

/// Pipeline uuids are folder names under `pipelines/`: no separators, not
/// empty, not `.` or `..`, no control characters.
fn validate_pipeline(p: &str) -> Result<(), Error> {
    let ok = !p.is_empty()
        && p.len() <= MAX_NAME_LEN
        && p != "."
        && p != ".."
        && !p.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid pipeline '{}': expected the name of a folder under pipelines/",
            printable(p)
        )))
    }
}

/// Formats a scope chain for messages: `pipeline:etl, global`.
pub fn describe_chain(chain: &[Scope]) -> String {
    chain
        .iter()
        .map(Scope::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mages_rule() {
        for ok in ["a", "_", "secret1", "PG_PASSWORD", "_x9"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "a-b", "a b", "é", "a.b", "a'b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name(&"a".repeat(255)).is_ok());
        assert!(validate_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn values_up_to_one_mib() {
        assert!(validate_value(b"").is_ok());
        assert!(validate_value(&vec![b'x'; MAX_VALUE_LEN]).is_ok());
        assert!(validate_value(&vec![b'x'; MAX_VALUE_LEN + 1]).is_err());
    }

    #[test]
    fn scopes_round_trip_and_chain() {
        let p = Scope::from_pipeline(Some("etl")).unwrap();
        assert_eq!(p.to_string(), "pipeline:etl");
        assert_eq!(Scope::parse("pipeline:etl"), Some(p.clone()));
        assert_eq!(Scope::parse("global"), Some(Scope::Global));
        assert_eq!(Scope::parse("nope"), None);
        assert_eq!(p.chain(), vec![p.clone(), Scope::Global]);
        assert_eq!(describe_chain(&p.chain()), "pipeline:etl, global");
        assert!(Scope::from_pipeline(Some("../x")).is_err());
        assert!(Scope::from_pipeline(Some("")).is_err());
    }
}
