//! The README's sample output is what the tool prints.

use crate::support::Workspace;

/// The fenced block of the README that starts with `$ <command>`.
fn sample(command: &str) -> String {
    let readme = include_str!("../README.md");
    let start = readme
        .find(&format!("```\n$ {command}\n"))
        .unwrap_or_else(|| panic!("the README has no sample of `{command}`"));
    let body = &readme[start + 4..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

#[test]
fn the_sample_check_output_is_what_check_prints() {
    let ws = Workspace::new();
    ws.write(
        "proj/io_config.yaml",
        "version: 0.1.1\ndefault:\n  POSTGRES_HOST: \"{{ env_var('PGHOST', 'localhost') }}\"\n  POSTGRES_PASSWORD: \"{{ mage_secret_var('pg_password') }}\"\n  POSTGRES_USER: \"{{ mage_secret_var('pg_user') }}\"\n",
    );
    ws.write(
        "proj/pipelines/etl/metadata.yaml",
        "blocks: []\nname: etl\nexecutor_config:\n  namespace: \"{{ mage_secret_var('pg_password') }}\"\n",
    );
    ws.set("d", None, "pg_user", "app");
    let d = ws.path("d").display().to_string();
    let out = ws.run_in(&ws.path("proj"), &["--data-dir", &d, "check", "."]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let uuid = ws.read("d/mage-secrets/uuid").trim().to_string();
    let expected = sample("mage-secrets check .");
    let shown_uuid = expected
        .split("environment ")
        .nth(1)
        .and_then(|rest| rest.split([' ', ':', '\n']).next())
        .unwrap();
    assert_eq!(out.stderr.replace(&uuid, shown_uuid), expected);
}
