//! The PostgreSQL backend through the real binary: the seed scenario,
//! check across environments, rotation, concurrent clients, watch with
//! LISTEN/NOTIFY across a server restart, and a server that is down.
//! Each test uses a database of its own on the server named by
//! MAGE_SECRETS_TEST_POSTGRES_URL, and is skipped (saying so) without it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fault_proxy::{silent_server, AfterCommit, FaultProxy, Outage};
use crate::support::Workspace;

/// Restarting the server must not cut the connections of another test, in
/// this process or another (a test runner may run each test in a process of
/// its own): tests share a file lock on the server, the restart takes it
/// alone.
struct ServerLock {
    _held: std::fs::File,
}

impl ServerLock {
    fn open() -> std::fs::File {
        let url = std::env::var("MAGE_SECRETS_TEST_POSTGRES_URL").unwrap_or_default();
        let port: String = url
            .rsplit(':')
            .next()
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join(format!("mage-secrets-test-server-{port}.lock")))
            .expect("open the server lock")
    }

    fn shared() -> ServerLock {
        let file = Self::open();
        file.lock_shared().expect("lock the server (shared)");
        ServerLock { _held: file }
    }

    fn exclusive() -> ServerLock {
        let file = Self::open();
        file.lock().expect("lock the server");
        ServerLock { _held: file }
    }
}

fn database(test: &str) -> Option<String> {
    crate::support::test_postgres_database(test)
}

fn get(ws: &Workspace, env: &str, db: &str, name: &str) -> crate::support::Run {
    ws.run(&["--data-dir", env, "--database", db, "get", name])
}

fn set(ws: &Workspace, env: &str, db: &str, name: &str, value: &str) {
    ws.run_with_stdin(
        &["--data-dir", env, "--database", db, "set", name],
        value.as_bytes(),
    )
    .ok();
}

#[test]
fn seed_scenario_on_a_shared_server() {
    let _server = ServerLock::shared();
    let Some(db) = database("seed") else { return };
    // Two machines' worth of processes: separate data dirs, one server.
    let dev = Workspace::new();
    let prod = Workspace::new();
    set(&dev, "dev", &db, "secret1", "sooper dooper secret string");
    set(&dev, "dev", &db, "secret3", "dev only secret");
    set(&prod, "prod", &db, "secret1", "real production secret");
    assert_eq!(
        get(&dev, "dev", &db, "secret1").ok().stdout,
        "sooper dooper secret string\n"
    );
    assert_eq!(
        get(&dev, "dev", &db, "secret3").ok().stdout,
        "dev only secret\n"
    );
    assert_eq!(
        get(&prod, "prod", &db, "secret1").ok().stdout,
        "real production secret\n"
    );
    let missing = get(&prod, "prod", &db, "secret3").code(1);
    assert!(
        missing.stderr.contains("secret 'secret3' is not set"),
        "{}",
        missing.stderr
    );
    let env = prod
        .run(&["--data-dir", "prod", "--database", &db, "env"])
        .ok();
    assert!(
        env.stdout
            .contains("database:  postgres://mage_secrets:***@"),
        "{}",
        env.stdout
    );
    assert!(!env.all().contains("test-password-not-secret"));
}

#[test]
fn check_other_environments_and_the_table_on_postgres() {
    let _server = ServerLock::shared();
    let Some(db) = database("check") else { return };
    let ws = Workspace::new();
    set(&ws, "dev", &db, "secret1", "a");
    set(&ws, "dev", &db, "secret3", "b");
    set(&ws, "prod", &db, "secret1", "c");
    let dev_uuid = ws.read("dev/mage-secrets/uuid").trim().to_string();
    std::fs::remove_dir_all(ws.path("dev")).unwrap();
    ws.write(
        "p/io_config.yaml",
        "a: \"{{ mage_secret_var('secret1') }}\"\nb: \"{{ mage_secret_var('secret3') }}\"\n",
    );
    let prod = ws
        .run(&["--data-dir", "prod", "--database", &db, "check", "p"])
        .code(1);
    assert!(
        prod.stderr.contains("secret 'secret3' is not set"),
        "{}",
        prod.stderr
    );
    ws.run(&[
        "--data-dir",
        "prod",
        "--database",
        &db,
        "check",
        "p",
        "--environment",
        &dev_uuid,
    ])
    .ok();
    let table = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            &db,
            "check",
            "p",
            "--all-environments",
        ])
        .code(1);
    assert_eq!(
        table.stdout.matches("MISSING").count(),
        1,
        "{}",
        table.stdout
    );
}

#[test]
fn rotation_on_postgres_including_a_crash_after_commit() {
    let _server = ServerLock::shared();
    let Some(db) = database("rotate") else { return };
    let ws = Workspace::new();
    set(&ws, "d", &db, "a", "value a");
    set(&ws, "d", &db, "b", "value b");
    ws.run(&["--data-dir", "d", "--database", &db, "rotate-key"])
        .ok();
    assert_eq!(get(&ws, "d", &db, "a").ok().stdout, "value a\n");
    let crashed = ws
        .cmd(&["--data-dir", "d", "--database", &db, "rotate-key"])
        .env("MAGE_SECRETS_FAULT", "rotate-after-commit")
        .output()
        .unwrap();
    assert_eq!(crashed.status.code(), Some(86));
    let after = get(&ws, "d", &db, "b").ok();
    assert_eq!(after.stdout, "value b\n");
    assert!(
        after
            .stderr
            .contains("finished an interrupted key rotation"),
        "{}",
        after.stderr
    );
    ws.run(&["--data-dir", "d", "--database", &db, "doctor"])
        .ok();
}

#[test]
fn sixteen_clients_writing_fifty_each_lose_nothing() {
    let _server = ServerLock::shared();
    let Some(db) = database("concurrency") else {
        return;
    };
    let ws = Workspace::new();
    set(&ws, "d", &db, "first", "x");
    let bin = crate::support::bin();
    let children: Vec<_> = (0..16)
        .map(|p| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "for i in $(seq 1 50); do printf 'v-{p}-%s' $i | \"$MS\" -q --data-dir d --database \"$DB\" set s_{p}_$i || exit 1; done"
                ))
                .current_dir(ws.dir.path())
                .env("MS", &bin)
                .env("DB", &db)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let settings = mage_secrets::Settings {
        data_dir: ws.path("d"),
        database: Some(db.clone()),
        key: None,
    };
    let env = mage_secrets::Environment::open(&settings).unwrap();
    assert_eq!(env.count().unwrap(), 801);
    for p in 0..16 {
        for i in 1..=50 {
            assert_eq!(
                env.get_secret_value(&format!("s_{p}_{i}")).unwrap(),
                Some(format!("v-{p}-{i}"))
            );
        }
    }
}

#[test]
fn watch_follows_sets_through_postgres_and_survives_a_restart() {
    let _server = ServerLock::exclusive();
    let Some(db) = database("watch") else { return };
    let ws = Workspace::new();
    set(&ws, "d", &db, "pw", "one");
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    let mut child = ws
        .cmd(&[
            "--data-dir",
            "d",
            "--database",
            &db,
            "watch",
            "p",
            "--out",
            "build",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let wait_for = |want: &str, limit: Duration| -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if std::fs::read_to_string(ws.path("build/a.yaml")).is_ok_and(|t| t == want) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "build/a.yaml never became {want:?}; log:\n{}",
            log.lock().unwrap()
        );
    };
    wait_for("a: \"one\"", Duration::from_secs(10));
    set(&ws, "d", &db, "pw", "two");
    let took = wait_for("a: \"two\"", Duration::from_secs(1));
    eprintln!("set -> output through NOTIFY: {took:?}");

    match std::env::var("MAGE_SECRETS_TEST_POSTGRES_RESTART") {
        Ok(restart) => {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(&restart)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "restart the server");
            set(&ws, "d", &db, "pw", "three");
            wait_for("a: \"three\"", Duration::from_secs(5));
        }
        Err(_) => eprintln!("skipped the restart: MAGE_SECRETS_TEST_POSTGRES_RESTART is not set"),
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The test server's CA (and another CA), from `.ci/with-postgres`.
fn test_cas() -> Option<(String, String)> {
    match (
        std::env::var("MAGE_SECRETS_TEST_POSTGRES_CA"),
        std::env::var("MAGE_SECRETS_TEST_POSTGRES_OTHER_CA"),
    ) {
        (Ok(ca), Ok(other)) => Some((ca, other)),
        _ if std::env::var_os("MAGE_SECRETS_REQUIRE_POSTGRES").is_some() => {
            panic!(
                "MAGE_SECRETS_TEST_POSTGRES_CA is not set; run the tests under .ci/with-postgres"
            )
        }
        _ => {
            eprintln!("skipped: MAGE_SECRETS_TEST_POSTGRES_CA is not set (see .ci/with-postgres)");
            None
        }
    }
}

#[test]
fn tls_verifies_the_server_when_asked_for_and_refusals_name_the_server() {
    let _server = ServerLock::shared();
    let Some(db) = database("tls") else { return };
    let Some((ca, other_ca)) = test_cas() else {
        return;
    };
    let ws = Workspace::new();
    let port = db.rsplit_once(':').unwrap().1.split('/').next().unwrap();
    // The server has TLS: every mode that may use it connects, and
    // verify-full checks the certificate against the CA and 127.0.0.1.
    set(&ws, "d", &format!("{db}?sslmode=prefer"), "a", "1");
    for mode in [
        "sslmode=require".to_string(),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        format!("sslmode=verify-full&sslrootcert={ca}"),
    ] {
        let url = format!("{db}?{mode}");
        assert_eq!(get(&ws, "d", &url, "a").stdout, "1\n", "{mode}");
    }
    // A certificate from another CA is refused, naming the server and why
    // (`require` with a root certificate file verifies the chain, as libpq's).
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = format!("{db}?sslmode={mode}&sslrootcert={other_ca}");
        let refused = ws
            .run(&["--data-dir", "d", "--database", &url, "get", "a"])
            .code(2);
        assert!(
            refused.stderr.contains(&format!("127.0.0.1:{port}"))
                && refused.stderr.contains("TLS")
                && refused.stderr.to_lowercase().contains("certificate"),
            "{mode}: {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("test-password-not-secret"));
    }
    // A server without TLS: `require` refuses, naming it; nothing is made.
    let (plain, _held) = crate::fault_proxy::server_without_tls();
    let url =
        format!("postgres://u:hunter2@127.0.0.1:{plain}/db?sslmode=require&connect_timeout=5");
    let out = ws
        .run_with_stdin(&["--data-dir", "e", "--database", &url, "set", "a"], b"1")
        .code(2);
    assert!(
        out.stderr.contains("TLS") && out.stderr.contains(&format!("127.0.0.1:{plain}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert!(!ws.path("e").exists());
}

#[test]
fn a_server_that_is_down_is_a_clear_error_and_nothing_is_written() {
    let ws = Workspace::new();
    let url = "postgres://someone:hunter2-password@127.0.0.1:9/mage";
    let out = ws
        .run_with_stdin(&["--data-dir", "d", "--database", url, "set", "x"], b"v")
        .code(2);
    assert!(
        out.stderr
            .contains("cannot reach the PostgreSQL server at 127.0.0.1:9"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("postgres://someone:***@127.0.0.1:9/mage"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1);
    assert!(!ws.path("d").exists(), "nothing is written");
    let env = ws
        .cmd(&["--data-dir", "d", "env"])
        .env("MAGE_SECRETS_DATABASE", url)
        .output()
        .unwrap();
    assert_eq!(env.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&env.stderr).contains("hunter2"));
}

/// The database URL with its host:port replaced by a proxy's, without TLS
/// (the proxy reads the protocol).
fn through(db: &str, port: u16) -> String {
    let at = db.rfind('@').expect("a URL with a user");
    let slash = at + db[at..].find('/').expect("a database");
    format!(
        "{}127.0.0.1:{port}{}?sslmode=disable",
        &db[..=at],
        &db[slash..]
    )
}

fn upstream(db: &str) -> String {
    let at = db.rfind('@').unwrap();
    let slash = at + db[at..].find('/').unwrap();
    db[at + 1..slash].to_string()
}

const ROTATED: &[(&str, &str)] = &[("a", "value a"), ("b", "value b"), ("c", "value c")];

fn seed_for_rotation(ws: &Workspace, db: &str) {
    for (name, value) in ROTATED {
        ws.run_with_stdin(
            &["--data-dir", "d", "--database", db, "set", name],
            value.as_bytes(),
        )
        .ok();
    }
}

#[track_caller]
fn assert_rotated_readable(ws: &Workspace, db: &str) {
    for (name, value) in ROTATED {
        assert_eq!(
            get(ws, "d", db, name).ok().stdout,
            format!("{value}\n"),
            "{name}"
        );
    }
}

#[test]
fn a_rotation_whose_commit_reply_is_lost_keeps_every_secret_readable() {
    let _server = ServerLock::shared();
    let Some(db) = database("lostcommit") else {
        return;
    };
    let ws = Workspace::new();
    seed_for_rotation(&ws, &db);
    let old_key = ws.read("d/mage-secrets/key");
    // The server commits; the reply is lost and the server is unreachable
    // afterwards: the outcome is unknown, so key.new must stay.
    let proxy = FaultProxy::start(upstream(&db), AfterCommit::DropReplyAndVanish);
    let out = ws
        .run(&[
            "--data-dir",
            "d",
            "--database",
            &through(&db, proxy.port),
            "rotate-key",
        ])
        .code(2);
    assert!(proxy.fired(), "the COMMIT went through the proxy");
    assert!(out.stderr.contains("is unknown"), "{}", out.stderr);
    assert!(out.stderr.contains("key.new was kept"), "{}", out.stderr);
    assert!(ws.path("d/mage-secrets/key.new").exists());
    assert_eq!(ws.read("d/mage-secrets/key"), old_key);
    // The next command, with the server back, sees the new key check and
    // finishes the rotation.
    let first = get(&ws, "d", &db, "a").ok();
    assert!(
        first
            .stderr
            .contains("finished an interrupted key rotation"),
        "{}",
        first.stderr
    );
    assert_ne!(ws.read("d/mage-secrets/key"), old_key);
    assert_rotated_readable(&ws, &db);
    ws.run(&["--data-dir", "d", "--database", &db, "doctor"])
        .ok();

    // The reply is lost but the server is still reachable: the rotation
    // asks it which key check it holds, and finishes at once.
    let key = ws.read("d/mage-secrets/key");
    let proxy = FaultProxy::start(upstream(&db), AfterCommit::DropReply);
    ws.run(&[
        "--data-dir",
        "d",
        "--database",
        &through(&db, proxy.port),
        "rotate-key",
    ])
    .ok();
    assert!(proxy.fired());
    assert!(!ws.path("d/mage-secrets/key.new").exists());
    assert_ne!(ws.read("d/mage-secrets/key"), key);
    assert_rotated_readable(&ws, &db);
}

#[test]
fn a_set_whose_commit_reply_is_lost_says_the_outcome_is_unknown() {
    let _server = ServerLock::shared();
    let Some(db) = database("lostset") else {
        return;
    };
    let ws = Workspace::new();
    set(&ws, "d", &db, "a", "1");
    let proxy = FaultProxy::start(upstream(&db), AfterCommit::DropReplyAndVanish);
    let out = ws
        .run_with_stdin(
            &[
                "--data-dir",
                "d",
                "--database",
                &through(&db, proxy.port),
                "set",
                "b",
            ],
            b"stored",
        )
        .code(2);
    assert!(proxy.fired());
    assert!(
        out.stderr.contains("whether it was stored is unknown")
            && out.stderr.contains("mage-secrets list"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("test-password-not-secret"));
    // Not retried (which could have written twice or reported a false
    // failure): it was in fact stored.
    assert_eq!(get(&ws, "d", &db, "b").ok().stdout, "stored\n");
}

#[test]
fn a_server_that_never_answers_is_an_error_naming_it() {
    let (port, _server) = silent_server();
    let ws = Workspace::new();
    let url = format!("postgres://me:hunter2-password@127.0.0.1:{port}/mage?connect_timeout=1");
    for args in [vec!["get", "a"], vec!["list"], vec!["set", "a"]] {
        let mut full = vec!["--data-dir", "d", "--database", &url];
        full.extend(args);
        let reads = full.contains(&"get") || full.contains(&"list");
        let out = ws.run_with_stdin(&full, b"v").code(2);
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
        if reads {
            // A data dir without an environment is refused before the
            // server is asked.
            assert!(
                out.stderr.contains("has no mage-secrets environment"),
                "{}",
                out.stderr
            );
            continue;
        }
        assert!(
            out.stderr.contains(&format!(
                "the PostgreSQL server at 127.0.0.1:{port} did not answer within 1 s"
            )),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("connect_timeout"), "{}", out.stderr);
    }
    assert!(!ws.path("d").exists(), "nothing is written");
}

/// The URL of the same database for the read-only role CI creates.
fn as_reader(db: &str) -> String {
    db.replacen(
        "mage_secrets:test-password-not-secret@",
        "mage_secrets_reader:reader-password-not-secret@",
        1,
    )
}

fn admin(db: &str, sql: &str) {
    let mut client = postgres::Client::connect(db, postgres::NoTls).expect("connect");
    // One statement at a time: a batch would run as one transaction, which
    // a read-only default would make read-only before the SET took effect.
    for statement in sql.split("; ") {
        client.batch_execute(statement).expect(statement);
    }
}

#[test]
fn a_select_only_role_and_a_read_only_server_can_get_list_check_and_render() {
    let _server = ServerLock::shared();
    let Some(db) = database("reader") else { return };
    let ws = Workspace::new();
    set(&ws, "d", &db, "pw", "s3cret");
    set(&ws, "d", &db, "other", "x");
    ws.write(
        "project/io_config.yaml",
        "default:\n  password: \"{{ mage_secret_var('pw') }}\"\n",
    );
    admin(
        &db,
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO mage_secrets_reader",
    );
    let reader = as_reader(&db);
    let dbname = db
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    for (url, what) in [
        (reader.clone(), "a SELECT-only role"),
        (db.clone(), "a read-only server"),
    ] {
        if what == "a read-only server" {
            admin(
                &db,
                &format!("ALTER DATABASE {dbname} SET default_transaction_read_only = on"),
            );
        }
        let run = |args: &[&str]| {
            let mut full = vec!["--data-dir", "d", "--database", &url];
            full.extend(args);
            ws.run(&full)
        };
        assert_eq!(run(&["get", "pw"]).ok().stdout, "s3cret\n", "{what}");
        assert!(run(&["list"]).ok().stdout.contains("other"), "{what}");
        run(&["check", "project"]).ok();
        run(&["render", "project", "--out", "out"]).ok();
        assert!(ws.read("out/io_config.yaml").contains("s3cret"), "{what}");
        std::fs::remove_dir_all(ws.path("out")).unwrap();
        // A write is refused with advice, and nothing is lost.
        let refused = ws
            .run_with_stdin(
                &["--data-dir", "d", "--database", &url, "set", "pw"],
                b"new",
            )
            .code(2);
        assert!(
            refused.stderr.contains("42501") || refused.stderr.contains("25006"),
            "{what}: {}",
            refused.stderr
        );
        assert!(
            !refused.stderr.contains("password-not-secret"),
            "{}",
            refused.stderr
        );
    }
    admin(
        &db,
        &format!(
            "SET default_transaction_read_only = off; ALTER DATABASE {dbname} RESET default_transaction_read_only"
        ),
    );
    assert_eq!(get(&ws, "d", &db, "pw").ok().stdout, "s3cret\n");
}

#[test]
fn passwords_in_any_form_never_reach_output() {
    let _server = ServerLock::shared();
    let ws = Workspace::new();
    // A server that is down, with the password in each form.
    for url in [
        "postgres://u:p%40ss:w/rd-hunter2@127.0.0.1:9/db",
        "postgres://u:p@ss:w/rd-hunter2@127.0.0.1:9/db",
        "postgres://u@127.0.0.1:9/db?password=hunter2&sslmode=disable",
        "postgres://u@127.0.0.1:9/db?sslmode=nonsense&password=hunter2",
    ] {
        for command in ["env", "doctor", "get"] {
            let out = ws.run(
                &["--data-dir", "d", "--database", url, command, "x"]
                    [..if command == "get" { 6 } else { 5 }],
            );
            assert_ne!(out.code, 0, "{url} {command}");
            assert!(
                !out.all().contains("hunter2"),
                "{url} {command}: {}",
                out.all()
            );
            assert!(
                !out.all().contains("p%40ss"),
                "{url} {command}: {}",
                out.all()
            );
            assert!(
                !out.all().contains("ss:w"),
                "{url} {command}: {}",
                out.all()
            );
        }
    }
    // PGPASSWORD and a passfile give the password; it is never shown.
    let Some(db) = database("pgpassword") else {
        return;
    };
    let bare = db.replacen(":test-password-not-secret@", "@", 1);
    let out = ws
        .cmd(&["--data-dir", "d", "--database", &bare, "set", "a"])
        .env("PGPASSWORD", "test-password-not-secret")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("password-not-secret"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pgpass = ws.write("pgpass", "*:*:*:mage_secrets:test-password-not-secret\n");
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    ws.run_with_stdin(
        &[
            "--data-dir",
            "d",
            "--database",
            &format!("{bare}?passfile={}", pgpass.display()),
            "set",
            "a",
        ],
        b"1",
    )
    .ok();
    let env = ws
        .run(&[
            "--data-dir",
            "d",
            "--database",
            &format!("{bare}?passfile={}", pgpass.display()),
            "env",
        ])
        .ok();
    assert!(!env.all().contains("password-not-secret"), "{}", env.all());
    let doctor = ws
        .cmd(&["--data-dir", "d", "--database", &bare, "doctor"])
        .env("PGPASSWORD", "test-password-not-secret")
        .output()
        .unwrap();
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
    assert!(!String::from_utf8_lossy(&doctor.stdout).contains("password-not-secret"));
}

/// A running `watch` whose stderr is collected.
struct RunningWatch {
    child: std::process::Child,
    log: Arc<Mutex<String>>,
}

impl RunningWatch {
    fn start(ws: &Workspace, db: &str) -> RunningWatch {
        let mut child = ws
            .cmd(&[
                "--data-dir",
                "d",
                "--database",
                db,
                "watch",
                "p",
                "--out",
                "build",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        RunningWatch { child, log }
    }

    /// Waits (at most a generous bound, so a hang fails rather than blocks)
    /// until `ready` holds.
    #[track_caller]
    fn wait(&self, what: &str, ready: impl Fn(&str) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if ready(&self.log.lock().unwrap()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} never happened; log:\n{}", self.log.lock().unwrap());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for RunningWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_says_once_that_the_store_is_gone_and_once_that_it_is_back_and_retries_failed_files() {
    let _server = ServerLock::shared();
    let Some(db) = database("outage") else { return };
    let ws = Workspace::new();
    set(&ws, "d", &db, "pw", "one");
    set(&ws, "d", &db, "user", "admin");
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    let link = Outage::start(upstream(&db));
    let watch = RunningWatch::start(&ws, &through(&db, link.port));
    let output =
        |ws: &Workspace| std::fs::read_to_string(ws.path("build/a.yaml")).unwrap_or_default();
    watch.wait("the first render", |_| output(&ws) == "a: \"one\"");

    link.cut();
    watch.wait("the outage warning", |log| {
        log.contains("cannot read the secret store")
    });
    // An edit during the outage fails (the store cannot be read), keeping
    // the last good output.
    ws.write(
        "p/a.yaml",
        "a: \"{{ mage_secret_var('pw') }}\"\nb: \"{{ mage_secret_var('user') }}\"\n",
    );
    watch.wait("the failed render", |log| log.contains("a.yaml failed"));
    assert_eq!(output(&ws), "a: \"one\"");
    // Several retries happen meanwhile; none prints again.
    std::thread::sleep(Duration::from_secs(3));
    link.restore();
    watch.wait("the retried file", |_| {
        output(&ws) == "a: \"one\"\nb: \"admin\""
    });
    let log = watch.log();
    assert_eq!(
        log.matches("cannot read the secret store").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("reconnected").count(), 1, "{log}");
    assert!(!log.contains("test-password-not-secret"), "{log}");
    // And it follows the store again.
    set(&ws, "d", &db, "pw", "two");
    watch.wait("the next set", |_| {
        output(&ws) == "a: \"two\"\nb: \"admin\""
    });
}

#[test]
fn watch_notices_a_listener_that_froze_without_a_reset() {
    let _server = ServerLock::shared();
    let Some(db) = database("frozen") else { return };
    let ws = Workspace::new();
    set(&ws, "d", &db, "pw", "one");
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    let link = Outage::start(upstream(&db));
    let url = format!("{}&statement_timeout=1s", through(&db, link.port));
    let watch = RunningWatch::start(&ws, &url);
    let output =
        |ws: &Workspace| std::fs::read_to_string(ws.path("build/a.yaml")).unwrap_or_default();
    watch.wait("the first render", |_| output(&ws) == "a: \"one\"");
    // The route freezes: nothing is closed, nothing arrives.
    link.freeze();
    watch.wait("the outage warning", |log| {
        log.contains("cannot read the secret store")
    });
    assert!(watch.log().contains("did not answer"), "{}", watch.log());
    // A set made meanwhile (directly) shows up once the route is back.
    set(&ws, "d", &db, "pw", "two");
    link.restore();
    watch.wait("the set made during the freeze", |_| {
        output(&ws) == "a: \"two\""
    });
}

#[test]
fn doctor_with_the_server_down_says_to_start_it() {
    let _server = ServerLock::shared();
    let Some(db) = database("doctordown") else {
        return;
    };
    let ws = Workspace::new();
    set(&ws, "d", &db, "a", "1");
    // The same database, on a port where nothing listens.
    let name = db.rsplit('/').next().unwrap_or_default();
    let down = format!("postgres://mage_secrets:hunter2@127.0.0.1:9/{name}");
    let out = ws.run(&["--data-dir", "d", "--database", &down, "doctor"]);
    assert_ne!(out.code, 0);
    assert!(
        out.all()
            .contains("the server is down or unreachable: start it"),
        "{}",
        out.all()
    );
    assert!(!out.all().contains("--database"), "{}", out.all());
    assert!(!out.all().contains("hunter2"), "{}", out.all());
}

#[test]
fn a_server_that_refuses_for_now_is_tried_again_until_it_accepts() {
    let _server = ServerLock::shared();
    let Some(db) = database("transient") else {
        return;
    };
    let ws = Workspace::new();
    set(&ws, "d", &db, "first", "x");
    // The role CI lets hold one connection at a time (53300 "too many
    // connections for role" beyond it), held by another client.
    admin(
        &db,
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO mage_secrets_limited",
    );
    let limited = db.replacen(
        "mage_secrets:test-password-not-secret@",
        "mage_secrets_limited:limited-password-not-secret@",
        1,
    );
    let holder = postgres::Client::connect(&limited, postgres::NoTls).expect("connect");
    let mut child = ws
        .cmd(&["--data-dir", "d", "--database", &limited, "set", "later"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"v").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "set gave up while the server refused for now"
    );
    drop(holder);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(&ws, "d", &db, "later").stdout, "v\n");
}
