//! Which names a template may use. Filters and tests must be Jinja2's own
//! (Mage renders with Jinja2, which refuses any other with
//! `TemplateAssertionError`); a called name must be ours, one of Jinja2's
//! globals, one of the names Mage passes at run time, one the template binds
//! itself, or one the user allows (`--allow-unknown NAME`). Anything else is a
//! typo that Mage would render as an error or `None` at run time, so it is
//! an error here, with the nearest known name.

use minijinja::machinery::{Span, Token};

use crate::diagnostic::{Diagnostic, Kind};

use super::analysis::{Analysis, Function};
use super::jinja2;

/// The names a template uses as filters, tests and functions, each with the
/// byte offset of its first use, and the names it binds itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameUses {
    pub filters: Vec<(String, usize)>,
    pub tests: Vec<(String, usize)>,
    /// `name(…)` where `name` is a bare name other than ours.
    pub calls: Vec<(String, usize)>,
    /// Names the template binds (`set`, `for`, `macro` and its parameters,
    /// `with`, imports, keyword arguments): calling one of them is fine.
    pub declared: std::collections::HashSet<String>,
}

/// Jinja2 keywords that may stand before `(` without being a call.
const KEYWORDS: &[&str] = &[
    "if",
    "elif",
    "else",
    "for",
    "in",
    "and",
    "or",
    "not",
    "is",
    "call",
    "recursive",
    "set",
    "with",
    "macro",
    "filter",
    "block",
    "import",
    "from",
    "as",
    "include",
    "extends",
    "print",
    "do",
    "autoescape",
    "true",
    "false",
    "none",
    "True",
    "False",
    "None",
];

pub(super) fn collect_uses(tokens: &[(Token<'_>, Span)], is_block: bool, uses: &mut NameUses) {
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(n), _)) => Some(*n),
        _ => None,
    };
    let offset = |i: usize| tokens[i].1.start_offset as usize;
    let note = |list: &mut Vec<(String, usize)>, name: &str, at: usize| {
        if !list.iter().any(|(n, _)| n == name) {
            list.push((name.to_string(), at));
        }
    };
    let head = if is_block { ident(0) } else { None };
    // Bindings.
    match head {
        Some("set" | "for") => {
            for (t, _) in &tokens[1..] {
                match t {
                    Token::Ident("in") | Token::Assign => break,
                    Token::Ident(n) => {
                        uses.declared.insert((*n).to_string());
                    }
                    _ => {}
                }
            }
        }
        Some("macro") => {
            for (t, _) in &tokens[1..] {
                if let Token::Ident(n) = t {
                    uses.declared.insert((*n).to_string());
                }
            }
        }
        Some("import" | "from") => {
            for (t, _) in &tokens[1..] {
                if let Token::Ident(n) = t {
                    uses.declared.insert((*n).to_string());
                }
            }
        }
        Some("filter") => {
            if let Some(name) = ident(1) {
                note(&mut uses.filters, name, offset(1));
            }
        }
        _ => {}
    }
    for i in 0..tokens.len() {
        let Some(name) = ident(i) else { continue };
        let prev = i.checked_sub(1).map(|p| &tokens[p].0);
        if matches!(tokens.get(i + 1), Some((Token::Assign, _))) {
            uses.declared.insert(name.to_string());
        }
        match prev {
            Some(Token::Pipe) => {
                note(&mut uses.filters, name, offset(i));
                continue;
            }
            Some(Token::Ident("is")) if name != "not" => {
                note(&mut uses.tests, name, offset(i));
                continue;
            }
            Some(Token::Ident("not")) if i >= 2 && ident(i - 2) == Some("is") => {
                note(&mut uses.tests, name, offset(i));
                continue;
            }
            Some(Token::Dot) => continue,
            Some(Token::Ident("macro")) => continue,
            _ => {}
        }
        let called = matches!(tokens.get(i + 1), Some((Token::ParenOpen, _)));
        if called && !KEYWORDS.contains(&name) && Function::from_ident(name).is_none() {
            note(&mut uses.calls, name, offset(i));
        }
    }
}

/// Mage's template functions, which this crate evaluates.
pub const OURS: &[&str] = &["mage_secret_var", "env_var", "json_value"];

/// The callable names Mage passes only at run time (kept for Mage to
/// evaluate): `variables` and `n_days_ago` (pipeline and data-integration
/// config), `block_output` (block content), the cloud secret managers'
/// `aws_secret_var`, `azure_secret_var` and `gcp_secret_var`
/// (`get_template_vars_no_db`), and the Python modules block content gets
/// (`datetime`, `inflection`, `json`, `math`).
pub const MAGE_RUNTIME: &[&str] = &[
    "variables",
    "n_days_ago",
    "block_output",
    "aws_secret_var",
    "azure_secret_var",
    "gcp_secret_var",
    "datetime",
    "inflection",
    "json",
    "math",
];

/// Names Jinja2 binds inside macros, call blocks, loops and blocks.
const CONTEXT: &[&str] = &["caller", "loop", "super", "self", "varargs", "kwargs"];

/// The problems with the filters, tests and called names of a template,
/// placed in `source`.
pub fn problems(source: &str, analysis: &Analysis, allow_unknown: &[String]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let uses = &analysis.uses;
    for (name, offset) in &uses.filters {
        if jinja2::FILTERS.contains(&name.as_str()) {
            continue;
        }
        let d = Diagnostic::error(
            Kind::UnknownName,
            format!("unknown filter `{name}`: Jinja2, which Mage renders with, has no such filter"),
        );
        let d = match jinja2::foreign_filter(name) {
            Some(instead) => d.with_help(format!("write it as {instead}")),
            None => match nearest(name, jinja2::FILTERS.iter().copied()) {
                Some(near) => d.with_help(format!("did you mean `{near}`?")),
                None => d,
            },
        };
        out.push(d.at_offset(source, *offset));
    }
    for (name, offset) in &uses.tests {
        if jinja2::TESTS.contains(&name.as_str()) {
            continue;
        }
        let d = Diagnostic::error(
            Kind::UnknownName,
            format!("unknown test `{name}`: Jinja2, which Mage renders with, has no such test"),
        );
        let d = match jinja2::foreign_test(name) {
            Some(instead) => d.with_help(format!("write it as {instead}")),
            None => match nearest(name, jinja2::TESTS.iter().copied()) {
                Some(near) => d.with_help(format!("did you mean `{near}`?")),
                None => d,
            },
        };
        out.push(d.at_offset(source, *offset));
    }
    for (name, offset) in &uses.calls {
        let known = OURS.contains(&name.as_str())
            || jinja2::GLOBALS.contains(&name.as_str())
            || MAGE_RUNTIME.contains(&name.as_str())
            || CONTEXT.contains(&name.as_str())
            || uses.declared.contains(name)
            || allow_unknown.iter().any(|a| a == name);
        if known {
            continue;
        }
        let candidates = OURS
            .iter()
            .chain(jinja2::GLOBALS)
            .chain(MAGE_RUNTIME)
            .copied();
        let mut d = Diagnostic::error(
            Kind::UnknownName,
            format!(
                "unknown function `{name}`: neither Mage's (mage_secret_var, env_var, json_value, or one Mage passes at run time) nor Jinja2's"
            ),
        );
        let allow = format!(
            "if your Mage deployment provides `{name}` at run time, pass --allow-unknown {name}"
        );
        d = match nearest(name, candidates) {
            Some(near) => d.with_help(format!("did you mean `{near}`? ({allow})")),
            None => d.with_help(allow),
        };
        out.push(d.named(name).at_offset(source, *offset));
    }
    out.sort_by_key(|d| (d.line, d.col));
    out
}

/// The known name closest to `name`, when it is close enough to be a typo.
fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let mut score = strsim::jaro_winkler(name, c);
        // A prefix of a known name (`mage_secret`, `env`) is a likely typo.
        if c.starts_with(name) && name.len() >= 3 {
            score = score.max(0.9);
        }
        if best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.filter(|(score, _)| *score >= 0.8).map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(src: &str) -> Vec<String> {
        let analysis = Analysis::of(src).unwrap();
        problems(src, &analysis, &[])
            .iter()
            .map(|d| format!("{} | {}", d.message, d.help.clone().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn typos_of_our_functions_suggest_them() {
        let m = messages(
            "a: {{ mage_secret('pw') }}\nb: {{ mage_secrets_var('x') }}\nc: {{ env('H') }}\n",
        );
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(
            m[0].contains("unknown function `mage_secret`")
                && m[0].contains("did you mean `mage_secret_var`?"),
            "{m:?}"
        );
        assert!(m[1].contains("did you mean `mage_secret_var`?"), "{m:?}");
        assert!(m[2].contains("did you mean `env_var`?"), "{m:?}");
    }

    #[test]
    fn known_and_bound_names_pass() {
        let src = "{% macro m(x) %}{{ caller() }}{% endmacro %}{% set f = cycler('a') %}\
                   {{ m(1) }}{{ variables('x') }}{{ n_days_ago(1) }}{{ range(3)|join }}\
                   {{ joiner()() }}{{ lipsum() }}{{ x.strip() }}{{ 'a' is string }}\
                   {% for i in [1] recursive %}{{ loop([]) }}{% endfor %}{{ aws_secret_var('k') }}";
        assert_eq!(messages(src), Vec::<String>::new());
    }

    #[test]
    fn cycler_and_joiner_do_not_make_runtime_names_ours() {
        // Mage's runtime names are known (kept for Mage), not evaluated here.
        for n in MAGE_RUNTIME {
            assert!(!OURS.contains(n) && !jinja2::GLOBALS.contains(n));
        }
    }

    #[test]
    fn foreign_filters_and_tests_are_named_with_their_jinja2_spelling() {
        let m = messages("{{ x|split(',') }}{{ y is startingwith('a') }}{% if false %}{{ z|nosuch }}{% endif %}{% filter lines %}{% endfilter %}");
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(
            m.iter()
                .any(|x| x.contains("unknown filter `split`") && x.contains("`x.split(',')`")),
            "{m:?}"
        );
        assert!(
            m.iter()
                .any(|x| x.contains("unknown test `startingwith`") && x.contains("startswith")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|x| x.contains("unknown filter `nosuch`")),
            "{m:?}"
        );
        assert!(
            m.iter().any(|x| x.contains("unknown filter `lines`")),
            "{m:?}"
        );
    }

    #[test]
    fn allowed_names_pass() {
        let src = "{{ my_helper(1) }}";
        let analysis = Analysis::of(src).unwrap();
        assert_eq!(problems(src, &analysis, &[]).len(), 1);
        assert!(problems(src, &analysis, &["my_helper".to_string()]).is_empty());
    }
}
