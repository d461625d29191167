//! Key rotation and its crash safety, doctor, concurrent writers, crashes
//! during render, and a sentinel that no output shows a value.

use std::fs;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{snapshot, Workspace};

const VALUES: &[(&str, Option<&str>, &str)] = &[
    ("pg_password", None, "pa\"ss\\word"),
    ("api_key", None, "key-123"),
    ("token", Some("etl"), "etl-only token"),
    ("empty", None, ""),
];

fn seed(ws: &Workspace) {
    for (name, pipeline, value) in VALUES {
        let mut args = vec!["--data-dir", "d", "set", name, "--allow-empty"];
        if let Some(p) = pipeline {
            args.extend(["--pipeline", p]);
        }
        ws.run_with_stdin(&args, value.as_bytes()).ok();
    }
}

#[track_caller]
fn assert_all_readable(ws: &Workspace) {
    for (name, pipeline, value) in VALUES {
        let mut args = vec!["--data-dir", "d", "get", name];
        if let Some(p) = pipeline {
            args.extend(["--pipeline", p]);
        }
        let out = ws.run(&args).ok();
        assert_eq!(out.stdout, format!("{value}\n"), "{name}");
    }
}

#[test]
fn rotation_reseals_every_secret_and_the_old_key_opens_none() {
    let ws = Workspace::new();
    seed(&ws);
    let old_key = ws.read("d/mage-secrets/key");
    let dry = ws.run(&["--data-dir", "d", "rotate-key", "--dry-run"]).ok();
    assert!(
        dry.stdout.starts_with("would re-seal 4 secret(s)"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        ws.read("d/mage-secrets/key"),
        old_key,
        "a dry run changes nothing"
    );
    let out = ws.run(&["--data-dir", "d", "rotate-key"]).ok();
    assert!(
        out.stdout.starts_with("re-sealed 4 secret(s)"),
        "{}",
        out.stdout
    );
    assert_ne!(ws.read("d/mage-secrets/key"), old_key);
    assert!(!ws.path("d/mage-secrets/key.new").exists());
    assert_all_readable(&ws);

    // The old key opens no row.
    let key = mage_secrets::crypto::Key::from_file_text(&old_key).unwrap();
    let uuid = ws.read("d/mage-secrets/uuid").trim().to_string();
    let store =
        mage_secrets::store::SqliteStore::open(&ws.path("d/mage-secrets/secrets.db")).unwrap();
    use mage_secrets::store::SecretStore;
    let rows = store.rows(&uuid).unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        assert!(key
            .open(&uuid, &row.scope.to_string(), &row.name, &row.sealed)
            .is_none());
    }
    fs::write(ws.path("d/mage-secrets/key"), &old_key).unwrap();
    let wrong = ws.run(&["--data-dir", "d", "get", "api_key"]).code(2);
    assert!(
        wrong.stderr.contains("does not open environment"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn a_crash_after_any_step_of_a_rotation_loses_nothing() {
    for step in [
        "rotate-after-key-new",
        "rotate-after-commit",
        "rotate-after-rename",
    ] {
        let ws = Workspace::new();
        seed(&ws);
        let crashed = ws
            .cmd(&["--data-dir", "d", "rotate-key"])
            .env("MAGE_SECRETS_FAULT", step)
            .output()
            .unwrap();
        assert_eq!(
            crashed.status.code(),
            Some(86),
            "{step}: the fault point was reached"
        );
        // The next command finishes or undoes the rotation; nothing is lost.
        let env = ws.run(&["--data-dir", "d", "env"]).ok();
        match step {
            "rotate-after-key-new" => assert!(
                env.stderr.contains("the key was not changed"),
                "{}",
                env.stderr
            ),
            "rotate-after-commit" => assert!(
                env.stderr.contains("finished an interrupted key rotation"),
                "{}",
                env.stderr
            ),
            _ => assert_eq!(env.stderr, ""),
        }
        assert!(!ws.path("d/mage-secrets/key.new").exists(), "{step}");
        assert_all_readable(&ws);
        ws.run(&["--data-dir", "d", "doctor"]).ok();
        // And a later rotation works.
        ws.run(&["--data-dir", "d", "rotate-key"]).ok();
        assert_all_readable(&ws);
    }
}

#[test]
fn a_write_with_a_key_rotated_away_meanwhile_is_refused() {
    let ws = Workspace::new();
    seed(&ws);
    let settings = mage_secrets::Settings::for_data_dir(ws.path("d"));
    let stale = mage_secrets::Environment::open(&settings).unwrap();
    ws.run(&["--data-dir", "d", "rotate-key"]).ok();
    let err = stale
        .set("late", &mage_secrets::Scope::Global, "v")
        .unwrap_err();
    assert!(
        matches!(err, mage_secrets::Error::KeyRotated { .. }),
        "{err}"
    );
    assert!(stale.key_rotated().unwrap());
    ws.run(&["--data-dir", "d", "get", "late"]).code(1);
    assert_all_readable(&ws);
}

#[test]
fn doctor_finds_each_problem_with_its_fix() {
    let ws = Workspace::new();
    seed(&ws);
    let good = ws.run(&["--data-dir", "d", "doctor"]).ok();
    assert!(
        good.stdout
            .contains("ok       secrets: all 4 secret(s) open"),
        "{}",
        good.stdout
    );
    assert!(!good.stdout.contains("PROBLEM"));

    fs::set_permissions(
        ws.path("d/mage-secrets/key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    fs::write(ws.path("d/mage-secrets/key.new"), "junk").unwrap();
    {
        let conn = rusqlite::Connection::open(ws.path("d/mage-secrets/secrets.db")).unwrap();
        let mut blob: Vec<u8> = conn
            .query_row(
                "SELECT value FROM secrets WHERE name = 'api_key'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        *blob.last_mut().unwrap() ^= 1;
        conn.execute(
            "UPDATE secrets SET value = ?1 WHERE name = 'api_key'",
            [blob],
        )
        .unwrap();
    }
    let before = snapshot(&ws.path("d"));
    let bad = ws.run(&["--data-dir", "d", "doctor"]).code(1);
    assert!(bad.stdout.contains("PROBLEM  key file: d/mage-secrets/key is readable by group or others (644)\n         fix: chmod 600 d/mage-secrets/key"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("PROBLEM  interrupted rotation"),
        "{}",
        bad.stdout
    );
    assert!(
        bad.stdout
            .contains("PROBLEM  secrets: 1 of 4 secret(s) do not open"),
        "{}",
        bad.stdout
    );
    assert!(bad.stderr.contains("3 problem(s) found"), "{}", bad.stderr);
    assert!(!bad.stdout.contains("key-123"));
    assert_eq!(before, snapshot(&ws.path("d")), "doctor changes nothing");

    let missing = ws.run(&["--data-dir", "nowhere", "doctor"]).code(1);
    assert!(
        missing
            .stdout
            .contains("PROBLEM  data dir: nowhere does not exist"),
        "{}",
        missing.stdout
    );
    assert!(!ws.path("nowhere").exists());
}

#[test]
fn eight_writers_and_readers_at_once_lose_nothing() {
    let ws = Workspace::new();
    ws.set("d", None, "shared", "read me");
    let bin = crate::support::bin();
    let script = |body: String| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(body)
            .current_dir(ws.dir.path())
            .env("HOME", ws.path("home"))
            .env("MS", &bin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children = Vec::new();
    for p in 0..8 {
        children.push(script(format!(
            "for i in $(seq 1 50); do printf 'value-{p}-%s' $i | \"$MS\" -q --data-dir d set s_{p}_$i || exit 1; done"
        )));
    }
    for _ in 0..2 {
        children.push(script(
            "for i in $(seq 1 60); do [ \"$(\"$MS\" --data-dir d get shared)\" = 'read me' ] || exit 1; done".into(),
        ));
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a process failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("locked"));
    }
    let list = ws
        .run(&["--data-dir", "d", "list", "--format", "json"])
        .ok();
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 401);
    let env = mage_secrets::Environment::open(&mage_secrets::Settings::for_data_dir(ws.path("d")))
        .unwrap();
    for p in 0..8 {
        for i in 1..=50 {
            assert_eq!(
                env.get_secret_value(&format!("s_{p}_{i}"))
                    .unwrap()
                    .as_deref(),
                Some(format!("value-{p}-{i}").as_str())
            );
        }
    }
}

#[test]
fn eight_processes_creating_one_environment_agree_on_its_key() {
    let ws = Workspace::new();
    let children: Vec<_> = (0..8)
        .map(|p| {
            let mut cmd = ws.cmd(&["--data-dir", "fresh", "set", &format!("s{p}")]);
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("v{p}").as_bytes())
                .unwrap();
            child
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
    for p in 0..8 {
        assert_eq!(
            ws.run(&["--data-dir", "fresh", "get", &format!("s{p}")])
                .ok()
                .stdout,
            format!("v{p}\n")
        );
    }
}

#[test]
fn killing_render_at_random_moments_leaves_old_or_new_files_only() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "secret-value");
    let write_project = |version: &str| {
        for i in 0..200 {
            ws.write(
                &format!("p/pipelines/p{}/f{i}.yaml", i % 10),
                format!(
                    "v: {version}\ni: {i}\npw: \"{{{{ mage_secret_var('pw') }}}}\"\npad: {}\n",
                    "x".repeat(2000)
                ),
            );
        }
    };
    write_project("one");
    ws.run(&["--data-dir", "d", "render", "p", "--out", "ref_one"])
        .ok();
    write_project("two");
    ws.run(&["--data-dir", "d", "render", "p", "--out", "ref_two"])
        .ok();
    let one = snapshot(&ws.path("ref_one"));
    let two = snapshot(&ws.path("ref_two"));
    let mut seed = 0x2545F4914F6CDD1Du64;
    for run in 0..50 {
        // Sources alternate, so every run replaces every output.
        let (from, to) = if run % 2 == 0 {
            ("ref_one", "two")
        } else {
            ("ref_two", "one")
        };
        if run == 0 {
            fs::create_dir_all(ws.path("out")).unwrap();
            for (p, bytes, _) in snapshot(&ws.path(from)) {
                let rel = p.strip_prefix(ws.path(from)).unwrap();
                ws.write(&format!("out/{}", rel.display()), bytes);
            }
        }
        write_project(to);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_micros(seed % 40_000);
        let mut child = ws
            .cmd(&["--data-dir", "d", "render", "p", "--out", "out"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        for (path, bytes, _) in snapshot(&ws.path("out")) {
            let rel = path.strip_prefix(ws.path("out")).unwrap();
            // Temporaries, and a staging folder's files: the next run
            // removes these.
            if rel.components().any(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .starts_with(".mage-secrets-tmp-")
            }) {
                continue;
            }
            let old = one
                .iter()
                .find(|(p, _, _)| p.strip_prefix(ws.path("ref_one")).unwrap() == rel);
            let new = two
                .iter()
                .find(|(p, _, _)| p.strip_prefix(ws.path("ref_two")).unwrap() == rel);
            assert!(
                old.is_some_and(|o| o.1 == bytes) || new.is_some_and(|n| n.1 == bytes),
                "run {run}: {} is neither the old nor the new output",
                rel.display()
            );
        }
    }
    ws.run(&["--data-dir", "d", "render", "p", "--out", "out"])
        .ok();
    let leftovers: Vec<_> = snapshot(&ws.path("out"))
        .into_iter()
        .filter(|(p, _, _)| {
            p.components().any(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .starts_with(".mage-secrets-tmp-")
            })
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "{} temporary files left",
        leftovers.len()
    );
}

#[test]
fn no_output_but_get_and_render_file_shows_a_value() {
    let ws = Workspace::new();
    let marker = "LEAK-SENTINEL-8d1e";
    for name in ["pw", "other", "multi"] {
        ws.set("d", None, name, &format!("{marker}-{name}: \" '"));
    }
    ws.run_with_stdin(
        &["--data-dir", "d", "set", "multi"],
        format!("{marker}\nline").as_bytes(),
    )
    .ok();
    ws.run_with_stdin(&["--data-dir", "d", "set", "tampered"], marker.as_bytes())
        .ok();
    {
        let conn = rusqlite::Connection::open(ws.path("d/mage-secrets/secrets.db")).unwrap();
        let mut blob: Vec<u8> = conn
            .query_row(
                "SELECT value FROM secrets WHERE name = 'tampered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        *blob.last_mut().unwrap() ^= 1;
        conn.execute(
            "UPDATE secrets SET value = ?1 WHERE name = 'tampered'",
            [blob],
        )
        .unwrap();
    }
    ws.write("p/good.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    ws.write(
        "bad/missing.yaml",
        "a: {{ mage_secret_var('pw') }} {{ mage_secret_var('nope') }}\n",
    );
    ws.write("bad/syntax.yaml", "a: {{ mage_secret_var('pw' }}\n");
    ws.write("bad/yaml.yaml", "a: {{ mage_secret_var('pw') }}\n");
    ws.write("bad/quote.yaml", "a: '{{ mage_secret_var('multi') }}'\n");
    ws.write(
        "bad/json.yaml",
        "a: {{ json_value(mage_secret_var('pw'), 'x.y') }}\n",
    );
    ws.write("tamper/t.yaml", "a: {{ mage_secret_var('tampered') }}\n");
    fs::create_dir_all(ws.path("wrong/mage-secrets")).unwrap();
    fs::copy(
        ws.path("d/mage-secrets/uuid"),
        ws.path("wrong/mage-secrets/uuid"),
    )
    .unwrap();
    ws.write(
        "wrong/mage-secrets/key",
        mage_secrets::crypto::Key::generate()
            .to_file_text()
            .as_bytes(),
    );

    let mut runs = Vec::new();
    let db = ws.path("d/mage-secrets/secrets.db").display().to_string();
    for verbose in [&[][..], &["-v"]] {
        for args in [
            &["--data-dir", "d", "list", "--all-scopes"][..],
            &["--data-dir", "d", "list", "--format", "json"],
            &["--data-dir", "d", "env"],
            &["--data-dir", "d", "doctor"],
            &["--data-dir", "d", "get", "nope"],
            &["--data-dir", "d", "get", "tampered"],
            &["--data-dir", "d", "delete", "nope"],
            &["--data-dir", "d", "render", "p", "--out", "o1"],
            &["--data-dir", "d", "render", "bad", "--out", "o2"],
            &[
                "--data-dir",
                "d",
                "render",
                "bad",
                "--out",
                "o3",
                "--lenient",
            ],
            &["--data-dir", "d", "render", "bad/quote.yaml"],
            &["--data-dir", "d", "render", "tamper", "--out", "o4"],
            &["--data-dir", "d", "check", "bad"],
            &["--data-dir", "d", "check", "bad", "--format", "json"],
            &["--data-dir", "d", "check", "bad", "--format", "github"],
            &["--data-dir", "d", "check", "tamper"],
            &["--data-dir", "wrong", "--database", &db, "get", "pw"],
            &[
                "--data-dir",
                "wrong",
                "--database",
                &db,
                "render",
                "p",
                "--out",
                "o5",
            ],
            &[
                "--data-dir",
                "d",
                "render",
                "p",
                "--out",
                "o6",
                "--frobnicate",
            ],
            &["--data-dir", "d", "set"],
            &["--data-dir", "d", "rotate-key", "--dry-run"],
        ] {
            runs.push((args.join(" "), ws.run(&[verbose, args].concat())));
        }
    }
    for (args, run) in &runs {
        assert!(
            !run.all().contains(marker),
            "`{args}` showed a value:\n{}",
            run.all()
        );
    }
    assert!(runs
        .iter()
        .any(|(_, r)| r.all().contains("could not be decrypted")));
    assert!(runs
        .iter()
        .any(|(_, r)| r.all().contains("rendered YAML does not parse")));
    assert!(runs
        .iter()
        .any(|(_, r)| r.all().contains("does not open environment")));
    // get and render FILE are the two outputs that hold values.
    assert!(ws
        .run(&["--data-dir", "d", "get", "pw"])
        .ok()
        .stdout
        .contains(marker));
    assert!(ws
        .run(&["--data-dir", "d", "render", "p/good.yaml"])
        .ok()
        .stdout
        .contains(marker));
}

#[test]
fn a_rotation_whose_commit_outcome_is_unknown_loses_nothing_on_sqlite() {
    // COMMIT reports an I/O error after the transaction was made durable:
    // the rotation asks the database which key check it holds, and finishes.
    let ws = Workspace::new();
    seed(&ws);
    let old_key = ws.read("d/mage-secrets/key");
    ws.cmd(&["--data-dir", "d", "rotate-key"])
        .env("MAGE_SECRETS_FAULT", "sqlite-commit-reply-lost")
        .output()
        .map(|o| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)))
        .unwrap();
    assert_ne!(ws.read("d/mage-secrets/key"), old_key);
    assert!(!ws.path("d/mage-secrets/key.new").exists());
    assert_all_readable(&ws);

    // The database cannot be asked either: key.new stays, and the next
    // command decides by the key check.
    let old_key = ws.read("d/mage-secrets/key");
    let out = ws
        .cmd(&["--data-dir", "d", "rotate-key"])
        .env(
            "MAGE_SECRETS_FAULT",
            "sqlite-commit-reply-lost,rotate-store-unreachable-after-commit",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is unknown") && stderr.contains("was kept"),
        "{stderr}"
    );
    assert!(ws.path("d/mage-secrets/key.new").exists());
    assert_eq!(ws.read("d/mage-secrets/key"), old_key);
    let env = ws.run(&["--data-dir", "d", "env"]).ok();
    assert!(
        env.stderr.contains("finished an interrupted key rotation"),
        "{}",
        env.stderr
    );
    assert_all_readable(&ws);
    ws.run(&["--data-dir", "d", "doctor"]).ok();
}
