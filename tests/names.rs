//! Names a template may use: Jinja2's filters, tests and globals, Mage's
//! functions, the names Mage passes at run time, and `--allow-unknown`
//! ones. Anything else is an error in `render` and in `check`, with the
//! nearest known name.

use crate::support::Workspace;

fn env_with_secret(ws: &Workspace) {
    ws.set("d", None, "pw", "hunter2");
}

#[test]
fn misspelled_functions_fail_render_and_check_with_a_suggestion() {
    let ws = Workspace::new();
    env_with_secret(&ws);
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret('pg_password') }}\"\nb: \"{{ env('PGHOST') }}\"\nc: \"{{ mage_secrets_var('x') }}\"\n",
    );
    let render = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(1);
    for (place, wrong, right) in [
        ("io_config.yaml:1:8", "mage_secret", "mage_secret_var"),
        ("io_config.yaml:2:8", "env", "env_var"),
        ("io_config.yaml:3:8", "mage_secrets_var", "mage_secret_var"),
    ] {
        assert!(
            render
                .stderr
                .contains(&format!("{place}: error: unknown function `{wrong}`")),
            "{}",
            render.stderr
        );
        assert!(
            render.stderr.contains(&format!("did you mean `{right}`?")),
            "{}",
            render.stderr
        );
    }
    assert!(!ws.path("o").exists(), "nothing is written");
    let check = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        check
            .stderr
            .contains("io_config.yaml:1:8: error: unknown function `mage_secret`"),
        "{}",
        check.stderr
    );
    assert!(check.stderr.contains("did you mean `mage_secret_var`?"));
    // Without the key (another environment, by existence) too.
    let uuid = ws.read("d/mage-secrets/uuid").trim().to_string();
    let other = ws
        .run(&["--data-dir", "d", "check", "p", "--environment", &uuid])
        .code(1);
    assert!(
        other.stderr.contains("unknown function `env`"),
        "{}",
        other.stderr
    );
}

#[test]
fn allow_unknown_keeps_a_custom_runtime_function_for_mage() {
    let ws = Workspace::new();
    env_with_secret(&ws);
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ vault_var('x') }}\"\nb: \"{{ mage_secret_var('pw') }}\"\n",
    );
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(1);
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "p",
        "--out",
        "o",
        "--allow-unknown",
        "vault_var",
    ])
    .ok();
    assert_eq!(
        ws.read("o/io_config.yaml"),
        "a: \"{{ vault_var('x') }}\"\nb: \"hunter2\"\n"
    );
    ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    ws.run(&[
        "--data-dir",
        "d",
        "check",
        "p",
        "--allow-unknown",
        "vault_var",
    ])
    .ok();
}

#[test]
fn mages_runtime_names_stay_for_mage_while_cycler_and_joiner_render() {
    let ws = Workspace::new();
    env_with_secret(&ws);
    let runtime = "pw: \"{{ mage_secret_var('pw') }}\"\n\
                   t: \"{{ variables('table') }}\"\n\
                   d: \"{{ n_days_ago(1) }}\"\n\
                   e: \"{{ execution_date }}\"\n\
                   o: \"{{ block_output('up') }}\"\n\
                   k: \"{{ aws_secret_var('k') }}\"\n\
                   z: \"{{ azure_secret_var('k') }}\"\n\
                   g: \"{{ gcp_secret_var('k') }}\"\n";
    ws.write("p/data_loaders/runtime.yaml", runtime);
    ws.write(
        "p/io_config.yaml",
        "{% set c = cycler('a', 'b') %}{% set j = joiner('+') %}\nx: \"{{ c.next() }}{{ c.next() }}{% for i in [1, 2] %}{{ j() }}{{ i }}{% endfor %}\"\n",
    );
    ws.run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .ok();
    assert_eq!(
        ws.read("o/data_loaders/runtime.yaml"),
        runtime.replace("{{ mage_secret_var('pw') }}", "hunter2")
    );
    assert_eq!(ws.read("o/io_config.yaml"), "\nx: \"ab1+2\"");
    ws.run(&["--data-dir", "d", "check", "p"]).ok();
}

#[test]
fn filters_and_tests_jinja2_lacks_fail_with_their_jinja2_spelling() {
    let ws = Workspace::new();
    env_with_secret(&ws);
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('pw')|split('u') }}\"\nb: \"{{ 'x' is startingwith('a') }}\"\nc: \"{{ 'a'|bool }}\"\n",
    );
    let render = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(1);
    assert!(
        render.stderr.contains(
            "io_config.yaml:1:30: error: unknown filter `split`: Jinja2, which Mage renders with, has no such filter"
        ),
        "{}",
        render.stderr
    );
    assert!(render
        .stderr
        .contains("write it as Python's method: `x.split(',')`"));
    assert!(render.stderr.contains("unknown test `startingwith`"));
    assert!(render.stderr.contains("unknown filter `bool`"));
    assert!(!render.all().contains("hunter2"));
    let check = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        check.stderr.contains("unknown filter `split`"),
        "{}",
        check.stderr
    );
}

#[test]
fn python_methods_and_jinja2_filters_render_and_check_clean() {
    let ws = Workspace::new();
    env_with_secret(&ws);
    ws.write(
        "p/io_config.yaml",
        "schemas: \"{{ env_var('SCHEMAS').split(',') | map('trim') | join('|') }}\"\n\
         url: \"postgresql://u:{{ mage_secret_var('pw') | urlencode }}@h/db\"\n\
         name: \"{{ '%s-%d' % ('etl', 3) }}\"\n\
         {% for k, v in {'a': 1}.items() %}{{ k }}: {{ v }}{% endfor %}\n",
    );
    let mut cmd = ws.cmd(&["--data-dir", "d", "render", "p", "--out", "o"]);
    cmd.env("SCHEMAS", "raw, stage");
    assert!(cmd.status().unwrap().success());
    assert_eq!(
        ws.read("o/io_config.yaml"),
        "schemas: \"raw|stage\"\nurl: \"postgresql://u:hunter2@h/db\"\nname: \"etl-3\"\na: 1"
    );
    let mut cmd = ws.cmd(&["--data-dir", "d", "check", "p"]);
    cmd.env("SCHEMAS", "raw, stage");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
