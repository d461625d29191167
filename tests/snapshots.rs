//! Help text and diagnostics, as users see them (insta snapshots in
//! tests/snapshots/; review changes with `cargo insta review`).

use crate::support::Workspace;

#[test]
fn top_level_help() {
    let ws = Workspace::new();
    insta::assert_snapshot!(ws.run(&["--help"]).ok().stdout);
}

#[test]
fn render_help() {
    let ws = Workspace::new();
    insta::assert_snapshot!(ws.run(&["render", "--help"]).ok().stdout);
}

/// Each command's own help opens with the line the command list gives it
/// (a subcommand's arguments are built when it runs, and a doc comment on
/// a struct of flags flattened into it would take that line's place).
#[test]
fn every_command_help_opens_with_its_line_in_the_command_list() {
    let ws = Workspace::new();
    let top = ws.run(&["--help"]).ok().stdout;
    let listed: Vec<(String, String)> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.trim().split_once(char::is_whitespace))
        .map(|(name, about)| (name.to_string(), about.trim().to_string()))
        .filter(|(name, _)| name != "help")
        .collect();
    assert!(listed.len() >= 14, "{top}");
    for (name, about) in &listed {
        let help = ws.run(&[name, "-h"]).ok().stdout;
        assert_eq!(help.lines().next(), Some(about.as_str()), "{name}");
    }
}

#[test]
fn diagnostics_for_a_broken_project() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "value: with colon");
    ws.write(
        "p/io_config.yaml",
        "default:\n  password: {{ mage_secret_var('pw') }}\n",
    );
    ws.write(
        "p/data_loaders/broken.yaml",
        "user: '{{ mage_secret_var('pw' }}'\n",
    );
    ws.write(
        "p/pipelines/etl/metadata.yaml",
        "executor_type: \"{{ mage_secret_var('etl_token') }}\"\n",
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "build"])
        .code(1);
    let uuid = ws.read("d/mage-secrets/uuid");
    insta::assert_snapshot!(out.stderr.replace(uuid.trim(), "<uuid>"));
}
