//! Reviewing a render without seeing a value: `render --diff` shows each
//! change as a unified diff in which every substituted value is masked
//! (`‹secret NAME›`, `‹env NAME›`).
//!
//! The new side comes from a second render whose secrets and variables are
//! their masks, line for line beside the real one. The old side is the
//! output on disk, which may hold earlier values nobody can name any more:
//! an old line is shown only when the new render has the same line free of
//! any substituted value (so it is template text); any other old line is
//! shown as a mask.

use std::collections::HashSet;
use std::sync::Arc;

use similar::{ChangeTag, TextDiff};

use crate::environment::Environment;
use crate::secret::Scope;
use crate::secret::SecretValue;
use crate::template::{Engine, EnvVars, SecretSource};

/// What an old line that may hold an earlier value is shown as.
pub const HIDDEN_LINE: &str = "‹earlier line, not shown: it may hold a value›";

struct MaskedSecrets(Environment);

impl SecretSource for MaskedSecrets {
    fn lookup(&self, chain: &[Scope], name: &str) -> crate::Result<Option<Arc<SecretValue>>> {
        Ok(self
            .0
            .lookup(chain, name)?
            .map(|_| Arc::new(SecretValue::new(format!("‹secret {name}›")))))
    }

    fn environment(&self) -> &str {
        self.0.uuid()
    }
}

struct MaskedEnv;

impl EnvVars for MaskedEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|_| format!("‹env {name}›"))
    }
}

/// An engine that renders every secret and variable as its mask.
pub fn masked_engine(env: &Environment) -> Engine {
    Engine::new(Arc::new(MaskedSecrets(env.clone())), Arc::new(MaskedEnv))
}

/// A unified diff (3 lines of context) from `old` (absent: a new file) to
/// `new`, shown through `masked` (the same output with masks).
pub fn unified_diff(label: &str, old: Option<&[u8]>, new: &str, masked: &str) -> String {
    let old_text = old.map(String::from_utf8_lossy).unwrap_or_default();
    let new_lines: Vec<&str> = new.split_inclusive('\n').collect();
    let masked_lines: Vec<&str> = masked.split_inclusive('\n').collect();
    let mut out = format!(
        "--- {}\n+++ {label}\n",
        if old.is_some() { label } else { "/dev/null" }
    );
    if new_lines.len() != masked_lines.len() {
        // Multi-line values: lines cannot be paired, so show the masked
        // file whole.
        out.push_str(&format!(
            "@@ -1 +1,{} @@ (values span lines: the whole new file, masked)\n",
            masked_lines.len()
        ));
        for line in &masked_lines {
            push_line(&mut out, '+', line);
        }
        return out;
    }
    // Old lines that are certainly template text: new lines without values.
    let plain: HashSet<&str> = new_lines
        .iter()
        .zip(&masked_lines)
        .filter(|(n, m)| n == m)
        .map(|(n, _)| *n)
        .collect();
    let diff = TextDiff::from_lines(old_text.as_ref(), new);
    for group in diff.grouped_ops(3) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let old_range = first.old_range().start..last.old_range().end;
        let new_range = first.new_range().start..last.new_range().end;
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            hunk_range(old_range.start, old_range.len()),
            hunk_range(new_range.start, new_range.len())
        ));
        for op in &group {
            for change in diff.iter_changes(op) {
                match change.tag() {
                    ChangeTag::Equal | ChangeTag::Insert => {
                        let sign = if change.tag() == ChangeTag::Equal {
                            ' '
                        } else {
                            '+'
                        };
                        let line = change
                            .new_index()
                            .and_then(|i| masked_lines.get(i))
                            .copied()
                            .unwrap_or("");
                        push_line(&mut out, sign, line);
                    }
                    ChangeTag::Delete => {
                        let line = change.value();
                        if plain.contains(line) {
                            push_line(&mut out, '-', line);
                        } else {
                            push_line(&mut out, '-', HIDDEN_LINE);
                        }
                    }
                }
            }
        }
    }
    out
}

fn hunk_range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{len}", start + 1),
    }
}

fn push_line(out: &mut String, sign: char, line: &str) {
    out.push(sign);
    out.push_str(line.trim_end_matches('\n').trim_end_matches('\r'));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_values_show_as_masks_and_old_values_never() {
        let old = b"host: db\npassword: old-value\nport: 1\n";
        let new = "host: db\npassword: new-value\nport: 2\n";
        let masked = "host: db\npassword: \u{2039}secret pw\u{203a}\nport: 2\n";
        let diff = unified_diff("build/io.yaml", Some(old), new, masked);
        assert!(!diff.contains("old-value"), "{diff}");
        assert!(!diff.contains("new-value"), "{diff}");
        assert!(diff.contains("+password: ‹secret pw›"), "{diff}");
        assert!(diff.contains(&format!("-{HIDDEN_LINE}")), "{diff}");
        assert!(diff.contains(" host: db"), "{diff}");
        assert!(diff.contains("+port: 2"), "{diff}");
    }

    #[test]
    fn new_files_and_multi_line_values() {
        let diff = unified_diff("o/a.yaml", None, "a: 1\n", "a: 1\n");
        assert!(diff.starts_with("--- /dev/null\n+++ o/a.yaml\n"));
        assert!(diff.contains("+a: 1\n"));
        let diff = unified_diff(
            "o/a.yaml",
            Some(b"k: x\n"),
            "k: |\n  l1\n  l2\n",
            "k: ‹secret c›\n",
        );
        assert!(!diff.contains("l1"), "{diff}");
        assert!(diff.contains("+k: ‹secret c›"), "{diff}");
    }
}
