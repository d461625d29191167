//! Environments never appear by accident: only `set` and a real
//! `import-mage` create one, and an empty value is a deliberate choice.

use crate::support::Workspace;

#[test]
fn commands_that_only_read_never_create_an_environment() {
    let ws = Workspace::new();
    ws.write("p/io_config.yaml", "a: 1\n");
    let commands: &[&[&str]] = &[
        &["get", "x"],
        &["list"],
        &["env"],
        &["delete", "x"],
        &["rotate-key"],
        &["render", "p/io_config.yaml"],
        &["render", "p", "--out", "o"],
        &["check", "p"],
        &["import-mage", "--dry-run"],
    ];
    for args in commands {
        let out = ws
            .run(&[&["--data-dir", "typo"][..], args].concat())
            .code(2);
        assert!(
            out.stderr
                .contains("data dir typo has no mage-secrets environment")
                && out.stderr.contains("mage-secrets set"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!ws.path("typo").exists(), "{args:?} created the data dir");
        assert!(!ws.path("o").exists());
    }
    ws.run_with_stdin(&["--data-dir", "typo", "set", "x"], b"1")
        .ok();
    ws.run(&["--data-dir", "typo", "get", "x"]).ok();
}

#[test]
fn an_empty_value_from_a_pipe_or_closed_stdin_is_refused() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "kept");
    for stdin in [&b""[..], b"\n", b"\r\n"] {
        let out = ws
            .run_with_stdin(&["--data-dir", "d", "set", "pw"], stdin)
            .code(2);
        assert!(out.stderr.contains("--allow-empty"), "{}", out.stderr);
        assert_eq!(
            ws.run(&["--data-dir", "d", "get", "pw"]).ok().stdout,
            "kept\n"
        );
    }
    let closed = ws
        .cmd(&["--data-dir", "d", "set", "pw"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(2));
    assert_eq!(
        ws.run(&["--data-dir", "d", "get", "pw"]).ok().stdout,
        "kept\n"
    );
    ws.run_with_stdin(&["--data-dir", "d", "set", "pw", "--allow-empty"], b"")
        .ok();
    assert_eq!(ws.run(&["--data-dir", "d", "get", "pw"]).ok().stdout, "\n");
}

#[test]
fn an_environment_is_never_split_across_two_databases() {
    let ws = Workspace::new();
    ws.set("d", Some("shared.db"), "pw", "v");
    assert!(ws
        .read("d/mage-secrets/database")
        .contains(&ws.path("shared.db").display().to_string()));
    // Forgetting --database: refused, naming where it lives, nothing made.
    let forgot = ws.run(&["--data-dir", "d", "get", "pw"]).code(2);
    assert!(
        forgot.stderr.contains("lives in database")
            && forgot
                .stderr
                .contains(&format!("--database {}", ws.path("shared.db").display())),
        "{}",
        forgot.stderr
    );
    let set = ws
        .run_with_stdin(&["--data-dir", "d", "set", "other"], b"x")
        .code(2);
    assert!(set.stderr.contains("lives in database"), "{}", set.stderr);
    assert!(
        !ws.path("d/mage-secrets/secrets.db").exists(),
        "no second database"
    );
    // A relative --database from another folder is another file: refused
    // before it is created.
    std::fs::create_dir_all(ws.path("elsewhere")).unwrap();
    let d = ws.path("d").display().to_string();
    let relative = ws.run_in(
        &ws.path("elsewhere"),
        &["--data-dir", &d, "--database", "shared.db", "get", "pw"],
    );
    assert_eq!(relative.code, 2, "{}", relative.stderr);
    assert!(!ws.path("elsewhere/shared.db").exists());
    // The same file by another spelling is the same database.
    ws.run(&["--data-dir", "d", "--database", "./shared.db", "get", "pw"])
        .ok();
    // doctor says the same.
    let doctor = ws.run(&["--data-dir", "d", "doctor"]).code(1);
    assert!(
        doctor.stdout.contains("PROBLEM  database record"),
        "{}",
        doctor.stdout
    );
    let fine = ws
        .run(&["--data-dir", "d", "--database", "shared.db", "doctor"])
        .ok();
    assert!(
        fine.stdout.contains("ok       database record"),
        "{}",
        fine.stdout
    );
}

#[test]
fn a_database_replaced_at_the_recorded_place_is_refused_by_its_id() {
    let ws = Workspace::new();
    ws.set("d", Some("shared.db"), "pw", "v");
    let record = ws.read("d/mage-secrets/database");
    let id_line = record
        .lines()
        .find(|l| l.starts_with("id: "))
        .unwrap_or_else(|| panic!("no id recorded:\n{record}"))
        .to_string();
    // Another environment's database copied over the recorded place.
    ws.set("other", Some("other.db"), "pw", "theirs");
    std::fs::copy(ws.path("other.db"), ws.path("shared.db")).unwrap();
    for args in [&["get", "pw"][..], &["list"], &["set", "new"]] {
        let out = ws
            .run_with_stdin(
                &[&["--data-dir", "d", "--database", "shared.db"][..], args].concat(),
                b"x",
            )
            .code(2);
        assert!(
            out.stderr
                .contains("is not the one the environment of data dir")
                && out.stderr.contains(&id_line),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("theirs") && !out.stdout.contains("theirs"));
    }
    let rows: i64 = rusqlite::Connection::open(ws.path("shared.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM secrets WHERE name = 'new'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, 0, "nothing written");
    let doctor = ws
        .run(&["--data-dir", "d", "--database", "shared.db", "doctor"])
        .code(1);
    assert!(
        doctor.stdout.contains("PROBLEM  database id"),
        "{}",
        doctor.stdout
    );
    // A deliberate replacement: the id line is removed, the next use
    // records the new id.
    let without: String = record
        .lines()
        .filter(|l| !l.starts_with("id: "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(ws.path("d/mage-secrets/database"), without).unwrap();
    ws.run(&["--data-dir", "d", "--database", "shared.db", "list"])
        .ok();
    let renewed = ws.read("d/mage-secrets/database");
    assert!(
        renewed.contains("id: ") && !renewed.contains(&id_line),
        "{renewed}"
    );
    let fine = ws
        .run(&["--data-dir", "d", "--database", "shared.db", "doctor"])
        .stdout;
    assert!(fine.contains("ok       database id"), "{fine}");
}

#[test]
fn a_data_dir_moved_with_its_own_database_keeps_working() {
    let ws = Workspace::new();
    ws.set("a", None, "pw", "v");
    let record = ws.read("a/mage-secrets/database");
    assert!(
        record.contains("\nsecrets.db\n"),
        "relative place:\n{record}"
    );
    std::fs::rename(ws.path("a"), ws.path("moved")).unwrap();
    let out = ws.run(&["--data-dir", "moved", "get", "pw"]).ok();
    assert_eq!(out.stdout, "v\n");
    // Another database is still refused, naming the data dir's own.
    let out = ws
        .run(&["--data-dir", "moved", "--database", "other.db", "get", "pw"])
        .code(2);
    assert!(
        out.stderr.contains("moved/mage-secrets/secrets.db"),
        "{}",
        out.stderr
    );
    // A record from before relative places (an absolute path that is gone):
    // the data dir's own database is used, and its id still decides.
    let old = record.replace(
        "\nsecrets.db\n",
        &format!("\n{}\n", ws.path("a/mage-secrets/secrets.db").display()),
    );
    std::fs::write(ws.path("moved/mage-secrets/database"), &old).unwrap();
    let out = ws.run(&["--data-dir", "moved", "get", "pw"]).ok();
    assert_eq!(out.stdout, "v\n");
    ws.set("other", None, "pw", "theirs");
    std::fs::copy(
        ws.path("other/mage-secrets/secrets.db"),
        ws.path("moved/mage-secrets/secrets.db"),
    )
    .unwrap();
    let out = ws.run(&["--data-dir", "moved", "get", "pw"]).code(2);
    assert!(out.stderr.contains("its id is"), "{}", out.stderr);
    assert!(!out.stdout.contains("theirs"));
}

#[test]
fn a_missing_shared_database_is_not_replaced_by_the_data_dirs_own() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "old");
    // The environment moves to a shared database on a volume; the data
    // dir's own file stays behind, a stale copy with the same id.
    std::fs::create_dir(ws.path("vol")).unwrap();
    std::fs::copy(
        ws.path("d/mage-secrets/secrets.db"),
        ws.path("vol/shared.db"),
    )
    .unwrap();
    let record = ws.read("d/mage-secrets/database");
    std::fs::write(
        ws.path("d/mage-secrets/database"),
        record.replace(
            "\nsecrets.db\n",
            &format!("\n{}\n", ws.path("vol/shared.db").display()),
        ),
    )
    .unwrap();
    ws.run_with_stdin(
        &[
            "--data-dir",
            "d",
            "--database",
            "vol/shared.db",
            "set",
            "pw",
        ],
        b"new",
    )
    .ok();
    // The volume is not mounted: the stale copy is never used.
    std::fs::rename(ws.path("vol"), ws.path("vol.unmounted")).unwrap();
    let out = ws.run(&["--data-dir", "d", "get", "pw"]).code(2);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("vol/shared.db"), "{}", out.stderr);
}
