//! Help, verbosity, the manual page, and hints for common slips.

use crate::support::Workspace;

#[test]
fn every_argument_has_a_description() {
    let ws = Workspace::new();
    let get = ws.run(&["get", "--help"]).ok().stdout;
    assert!(get.contains("<NAME>  Secret name"), "{get}");
    let check = ws.run(&["check", "--help"]).ok().stdout;
    assert!(
        check.contains("Output format: diagnostics on stderr"),
        "{check}"
    );
    let list = ws.run(&["list", "--help"]).ok().stdout;
    assert!(list.contains("--format <FORMAT>  Output format"), "{list}");
}

#[test]
fn global_options_are_grouped_apart_from_the_commands() {
    let ws = Workspace::new();
    let check = ws.run(&["check", "--help"]).ok().stdout;
    let (own, global) = check
        .split_once("Global options:")
        .unwrap_or_else(|| panic!("no global heading:\n{check}"));
    assert!(
        own.contains("--strict-env") && !own.contains("--data-dir"),
        "{check}"
    );
    assert!(
        global.contains("--data-dir") && global.contains("--verbose"),
        "{check}"
    );
    assert!(!global.contains("--strict-env"), "{check}");
}

#[test]
fn more_v_shows_more_and_the_database_without_password() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    let quiet = ws.run(&["--data-dir", "d", "get", "a"]).ok();
    assert_eq!(quiet.stderr, "");
    let v = ws.run(&["--data-dir", "d", "-v", "get", "a"]).ok();
    assert!(v.stderr.contains("database: "), "{}", v.stderr);
    assert!(v.stderr.contains("environment: "), "{}", v.stderr);
    assert!(!v.stderr.contains("key file:"), "{}", v.stderr);
    let vv = ws.run(&["--data-dir", "d", "-vv", "get", "a"]).ok();
    assert!(vv.stderr.contains("key file: "), "{}", vv.stderr);
    assert!(vv.stderr.contains("from --data-dir"), "{}", vv.stderr);
    assert!(vv.stderr.len() > v.stderr.len());

    let pg = ws.run(&[
        "--data-dir",
        "d",
        "--database",
        "postgres://app:hunter2@127.0.0.1:1/secrets?connect_timeout=1",
        "-vv",
        "list",
    ]);
    assert_eq!(pg.code, 2);
    assert!(
        pg.stderr.contains("database: postgres://app:"),
        "{}",
        pg.stderr
    );
    assert!(!pg.stderr.contains("hunter2"), "{}", pg.stderr);
}

#[test]
fn a_value_on_the_command_line_gets_a_hint_and_is_not_repeated() {
    let ws = Workspace::new();
    let out = ws
        .run(&["--data-dir", "d", "set", "pg_user", "app_user"])
        .code(2);
    assert!(
        out.stderr
            .contains("values never come from the command line"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("| mage-secrets set pg_user"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("app_user"),
        "the value is repeated: {}",
        out.stderr
    );
    assert!(!ws.path("d").exists(), "nothing was created");
}

#[test]
fn man_pages_for_the_tool_and_each_command() {
    let ws = Workspace::new();
    let page = ws.run(&["man"]).ok().stdout;
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH mage-secrets 1"),
        "{page}"
    );
    assert!(page.contains("rotate\\-key"), "{page}");
    let check = ws.run(&["man", "check"]).ok().stdout;
    assert!(check.contains("\\-\\-all\\-environments"), "{check}");
    let bad = ws.run(&["man", "nope"]).code(2);
    assert!(
        bad.stderr.contains("the commands are: set, get"),
        "{}",
        bad.stderr
    );
}
