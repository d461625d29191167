//! The secret store from the command line: environments, set/get/list/
//! delete/env, the key life cycle and bad input.

use std::fs;

use crate::support::{mode, snapshot, tree_contains, Workspace};

const SHARED: &str = "shared.db";

fn seed(ws: &Workspace) {
    ws.set(
        "dev",
        Some(SHARED),
        "secret1",
        "sooper dooper secret string",
    );
    ws.set("dev", Some(SHARED), "secret3", "dev only secret");
    ws.set("prod", Some(SHARED), "secret1", "real production secret");
}

fn get(ws: &Workspace, env: &str, name: &str) -> crate::support::Run {
    ws.run(&["--data-dir", env, "--database", SHARED, "get", name])
}

#[test]
fn seed_scenario_two_environments_share_one_database() {
    let ws = Workspace::new();
    seed(&ws);
    assert_eq!(
        get(&ws, "dev", "secret1").ok().stdout,
        "sooper dooper secret string\n"
    );
    assert_eq!(get(&ws, "dev", "secret3").ok().stdout, "dev only secret\n");
    assert_eq!(
        get(&ws, "prod", "secret1").ok().stdout,
        "real production secret\n"
    );
    let missing = get(&ws, "prod", "secret3").code(1);
    assert_eq!(missing.stdout, "");
    let prod_uuid = ws.read("prod/mage-secrets/uuid");
    assert_eq!(
        missing.stderr,
        format!(
            "error: secret 'secret3' is not set in environment {}\n",
            prod_uuid.trim()
        )
    );
    assert_ne!(ws.read("dev/mage-secrets/uuid"), prod_uuid);
}

#[test]
fn library_reads_what_the_cli_wrote() {
    let ws = Workspace::new();
    seed(&ws);
    for (env, want1, want3) in [
        (
            "dev",
            Some("sooper dooper secret string"),
            Some("dev only secret"),
        ),
        ("prod", Some("real production secret"), None),
    ] {
        let settings = mage_secrets::Settings {
            data_dir: ws.path(env),
            database: Some(ws.path(SHARED).display().to_string()),
            key: None,
        };
        let env = mage_secrets::Environment::open(&settings).unwrap();
        assert_eq!(env.get_secret_value("secret1").unwrap().as_deref(), want1);
        assert_eq!(env.get_secret_value("secret3").unwrap().as_deref(), want3);
    }
}

#[test]
fn no_plaintext_in_the_database_or_in_any_output() {
    let ws = Workspace::new();
    let marker = "MARKER-7f3a9c-plaintext";
    ws.set("dev", None, "pw", marker);
    ws.set("dev", None, "other", &format!("{marker} again"));
    let mut outputs = vec![
        ws.run(&["--data-dir", "dev", "list"]).ok(),
        ws.run(&[
            "--data-dir",
            "dev",
            "list",
            "--all-scopes",
            "--format",
            "json",
        ])
        .ok(),
        ws.run(&["--data-dir", "dev", "env"]).ok(),
        ws.run(&["--data-dir", "dev", "-v", "get", "missing"])
            .code(1),
        ws.run(&["--data-dir", "dev", "delete", "missing"]).code(1),
    ];
    outputs.push(
        ws.run_with_stdin(&["--data-dir", "dev", "-v", "set", "pw"], marker.as_bytes())
            .ok(),
    );
    for out in &outputs {
        assert!(!out.all().contains(marker), "value leaked: {}", out.all());
    }
    assert_eq!(tree_contains(&ws.path("dev"), marker.as_bytes()), None);
    assert_eq!(
        ws.run(&["--data-dir", "dev", "get", "pw"]).ok().stdout,
        format!("{marker}\n")
    );
}

#[test]
fn overwriting_keeps_one_row_and_delete_of_missing_exits_1() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "one");
    ws.set("d", None, "pw", "two");
    let list = ws
        .run(&["--data-dir", "d", "list", "--format", "json"])
        .ok();
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(
        ws.run(&["--data-dir", "d", "get", "pw"]).ok().stdout,
        "two\n"
    );
    ws.run(&["--data-dir", "d", "delete", "pw"]).ok();
    let again = ws.run(&["--data-dir", "d", "delete", "pw"]).code(1);
    assert!(
        again
            .stderr
            .contains("secret 'pw' is not set in environment"),
        "{}",
        again.stderr
    );
    ws.run(&["--data-dir", "d", "get", "pw"]).code(1);
}

#[test]
fn pipeline_scope_falls_back_to_global_on_get() {
    let ws = Workspace::new();
    ws.set("d", None, "shared", "global value");
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "api", "--pipeline", "etl"],
        b"etl value\n",
    )
    .ok();
    let get = |args: &[&str]| ws.run(&[&["--data-dir", "d", "get"][..], args].concat());
    assert_eq!(
        get(&["api", "--pipeline", "etl"]).ok().stdout,
        "etl value\n"
    );
    assert_eq!(
        get(&["shared", "--pipeline", "etl"]).ok().stdout,
        "global value\n"
    );
    let missing = get(&["api"]).code(1);
    assert!(
        missing.stderr.contains("'api' is not set"),
        "{}",
        missing.stderr
    );
    let other = get(&["api", "--pipeline", "other"]).code(1);
    assert!(
        other
            .stderr
            .contains("(scopes searched: pipeline:other, global)"),
        "{}",
        other.stderr
    );
    let list = ws
        .run(&["--data-dir", "d", "list", "--pipeline", "etl"])
        .ok();
    assert!(
        list.stdout.contains("api") && !list.stdout.contains("shared"),
        "{}",
        list.stdout
    );
    let all = ws.run(&["--data-dir", "d", "list", "--all-scopes"]).ok();
    assert!(
        all.stdout.contains("pipeline:etl") && all.stdout.contains("global"),
        "{}",
        all.stdout
    );
}

#[test]
fn values_from_pipe_file_are_exact() {
    let ws = Workspace::new();
    ws.run_with_stdin(&["--data-dir", "d", "set", "crlf"], b"v\r\n")
        .ok();
    ws.run_with_stdin(&["--data-dir", "d", "set", "two_newlines"], b"v\n\n")
        .ok();
    ws.run_with_stdin(&["--data-dir", "d", "set", "empty", "--allow-empty"], b"")
        .ok();
    ws.write("pem", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n");
    ws.run(&["--data-dir", "d", "set", "pem", "--from-file", "pem"])
        .ok();
    let get = |n: &str| ws.run(&["--data-dir", "d", "get", n]).ok().stdout;
    assert_eq!(get("crlf"), "v\n");
    assert_eq!(get("two_newlines"), "v\n\n");
    assert_eq!(get("empty"), "\n");
    assert_eq!(
        get("pem"),
        "-----BEGIN KEY-----\nabc\n-----END KEY-----\n\n"
    );
}

#[test]
fn layout_and_permissions_follow_the_contract() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "x");
    assert_eq!(mode(&ws.path("d")), 0o700);
    assert_eq!(mode(&ws.path("d/mage-secrets")), 0o700);
    assert_eq!(mode(&ws.path("d/mage-secrets/key")), 0o600);
    assert_eq!(mode(&ws.path("d/mage-secrets/uuid")), 0o644);
    assert_eq!(mode(&ws.path("d/mage-secrets/secrets.db")), 0o600);
    let key = ws.read("d/mage-secrets/key");
    assert_eq!(key.len(), 45, "base64 of 32 bytes and a newline");
    assert!(key.ends_with("=\n"));
    let uuid = ws.read("d/mage-secrets/uuid");
    assert!(uuid::Uuid::parse_str(uuid.trim()).is_ok());
    assert_eq!(uuid, uuid.to_lowercase());
    let conn = rusqlite::Connection::open(ws.path("d/mage-secrets/secrets.db")).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "schema 3: environment names, the database id");
    let envs: i64 = conn
        .query_row("SELECT count(*) FROM environments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(envs, 1);
}

#[test]
fn default_data_dir_is_home_mage_data_and_env_vars_are_honoured() {
    let ws = Workspace::new();
    ws.run_with_stdin(&["set", "a"], b"1").ok();
    assert!(ws.path("home/.mage_data/mage-secrets/key").exists());
    let status = ws
        .cmd(&["set", "b", "--allow-empty"])
        .env("MAGE_DATA_DIR", ws.path("other"))
        .env("MAGE_SECRETS_DATABASE", ws.path("x.db"))
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let out = ws
        .cmd(&["env"])
        .env("MAGE_DATA_DIR", ws.path("other"))
        .env("MAGE_SECRETS_DATABASE", ws.path("x.db"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("database:  {}", ws.path("x.db").display())),
        "{text}"
    );
    assert!(ws.path("other/mage-secrets/uuid").exists());
}

#[test]
fn missing_key_with_stored_secrets_is_refused_not_replaced() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.set("d", None, "b", "2");
    fs::remove_file(ws.path("d/mage-secrets/key")).unwrap();
    let before = snapshot(ws.dir.path());
    let out = ws.run(&["--data-dir", "d", "get", "a"]).code(2);
    assert!(out.stderr.contains("holds 2 secret(s)"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&ws.path("d").display().to_string())
            || out.stderr.contains("data dir d"),
        "{}",
        out.stderr
    );
    assert!(
        !ws.path("d/mage-secrets/key").exists(),
        "no new key may be made"
    );
    assert_eq!(before, snapshot(ws.dir.path()));
}

#[test]
fn a_key_from_another_environment_is_a_wrong_key() {
    let ws = Workspace::new();
    seed(&ws);
    fs::copy(
        ws.path("prod/mage-secrets/key"),
        ws.path("dev/mage-secrets/key"),
    )
    .unwrap();
    let before = snapshot(ws.dir.path());
    let out = get(&ws, "dev", "secret1").code(2);
    assert!(out.stderr.starts_with("error: key file"), "{}", out.stderr);
    assert!(
        out.stderr.contains("does not open environment"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
    assert_eq!(before, snapshot(ws.dir.path()));
}

#[test]
fn a_tampered_row_fails_to_open() {
    let ws = Workspace::new();
    seed(&ws);
    {
        let conn = rusqlite::Connection::open(ws.path(SHARED)).unwrap();
        // Copy prod's sealed secret1 over dev's: valid ciphertext, wrong binding.
        conn.execute_batch(
            "UPDATE secrets SET value = (SELECT value FROM secrets s2 WHERE s2.name = 'secret1' AND s2.env_uuid != secrets.env_uuid)
             WHERE name = 'secret1' AND env_uuid = (SELECT env_uuid FROM secrets WHERE name = 'secret3');",
        )
        .unwrap();
        // Flip one bit of dev's secret3.
        let mut blob: Vec<u8> = conn
            .query_row(
                "SELECT value FROM secrets WHERE name = 'secret3'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        *blob.last_mut().unwrap() ^= 1;
        conn.execute(
            "UPDATE secrets SET value = ?1 WHERE name = 'secret3'",
            [blob],
        )
        .unwrap();
    }
    for name in ["secret1", "secret3"] {
        let out = get(&ws, "dev", name).code(2);
        assert!(
            out.stderr.contains("could not be decrypted"),
            "{}",
            out.stderr
        );
        assert_eq!(out.stdout, "");
    }
    assert_eq!(
        get(&ws, "prod", "secret1").ok().stdout,
        "real production secret\n"
    );
}

#[test]
fn a_truncated_key_file_is_a_clear_error() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    let key = ws.read("d/mage-secrets/key");
    ws.write("d/mage-secrets/key", &key[..20]);
    let before = snapshot(ws.dir.path());
    let out = ws.run(&["--data-dir", "d", "get", "a"]).code(2);
    assert!(
        out.stderr.contains("key file") && out.stderr.contains("truncated"),
        "{}",
        out.stderr
    );
    assert_eq!(before, snapshot(ws.dir.path()));
}

#[test]
fn a_database_that_is_not_sqlite_is_refused_untouched() {
    let ws = Workspace::new();
    ws.write(
        "notes.db",
        "these are my notes, not a database\n".repeat(50),
    );
    let before = fs::read(ws.path("notes.db")).unwrap();
    let out = ws
        .run_with_stdin(
            &["--data-dir", "d", "--database", "notes.db", "set", "a"],
            b"1",
        )
        .code(2);
    assert!(
        out.stderr.contains("is not a SQLite database"),
        "{}",
        out.stderr
    );
    assert_eq!(before, fs::read(ws.path("notes.db")).unwrap());
}

#[test]
fn an_unusable_data_dir_is_a_clear_error() {
    let ws = Workspace::new();
    ws.write("file", "x");
    for dir in ["file", "file/sub"] {
        let out = ws
            .run_with_stdin(&["--data-dir", dir, "set", "a"], b"1")
            .code(2);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        assert!(out.stderr.contains("file"), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    assert_eq!(ws.read("file"), "x");
}

#[test]
fn an_unwritable_data_dir_is_a_clear_error() {
    let ws = Workspace::new();
    fs::create_dir(ws.path("ro")).unwrap();
    fs::set_permissions(
        ws.path("ro"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let out = ws
        .run_unprivileged(&["--data-dir", "ro", "set", "x", "--allow-empty"])
        .code(2);
    assert!(
        out.stderr.starts_with("error: cannot create folder ")
            && out.stderr.contains("ro/mage-secrets: Permission denied"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
    assert_eq!(fs::read_dir(ws.path("ro")).unwrap().count(), 0);
}

#[test]
fn invalid_names_and_oversized_values_change_nothing() {
    let ws = Workspace::new();
    let long = "a".repeat(256);
    for name in ["1abc", "a-b", "", long.as_str()] {
        let out = ws
            .run_with_stdin(&["--data-dir", "d", "set", name], b"v")
            .code(2);
        assert!(
            out.stderr.starts_with("error: invalid secret name"),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1);
        ws.run(&["--data-dir", "d", "get", name]).code(2);
    }
    assert!(
        !ws.path("d").exists(),
        "nothing may be created for bad input"
    );
    let big = vec![b'x'; 1024 * 1024 + 1];
    let out = ws
        .run_with_stdin(&["--data-dir", "d", "set", "big"], &big)
        .code(2);
    assert!(out.stderr.contains("limit is 1 MiB"), "{}", out.stderr);
    ws.write("big.bin", &big);
    ws.run(&["--data-dir", "d", "set", "big", "--from-file", "big.bin"])
        .code(2);
    assert!(!ws.path("d").exists());
    let exact = vec![b'y'; 1024 * 1024];
    ws.run_with_stdin(&["--data-dir", "d", "set", "big"], &exact)
        .ok();
    let out = ws
        .run_with_stdin(&["--data-dir", "d", "set", "bad"], b"\xff\xfe")
        .code(2);
    assert!(out.stderr.contains("not valid UTF-8"), "{}", out.stderr);
}

#[test]
fn help_shows_an_example_per_command_and_completions_work() {
    let ws = Workspace::new();
    for cmd in ["set", "get", "list", "delete", "env", "completions"] {
        let out = ws.run(&[cmd, "--help"]).ok();
        assert!(out.stdout.contains("Examples:"), "{cmd}: {}", out.stdout);
    }
    let bash = ws.run(&["completions", "bash"]).ok();
    assert!(bash.stdout.contains("mage-secrets"));
    ws.run(&["frobnicate"]).code(2);
    ws.run(&["--color", "sometimes", "env"]).code(2);
}
