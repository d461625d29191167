//! Guards around given keys: `MAGE_SECRETS_ENVIRONMENT` without a key,
//! the key's descriptor and its file kept from the commands mage-secrets
//! starts, and key files that are not files.

use std::fs;

use crate::keys::{name_environment, on_a_terminal, run_with_key, seed, SHARED};
use crate::support::{snapshot, Workspace};

#[test]
fn a_name_or_prefix_naming_another_environment_without_a_key_is_refused_too() {
    let ws = Workspace::new();
    let (_, prod_uuid) = seed(&ws);
    name_environment(&ws, "prod", "prod");
    for named in ["prod", &prod_uuid[..8], "staging"] {
        let mut cmd = ws.cmd(&["--data-dir", "dev", "--database", SHARED, "get", "secret1"]);
        let out = cmd.env("MAGE_SECRETS_ENVIRONMENT", named).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{named}: {stderr}");
        assert!(out.stdout.is_empty(), "{named}");
        assert!(stderr.contains("no key is given"), "{named}: {stderr}");
    }
    // The data dir's own name is its own environment.
    ws.run(&[
        "--data-dir",
        "dev",
        "--database",
        SHARED,
        "env",
        "--name",
        "dev",
    ])
    .ok();
    let mut cmd = ws.cmd(&["--data-dir", "dev", "--database", SHARED, "get", "secret1"]);
    let out = cmd.env("MAGE_SECRETS_ENVIRONMENT", "dev").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sooper dooper secret string\n"
    );
}

#[test]
fn a_refused_environment_variable_creates_nothing_first() {
    let ws = Workspace::new();
    let (_, prod_uuid) = seed(&ws);
    ws.write("value.txt", "v");
    let before = snapshot(&ws.path(""));
    // A fresh data dir: `set` would create an environment; the variable
    // names prod, and no key came.
    let mut cmd = ws.cmd(&[
        "--data-dir",
        "fresh",
        "--database",
        SHARED,
        "set",
        "x",
        "--from-file",
        "value.txt",
    ]);
    let out = cmd
        .env("MAGE_SECRETS_ENVIRONMENT", &prod_uuid)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has no environment; nothing was created"),
        "{stderr}"
    );
    assert!(!ws.path("fresh").exists());
    assert_eq!(snapshot(&ws.path("")), before);
}

#[test]
fn key_file_wins_over_an_empty_key_variable() {
    let ws = Workspace::new();
    let (prod_key, uuid) = seed(&ws);
    ws.write("prod.key", &prod_key);
    let got = run_with_key(
        &ws,
        "",
        &uuid,
        &["--key-file", "prod.key", "get", "secret1"],
        b"",
    )
    .ok();
    // (Without --key-file the empty variable is an error: keys.rs.)
    assert_eq!(got.stdout, "real production secret\n");
}

#[test]
fn an_empty_or_folder_database_is_left_as_it_is_with_a_given_key() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    ws.write("empty.db", "");
    fs::create_dir(ws.path("folder.db")).unwrap();
    for (db, want) in [("empty.db", "is empty"), ("folder.db", "is not a file")] {
        let mut cmd = ws.cmd(&["--database", db, "get", "secret1"]);
        let out = cmd
            .env("MAGE_SECRETS_KEY", &key)
            .env("MAGE_SECRETS_ENVIRONMENT", &uuid)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{db}: {stderr}");
        assert!(stderr.contains(want), "{db}: {stderr}");
    }
    assert_eq!(fs::metadata(ws.path("empty.db")).unwrap().len(), 0);
    assert_eq!(fs::read_dir(ws.path("folder.db")).unwrap().count(), 0);
}

#[test]
fn a_command_run_does_not_get_the_descriptor_the_key_was_read_from() {
    let ws = Workspace::new();
    let (prod_key, uuid) = seed(&ws);
    ws.write("prod.key", &prod_key);
    // A key redirected into standard input: the child's is /dev/null
    // (reading /dev/stdin opens the file again, from its start).
    let read_stdin = "cat /dev/stdin 2>/dev/null; echo \"[$secret1]\"";
    let mut cmd = ws.cmd(&[
        "--database",
        SHARED,
        "--key-file",
        "-",
        "run",
        "--",
        "sh",
        "-c",
        read_stdin,
    ]);
    let out = cmd
        .env("MAGE_SECRETS_ENVIRONMENT", &uuid)
        .stdin(fs::File::open(ws.path("prod.key")).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "[real production secret]\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A key on descriptor 3, named directly or through a link: closed for
    // the child (reading /dev/fd/3 would open the file again).
    std::os::unix::fs::symlink("/dev/fd/3", ws.path("fd3link")).unwrap();
    for named in ["/dev/fd/3", "fd3link"] {
        let script = format!(
            "exec 3<prod.key; exec {} --database {SHARED} --key-file {named} run -- sh -c 'cat /dev/fd/3 2>/dev/null; echo \"[$secret1]\"'",
            env!("CARGO_BIN_EXE_mage-secrets")
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(ws.path(""))
            .env("MAGE_SECRETS_ENVIRONMENT", &uuid)
            .env_remove("MAGE_SECRETS_KEY")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout,
            "[real production secret]\n",
            "{named}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_key_given_where_a_key_file_path_goes_is_not_echoed() {
    let ws = Workspace::new();
    let (prod_key, uuid) = seed(&ws);
    let mut cmd = ws.cmd(&[
        "--database",
        SHARED,
        "--key-file",
        prod_key.trim(),
        "get",
        "secret1",
    ]);
    let out = cmd.env("MAGE_SECRETS_ENVIRONMENT", &uuid).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("looks like a key itself"), "{stderr}");
    assert!(!stderr.contains(prod_key.trim()), "{stderr}");
}

#[test]
fn a_key_file_that_is_a_terminal_is_refused_not_waited_for() {
    let ws = Workspace::new();
    seed(&ws);
    for path in ["-", "/dev/stdin", "/dev/fd/0"] {
        let (code, _, stderr) = on_a_terminal(
            &ws,
            &["--database", SHARED, "--key-file", path, "get", "secret1"],
            true,
        );
        assert_eq!(code, 2, "{path}: {stderr}");
        assert!(stderr.contains("is a terminal"), "{path}: {stderr}");
    }
}

#[test]
fn export_key_does_not_take_a_name_too() {
    let ws = Workspace::new();
    seed(&ws);
    let run = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            SHARED,
            "env",
            "--export-key",
            "--name",
            "p",
        ])
        .code(2);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}

#[test]
fn verbose_output_says_where_a_given_key_came_from_not_a_key_file() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    let run = run_with_key(&ws, &key, &uuid, &["-vv", "list"], b"").ok();
    assert!(
        run.stderr.contains("key from MAGE_SECRETS_KEY"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("key file:"), "{}", run.stderr);
    assert!(!run.stderr.contains(key.trim()));
}
