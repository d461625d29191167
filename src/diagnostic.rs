//! Problems found in a project's files, reported compiler-style:
//! `path:line:col: error: message`, the template line, and a caret. A run
//! collects every diagnostic before deciding its exit code. The quoted line
//! is always template source, never rendered output, so it holds no value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// What kind of problem a diagnostic reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MissingSecret,
    UnsetEnvVar,
    ComputedName,
    /// A filter, test or function that is not Jinja2's, Mage's or ours.
    UnknownName,
    /// A secret name that breaks Mage's rule for names.
    InvalidName,
    Syntax,
    Render,
    Quoting,
    Yaml,
    File,
    Output,
    /// A file Mage does not render mentions a Mage function.
    NotRendered,
    /// The walk left folders or links out.
    Skipped,
}

/// A path in JSON output. JSON strings are Unicode: a name that is not
/// UTF-8 is written with U+FFFD for each byte that does not decode, as the
/// text output shows it.
pub fn serialize_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// [`serialize_path`] for a path that may be absent.
pub fn serialize_opt_path<S: serde::Serializer>(
    path: &Option<PathBuf>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => s.serialize_some(&*path.to_string_lossy()),
        None => s.serialize_none(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: Kind,
    /// Project-relative path of the file, when there is one.
    #[serde(serialize_with = "serialize_opt_path")]
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub col: Option<usize>,
    /// The secret or variable name concerned, when there is one.
    pub name: Option<String>,
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The template source line, for the caret display.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn error(kind: Kind, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            kind,
            file: None,
            line: None,
            col: None,
            name: None,
            message: message.into(),
            help: None,
            source_line: None,
        }
    }

    pub fn warning(kind: Kind, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(kind, message)
        }
    }

    /// The same finding as a warning.
    pub fn into_warning(self) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..self
        }
    }

    pub fn in_file(mut self, file: &Path) -> Diagnostic {
        self.file = Some(file.to_path_buf());
        self
    }

    /// Places the diagnostic at a 1-based line and column of `source`,
    /// keeping that line for the caret display.
    pub fn at(mut self, source: &str, line: usize, col: usize) -> Diagnostic {
        self.line = Some(line);
        self.col = Some(col);
        self.source_line = source
            .split('\n')
            .nth(line.saturating_sub(1))
            .map(|l| l.trim_end_matches('\r').to_string());
        self
    }

    /// Places the diagnostic at a byte offset of `source`.
    pub fn at_offset(self, source: &str, offset: usize) -> Diagnostic {
        let (line, col) = line_col(source, offset);
        self.at(source, line, col)
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn named(mut self, name: &str) -> Diagnostic {
        self.name = Some(name.to_string());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `path:line:col` (as much of it as is known); control characters in
    /// the path are escaped, so a location is always one line.
    pub fn location(&self) -> Option<String> {
        let file = printable(&self.file.as_ref()?.display().to_string());
        Some(match (self.line, self.col) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
            (Some(l), None) => format!("{file}:{l}"),
            _ => file,
        })
    }

    /// The source line and a caret under the column, indented like rustc.
    pub fn snippet(&self) -> Option<String> {
        let text = self.source_line.as_ref()?;
        let line = self.line?;
        let col = self.col.unwrap_or(1);
        let gutter = line.to_string().len();
        // Long lines (minified JSON, say) are cut around the column.
        let chars: Vec<char> = text.chars().collect();
        let start = col.saturating_sub(60).min(chars.len());
        let end = (start + 120).min(chars.len());
        let shown: String = chars[start..end]
            .iter()
            .map(|c| match *c {
                '\t' => ' ',
                // A terminal must not act on the template's control bytes.
                c if c.is_control() => '\u{fffd}',
                c => c,
            })
            .collect();
        let caret_at = col.saturating_sub(1).saturating_sub(start);
        Some(format!(
            "{:gutter$} |\n{line} | {}{shown}\n{:gutter$} | {}^",
            "",
            if start > 0 { "…" } else { "" },
            "",
            " ".repeat(caret_at + usize::from(start > 0)),
        ))
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = self.location() {
            write!(f, "{loc}: ")?;
        }
        write!(f, "{}: {}", self.severity, self.message)
    }
}

/// Text with control characters escaped (`\n`, `\u{1b}`), as Rust's
/// `escape_debug` writes them; everything else as it is.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source.as_bytes()[..offset];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Diagnostics in first-seen order, with every missing-secret error about
/// the same secret gathered behind its first: one secret used in 987 files is
/// one group of 987 places, not 987 errors.
pub fn group_by_secret(diagnostics: &[Diagnostic]) -> Vec<Vec<&Diagnostic>> {
    let mut groups: Vec<Vec<&Diagnostic>> = Vec::new();
    let mut by_name: std::collections::HashMap<(&str, Severity), usize> =
        std::collections::HashMap::new();
    for d in diagnostics {
        let key = match (&d.kind, &d.name) {
            (Kind::MissingSecret, Some(name)) => Some((name.as_str(), d.severity)),
            _ => None,
        };
        match key.and_then(|k| by_name.get(&k).copied()) {
            Some(i) => groups[i].push(d),
            None => {
                if let Some(k) = key {
                    by_name.insert(k, groups.len());
                }
                groups.push(vec![d]);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_secrets_group_by_name_in_first_seen_order() {
        let missing = |name: &str, file: &str| {
            Diagnostic::error(Kind::MissingSecret, format!("secret '{name}'"))
                .named(name)
                .in_file(Path::new(file))
        };
        let all = vec![
            missing("a", "1.yaml"),
            Diagnostic::error(Kind::Syntax, "syntax").in_file(Path::new("2.yaml")),
            missing("b", "2.yaml"),
            missing("a", "3.yaml"),
            Diagnostic::error(Kind::Syntax, "syntax").in_file(Path::new("4.yaml")),
            missing("a", "4.yaml"),
        ];
        let groups = group_by_secret(&all);
        let shape: Vec<(String, usize)> = groups
            .iter()
            .map(|g| (g[0].message.clone(), g.len()))
            .collect();
        assert_eq!(
            shape,
            [
                ("secret 'a'".to_string(), 3),
                ("syntax".to_string(), 1),
                ("secret 'b'".to_string(), 1),
                ("syntax".to_string(), 1),
            ]
        );
        assert_eq!(groups[0][2].file.as_deref(), Some(Path::new("4.yaml")));
    }

    #[test]
    fn locations_are_one_line_whatever_the_path() {
        let d = Diagnostic::error(Kind::Yaml, "x").in_file(Path::new("a\nb\u{1b}[31m.yaml"));
        assert_eq!(d.location().unwrap(), "a\\nb\\u{1b}[31m.yaml");
        assert_eq!(printable("plain ü"), "plain ü");
    }

    #[test]
    fn line_and_column_of_offsets() {
        let src = "a: 1\nbé: {{ x }}\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 5), (2, 1));
        assert_eq!(line_col(src, src.find("{{").unwrap()), (2, 5));
    }

    #[test]
    fn compiler_style_display_with_caret() {
        let src = "a: 1\npw: \"{{ mage_secret_var('pw') }}\"\n";
        let d = Diagnostic::error(Kind::MissingSecret, "secret 'pw' is not set")
            .in_file(Path::new("io_config.yaml"))
            .at(src, 2, 6);
        assert_eq!(
            d.to_string(),
            "io_config.yaml:2:6: error: secret 'pw' is not set"
        );
        assert_eq!(
            d.snippet().unwrap(),
            "  |\n2 | pw: \"{{ mage_secret_var('pw') }}\"\n  |      ^"
        );
    }
}
