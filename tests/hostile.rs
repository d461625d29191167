//! Hostile input: every case ends in a clear error or a correct result, in
//! bounded time and memory, and changes nothing it should not.

use std::time::Instant;

use crate::support::Workspace;

fn render_file(ws: &Workspace, rel: &str) -> crate::support::Run {
    let started = Instant::now();
    let run = ws.run(&["--data-dir", "d", "render", rel]);
    eprintln!("{rel}: {:?}", started.elapsed());
    run
}

#[test]
fn runaway_templates_end_in_clear_errors() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "x");
    let cases = [
        (
            "nested.yaml",
            format!(
                "{}x{}",
                "{% if true %}".repeat(2000),
                "{% endif %}".repeat(2000)
            ),
            "exceeds maximum recursion limits",
        ),
        (
            "parens.yaml",
            format!("a: {{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000)),
            "exceeds maximum recursion limits",
        ),
        (
            "macro.yaml",
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}".to_string(),
            "recursion limit exceeded",
        ),
        (
            "loop.yaml",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
                .to_string(),
            "ran out of fuel",
        ),
        (
            "range.yaml",
            "{% for i in range(1000000000) %}x{% endfor %}".to_string(),
            "range has too many elements",
        ),
        (
            "repeat.yaml",
            "a: {{ 'x' * 1000000000 }}".to_string(),
            "repeated string is too large",
        ),
        (
            "include.yaml",
            "{% include '/etc/passwd' %}".to_string(),
            "{% include %}, {% import %} and {% extends %} are refused",
        ),
        (
            "import.yaml",
            "{% import '../secrets.yaml' as s %}{{ s.x }}".to_string(),
            "are refused",
        ),
        (
            "extends.yaml",
            "{% extends '../../base.yaml' %}".to_string(),
            "are refused",
        ),
    ];
    for (name, text, expected) in &cases {
        ws.write(&format!("h/{name}"), text);
        let out = render_file(&ws, &format!("h/{name}")).code(1);
        assert!(out.stderr.contains(expected), "{name}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!("h/{name}:")),
            "{name}: {}",
            out.stderr
        );
        assert_eq!(out.stdout, "");
    }
    // All at once in a project: every one reported.
    let out = ws
        .run(&["--data-dir", "d", "render", "h", "--out", "o"])
        .code(1);
    assert!(
        out.stderr
            .contains(&format!("{} problem(s) found", cases.len())),
        "{}",
        out.stderr
    );
    assert!(!ws.path("o").exists());
}

#[test]
fn large_files_render_correctly() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "p\"w");
    // 100,000 lines of references (the literal-call path).
    let lines: String = (0..100_000)
        .map(|i| format!("k{i}: \"{{{{ mage_secret_var('pw') }}}}\"\n"))
        .collect();
    ws.write("big/lines.yaml", &lines);
    // About 10 MB of text with a few references and a tag (the engine path).
    let mut ten_mb = String::from("{% if true %}\n");
    for i in 0..80_000 {
        ten_mb.push_str(&format!("key_{i}: \"{}\"\n", "v".repeat(120)));
    }
    ten_mb.push_str("last: \"{{ mage_secret_var('pw') }}\"\n{% endif %}\n");
    ten_mb.push_str("broken: {{ mage_secret_var('missing') }}\n");
    ws.write("big/ten_mb.yaml", &ten_mb);
    let out = render_file(&ws, "big/lines.yaml").ok();
    assert_eq!(out.stdout.lines().count(), 100_000);
    assert_eq!(out.stdout.lines().last(), Some("k99999: \"p\\\"w\""));
    // The missing secret on the last line is placed exactly, past line 65,535.
    let err = render_file(&ws, "big/ten_mb.yaml").code(1);
    assert!(
        err.stderr
            .starts_with("big/ten_mb.yaml:80004:12: error: secret 'missing' is not set"),
        "{}",
        &err.stderr[..300.min(err.stderr.len())]
    );
    ws.set("d", None, "missing", "now set");
    let ok = render_file(&ws, "big/ten_mb.yaml").ok();
    assert!(ok.stdout.len() > 10_000_000);
    assert!(ok.stdout.ends_with("last: \"p\\\"w\"\n\nbroken: now set"));
}

#[test]
fn bytes_that_are_not_text_are_refused() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "x");
    ws.write("b/nul.yaml", b"a: {{ mage_secret_var('pw') }}\x00\n");
    ws.write("b/latin1.yaml", b"a: \xe9t\xe9\n");
    ws.write("b/truncated.yaml", b"a: \xe6\x97\n");
    let out = ws
        .run(&["--data-dir", "d", "render", "b", "--out", "o"])
        .code(1);
    assert!(
        out.stderr.contains("nul.yaml: error: is a binary file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("latin1.yaml:1:4: error: is not valid UTF-8 text"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("truncated.yaml:1:4: error: is not valid UTF-8 text"),
        "{}",
        out.stderr
    );
}

#[test]
fn names_with_sql_metacharacters_are_only_names() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "x");
    let evil = "x'; DROP TABLE secrets; --";
    let out = ws
        .run_with_stdin(&["--data-dir", "d", "set", evil], b"v")
        .code(2);
    assert!(out.stderr.contains("invalid secret name"), "{}", out.stderr);
    ws.write(
        "p/a.yaml",
        format!("a: \"{{{{ mage_secret_var(\"{evil}\") }}}}\"\n"),
    );
    let render = ws.run(&["--data-dir", "d", "render", "p/a.yaml"]).code(1);
    assert!(
        render.stderr.contains("is not a valid secret name"),
        "{}",
        render.stderr
    );
    ws.run(&["--data-dir", "d", "get", "pw"]).ok();
    assert_eq!(
        ws.run(&["--data-dir", "d", "list"])
            .ok()
            .stdout
            .lines()
            .count(),
        2
    );
    let pipeline = ws
        .run_with_stdin(
            &["--data-dir", "d", "set", "t", "--pipeline", "../../etc"],
            b"v",
        )
        .code(2);
    assert!(
        pipeline.stderr.contains("invalid pipeline"),
        "{}",
        pipeline.stderr
    );
}

#[test]
fn paths_with_spaces_and_non_ascii_work() {
    let ws = Workspace::new();
    ws.run_with_stdin(
        &[
            "--data-dir",
            "data dir ü",
            "set",
            "tök",
            "--pipeline",
            "pïpe line",
        ],
        b"pipeline value",
    )
    .code(2);
    ws.run_with_stdin(
        &[
            "--data-dir",
            "data dir ü",
            "set",
            "tok",
            "--pipeline",
            "pïpe line",
        ],
        b"pipeline value",
    )
    .ok();
    ws.write(
        "my project/pipelines/pïpe line/fïle name.yaml",
        "t: \"{{ mage_secret_var('tok') }}\"\n",
    );
    ws.run(&[
        "--data-dir",
        "data dir ü",
        "render",
        "my project",
        "--out",
        "öut put",
    ])
    .ok();
    assert_eq!(
        ws.read("öut put/pipelines/pïpe line/fïle name.yaml"),
        "t: \"pipeline value\""
    );
    ws.run(&["--data-dir", "data dir ü", "check", "my project"])
        .ok();
}
