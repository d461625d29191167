//! Jinja2 conformance: every case of `tests/jinja2/matrix.json` (Jinja2's
//! builtin filters, tests and globals, Python methods, `%` formatting,
//! printing, loop helpers), rendered by real Jinja2 with Mage's functions
//! stubbed by their contract (`tests/jinja2/generate.py` regenerates it), is
//! rendered through mage-secrets and compared byte for byte. Where Jinja2
//! fails, so must we; where we refuse what Jinja2 renders, the refusal names
//! the construct (and the README lists it) — never a different output.

use crate::support::Workspace;

/// Cases Jinja2 renders and mage-secrets refuses, with the words the error
/// must contain.
const REFUSED: &[(&str, &str)] = &[
    // Jinja2 defers an unknown filter inside a condition to run time; here
    // every filter must be one of Jinja2's, wherever it is.
    ("unknown_filter_in_dead_branch", "unknown filter `nosuch`"),
];

#[derive(serde::Deserialize)]
struct Matrix {
    secrets: std::collections::BTreeMap<String, String>,
    env: std::collections::BTreeMap<String, String>,
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    template: String,
    output: Option<String>,
    error: Option<String>,
}

#[test]
fn every_jinja2_builtin_renders_byte_for_byte_like_jinja2() {
    let matrix: Matrix = serde_json::from_str(include_str!("jinja2/matrix.json")).unwrap();
    let ws = Workspace::new();
    for (name, value) in &matrix.secrets {
        ws.set("d", None, name, value);
    }
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in &matrix.cases {
        let file = format!("{}.txt", case.name);
        ws.write(&file, &case.template);
        let mut cmd = ws.cmd(&["--data-dir", "d", "render", "--raw", &file]);
        for (k, v) in &matrix.env {
            cmd.env(k, v);
        }
        cmd.env_remove("NOPE");
        let out = cmd.output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        // Delimiters in an output are protected from Mage's second Jinja
        // pass (`{{ '{{' }}`, which that pass prints as `{{`; see
        // value_integrity): compare what that pass makes of it.
        let stdout = String::from_utf8_lossy(&out.stdout)
            .replace("{{ '{{' }}", "{{")
            .replace("{{ '{%' }}", "{%")
            .replace("{{ '{#' }}", "{#");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let refused = REFUSED.iter().find(|(n, _)| *n == case.name);
        match (&case.output, &case.error, refused) {
            (Some(_), _, Some((_, words))) => {
                if code != 1 || !stderr.contains(words) {
                    failures.push(format!(
                        "{}: expected a refusal naming {words:?}, got exit {code}\n  stdout: {stdout:?}\n  stderr: {stderr}",
                        case.name
                    ));
                }
            }
            (Some(expected), _, None) => {
                if code != 0 || &stdout != expected {
                    failures.push(format!(
                        "{}: {:?}\n  jinja2: {expected:?}\n  ours:   {stdout:?} (exit {code})\n  stderr: {stderr}",
                        case.name, case.template
                    ));
                }
            }
            (None, Some(error), _) => {
                if code != 1 {
                    failures.push(format!(
                        "{}: Jinja2 fails ({error}); ours exit {code}: {stdout:?} {stderr}",
                        case.name
                    ));
                }
            }
            (None, None, _) => panic!("case {} has neither output nor error", case.name),
        }
        compared += 1;
    }
    assert!(compared >= 200, "the matrix covers {compared} cases");
    assert!(
        failures.is_empty(),
        "{} of {compared} cases differ from Jinja2:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
