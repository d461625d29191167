//! `check`: every missing reference at once, other environments without
//! their key, three output formats, and never a value.

use std::fs;
use std::path::Path;

use crate::support::{Run, Workspace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// Checks the fixture from its own folder, so paths are project-relative.
fn check_fixture(ws: &Workspace, extra: &[&str]) -> Run {
    let project = Path::new(FIXTURES).join("check_missing");
    let data_dir = ws.path("d");
    ws.run_in(
        &project,
        &[
            &["--data-dir", data_dir.to_str().unwrap(), "check"][..],
            extra,
        ]
        .concat(),
    )
}

fn fixture_env(ws: &Workspace) {
    ws.set("d", None, "pg_user", "app");
    ws.set("d", None, "slack_webhook_url", "https://hooks.example/x");
}

#[test]
fn five_missing_secrets_across_three_files_in_one_run() {
    let ws = Workspace::new();
    fixture_env(&ws);
    let uuid = ws.read("d/mage-secrets/uuid").trim().to_string();
    let out = check_fixture(&ws, &[]).code(1);
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect();
    assert_eq!(
        errors,
        vec![
            format!("dbt/profiles.yml:5:21: error: secret 'dbt_password' is not set in environment {uuid}"),
            format!("io_config.yaml:4:26: error: secret 'pg_password' is not set in environment {uuid}"),
            format!("pipelines/etl/metadata.yaml:7:18: error: secret 'etl_token' is not set in environment {uuid} (scopes searched: pipeline:etl, global)"),
        ]
    );
    assert!(out.stderr.contains("4 |   POSTGRES_PASSWORD: \"{{ mage_secret_var('pg_password') }}\"\n  |                          ^"), "{}", out.stderr);
    assert!(
        out.stderr.contains("checked 3 file(s), 9 reference(s)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("3 error(s), 2 warning(s)"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "");
}

#[test]
fn seed_scenario_checks_prod_and_dev_without_dev_key() {
    let ws = Workspace::new();
    ws.set(
        "dev",
        Some("shared.db"),
        "secret1",
        "sooper dooper secret string",
    );
    ws.set("dev", Some("shared.db"), "secret3", "dev only secret");
    ws.set(
        "prod",
        Some("shared.db"),
        "secret1",
        "real production secret",
    );
    let dev_uuid = ws.read("dev/mage-secrets/uuid").trim().to_string();
    fs::remove_dir_all(ws.path("dev")).unwrap();
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('secret1') }}\"\nb: \"{{ mage_secret_var('secret3') }}\"\n",
    );
    let prod = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            "shared.db",
            "check",
            "p",
        ])
        .code(1);
    let errors: Vec<&str> = prod
        .stderr
        .lines()
        .filter(|l| l.contains("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", prod.stderr);
    assert!(
        errors[0].starts_with("p/io_config.yaml:2:8: error: secret 'secret3' is not set"),
        "{}",
        prod.stderr
    );

    let dev = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            "shared.db",
            "check",
            "p",
            "--environment",
            &dev_uuid,
        ])
        .ok();
    assert!(
        dev.stderr.contains(&format!(
            "in environment {dev_uuid}: 0 error(s), 0 warning(s)"
        )),
        "{}",
        dev.stderr
    );
    assert!(
        dev.stderr
            .contains("rendered YAML not parsed (existence only, no key)"),
        "{}",
        dev.stderr
    );
    assert!(!ws.path("dev").exists(), "no dev key was needed or made");

    let table = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            "shared.db",
            "check",
            "p",
            "--all-environments",
        ])
        .code(1);
    assert!(
        table.stdout.starts_with("SECRET   SCOPES"),
        "{}",
        table.stdout
    );
    let row3 = table
        .stdout
        .lines()
        .find(|l| l.starts_with("secret3"))
        .unwrap();
    assert_eq!(row3.matches("MISSING").count(), 1, "{}", table.stdout);
    assert!(
        table
            .stderr
            .contains("2 referenced secret(s) in 2 environment(s): 1 missing"),
        "{}",
        table.stderr
    );
    let json = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            "shared.db",
            "check",
            "p",
            "--all-environments",
            "--format",
            "json",
        ])
        .code(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["complete"], false);
    assert_eq!(doc["secrets"][1]["present"][&dev_uuid], true);

    ws.set("prod", Some("shared.db"), "secret3", "now in prod");
    ws.run(&[
        "--data-dir",
        "prod",
        "--database",
        "shared.db",
        "check",
        "p",
        "--all-environments",
    ])
    .ok();
}

#[test]
fn json_matches_text_item_for_item_and_github_lines_are_workflow_commands() {
    let ws = Workspace::new();
    fixture_env(&ws);
    let text = check_fixture(&ws, &[]).code(1);
    let json = check_fixture(&ws, &["--format", "json"]).code(1);
    let github = check_fixture(&ws, &["--format", "github"]).code(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let problems = doc["problems"].as_array().unwrap();
    let text_items: Vec<&str> = text
        .stderr
        .lines()
        .filter(|l| l.contains(": error: ") || l.contains(": warning: "))
        .collect();
    assert_eq!(problems.len(), text_items.len());
    for (p, line) in problems.iter().zip(&text_items) {
        let rebuilt = format!(
            "{}:{}:{}: {}: {}",
            p["file"].as_str().unwrap(),
            p["line"],
            p["col"],
            p["severity"].as_str().unwrap(),
            p["message"].as_str().unwrap()
        );
        assert_eq!(&rebuilt, line);
        assert_eq!(p["kind"], "missing_secret");
        assert!(p["name"].is_string());
    }
    // Two of the five are in a branch not taken and in a YAML comment.
    assert_eq!(doc["errors"], 3);
    assert_eq!(
        doc["environment"].as_str().unwrap(),
        ws.read("d/mage-secrets/uuid").trim()
    );
    assert_eq!(doc["files"].as_array().unwrap().len(), 3);

    let lines: Vec<&str> = github.stdout.lines().collect();
    assert_eq!(lines.len(), 5);
    for line in &lines {
        let rest = line
            .strip_prefix("::error file=")
            .or_else(|| line.strip_prefix("::warning file="))
            .expect(line);
        let (props, message) = rest.split_once("::").expect(line);
        let fields: Vec<&str> = props.split(',').collect();
        assert!(
            fields[1].starts_with("line=")
                && fields[2].starts_with("col=")
                && fields[3].starts_with("title="),
            "{line}"
        );
        assert!(
            !message.contains('\n') && message.starts_with("secret '"),
            "{line}"
        );
    }
    assert!(lines[0].starts_with("::error file=dbt/profiles.yml,line=5,col=21,title=mage-secrets missing_secret::secret 'dbt_password'"));
}

#[test]
fn json_reports_name_a_file_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let ws = Workspace::new();
    ws.set("d", None, "present", "v");
    ws.write(
        "p/io_config.yaml",
        "default:\n  a: \"{{ mage_secret_var('present') }}\"\n",
    );
    let odd = ws
        .path("p")
        .join(std::ffi::OsStr::from_bytes(b"conf_\xff.yaml"));
    fs::write(&odd, "k: \"{{ mage_secret_var('absent') }}\"\n").unwrap();
    for extra in [&[][..], &["--all-environments"]] {
        let out = ws
            .run(
                &[
                    &["--data-dir", "d", "check", "p", "--format", "json"][..],
                    // (Left out of a default walk: a name that is not UTF-8.)
                    &["--include", "**/*.yaml"],
                    extra,
                ]
                .concat(),
            )
            .code(1);
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stderr);
        let text = doc.to_string();
        assert!(text.contains("conf_\u{fffd}.yaml"), "{text}");
    }
}

#[test]
fn no_output_of_check_contains_a_value() {
    let ws = Workspace::new();
    let marker = "SENTINEL-3c9e1f";
    for name in [
        "pg_user",
        "slack_webhook_url",
        "pg_password",
        "legacy_token",
        "backup_password",
        "dbt_password",
    ] {
        ws.set("d", None, name, &format!("{marker}: {name} \" '"));
    }
    ws.write("p/bad_yaml.yaml", "a: {{ mage_secret_var('pg_user') }}\n");
    ws.write("p/quoting.yaml", "a: '{{ mage_secret_var('multi') }}'\n");
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "multi"],
        format!("{marker}\nline").as_bytes(),
    )
    .ok();
    ws.write(
        "p/json.yaml",
        "a: {{ json_value(mage_secret_var('pg_user'), 'x') }}\n",
    );
    let project = Path::new(FIXTURES).join("check_missing");
    let mut runs = Vec::new();
    for format in ["text", "json", "github"] {
        for path in [project.to_str().unwrap(), "p"] {
            for extra in [&[][..], &["-v"], &["--strict-env"], &["--all-environments"]] {
                runs.push(
                    ws.run(
                        &[
                            &["--data-dir", "d", "check", path, "--format", format][..],
                            extra,
                        ]
                        .concat(),
                    ),
                );
            }
        }
    }
    let failing_yaml = runs
        .iter()
        .any(|r| r.all().contains("rendered YAML does not parse"));
    assert!(failing_yaml, "the YAML failure path was exercised");
    assert!(runs
        .iter()
        .any(|r| r.all().contains("cannot place this value in single quotes")));
    for run in &runs {
        assert!(
            !run.all().contains(marker),
            "a value leaked:\n{}",
            run.all()
        );
    }
}

#[test]
fn computed_names_unset_env_vars_and_strict_env() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.write("p/x.yaml", "a: {{ mage_secret_var('a') }}\nb: {{ mage_secret_var('pre' ~ 'fix') }}\nc: {{ env_var('MAGE_SECRETS_CHECK_UNSET') }}\n");
    // The computed name is evaluated as the render evaluates it.
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        out.stderr.contains(
            "x.yaml:2:7: error: a secret whose name is computed by this expression is not set"
        ) && !out.stderr.contains("prefix"),
        "{}",
        out.stderr
    );
    ws.set("d", None, "prefix", "2");
    let out = ws.run(&["--data-dir", "d", "check", "p"]).ok();
    assert!(
        out.stderr.contains(
            "x.yaml:3:7: warning: environment variable 'MAGE_SECRETS_CHECK_UNSET' is not set"
        ),
        "{}",
        out.stderr
    );
    let strict = ws
        .run(&["--data-dir", "d", "check", "p", "--strict-env"])
        .code(1);
    assert!(
        strict
            .stderr
            .contains("x.yaml:3:7: error: environment variable"),
        "{}",
        strict.stderr
    );
    let set = ws
        .cmd(&["--data-dir", "d", "check", "p", "--strict-env"])
        .env("MAGE_SECRETS_CHECK_UNSET", "x")
        .output()
        .unwrap();
    assert_eq!(set.status.code(), Some(0));
    // One file works too, with its pipeline scope from its path.
    ws.write(
        "p/pipelines/etl/y.yaml",
        "t: {{ mage_secret_var('tok') }}\n",
    );
    let one = ws
        .run(&["--data-dir", "d", "check", "p/pipelines/etl/y.yaml"])
        .code(1);
    assert!(
        one.stderr
            .contains("(scopes searched: pipeline:etl, global)"),
        "{}",
        one.stderr
    );
}

#[test]
fn a_check_that_cannot_run_exits_2() {
    let ws = Workspace::new();
    ws.write("p/x.yaml", "a: 1\n");
    let fresh = ws.run(&["--data-dir", "fresh", "check", "p"]).code(2);
    assert!(
        fresh.stderr.contains("has no mage-secrets environment"),
        "{}",
        fresh.stderr
    );
    assert!(!ws.path("fresh").exists(), "check creates no environment");
    ws.set("d", None, "a", "1");
    let bad = ws
        .run(&[
            "--data-dir",
            "d",
            "check",
            "p",
            "--environment",
            "not-a-uuid",
        ])
        .code(2);
    assert!(
        bad.stderr.contains("names no environment"),
        "{}",
        bad.stderr
    );
    let unknown = ws
        .run(&[
            "--data-dir",
            "d",
            "check",
            "p",
            "--environment",
            "00000000-0000-4000-8000-000000000000",
        ])
        .code(2);
    assert!(
        unknown.stderr.contains("names no environment of database"),
        "{}",
        unknown.stderr
    );
    let nodb = ws
        .run(&[
            "--data-dir",
            "d",
            "--database",
            "nope.db",
            "check",
            "p",
            "--all-environments",
        ])
        .code(2);
    assert!(nodb.stderr.contains("does not exist"), "{}", nodb.stderr);
    assert!(!ws.path("nope.db").exists());
    ws.run(&["--data-dir", "d", "check", "missing-folder"])
        .code(2);
}

#[test]
fn yaml_without_jinja_is_parsed_as_mage_loads_it() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.write("p/io_config.yaml", "a: \"{{ mage_secret_var('a') }}\"\n");
    ws.write(
        "p/pipelines/etl/metadata.yaml",
        "<<<<<<< HEAD\nname: etl\n=======\nname: etl2\n>>>>>>> branch\n",
    );
    for args in [&["check", "p"][..], &["render", "p", "--out", "o"]] {
        let out = ws.run(&[&["--data-dir", "d"][..], args].concat()).code(1);
        assert!(
            out.stderr
                .contains("p/pipelines/etl/metadata.yaml:2:5: error: YAML does not parse"),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert!(!ws.path("o").exists(), "nothing written");
    ws.write("p/pipelines/etl/metadata.yaml", "name: etl\nblocks: []\n");
    ws.run(&["--data-dir", "d", "check", "p"]).ok();
}

#[test]
fn all_environments_checks_computed_names_in_each_environment() {
    let ws = Workspace::new();
    ws.set("dev", Some("shared.db"), "pg_dev", "1");
    ws.set("prod", Some("shared.db"), "other", "1");
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('pg_' ~ 'dev') }}\"\n",
    );
    let out = ws
        .run(&[
            "--data-dir",
            "dev",
            "--database",
            "shared.db",
            "check",
            "p",
            "--all-environments",
        ])
        .code(1);
    // Set in dev, missing in prod: named by the environment, never by the
    // computed name; the summary does not say all is well.
    let prod = ws.read("prod/mage-secrets/uuid").trim().to_string();
    let dev = ws.read("dev/mage-secrets/uuid").trim().to_string();
    assert!(
        out.stderr.contains(&format!(
            "p/io_config.yaml:1:8: error: a secret whose name is computed by this expression is not set in environment {prod}"
        )) && !out.stderr.contains(&format!("not set in environment {dev}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("pg_dev"), "{}", out.stderr);
    assert!(
        out.stderr.contains("1 other error(s) above"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_file_name_with_control_characters_is_reported_on_one_line() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.write("p/io_config.yaml", "a: 1\n");
    ws.write(
        "p/data_loaders/x\ny\u{1b}[31m.yaml",
        "a: \"{{ mage_secret_var('nope') }}\"\n",
    );
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        out.stderr
            .contains("p/data_loaders/x\\ny\\u{1b}[31m.yaml:1:8: error: secret 'nope' is not set"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\u{1b}'), "{}", out.stderr);
    let github = ws
        .run(&["--data-dir", "d", "check", "p", "--format", "github"])
        .code(1);
    assert!(
        github
            .stdout
            .contains("file=p/data_loaders/x%0Ay%1B[31m.yaml"),
        "{}",
        github.stdout
    );
    assert!(!github.stdout.contains('\u{1b}'));
}

#[test]
fn a_construct_that_does_not_lex_hides_nothing_before_it() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('nope1') }}\"\nb: \"{{ mage_secret_var('nope2') \"\nc: 1\n",
    );
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        out.stderr.contains("template syntax error")
            && out
                .stderr
                .contains("p/io_config.yaml:1:8: error: secret 'nope1' is not set")
            && out.stderr.contains("1 reference(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_yaml_error_no_value_touches_says_so() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('a') }}\"\nb: [1, 2\nc: 1\n",
    );
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        out.stderr.contains("rendered YAML does not parse")
            && out.stderr.contains("no substituted value is involved")
            && !out.stderr.contains("values whose text spans")
            && !out.stderr.contains("double quotes"),
        "{}",
        out.stderr
    );
}

#[test]
fn sql_and_python_blocks_are_checked_and_dbt_sql_is_dbts() {
    let ws = Workspace::new();
    ws.set("d", None, "here", "1");
    ws.write("p/io_config.yaml", "a: 1\n");
    ws.write(
        "p/data_loaders/load.py",
        "from mage_ai.data_preparation.shared.secrets import get_secret_value\n\
         \n\
         @data_loader\n\
         def load(*args, **kwargs):\n\
         \x20   # get_secret_value('in_comment')\n\
         \x20   text = \"get_secret_value('in_string')\"\n\
         \x20   return get_secret_value('py_missing'), get_secret_value('here'), get_secret_value(kwargs['n'])\n",
    );
    ws.write(
        "p/transformers/q.sql",
        "SELECT '{{ mage_secret_var(\"sql_missing\") }}' FROM {{ df_1 }}\n",
    );
    ws.write("p/dbt/x/dbt_project.yml", "name: x\n");
    ws.write("p/dbt/x/models/m.sql", "select '{{ var(\"x\") }}'\n");
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    let e = &out.stderr;
    assert!(
        e.contains("p/data_loaders/load.py:7:12: error: secret 'py_missing' is not set")
            && e.contains("p/data_loaders/load.py:7:70: warning: cannot be checked statically")
            && e.contains("p/transformers/q.sql:1:12: error: secret 'sql_missing' is not set")
            && !e.contains("in_comment")
            && !e.contains("in_string")
            && !e.contains("models/m.sql")
            && e.contains("2 error(s), 1 warning(s)"),
        "{e}"
    );
    let table = ws
        .run(&["--data-dir", "d", "check", "p", "--all-environments"])
        .code(1);
    assert!(
        table.stdout.contains("py_missing") && table.stdout.contains("sql_missing"),
        "{}",
        table.stdout
    );
    // render still writes YAML only.
    ws.set("d", None, "py_missing", "1");
    ws.set("d", None, "sql_missing", "1");
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert!(ws.path("o/io_config.yaml").exists());
    assert!(!ws.path("o/data_loaders/load.py").exists());
    assert!(!ws.path("o/transformers/q.sql").exists());
}

#[test]
fn without_the_key_a_branch_a_secret_may_take_is_not_a_pass() {
    let ws = Workspace::new();
    ws.set("prod", Some("s.db"), "which", "prod");
    ws.set("dev", Some("s.db"), "which", "dev");
    ws.write(
        "p/io_config.yaml",
        "default:\n{% if mage_secret_var('which') == 'prod' %}\n  X: \"{{ mage_secret_var('prod_missing') }}\"\n{% endif %}\n",
    );
    let prod = ws.read("prod/mage-secrets/uuid").trim().to_string();
    let keyless = ws
        .run(&[
            "--data-dir",
            "dev",
            "--database",
            "s.db",
            "check",
            "p",
            "--environment",
            &prod,
        ])
        .code(1);
    assert!(
        keyless
            .stderr
            .contains("a condition on a secret's value may reach it there"),
        "{}",
        keyless.stderr
    );
    // With prod's own key the render decides: it does reach it.
    ws.run(&["--data-dir", "prod", "--database", "s.db", "check", "p"])
        .code(1);
    // In dev, with dev's key, the branch is not taken.
    ws.run(&["--data-dir", "dev", "--database", "s.db", "check", "p"])
        .ok();
    ws.run(&[
        "--data-dir",
        "dev",
        "--database",
        "s.db",
        "check",
        "p",
        "--environment",
        &prod,
        "--allow-unverifiable",
    ])
    .ok();
    // YAML broken where no value touches it fails in every environment.
    ws.write(
        "q/io_config.yaml",
        "a: \"{{ mage_secret_var('which') }}\"\nb: [1, 2\n",
    );
    let broken = ws
        .run(&[
            "--data-dir",
            "dev",
            "--database",
            "s.db",
            "check",
            "q",
            "--environment",
            &prod,
        ])
        .code(1);
    assert!(
        broken.stderr.contains("the template's own YAML is broken"),
        "{}",
        broken.stderr
    );
    // Values stood in for are not judged as YAML.
    ws.write("q/io_config.yaml", "a: {{ mage_secret_var('which') }}\n");
    ws.run(&[
        "--data-dir",
        "dev",
        "--database",
        "s.db",
        "check",
        "q",
        "--environment",
        &prod,
    ])
    .ok();
}

#[test]
fn python_reads_in_f_strings_star_imports_and_pipeline_scopes() {
    let ws = Workspace::new();
    ws.set("d", None, "here", "1");
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "etl_only", "--pipeline", "etl"],
        b"1",
    )
    .ok();
    ws.write("p/io_config.yaml", "a: 1\n");
    ws.write(
        "p/data_loaders/a.py",
        "from mage_ai.data_preparation.shared.secrets import *\n\
         x = f\"{get_secret_value('f_missing')}\"\n\
         y = get_secret_value('etl_only', pipeline_uuid='etl')\n\
         z = get_secret_value('etl_only')\n",
    );
    let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    let e = &out.stderr;
    assert!(
        e.contains("a.py:2:8: error: secret 'f_missing' is not set")
            && e.contains("a.py:4:5: error: secret 'etl_only' is not set")
            && !e.contains("a.py:3:")
            && e.contains("2 error(s)"),
        "{e}"
    );
}

/// Text libyaml parses but Mage's `yaml.full_load` cannot load, with and
/// without template syntax; and look-alikes it loads.
#[test]
fn yaml_mages_loader_refuses_is_refused_and_what_it_loads_passes() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    let refused = [
        "a: 1\nb:\t2\n",
        "a: 1\nb: [1,\t2]\n",
        "a: 1\nb: x\t# c\n",
        "a: 1\n---\nb: 2\n",
        "c: *y\n",
        "a: !!python/object/apply:os.system [\"true\"]\n",
        "a: !foo 1\n",
        "? [1,2]\n: x\n",
        "k: >\t\nend: 1\n",
        "k: >#\nend: 1\n",
        "k: |-#x\n",
        "a: \"{{ mage_secret_var('a') }}\"\nb:\t2\n",
    ];
    for text in refused {
        ws.write("p/io_config.yaml", text);
        let out = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
        assert!(
            out.stderr.contains("io_config.yaml:"),
            "{text:?}: {}",
            out.stderr
        );
        ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
            .code(1);
        assert!(!ws.path("o").exists());
    }
    let loaded = [
        "a: \"b\tc\"\n",
        "a: 'b\tc'\n",
        "a: |\n  b\tc\n",
        "a: b # c\td\n",
        "# x\ty\na: 1\n",
        "a: &x {k: 1}\nb: {<<: *x}\n",
        "---\na: 1\n",
        "a: !!set {x}\n",
        "k: > #\nend: 1\n",
        "k: !!str |\n  a\n",
    ];
    for text in loaded {
        ws.write("p/io_config.yaml", text);
        ws.run(&["--data-dir", "d", "check", "p"]).ok();
    }
}

#[test]
fn an_unverifiable_name_is_placed_at_the_call_that_reads_the_secret() {
    let ws = Workspace::new();
    ws.set("prod", Some("s.db"), "which", "x");
    ws.set("dev", Some("s.db"), "which", "y");
    ws.write(
        "p/io_config.yaml",
        "default:\n  B: \"{{ mage_secret_var('key_' ~ 'dev') }}\"\n  C: \"{{ mage_secret_var('key_' ~ mage_secret_var('which')) }}\"\n",
    );
    let prod = ws.read("prod/mage-secrets/uuid").trim().to_string();
    let out = ws
        .run(&[
            "--data-dir",
            "dev",
            "--database",
            "s.db",
            "check",
            "p",
            "--environment",
            &prod,
        ])
        .code(1);
    assert!(
        out.stderr.contains(
            "p/io_config.yaml:3:10: error: a secret or variable name here is computed from the value of secret 'which'"
        ),
        "{}",
        out.stderr
    );
}
