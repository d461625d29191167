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
