//! `render`: resolved copies of a project, one file to stdout, Mage's
//! output byte for byte, and every kind of bad input reported at once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{mode, snapshot, tree_contains, Run, Workspace};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// Copies a fixture folder into the workspace.
fn copy_fixture(ws: &Workspace, from: &str, to: &str) {
    let src = Path::new(FIXTURES).join(from);
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&src).unwrap();
        let dest = ws.path(to).join(rel);
        if entry.file_type().is_dir() {
            fs::create_dir_all(&dest).unwrap();
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn set_pipeline(ws: &Workspace, data_dir: &str, pipeline: &str, name: &str, value: &str) {
    ws.run_with_stdin(
        &["--data-dir", data_dir, "set", name, "--pipeline", pipeline],
        value.as_bytes(),
    )
    .ok();
}

#[test]
fn output_is_byte_identical_to_mage_for_values_that_need_no_escaping() {
    let ws = Workspace::new();
    copy_fixture(&ws, "mage_compat", "compat");
    let secrets: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&ws.read("compat/secrets.json")).unwrap();
    for (name, value) in &secrets {
        ws.run_with_stdin(
            &["--data-dir", "d", "set", name, "--allow-empty"],
            value.as_str().unwrap().as_bytes(),
        )
        .ok();
    }
    let env: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&ws.read("compat/env.json")).unwrap();
    let mut cases: Vec<_> = fs::read_dir(ws.path("compat/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap().to_string();
        let expected = fs::read(ws.path("compat/expected").join(&name)).unwrap();
        let case_arg = case.to_str().unwrap();
        for lenient in [true, false] {
            // The cases sit beside an io_config.yaml: name them as templates.
            let mut args = vec!["--data-dir", "d", "render", case_arg, "--include", "*.yaml"];
            if lenient {
                args.push("--lenient");
            }
            let mut cmd = ws.cmd(&args);
            for (k, v) in &env {
                cmd.env(k, v.as_str().unwrap());
            }
            let out = cmd.output().unwrap();
            if name == "missing.yaml" && !lenient {
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "strict render of missing values fails"
                );
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("secret 'not_set_anywhere' is not set"),
                    "{stderr}"
                );
                assert!(
                    stderr.contains("environment variable 'MAGE_COMPAT_UNSET' is not set"),
                    "{stderr}"
                );
                assert!(
                    stderr.contains("secret 'also_missing' is not set"),
                    "{stderr}"
                );
                continue;
            }
            if name == "json_values.yaml" && !lenient {
                // Mage renders None for a path the JSON lacks; strict mode
                // treats it like a missing value, naming secret and path.
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{stderr}");
                assert!(
                    stderr.contains(
                        "json_value: path 'missing' is not in the JSON of secret 'service_account'"
                    ),
                    "{stderr}"
                );
                continue;
            }
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // Mage renders our output once more, which drops one final
            // newline (the output adds it back): compare what Mage reads.
            let stdout = String::from_utf8_lossy(&out.stdout);
            let after_mage_pass = stdout.strip_suffix('\n').unwrap_or(&stdout);
            assert_eq!(
                after_mage_pass,
                String::from_utf8_lossy(&expected),
                "{name} (lenient: {lenient}) differs from Mage's output"
            );
        }
    }
}

#[test]
fn demo_project_renders_with_runtime_expressions_untouched() {
    let ws = Workspace::new();
    copy_fixture(&ws, "demo", "demo");
    let out = ws
        .run(&[
            "--data-dir",
            "demo/mage_data",
            "render",
            "demo/project",
            "--out",
            "build",
        ])
        .ok();
    assert!(
        out.stderr
            .contains("rendered 5 file(s) and copied 1 to build: 6 written, 0 unchanged"),
        "{}",
        out.stderr
    );
    let source = ws.read("build/data_loaders/orders_source.yaml");
    assert!(
        source.contains("start_date: \"{{ n_days_ago(1) }}\""),
        "{source}"
    );
    assert!(
        source.contains("table: \"{{ variables('table_name') }}\""),
        "{source}"
    );
    assert!(
        source.contains("password: \"pa\\\"ss\\\\word\""),
        "{source}"
    );
    assert!(
        source.contains("api_token: 'tok_demo_42'"),
        "pipeline scope: {source}"
    );
    let io: serde_yaml::Value = serde_yaml::from_str(&ws.read("build/io_config.yaml")).unwrap();
    assert_eq!(
        io["default"]["POSTGRES_PASSWORD"].as_str(),
        Some("pa\"ss\\word")
    );
    assert_eq!(
        io["default"]["SNOWFLAKE_PASSWORD"].as_str(),
        Some("it's-a-secret")
    );
    assert_eq!(
        io["default"]["GOOGLE_SERVICE_ACC_KEY"]["project_id"].as_str(),
        Some("demo-analytics")
    );
    let pipeline = ws.read("build/pipelines/etl_orders/metadata.yaml");
    assert!(
        pipeline.contains("namespace: \"orders-jobs\""),
        "pipeline scope first: {pipeline}"
    );
    assert!(ws.read("build/metadata.yaml").contains("B000/global"));
    assert_eq!(
        ws.read("build/dbt/demo/dbt_project.yml"),
        ws.read("demo/project/dbt/demo/dbt_project.yml")
    );
    assert_eq!(mode(&ws.path("build/io_config.yaml")), 0o600);
    assert_eq!(mode(&ws.path("build/pipelines/etl_orders")), 0o700);

    // A second run rewrites nothing.
    let before = fs::metadata(ws.path("build/io_config.yaml"))
        .unwrap()
        .modified()
        .unwrap();
    let again = ws
        .run(&[
            "--data-dir",
            "demo/mage_data",
            "render",
            "demo/project",
            "--out",
            "build",
        ])
        .ok();
    assert!(
        again.stderr.contains("0 written, 6 unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(
        before,
        fs::metadata(ws.path("build/io_config.yaml"))
            .unwrap()
            .modified()
            .unwrap()
    );

    // --mode, and a changed secret rewrites exactly the files that use it.
    ws.run_with_stdin(
        &["--data-dir", "demo/mage_data", "set", "snowflake_password"],
        b"new",
    )
    .ok();
    let changed = ws
        .run(&[
            "--data-dir",
            "demo/mage_data",
            "render",
            "demo/project",
            "--out",
            "build",
            "--mode",
            "0640",
        ])
        .ok();
    assert!(
        changed.stderr.contains("1 written, 5 unchanged"),
        "{}",
        changed.stderr
    );
    assert_eq!(mode(&ws.path("build/io_config.yaml")), 0o640);
}

#[test]
fn a_secret_that_looks_like_a_template_is_output_literally() {
    let ws = Workspace::new();
    ws.set("d", None, "tricky", "{{ mage_secret_var('other') }}");
    ws.set("d", None, "other", "MUST-NOT-APPEAR");
    ws.write("p/a.yaml", "key: \"{{ mage_secret_var('tricky') }}\"\n");
    let out = ws.run(&["--data-dir", "d", "render", "p/a.yaml"]).ok();
    // Protected from Mage's own Jinja pass, which gives the value back.
    assert_eq!(
        out.stdout,
        "key: \"{{ '{{' }} mage_secret_var('other') }}\""
    );
    assert!(!out.all().contains("MUST-NOT-APPEAR"));
}

#[test]
fn adversarial_values_land_exactly_in_every_quoting_context() {
    let ws = Workspace::new();
    let values = [
        "dq\"quote",
        "back\\slash",
        "it's",
        "tab\there",
        "hash # here",
        "colon: space",
        "{{ braces }}",
        "  padded  ",
        "ünïcödé 日本",
        "",
        "line\nbreak",
        "x: [1, 2]",
    ];
    let mut template = String::new();
    for (i, v) in values.iter().enumerate() {
        ws.set("d", None, &format!("v{i}"), v);
        template.push_str(&format!("dq{i}: \"{{{{ mage_secret_var('v{i}') }}}}\"\n"));
        template.push_str(&format!(
            "url{i}: \"pre-{{{{ mage_secret_var('v{i}') }}}}-post\"\n"
        ));
        if !v.contains('\n') {
            template.push_str(&format!("sq{i}: '{{{{ mage_secret_var('v{i}') }}}}'\n"));
        }
    }
    ws.write("p/a.yaml", &template);
    let out = ws.run(&["--data-dir", "d", "render", "p/a.yaml"]).ok();
    // Read as Mage reads it: after its Jinja pass, which gives `{{` back.
    let view = out.stdout.replace("{{ '{{' }}", "{{");
    let doc: serde_yaml::Value = serde_yaml::from_str(&view).unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_eq!(
            doc[format!("dq{i}").as_str()].as_str(),
            Some(*v),
            "dq {v:?}"
        );
        assert_eq!(
            doc[format!("url{i}").as_str()].as_str(),
            Some(format!("pre-{v}-post").as_str())
        );
        if !v.contains('\n') {
            assert_eq!(
                doc[format!("sq{i}").as_str()].as_str(),
                Some(*v),
                "sq {v:?}"
            );
        }
    }
    ws.write("p/b.yaml", "key: '{{ mage_secret_var('v10') }}'\n");
    let err = ws.run(&["--data-dir", "d", "render", "p/b.yaml"]).code(1);
    assert!(
        err.stderr.contains(
            "p/b.yaml:1:10: error: cannot place this value in single quotes (secrets: v10)"
        ),
        "{}",
        err.stderr
    );
    assert!(err.stderr.contains("use double quotes"), "{}", err.stderr);
    assert!(!err.stderr.contains("line\nbreak"));
}

#[test]
fn every_bad_file_is_reported_in_one_run_and_nothing_is_written() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "SENTINEL-VALUE: broken");
    ws.write("p/good.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    ws.write("p/syntax.yaml", "a: 1\nb: {{ mage_secret_var('pw' }}\n");
    ws.write("p/yaml.yaml", "a: 1\nb: {{ mage_secret_var('pw') }}\n");
    ws.write("p/latin1.yaml", b"a: caf\xe9\n");
    ws.write("p/binary.yaml", b"a: \x00\x01\x02\n");
    ws.write("p/missing.yaml", "a: {{ mage_secret_var('nope') }}\n");
    std::os::unix::fs::symlink("loop.yaml", ws.path("p/loop.yaml")).unwrap();
    ws.write("build/keep.txt", "previous output");
    let before = snapshot(&ws.path("build"));

    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "build"])
        .code(1);
    let err = &out.stderr;
    for expected in [
        "binary.yaml: error: is a binary file (NUL byte at offset 3)",
        "latin1.yaml:1:7: error: is not valid UTF-8 text",
        "loop.yaml: error: is a symbolic link that loops",
        "missing.yaml:1:7: error: secret 'nope' is not set in environment",
        "syntax.yaml:2:",
        "yaml.yaml:2:",
        "rendered YAML does not parse",
        "values whose text spans the failing place: pw",
        "error: 6 problem(s) found; nothing was written",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        err.contains("2 | b: {{ mage_secret_var('pw' }}"),
        "caret snippet: {err}"
    );
    assert!(
        !out.all().contains("SENTINEL"),
        "a value leaked: {}",
        out.all()
    );
    assert_eq!(
        before,
        snapshot(&ws.path("build")),
        "the output folder is untouched"
    );
}

/// Renders project `p` as another user, with `dirs` open to all and
/// `unreadable` readable by nobody: the render fails naming that file once,
/// and writes nothing.
fn render_with_an_unreadable_file(ws: &Workspace, dirs: &[&str], unreadable: &str) {
    fs::create_dir_all(ws.path("d")).unwrap();
    for dir in dirs.iter().chain(&["d"]) {
        fs::set_permissions(ws.path(dir), fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::set_permissions(ws.path(unreadable), fs::Permissions::from_mode(0o000)).unwrap();
    ws.run_unprivileged(&["--data-dir", "d", "set", "x", "--allow-empty"])
        .ok();
    let out = ws
        .run_unprivileged(&["--data-dir", "d", "render", "p", "--out", "p/../o"])
        .code(1);
    let name = Path::new(unreadable).file_name().unwrap().to_string_lossy();
    let error = format!("{name}: error: cannot read: Permission denied");
    assert_eq!(out.stderr.matches(&error).count(), 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("cannot read").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!ws.path("o").exists());
}

#[test]
fn unreadable_files_are_reported() {
    let ws = Workspace::new();
    ws.write("p/a.yaml", "a: 1\n");
    ws.write("p/secret.yaml", "a: 1\n");
    render_with_an_unreadable_file(&ws, &["p"], "p/secret.yaml");
}

#[test]
fn an_unreadable_copied_file_fails_the_render_and_the_other_copies_are_not_put_in_place() {
    let ws = Workspace::new();
    ws.write("p/io_config.yaml", "default:\n  a: 1\n");
    for i in 0..40 {
        ws.write(&format!("p/pipelines/etl/blocks/b{i:02}.yaml"), "x: 1\n");
    }
    let dirs = [
        "p",
        "p/pipelines",
        "p/pipelines/etl",
        "p/pipelines/etl/blocks",
    ];
    render_with_an_unreadable_file(&ws, &dirs, "p/pipelines/etl/blocks/b17.yaml");
}

#[test]
fn out_may_not_be_the_project_root_and_a_project_needs_out() {
    let ws = Workspace::new();
    ws.write("p/a.yaml", "a: 1\n");
    for out in ["p", "p/.", "./p/"] {
        let r = ws
            .run(&["--data-dir", "d", "render", "p", "--out", out])
            .code(2);
        assert!(r.stderr.contains("is the project root"), "{}", r.stderr);
    }
    let r = ws.run(&["--data-dir", "d", "render", "p"]).code(2);
    assert!(
        r.stderr.contains("give an output folder with --out"),
        "{}",
        r.stderr
    );
    assert!(!ws.path("d").exists(), "usage errors touch nothing");
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "p",
        "--out",
        "o",
        "--mode",
        "0999",
    ])
    .code(2);
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "p",
        "--out",
        "o",
        "--mode",
        "0400",
    ])
    .code(2);
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "p",
        "--out",
        "o",
        "--include",
        "a[",
    ])
    .code(2);
    ws.run(&["--data-dir", "d", "render", "nowhere", "--out", "o"])
        .code(2);
}

#[test]
fn the_walk_skips_hidden_and_build_folders_and_the_output() {
    let ws = Workspace::new();
    for f in [
        "p/io_config.yaml",
        "p/pipelines/a/metadata.yaml",
        "p/.git/x.yaml",
        "p/.hidden.yaml",
        "p/venv/x.yaml",
        "p/node_modules/x.yaml",
        "p/__pycache__/x.yaml",
        "p/target/x.yaml",
        "p/dbt/dbt_packages/x.yaml",
        "p/logs/x.yaml",
        "p/notes.txt",
        "p/dbt/profiles.yml",
        "p/skip/me.yaml",
    ] {
        ws.write(f, "k: v\n");
    }
    ws.write("p/build/old.yaml", "k: v\n");
    ws.write("p/build/.mage-secrets-output", "");
    ws.set("d", None, "x", "1");
    let out = ws
        .run(&[
            "--data-dir",
            "d",
            "-v",
            "render",
            "p",
            "--out",
            "p/build",
            "--exclude",
            "skip/**",
        ])
        .ok();
    // dbt/profiles.yml lies in no dbt project: Mage does not read it.
    assert!(
        out.stderr.contains("rendered 2 file(s) and copied 1"),
        "{}",
        out.stderr
    );
    let mut written: Vec<String> = snapshot(&ws.path("p/build"))
        .into_iter()
        .map(|(p, _, _)| {
            p.strip_prefix(ws.path("p/build"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    written.sort();
    assert_eq!(
        written,
        vec![
            ".mage-secrets-output",
            "dbt/profiles.yml",
            "io_config.yaml",
            "old.yaml",
            "pipelines/a/metadata.yaml"
        ]
    );
    let only_sql = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "o2",
            "--include",
            "*.txt",
        ])
        .ok();
    assert!(
        only_sql.stderr.contains("rendered 1 file(s)"),
        "{}",
        only_sql.stderr
    );
    assert!(ws.path("o2/notes.txt").exists());
}

#[test]
fn lenient_renders_missing_values_as_none_with_warnings() {
    let ws = Workspace::new();
    ws.set("d", None, "other", "x");
    ws.write(
        "p/a.yaml",
        "a: \"{{ mage_secret_var('nope') }}\"\nb: {{ env_var('MAGE_SECRETS_TEST_UNSET') }}\n",
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o", "--lenient"])
        .ok();
    assert_eq!(ws.read("o/a.yaml"), "a: \"None\"\nb: None");
    assert!(
        out.stderr
            .contains("a.yaml:1:8: warning: secret 'nope' is not set"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("a.yaml:2:7: warning: environment variable 'MAGE_SECRETS_TEST_UNSET'"),
        "{}",
        out.stderr
    );
}

#[test]
fn library_renders_in_memory_and_loads_io_config() {
    let ws = Workspace::new();
    copy_fixture(&ws, "demo", "demo");
    let env = mage_secrets::Environment::open(&mage_secrets::Settings::for_data_dir(
        ws.path("demo/mage_data"),
    ))
    .unwrap();
    let options = mage_secrets::template::RenderOptions::default();
    let files = env
        .render_project(&ws.path("demo/project"), &options)
        .unwrap();
    assert_eq!(files.len(), 5, "Mage's files; dbt_project.yml is dbt's");
    assert!(
        !format!("{files:?}").contains("pa\\\"ss"),
        "Debug hides contents"
    );
    let profile = env
        .load_io_config(&ws.path("demo/project"), "default")
        .unwrap();
    assert_eq!(profile["POSTGRES_USER"].as_str(), Some("orders_app"));
    let err = env
        .load_io_config(&ws.path("demo/project"), "nope")
        .unwrap_err()
        .to_string();
    assert!(err.contains("profiles: default, staging"), "{err}");
    assert_eq!(
        env.render_str("u={{ mage_secret_var('pg_user') }}", &options)
            .unwrap(),
        "u=orders_app"
    );
    assert_eq!(
        env.render_str_in_pipeline(
            "{{ mage_secret_var('slack_webhook_url') }}",
            Some("etl_orders"),
            &options
        )
        .unwrap(),
        "https://hooks.slack.com/services/T000/B000/etl-orders"
    );
    assert_eq!(
        env.render_str("{{ mage_secret_var('slack_webhook_url') }}", &options)
            .unwrap(),
        "https://hooks.slack.com/services/T000/B000/global"
    );
    assert!(env
        .render_str("{{ mage_secret_var('no_such_secret') }}", &options)
        .is_err());
    assert!(tree_contains(&ws.path("demo/project"), b"orders_app").is_none());
}

#[test]
fn pipeline_scoped_secrets_resolve_only_under_their_pipeline() {
    let ws = Workspace::new();
    set_pipeline(&ws, "d", "etl", "token", "etl-token");
    ws.write(
        "p/pipelines/etl/a.yaml",
        "t: {{ mage_secret_var('token') }}\n",
    );
    ws.write(
        "p/pipelines/other/a.yaml",
        "t: {{ mage_secret_var('token') }}\n",
    );
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(1);
    assert!(
        out.stderr.contains(
            "pipelines/other/a.yaml:1:7: error: secret 'token' is not set in environment"
        ) && out
            .stderr
            .contains("(scopes searched: pipeline:other, global)"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("pipelines/etl/a.yaml"),
        "{}",
        out.stderr
    );
}

/// The rule for conditions: evaluated at render time in a file of our own
/// names; kept for Mage (and every reference under them resolved) in a
/// file that also uses Mage's runtime names.
#[test]
fn a_secret_under_a_condition_is_needed_exactly_when_the_condition_is_kept_for_mage() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    let guarded = "{% if env_var('USE_KAFKA', '') %}\nkafka_pw: \"{{ mage_secret_var('kafka_pw') }}\"\n{% endif %}\n";
    ws.write(
        "ours.yaml",
        format!("a: \"{{{{ mage_secret_var('a') }}}}\"\n{guarded}"),
    );
    let ours = ws.run(&["--data-dir", "d", "render", "ours.yaml"]).ok();
    assert_eq!(ours.stdout, "a: \"1\"\n\n");
    ws.write(
        "mixed.yaml",
        format!(
            "a: \"{{{{ mage_secret_var('a') }}}}\"\nz: \"{{{{ variables('x') }}}}\"\n{guarded}"
        ),
    );
    let strict = ws.run(&["--data-dir", "d", "render", "mixed.yaml"]).code(1);
    assert!(
        strict.stderr.contains("mixed.yaml:4:")
            && strict
                .stderr
                .contains("`{% if %}` at line 3 is left for Mage to evaluate")
            && strict.stderr.contains("--lenient"),
        "{}",
        strict.stderr
    );
    let lenient = ws
        .run(&["--data-dir", "d", "render", "--lenient", "mixed.yaml"])
        .ok();
    assert!(
        lenient
            .stdout
            .contains("{% if env_var('USE_KAFKA', '') %}\nkafka_pw: \"None\"\n{% endif %}"),
        "{}",
        lenient.stdout
    );
    ws.set("d", None, "kafka_pw", "k");
    let set = ws.run(&["--data-dir", "d", "render", "mixed.yaml"]).ok();
    assert!(set.stdout.contains("kafka_pw: \"k\""), "{}", set.stdout);
    assert!(set.stdout.contains("{% if env_var('USE_KAFKA', '') %}"));
}

/// A project slow enough that its progress shows (each file loops).
fn slow_project(ws: &Workspace, files: usize) {
    ws.set("d", None, "pw", "v");
    ws.write("big/io_config.yaml", "x: 1\n");
    for i in 0..files {
        ws.write(
            &format!("big/data_loaders/p{i}.yaml"),
            format!("blocks: []\n{{% for i in range(20000) %}}{{% endfor %}}a: \"{{{{ mage_secret_var('pw') }}}}\"\nb: {i}\n"),
        );
    }
}

/// Runs mage-secrets on a pseudo-terminal (util-linux `script`); what the
/// terminal showed.
fn on_terminal(ws: &Workspace, args: &str, ci: bool) -> String {
    let bin = crate::support::bin();
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &format!("{} {args}", bin.display()), "/dev/null"])
        .current_dir(ws.dir.path())
        .env_remove("CI");
    if ci {
        cmd.env("CI", "true");
    }
    let out = cmd.output().expect("script (util-linux) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_shows_on_a_terminal_only_and_is_cleared() {
    let ws = Workspace::new();
    slow_project(&ws, 400);
    let shown = on_terminal(&ws, "--data-dir d render big --out o1", false);
    assert!(
        shown.contains("rendering") && shown.contains("/401 files"),
        "{}",
        &shown[..shown.len().min(300)]
    );
    // Cleared before the summary, which stands on a clean line.
    assert!(
        shown.contains("\x1b[2Krendered 401 file(s)"),
        "{}",
        &shown[shown.len().saturating_sub(300)..]
    );
    let checked = on_terminal(&ws, "--data-dir d check big", false);
    assert!(checked.contains("checking") && checked.contains("/401 files"));
    // Never in CI, with -q, or into a pipe.
    for (args, ci) in [
        ("--data-dir d render big --out o2", true),
        ("-q --data-dir d render big --out o3", false),
    ] {
        let quiet = on_terminal(&ws, args, ci);
        assert!(
            !quiet.contains("/401 files"),
            "{args}: {}",
            &quiet[..quiet.len().min(300)]
        );
    }
    let piped = ws
        .run(&["--data-dir", "d", "render", "big", "--out", "o4"])
        .ok();
    assert!(!piped.stderr.contains("files\r") && !piped.stderr.contains('\r'));
}

/// A project that cannot be rendered is what the error names, before the
/// store's error (and a data dir with no environment is left without one).
#[test]
fn a_project_error_comes_before_a_store_error() {
    let ws = Workspace::new();
    ws.write("p/notes.txt", "a: 1\n");
    let commands: [&[&str]; 2] = [
        &["--data-dir", "fresh", "render", "p", "--out", "o"],
        &["--data-dir", "fresh", "check", "p"],
    ];
    for args in commands {
        let run = ws.run(args).code(1);
        assert!(
            run.stderr.contains("nothing to render in p"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("environment"), "{}", run.stderr);
        assert!(!ws.path("fresh").exists() && !ws.path("o").exists());
    }
    // With a project to render, the store's error is the one said.
    ws.write("p/x.yaml", "a: 1\n");
    let run = ws.run(commands[0]).code(2);
    assert!(
        run.stderr.contains("has no mage-secrets environment"),
        "{}",
        run.stderr
    );
    assert!(!ws.path("o").exists());
}

/// `env_var` reads the process environment (read once per render, by both
/// render threads): every file sees the value, and a name not set gets the
/// default.
#[test]
fn env_var_is_read_from_the_process_environment_in_every_file() {
    let ws = Workspace::new();
    ws.set("d", None, "s", "v");
    for i in 0..12 {
        ws.write(
            &format!("p/f{i}.yaml"),
            "a: {{ env_var('MS_TEST_SET', 'none') }}\nb: {{ env_var('MS_TEST_UNSET', 'default') }}\n",
        );
    }
    Run::from(
        ws.cmd(&["--data-dir", "d", "render", "p", "--out", "o"])
            .env("MS_TEST_SET", "from the environment")
            .env_remove("MS_TEST_UNSET")
            .output()
            .unwrap(),
    )
    .ok();
    for i in 0..12 {
        assert_eq!(
            ws.read(&format!("o/f{i}.yaml")),
            // (Jinja drops the template's last newline, as Mage's does.)
            "a: from the environment\nb: default"
        );
    }
}
