//! Render what Mage renders: a dbt project's own files belong to dbt, a
//! data-integration block is Mage's, and the walk says what it skips.

use std::fs;

use crate::support::Workspace;

const DBT_PROJECT: &str = r#"
# Name your project! Project names should contain only lowercase characters
# and underscores.
name: 'demo'
version: '1.0.0'
config-version: 2

# This setting configures which "profile" dbt uses for this project.
profile: 'demo'
target-path: "{{ env_var('DBT_TARGET_PATH', 'target') }}"

model-paths: ["models"]

# Configuring models
# Full documentation: https://docs.getdbt.com/docs/configuring-models

# In this example config, we tell dbt to build all models in the example/
# directory as views. These settings can be overridden in the individual model
# files using the `{{ config(...) }}` macro.
models:
  demo:
    # Config indicated by + and applies to all files under models/example/
    example:
      +materialized: view
"#;

const SCHEMA: &str = r#"
version: 2

models:
  - name: my_first_dbt_model
    description: "A starter dbt model"
    columns:
      - name: id
        tests:
          - accepted_values:
              values: "{{ var('payment_type_values') }}"
  - name: my_second_dbt_model
    description: "{{ ref('my_first_dbt_model') }}"
"#;

const PROFILES: &str = r#"demo:
  target: dev
  outputs:
    dev:
      type: postgres
      host: localhost
      user: "{{ mage_secret_var('dbt_user') }}"
      password: "{{ mage_secret_var('dbt_password') }}"
      threads: {{ env_var('DBT_THREADS', '4') }}
      dbname: analytics
      schema: public
      port: 5432
"#;

const SOURCE_BLOCK: &str = r#"source: postgres
config:
  host: db
  password: "{{ mage_secret_var('source_pw') }}"
  start_date: "{{ n_days_ago(1) }}"
"#;

/// A Mage project holding a dbt project made the way `dbt init` makes one.
fn project(ws: &Workspace) {
    ws.write(
        "proj/io_config.yaml",
        "default:\n  POSTGRES_PASSWORD: \"{{ mage_secret_var('pg_password') }}\"\n",
    );
    ws.write("proj/metadata.yaml", "project_type: standalone\n");
    ws.write("proj/dbt/demo/dbt_project.yml", DBT_PROJECT);
    ws.write("proj/dbt/demo/models/example/schema.yml", SCHEMA);
    ws.write("proj/dbt/demo/profiles.yml", PROFILES);
    ws.write("proj/dbt/demo/packages.yml", "packages: []\n");
    ws.write("proj/data_loaders/source_pg.yaml", SOURCE_BLOCK);
    ws.write(
        "proj/pipelines/etl/metadata.yaml",
        "blocks:\n- uuid: source_pg\n  type: data_loader\n  language: yaml\nname: etl\n",
    );
    for (name, value) in [
        ("pg_password", "pg-SECRET"),
        ("dbt_user", "dbt-user"),
        ("dbt_password", "dbt-SECRET"),
        ("source_pw", "source-SECRET"),
    ] {
        ws.set("d", None, name, value);
    }
}

#[test]
fn a_dbt_project_renders_only_its_profiles_and_copies_the_rest() {
    let ws = Workspace::new();
    project(&ws);
    let out = ws
        .run(&["--data-dir", "d", "render", "proj", "--out", "build"])
        .ok();
    assert!(
        out.stderr.contains("rendered 5 file(s) and copied 3"),
        "{}",
        out.stderr
    );
    let profiles: serde_yaml::Value =
        serde_yaml::from_str(&ws.read("build/dbt/demo/profiles.yml")).unwrap();
    let dev = &profiles["demo"]["outputs"]["dev"];
    assert_eq!(dev["password"].as_str(), Some("dbt-SECRET"));
    assert_eq!(dev["threads"].as_u64(), Some(4));
    for rel in [
        "dbt/demo/dbt_project.yml",
        "dbt/demo/models/example/schema.yml",
        "dbt/demo/packages.yml",
    ] {
        assert_eq!(
            fs::read(ws.path("build").join(rel)).unwrap(),
            fs::read(ws.path("proj").join(rel)).unwrap(),
            "{rel} is dbt's, byte for byte"
        );
    }
    let block = ws.read("build/data_loaders/source_pg.yaml");
    assert!(block.contains("password: \"source-SECRET\""), "{block}");
    assert!(block.contains("{{ n_days_ago(1) }}"), "{block}");
}

#[test]
fn check_reports_exactly_the_references_mage_resolves() {
    let ws = Workspace::new();
    project(&ws);
    let out = ws
        .run(&["--data-dir", "d", "check", "proj", "--format", "json"])
        .ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut names: Vec<String> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["references"].as_array().unwrap().clone())
        .map(|r| {
            format!(
                "{}({})",
                r["function"].as_str().unwrap(),
                r["name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "env_var(DBT_THREADS)",
            "mage_secret_var(dbt_password)",
            "mage_secret_var(dbt_user)",
            "mage_secret_var(pg_password)",
            "mage_secret_var(source_pw)",
        ]
    );
    assert_eq!(doc["errors"], 0, "{}", out.stdout);
    assert_eq!(doc["warnings"], 0, "{}", out.stdout);
}

#[test]
fn a_secret_in_a_file_mage_does_not_render_is_a_warning_once() {
    let ws = Workspace::new();
    project(&ws);
    ws.write(
        "proj/dbt/demo/models/example/sources.yml",
        "password: \"{{ mage_secret_var('dbt_password') }}\"\n",
    );
    ws.write(
        "proj/pipelines/etl/triggers.yaml",
        "token: \"{{ mage_secret_var('pg_password') }}\"\n",
    );
    let out = ws.run(&["--data-dir", "d", "check", "proj"]).ok();
    assert_eq!(
        out.stderr.matches("Mage does not render").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("proj/dbt/demo/models/example/sources.yml")
            && out.stderr.contains("proj/pipelines/etl/triggers.yaml"),
        "{}",
        out.stderr
    );
}

#[test]
fn rendering_a_dbt_file_says_mage_does_not_render_it() {
    let ws = Workspace::new();
    project(&ws);
    let out = ws
        .run(&["--data-dir", "d", "render", "proj/dbt/demo/dbt_project.yml"])
        .code(2);
    assert!(
        out.stderr
            .contains("Mage does not render proj/dbt/demo/dbt_project.yml")
            && out.stderr.contains("dbt reads it")
            && out.stderr.contains("--include"),
        "{}",
        out.stderr
    );
    let forced = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "proj/dbt/demo/packages.yml",
            "--include",
            "**/packages.yml",
        ])
        .ok();
    assert_eq!(forced.stdout, "packages: []\n");
    ws.run(&[
        "--data-dir",
        "d",
        "check",
        "proj/dbt/demo/models/example/schema.yml",
    ])
    .code(2);
    // --include chooses what is rendered in a project, too.
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "proj",
        "--out",
        "o",
        "--include",
        "**/packages.yml",
    ])
    .ok();
    assert!(ws.path("o/dbt/demo/packages.yml").exists());
    assert!(!ws.path("o/io_config.yaml").exists());
}

#[test]
fn the_walk_follows_links_inside_the_project_and_says_what_it_skips() {
    let ws = Workspace::new();
    project(&ws);
    // A pipeline kept elsewhere in the project, linked in; a pipeline
    // named like a build folder; a dbt target folder; a link out.
    ws.write(
        "proj/shared/etl2/metadata.yaml",
        "executor_type: \"{{ mage_secret_var('pg_password') }}\"\n",
    );
    std::os::unix::fs::symlink("../shared/etl2", ws.path("proj/pipelines/etl2")).unwrap();
    ws.write(
        "proj/pipelines/logs/metadata.yaml",
        "executor_type: \"{{ mage_secret_var('pg_password') }}\"\n",
    );
    ws.write("proj/dbt/demo/target/run.yml", "x: 1\n");
    ws.write("outside/metadata.yaml", "x: 1\n");
    std::os::unix::fs::symlink(ws.path("outside"), ws.path("proj/pipelines/ext")).unwrap();
    std::os::unix::fs::symlink("..", ws.path("proj/pipelines/loop")).unwrap();
    ws.run(&["--data-dir", "d", "render", "proj", "--out", "build"])
        .ok();
    assert!(ws
        .read("build/pipelines/etl2/metadata.yaml")
        .contains("pg-SECRET"));
    assert!(ws
        .read("build/pipelines/logs/metadata.yaml")
        .contains("pg-SECRET"));
    assert!(!ws.path("build/pipelines/ext").exists());
    assert!(!ws.path("build/dbt/demo/target").exists());
    let check = ws.run(&["--data-dir", "d", "check", "proj"]).ok();
    let skipped: Vec<&str> = check
        .stderr
        .lines()
        .filter(|l| l.contains("skipped"))
        .collect();
    assert_eq!(skipped.len(), 1, "{}", check.stderr);
    for part in [
        "skipped folder name (proj/dbt/demo/target)",
        "link to a folder outside the project (proj/pipelines/ext)",
        "link that loops back to a folder holding it (proj/pipelines/loop)",
    ] {
        assert!(skipped[0].contains(part), "{part}: {}", check.stderr);
    }
}

/// A Mage project with the given files, and every secret the tests use.
fn mage(ws: &Workspace, files: &[(&str, &str)]) {
    ws.write("p/io_config.yaml", "default: {}\n");
    for (rel, text) in files {
        ws.write(&format!("p/{rel}"), text);
    }
    for name in ["pg_password", "source_pw", "k8s_ns", "other"] {
        ws.set("d", None, name, &format!("{name}-SECRET"));
    }
}

#[test]
fn a_dbt_command_block_is_rendered_as_mage_pastes_it() {
    let ws = Workspace::new();
    // Shell words, not YAML: Mage pastes the value as it is.
    let run = "--select a --vars '{\"pw\": \"{{ mage_secret_var('source_pw') }}\"}'\n";
    mage(&ws, &[("dbts/run.yaml", run)]);
    let out = ws
        .run(&["--data-dir", "d", "render", "p/dbts/run.yaml"])
        .ok();
    assert_eq!(
        out.stdout,
        "--select a --vars '{\"pw\": \"source_pw-SECRET\"}'"
    );
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert!(ws.read("o/dbts/run.yaml").contains("source_pw-SECRET"));
    let check = ws
        .run(&["--data-dir", "d", "check", "p", "--format", "json"])
        .ok();
    assert!(check.stdout.contains("source_pw"), "{}", check.stdout);
}

#[test]
fn profiles_yml_is_mages_only_beside_dbt_project() {
    let ws = Workspace::new();
    let profiles =
        "base:\n  outputs:\n    dev:\n      password: \"{{ mage_secret_var('pg_password') }}\"\n";
    mage(
        &ws,
        &[
            // Mage's project template: no dbt project around it.
            ("dbt/profiles.yml", profiles),
            ("dbt/shop/dbt_project.yaml", "name: shop\n"),
            ("dbt/shop/profiles.yml", profiles),
        ],
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert_eq!(ws.read("o/dbt/profiles.yml"), profiles);
    assert!(ws
        .read("o/dbt/shop/profiles.yml")
        .contains("pg_password-SECRET"));
    assert_eq!(ws.read("o/dbt/shop/dbt_project.yaml"), "name: shop\n");
    assert!(
        out.stderr.contains(
            "p/dbt/profiles.yml (Mage reads a profiles.yml only from a dbt project's own folder"
        ),
        "{}",
        out.stderr
    );
    let one = ws
        .run(&["--data-dir", "d", "render", "p/dbt/profiles.yml"])
        .code(2);
    assert!(
        one.stderr.contains("Mage does not render"),
        "{}",
        one.stderr
    );
}

const PIPELINE_OK: &str = "name: etl\nexecutor_type: local_python\nexecutor_config:\n  namespace: \"{{ mage_secret_var('k8s_ns') }}\"\nblocks:\n- uuid: a\n  configuration:\n    dbt_profile_target: \"{{ env_var('TARGET', 'dev') }}\"\n";

#[test]
fn a_pipeline_metadata_renders_only_with_jinja_in_the_fields_mage_renders() {
    let ws = Workspace::new();
    let raw = "name: etl\nexecutor_config:\n  namespace: \"{{ mage_secret_var('k8s_ns') }}\"\nblocks:\n- uuid: a\n  configuration:\n    file_path: \"{{ mage_secret_var('other') }}\"\n";
    mage(
        &ws,
        &[
            ("pipelines/etl/metadata.yaml", PIPELINE_OK),
            ("pipelines/raw/metadata.yaml", raw),
        ],
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    let ok = ws.read("o/pipelines/etl/metadata.yaml");
    assert!(ok.contains("namespace: \"k8s_ns-SECRET\""), "{ok}");
    assert!(ok.contains("dbt_profile_target: \"dev\""), "{ok}");
    // Mage reads `file_path` raw: the file is copied, the place named.
    assert_eq!(ws.read("o/pipelines/raw/metadata.yaml"), raw);
    let at = "p/pipelines/raw/metadata.yaml:7:17: warning: Jinja in the value of `blocks[0].configuration.file_path`, which Mage reads raw";
    assert!(out.stderr.contains(at), "{}", out.stderr);
    let check = ws.run(&["--data-dir", "d", "check", "p"]).ok();
    assert!(check.stderr.contains(at), "{}", check.stderr);
    // The copied file's reference is not checked: Mage never resolves it.
    let json = ws
        .run(&["--data-dir", "d", "check", "p", "--format", "json"])
        .ok();
    assert!(json.stdout.contains("\"k8s_ns\""), "{}", json.stdout);
    assert!(!json.stdout.contains("\"other\""), "{}", json.stdout);
    let one = ws
        .run(&["--data-dir", "d", "render", "p/pipelines/raw/metadata.yaml"])
        .code(2);
    assert!(
        one.stderr.contains(at) && one.stderr.contains("Mage does not render"),
        "{}",
        one.stderr
    );
}

#[test]
fn a_pipeline_metadata_mage_loads_before_rendering_is_not_rendered_where_order_matters() {
    let ws = Workspace::new();
    // Mage loads this YAML first, then renders the field: a protection for
    // its pass does not fit in single quotes; an alias repeats a rendered
    // field's text where Mage reads it raw.
    let quoted = "blocks:\n- uuid: x\n  configuration:\n    data_provider_profile: '{{ mage_secret_var(\"other\") }}'\n";
    let aliased =
        "executor_config: &ec\n  namespace: \"{{ mage_secret_var('pg_password') }}\"\nname: *ec\n";
    mage(
        &ws,
        &[
            ("pipelines/quoted/metadata.yaml", quoted),
            ("pipelines/aliased/metadata.yaml", aliased),
        ],
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert_eq!(ws.read("o/pipelines/quoted/metadata.yaml"), quoted);
    assert_eq!(ws.read("o/pipelines/aliased/metadata.yaml"), aliased);
    assert!(
        out.stderr.contains("p/pipelines/quoted/metadata.yaml:4:29: warning: Jinja in the single-quoted value of `blocks[0].configuration.data_provider_profile`, which Mage renders after loading the YAML, where the protection a value may need for that pass does not fit in single quotes (write it in double quotes)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("p/pipelines/aliased/metadata.yaml:2:15: warning: Jinja in a file with YAML aliases, where an alias may repeat a rendered field's text in a field Mage reads raw"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("SECRET") && !out.stdout.contains("SECRET"));
}

#[test]
fn transformer_yaml_is_copied_and_each_copy_says_why() {
    let ws = Workspace::new();
    let secret = "pw: \"{{ mage_secret_var('other') }}\"\n";
    mage(
        &ws,
        &[
            ("transformers/t.yaml", secret),
            ("dbt/shop/dbt_project.yml", "name: shop\n"),
            ("dbt/shop/models/sources.yml", secret),
        ],
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert_eq!(ws.read("o/transformers/t.yaml"), secret);
    for part in [
        "p/dbt/shop/models/sources.yml (it belongs to a dbt project",
        "p/transformers/t.yaml (Mage reads it without Jinja)",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
}

#[test]
fn a_dbt_project_at_the_mage_root_leaves_mages_files_to_mage() {
    let ws = Workspace::new();
    mage(
        &ws,
        &[
            (
                "dbt_project.yml",
                "name: root\n# the `{{ config(...) }}` macro\n",
            ),
            ("models/schema.yml", "x: \"{{ var('v') }}\"\n"),
            ("pipelines/etl/metadata.yaml", PIPELINE_OK),
        ],
    );
    ws.write(
        "p/io_config.yaml",
        "default:\n  PW: \"{{ mage_secret_var('pg_password') }}\"\n",
    );
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert!(ws.read("o/io_config.yaml").contains("pg_password-SECRET"));
    assert!(ws
        .read("o/pipelines/etl/metadata.yaml")
        .contains("k8s_ns-SECRET"));
    assert_eq!(ws.read("o/models/schema.yml"), "x: \"{{ var('v') }}\"\n");
}

#[test]
fn outside_a_mage_project_a_file_below_a_dbt_project_is_dbts() {
    let ws = Workspace::new();
    ws.set("d", None, "other", "x");
    ws.write("shop/dbt_project.yml", "name: shop\n");
    ws.write("shop/models/schema.yml", "x: \"{{ var('v') }}\"\n");
    for cmd in ["render", "check"] {
        let out = ws
            .run(&["--data-dir", "d", cmd, "shop/models/schema.yml"])
            .code(2);
        assert!(
            out.stderr.contains("Mage does not render") && out.stderr.contains("dbt"),
            "{cmd}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_linked_file_is_judged_by_the_path_mage_reads() {
    let ws = Workspace::new();
    let block = "password: \"{{ mage_secret_var('source_pw') }}\"\n";
    mage(&ws, &[("shared/source.yaml", block)]);
    fs::create_dir_all(ws.path("p/data_loaders")).unwrap();
    std::os::unix::fs::symlink(
        "../shared/source.yaml",
        ws.path("p/data_loaders/source.yaml"),
    )
    .unwrap();
    let out = ws
        .run(&["--data-dir", "d", "render", "p/data_loaders/source.yaml"])
        .ok();
    assert_eq!(out.stdout, "password: \"source_pw-SECRET\"");
    // The target's own path is not Mage's.
    ws.run(&["--data-dir", "d", "render", "p/shared/source.yaml"])
        .code(2);
}
