//! Output that scales: a missing secret used in many files is one error
//! with a count and the first places; -v lists every place; json keeps all.

use crate::support::Workspace;

fn project(ws: &Workspace) {
    ws.set("d", None, "present", "1");
    for i in 0..6 {
        ws.write(
            &format!("p/pipelines/f{i}/metadata.yaml"),
            "executor_type: \"{{ mage_secret_var('gone') }}\"\n",
        );
    }
    ws.write(
        "p/io_config.yaml",
        "b: \"{{ mage_secret_var('other') }}\"\n",
    );
}

#[test]
fn check_gives_one_error_per_missing_secret_with_its_places() {
    let ws = Workspace::new();
    project(&ws);
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect();
    assert_eq!(errors.len(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("secret 'gone' is not set")
            && out.stderr.contains("(used in 6 places)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("and 2 more (-v lists every place)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .contains("'other' is not set in environment d (used in"),
        "{}",
        out.stderr
    );

    let verbose = ws.run(&["--data-dir", "d", "-v", "check", "p"]).code(1);
    for i in 0..6 {
        assert!(
            verbose
                .stderr
                .contains(&format!("pipelines/f{i}/metadata.yaml:1:")),
            "f{i}: {}",
            verbose.stderr
        );
    }
    let json = ws
        .run(&["--data-dir", "d", "check", "p", "--format", "json"])
        .code(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let gone = doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "gone")
        .count();
    assert_eq!(gone, 6, "json keeps every place");
}

#[test]
fn render_groups_missing_secrets_too() {
    let ws = Workspace::new();
    project(&ws);
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "build"])
        .code(1);
    let gone = out
        .stderr
        .lines()
        .filter(|l| l.contains("error: secret 'gone'"))
        .count();
    assert_eq!(gone, 1, "{}", out.stderr);
    assert!(out.stderr.contains("(used in 6 places)"), "{}", out.stderr);
    assert!(!ws.path("build").exists());
}
