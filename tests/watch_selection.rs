//! `watch` keeps Mage's file selection as `render` does: a watched
//! subfolder, a dbt project that appears, a dbt_project file that comes or
//! goes.

use std::fs;

use crate::support::Workspace;
use crate::watch::{read, wait_for, Watcher};

#[test]
fn watch_writes_what_render_writes_for_a_subfolder_and_a_new_dbt_project() {
    let ws = Workspace::new();
    ws.set("d", None, "ns", "ns-SECRET");
    ws.write("p/io_config.yaml", "default: {}\n");
    ws.write(
        "p/pipelines/etl/metadata.yaml",
        "executor_config:\n  namespace: \"{{ mage_secret_var('ns') }}\"\n",
    );
    ws.write(
        "p/pipelines/etl/triggers.yaml",
        "token: \"{{ mage_secret_var('ns') }}\"\n",
    );
    // A subfolder keeps the project's rules and layout, as `render` does.
    let w = Watcher::start_at(&ws, "p/pipelines/etl", &[], &[]);
    assert!(
        w.log().contains("Mage does not render"),
        "the warning at start: {}",
        w.log()
    );
    drop(w);
    assert!(ws
        .read("build/pipelines/etl/metadata.yaml")
        .contains("ns-SECRET"));
    assert_eq!(
        ws.read("build/pipelines/etl/triggers.yaml"),
        "token: \"{{ mage_secret_var('ns') }}\"\n"
    );
    assert!(!ws.path("build/metadata.yaml").exists());
    // A dbt project that appears while watching: its files come as copies.
    let w = Watcher::start(&ws, &[]);
    ws.write("tmp/shop/dbt_project.yml", "name: shop\n");
    ws.write("tmp/shop/models/schema.yml", "x: \"{{ var('v') }}\"\n");
    fs::rename(ws.path("tmp/shop"), ws.path("p/shop")).unwrap();
    wait_for(
        "the dbt project's copies",
        || ws.path("build/shop/models/schema.yml").is_file(),
        || w.log(),
    );
    assert_eq!(
        ws.read("build/shop/models/schema.yml"),
        "x: \"{{ var('v') }}\"\n"
    );
    assert_eq!(ws.read("build/shop/dbt_project.yml"), "name: shop\n");
}

#[test]
fn a_dbt_project_file_that_comes_or_goes_resorts_its_folder_as_render_would() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "pw-SECRET");
    ws.write("p/io_config.yaml", "default: {}\n");
    let profiles = "p:\n  password: \"{{ mage_secret_var('pw') }}\"\n";
    ws.write("p/dbt/new/profiles.yml", profiles);
    ws.write("p/dbt/old/profiles.yml", profiles);
    ws.write("p/dbt/old/dbt_project.yml", "name: old\n");
    let w = Watcher::start(&ws, &[]);
    assert_eq!(ws.read("build/dbt/new/profiles.yml"), profiles);
    assert!(ws.read("build/dbt/old/profiles.yml").contains("pw-SECRET"));
    // new becomes a dbt project (its profiles.yml is Mage's); old stops
    // being one (its profiles.yml is copied, the value gone).
    ws.write("p/dbt/new/dbt_project.yml", "name: new\n");
    fs::remove_file(ws.path("p/dbt/old/dbt_project.yml")).unwrap();
    wait_for(
        "both folders sorted again",
        || {
            read(&ws, "build/dbt/new/profiles.yml").is_some_and(|t| t.contains("pw-SECRET"))
                && read(&ws, "build/dbt/old/profiles.yml").as_deref() == Some(profiles)
        },
        || w.log(),
    );
    let (code, log) = w.stop();
    assert_eq!(code, 0, "{log}");
    // What render writes.
    let dry = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "build",
            "--dry-run",
        ])
        .ok();
    assert!(
        dry.stdout
            .lines()
            .all(|l| l.starts_with("unchanged") || l.is_empty()),
        "{}",
        dry.stdout
    );
    assert!(!ws.path("build/dbt/old/dbt_project.yml").exists());
}
