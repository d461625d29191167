//! Hostile conditions around the process itself: core dumps, key and uuid
//! files that are not files, temporaries a killed rotation left, and a
//! stdout or stderr that is closed.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::Workspace;

#[test]
fn a_running_command_is_not_dumpable_and_may_not_write_a_core() {
    let ws = Workspace::new();
    ws.write("p/a.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    // The environment belongs to the user the command runs as.
    let mut set = ws
        .unprivileged(&["--data-dir", "d", "set", "pw"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin.take().unwrap().write_all(b"s3cret").unwrap();
    assert!(set.wait().unwrap().success());
    let mut watch = ws
        .unprivileged(&["--data-dir", "d", "watch", "p", "--out", "build"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !ws.path("build/a.yaml").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "watch never rendered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let proc_dir = format!("/proc/{}", watch.id());
    let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap();
    assert_ne!(uid, 0, "runs unprivileged");
    // A process that is not dumpable has its /proc files owned by root.
    let owner = std::fs::metadata(format!("{proc_dir}/status"))
        .unwrap()
        .uid();
    let limits = std::fs::read_to_string(format!("{proc_dir}/limits")).unwrap();
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(owner, 0, "not dumpable (uid {uid})");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(fields[4], "0", "no core may be written: {core}");
}

#[test]
fn a_key_or_uuid_file_that_is_not_a_small_regular_file_is_an_error_at_once() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    let key = ws.path("d/mage-secrets/key");
    let saved = std::fs::read(&key).unwrap();

    std::fs::remove_file(&key).unwrap();
    let fifo = std::ffi::CString::new(key.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    for command in [&["get", "pw"][..], &["doctor"][..]] {
        let mut args = vec!["--data-dir", "d"];
        args.extend(command);
        let out = ws.run(&args);
        assert_ne!(out.code, 0);
        assert!(
            out.all().contains("is not a regular file (it is a FIFO)"),
            "{}",
            out.all()
        );
    }

    std::fs::remove_file(&key).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &key).unwrap();
    let out = ws.run(&["--data-dir", "d", "get", "pw"]).code(2);
    assert!(out.stderr.contains("a character device"), "{}", out.stderr);

    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, &saved).unwrap();
    std::fs::write(ws.path("d/mage-secrets/uuid"), "x".repeat(100_000)).unwrap();
    let out = ws.run(&["--data-dir", "d", "get", "pw"]).code(2);
    assert!(
        out.stderr.contains("larger than 4096 bytes"),
        "{}",
        out.stderr
    );
}

#[test]
fn temporaries_left_by_a_killed_rotation_are_reported_and_removed_by_the_next() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "v");
    let stale = ws.write(
        "d/mage-secrets/.mage-secrets-tmp-XyZ123",
        "a key never committed\n",
    );
    let doctor = ws.run(&["--data-dir", "d", "doctor"]).code(1);
    assert!(
        doctor
            .stdout
            .contains("1 temporary file(s) left by a killed process"),
        "{}",
        doctor.stdout
    );
    ws.run(&["--data-dir", "d", "rotate-key"]).ok();
    assert!(!stale.exists());
    ws.run(&["--data-dir", "d", "doctor"]).ok();
    assert_eq!(ws.run(&["--data-dir", "d", "get", "pw"]).ok().stdout, "v\n");
}

#[test]
fn a_closed_stdout_or_stderr_never_makes_a_panic() {
    let ws = Workspace::new();
    for i in 0..300 {
        ws.write(
            &format!("p/f{i}.yaml"),
            format!("a: \"{{{{ mage_secret_var('missing_{i}') }}}}\"\n"),
        );
    }
    ws.set("d", None, "pw", "v");
    for (args, closed_stdout) in [
        (&["--data-dir", "d", "check", "p"][..], false),
        (
            &["--data-dir", "d", "check", "p", "--format", "json"][..],
            true,
        ),
        (&["--data-dir", "d", "list"][..], true),
    ] {
        let mut child = ws
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end at once, as `| head -0` would.
        if closed_stdout {
            drop(child.stdout.take());
        } else {
            drop(child.stderr.take());
        }
        let status = child.wait().unwrap();
        assert_ne!(status.code(), Some(101), "{args:?}: a panic");
        assert!(
            status.signal() == Some(libc::SIGPIPE) || matches!(status.code(), Some(0..=2)),
            "{args:?}: {status:?}"
        );
    }
}

#[test]
fn renders_and_gets_during_key_rotations_never_fail() {
    let ws = Workspace::new();
    for i in 0..20 {
        ws.set("d", None, &format!("s{i}"), &format!("value {i}"));
    }
    for f in 0..40 {
        let body: String = (0..20)
            .map(|i| format!("k{i}: \"{{{{ mage_secret_var('s{i}') }}}}\"\n"))
            .collect();
        ws.write(&format!("p/f{f}.yaml"), body);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rotations = {
        let done = done.clone();
        let dir = ws.dir.path().to_path_buf();
        std::thread::spawn(move || {
            for _ in 0..40 {
                let out = std::process::Command::new(crate::support::bin())
                    .current_dir(&dir)
                    .args(["--data-dir", "d", "rotate-key"])
                    .env("HOME", dir.join("home"))
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut renders = 0;
    let mut gets = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) || renders < 3 {
        let out = ws.run(&["--data-dir", "d", "render", "p", "--out", "build"]);
        assert_eq!(
            out.code, 0,
            "render {renders} failed during a rotation:\n{}",
            out.stderr
        );
        renders += 1;
        let got = ws.run(&["--data-dir", "d", "get", "s7"]);
        assert_eq!(
            got.code, 0,
            "get {gets} failed during a rotation:\n{}",
            got.stderr
        );
        assert_eq!(got.stdout, "value 7\n");
        gets += 1;
    }
    rotations.join().unwrap();
    eprintln!("{renders} renders and {gets} gets during 40 rotations: none failed");
    assert!(ws.read("build/f3.yaml").contains("k19: \"value 19\""));
}

/// A copy of the binary inside the workspace, which `nobody` can run
/// wherever the build folder is.
fn reader_binary(ws: &Workspace) -> std::path::PathBuf {
    let bin = ws.path("bin/mage-secrets");
    if !bin.exists() {
        std::fs::create_dir_all(ws.path("bin")).unwrap();
        std::fs::copy(crate::support::bin(), &bin).unwrap();
    }
    bin
}

/// Makes `nobody` (whom [`as_reader`] runs as) the owner of a readable
/// workspace holding its own copy of the binary.
fn hand_to_reader(ws: &Workspace) {
    use std::os::unix::fs::PermissionsExt;
    reader_binary(ws);
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(ws.dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(ws.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs the binary as a user who may not write the workspace (as `nobody`
/// through setpriv when the tests run as root, where permissions do not
/// bind).
fn as_reader(ws: &Workspace, args: &[&str]) -> crate::support::Run {
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = ws.cmd(args);
    if root {
        let bin = reader_binary(ws);
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin)
            .args(args)
            .current_dir(ws.dir.path())
            .env_remove("MAGE_DATA_DIR")
            .env_remove("MAGE_SECRETS_DATABASE")
            .env("HOME", ws.path("home"))
            .env("NO_COLOR", "1");
        cmd = wrapped;
    }
    crate::support::Run::from(cmd.stdin(std::process::Stdio::null()).output().unwrap())
}

#[test]
fn a_read_only_data_dir_and_database_serve_every_read_and_refuse_writes_clearly() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    ws.set("d", None, "pw", "s3cret");
    ws.write("p/io_config.yaml", "a: \"{{ mage_secret_var('pw') }}\"\n");
    std::fs::create_dir_all(ws.path("out")).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        hand_to_reader(&ws);
    }
    let before = std::fs::read(ws.path("d/mage-secrets/secrets.db")).unwrap();
    for (rel, mode) in [
        ("d/mage-secrets/secrets.db", 0o400),
        ("d/mage-secrets/key", 0o400),
        ("d/mage-secrets/uuid", 0o400),
        ("d/mage-secrets/database", 0o400),
        ("d/mage-secrets", 0o500),
        ("d", 0o500),
    ] {
        std::fs::set_permissions(ws.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    assert_eq!(
        as_reader(&ws, &["--data-dir", "d", "get", "pw"])
            .ok()
            .stdout,
        "s3cret\n"
    );
    assert!(as_reader(&ws, &["--data-dir", "d", "list"])
        .ok()
        .stdout
        .contains("pw"));
    as_reader(&ws, &["--data-dir", "d", "check", "p"]).ok();
    as_reader(&ws, &["--data-dir", "d", "render", "p", "--out", "out/o"]).ok();
    assert_eq!(ws.read("out/o/io_config.yaml"), "a: \"s3cret\"");
    let set = as_reader(&ws, &["--data-dir", "d", "delete", "pw"]).code(2);
    assert!(set.stderr.contains("is read-only here"), "{}", set.stderr);
    let rotate = as_reader(&ws, &["--data-dir", "d", "rotate-key"]).code(2);
    assert!(
        rotate.stderr.contains("is read-only here"),
        "{}",
        rotate.stderr
    );
    // Nothing changed, nothing was left behind.
    for rel in ["d/mage-secrets", "d"] {
        std::fs::set_permissions(ws.path(rel), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert_eq!(
        std::fs::read(ws.path("d/mage-secrets/secrets.db")).unwrap(),
        before
    );
    let mut left: Vec<String> = std::fs::read_dir(ws.path("d/mage-secrets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["database", "key", "secrets.db", "uuid"]);
}

#[test]
fn an_output_past_the_limit_is_an_error_for_its_file_never_an_abort() {
    let ws = Workspace::new();
    ws.set("d", None, "a", "1");
    ws.write(
        "p/io_config.yaml",
        "{% set s = 'x' * 10000000 %}{% for i in range(10000) %}{{ s }}{% endfor %}\n",
    );
    ws.write("p/ok.yaml", "a: \"{{ mage_secret_var('a') }}\"\n");
    let out = ws
        .run(&["--data-dir", "d", "render", "p", "--out", "o"])
        .code(1);
    assert!(
        out.stderr
            .contains("p/io_config.yaml: error: the rendered output would be larger than 64 MiB"),
        "{}",
        out.stderr
    );
    assert!(!ws.path("o").exists(), "nothing written");
    let check = ws.run(&["--data-dir", "d", "check", "p"]).code(1);
    assert!(
        check.stderr.contains("larger than 64 MiB"),
        "{}",
        check.stderr
    );
    // The limit is the user's to set.
    ws.write(
        "p/io_config.yaml",
        "{% set s = 'x' * 1000 %}{% for i in range(100) %}{{ s }}{% endfor %}\n",
    );
    let small = ws
        .run(&[
            "--data-dir",
            "d",
            "render",
            "p",
            "--out",
            "o",
            "--max-output",
            "50KiB",
        ])
        .code(1);
    assert!(
        small.stderr.contains("larger than 50 KiB"),
        "{}",
        small.stderr
    );
    ws.run(&[
        "--data-dir",
        "d",
        "render",
        "p",
        "--out",
        "o",
        "--max-output",
        "1MiB",
    ])
    .ok();
    assert_eq!(ws.read("o/io_config.yaml").len(), 100_000);
    // Widths and counts that would allocate past the limit are refused
    // before anything is allocated.
    for t in [
        "{{ 'ab' | center(2000000000) }}",
        "{{ '%2000000000s' % 'x' }}",
        "{{ '%.2000000000f' % 1.5 }}",
        "{{ 'x'.zfill(2000000000) }}",
        "{{ '{:>2000000000}'.format('x') }}",
        "{{ 'x' | indent(2000000000, true) }}",
        "{{ 'x'.center(2000000000) }}",
    ] {
        ws.write("p/io_config.yaml", format!("a: \"{t}\"\n"));
        let out = ws
            .run(&["--data-dir", "d", "render", "p", "--out", "o3"])
            .code(1);
        assert!(
            out.stderr.contains("larger than 64 MiB"),
            "{t}: {}",
            out.stderr
        );
    }
    for bad in ["0", "5X", "lots"] {
        let refused = ws
            .run(&[
                "--data-dir",
                "d",
                "render",
                "p",
                "--out",
                "o2",
                "--max-output",
                bad,
            ])
            .code(2);
        assert!(
            refused.stderr.contains("--max-output"),
            "{bad}: {}",
            refused.stderr
        );
    }
}

#[test]
fn a_write_leaves_its_changes_in_the_database_file_so_the_file_alone_is_a_backup() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "one");
    let db = ws.path("d/mage-secrets/secrets.db");
    // Another reader keeps the database open (as `watch` does), so closing
    // the writer is not the last close.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader
        .query_row("SELECT count(*) FROM secrets", [], |r| r.get::<_, i64>(0))
        .unwrap();
    ws.set("d", None, "pw", "two");
    let wal = ws.path("d/mage-secrets/secrets.db-wal");
    assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
    // The file alone, copied elsewhere with the data dir, reads "two".
    std::fs::create_dir_all(ws.path("copy/mage-secrets")).unwrap();
    for f in ["key", "uuid", "secrets.db"] {
        std::fs::copy(
            ws.path(&format!("d/mage-secrets/{f}")),
            ws.path(&format!("copy/mage-secrets/{f}")),
        )
        .unwrap();
    }
    assert_eq!(
        ws.run(&["--data-dir", "copy", "get", "pw"]).ok().stdout,
        "two\n"
    );
    drop(reader);
}

#[test]
fn a_missing_or_emptied_database_is_never_replaced_by_a_new_one() {
    let ws = Workspace::new();
    ws.set("d", None, "pw", "one");
    let db = ws.path("d/mage-secrets/secrets.db");
    std::fs::remove_file(&db).unwrap();
    for args in [&["get", "pw"][..], &["list"], &["render", "p.yaml"]] {
        ws.write("p.yaml", "a: 1\n");
        let out = ws.run(&[&["--data-dir", "d"][..], args].concat()).code(2);
        assert!(
            out.stderr
                .contains("is missing or empty; nothing was created"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!db.exists(), "{args:?} created a database");
    }
    let set = ws
        .run_with_stdin(&["--data-dir", "d", "set", "other"], b"x")
        .code(2);
    assert!(set.stderr.contains("is missing or empty"), "{}", set.stderr);
    assert!(!db.exists());
    std::fs::write(&db, b"").unwrap();
    ws.run(&["--data-dir", "d", "get", "pw"]).code(2);
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        0,
        "the empty file stays as it was"
    );
}

#[test]
fn a_read_only_database_with_changes_in_its_log_is_an_error_not_old_values() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new();
    ws.set("d", None, "pw", "one");
    // A change left in the write-ahead log (as by a writer that was killed):
    // written while another connection keeps the log from being folded in.
    let db = ws.path("d/mage-secrets/secrets.db");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder
        .query_row("SELECT count(*) FROM secrets", [], |r| r.get::<_, i64>(0))
        .unwrap();
    {
        let writer = rusqlite::Connection::open(&db).unwrap();
        writer
            .execute("UPDATE secrets SET updated_at = 'changed'", [])
            .unwrap();
    }
    // A copy with the log but without its -shm file, in a read-only folder.
    std::fs::create_dir_all(ws.path("ro/mage-secrets")).unwrap();
    for f in ["key", "uuid", "secrets.db", "secrets.db-wal"] {
        std::fs::copy(
            ws.path(&format!("d/mage-secrets/{f}")),
            ws.path(&format!("ro/mage-secrets/{f}")),
        )
        .unwrap();
    }
    drop(holder);
    assert!(
        std::fs::metadata(ws.path("ro/mage-secrets/secrets.db-wal"))
            .unwrap()
            .len()
            > 0
    );
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        hand_to_reader(&ws);
    }
    for rel in ["ro/mage-secrets", "ro"] {
        std::fs::set_permissions(ws.path(rel), std::fs::Permissions::from_mode(0o500)).unwrap();
    }
    let out = as_reader(&ws, &["--data-dir", "ro", "get", "pw"]).code(2);
    assert!(out.stderr.contains("write-ahead log"), "{}", out.stderr);
    assert!(!out.stdout.contains("one"));
}
