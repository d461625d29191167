//! Keys given without a data dir (CI jobs, containers): `MAGE_SECRETS_KEY`
//! with `MAGE_SECRETS_ENVIRONMENT`, `--key-file`, and `env --export-key`.

use std::fs;
use std::process::Stdio;

use crate::support::{snapshot, Run, Workspace};

pub(crate) const SHARED: &str = "shared.db";

/// The seed scenario; returns (prod's key text, prod's uuid).
pub(crate) fn seed(ws: &Workspace) -> (String, String) {
    ws.set(
        "dev",
        Some(SHARED),
        "secret1",
        "sooper dooper secret string",
    );
    ws.set("dev", Some(SHARED), "secret3", "dev only secret");
    ws.set("prod", Some(SHARED), "secret1", "real production secret");
    let key = fs::read_to_string(ws.path("prod/mage-secrets/key")).unwrap();
    let uuid = fs::read_to_string(ws.path("prod/mage-secrets/uuid")).unwrap();
    (key, uuid.trim().to_string())
}

/// Names the environment of `data_dir` (in the shared database).
pub(crate) fn name_environment(ws: &Workspace, data_dir: &str, name: &str) {
    ws.run(&[
        "--data-dir",
        data_dir,
        "--database",
        SHARED,
        "env",
        "--name",
        name,
    ])
    .ok();
}

/// A run in the CI's shape: no data dir anywhere, the key and environment
/// in variables, the database named; the workspace is the only folder.
pub(crate) fn run_with_key(
    ws: &Workspace,
    key: &str,
    uuid: &str,
    args: &[&str],
    stdin: &[u8],
) -> Run {
    let mut cmd = ws.cmd(&[&["--database", SHARED][..], args].concat());
    cmd.env("MAGE_SECRETS_KEY", key)
        .env("MAGE_SECRETS_ENVIRONMENT", uuid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_key_from_the_environment_answers_with_no_data_dir_and_creates_nothing() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    ws.write(
        "p/io_config.yaml",
        "default:\n  pw: \"{{ mage_secret_var('secret1') }}\"\n",
    );
    let before = snapshot(ws.dir.path());
    let got = run_with_key(&ws, &key, &uuid, &["get", "secret1"], b"").ok();
    assert_eq!(got.stdout, "real production secret\n");
    let missing = run_with_key(&ws, &key, &uuid, &["get", "secret3"], b"").code(1);
    assert!(missing.stderr.contains(&uuid), "{}", missing.stderr);
    let rendered = run_with_key(&ws, &key, &uuid, &["render", "p/io_config.yaml"], b"").ok();
    assert_eq!(
        rendered.stdout,
        "default:\n  pw: \"real production secret\""
    );
    // Nothing created: no ~/.mage_data, no key file, no new database.
    assert!(!ws.path("home").exists());
    let after = snapshot(ws.dir.path());
    let names = |s: &[(std::path::PathBuf, Vec<u8>, u32)]| {
        s.iter()
            .map(|f| f.0.clone())
            .filter(|p| !p.to_string_lossy().contains("shared.db"))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&before), names(&after));
}

#[test]
fn env_says_where_the_key_came_from_and_never_shows_it() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    let env = run_with_key(&ws, &key, &uuid, &["env"], b"").ok();
    assert!(
        env.stdout.contains("key:       key from MAGE_SECRETS_KEY"),
        "{}",
        env.stdout
    );
    assert!(
        env.stdout.contains(&format!("uuid:      {uuid}")),
        "{}",
        env.stdout
    );
    assert!(env.stdout.contains("data dir:  none"), "{}", env.stdout);
    assert!(!env.all().contains(key.trim()));
    // The data dir's own key file, otherwise.
    let own = ws
        .run(&["--data-dir", "prod", "--database", SHARED, "env"])
        .ok();
    assert!(own.stdout.contains("key file:  "), "{}", own.stdout);
}

#[test]
fn key_file_from_a_pipe_wins_over_the_variable() {
    let ws = Workspace::new();
    let (prod_key, uuid) = seed(&ws);
    let got = run_with_key(
        &ws,
        "not a key at all, and never read",
        &uuid,
        &["--key-file", "-", "get", "secret1"],
        prod_key.as_bytes(),
    );
    // MAGE_SECRETS_KEY is set (and invalid), --key-file wins.
    let got = got.ok();
    assert_eq!(got.stdout, "real production secret\n");
    // A file path, and /dev/fd/0, work the same.
    ws.write("prod.key", &prod_key);
    let mut cmd = ws.cmd(&[
        "--database",
        SHARED,
        "--key-file",
        "prod.key",
        "get",
        "secret1",
    ]);
    let out = cmd.env("MAGE_SECRETS_ENVIRONMENT", &uuid).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "real production secret\n"
    );
    let fd0 = ws.run_with_stdin(
        &["--database", SHARED, "--key-file", "/dev/fd/0", "list"],
        prod_key.as_bytes(),
    );
    // (No MAGE_SECRETS_ENVIRONMENT here: refused, naming the variable.)
    assert_eq!(fd0.code, 2);
    assert!(
        fd0.stderr.contains("needs MAGE_SECRETS_ENVIRONMENT"),
        "{}",
        fd0.stderr
    );
}

#[test]
fn key_file_on_stdin_and_a_value_on_stdin_are_refused_together() {
    use std::io::Write;
    let ws = Workspace::new();
    let (prod_key, uuid) = seed(&ws);
    let mut child = ws
        .cmd(&["--database", SHARED, "--key-file", "-", "set", "x"])
        .env("MAGE_SECRETS_ENVIRONMENT", &uuid)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(prod_key.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass the value with --from-file"));
    ws.run(&["--data-dir", "prod", "--database", SHARED, "get", "x"])
        .code(1);
}

#[test]
fn a_wrong_key_is_an_error_naming_the_environment() {
    let ws = Workspace::new();
    let (_, prod_uuid) = seed(&ws);
    let dev_key = fs::read_to_string(ws.path("dev/mage-secrets/key")).unwrap();
    let run = run_with_key(&ws, &dev_key, &prod_uuid, &["get", "secret1"], b"").code(2);
    assert!(
        run.stderr.contains(&format!(
            "the key from MAGE_SECRETS_KEY does not open environment {prod_uuid}"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains("real production secret"));
    // Not base64, or not 32 bytes: a format error, never an echo of it.
    let run = run_with_key(&ws, "c2hvcnQ=", &prod_uuid, &["get", "secret1"], b"").code(2);
    assert!(
        run.stderr.contains("not a mage-secrets key"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("c2hvcnQ="));
}

#[test]
fn an_empty_key_variable_is_refused_not_ignored() {
    let ws = Workspace::new();
    let (_, uuid) = seed(&ws);
    let run = run_with_key(&ws, "", &uuid, &["get", "secret1"], b"").code(2);
    assert!(
        run.stderr.contains("MAGE_SECRETS_KEY is set but empty"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_given_key_never_creates_an_environment_or_a_database() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let run = run_with_key(
        &ws,
        &key,
        unknown,
        &["set", "x", "--from-file", "/dev/null"],
        b"",
    )
    .code(2);
    assert!(
        run.stderr
            .contains(&format!("environment {unknown} is not in database")),
        "{}",
        run.stderr
    );
    let mut cmd = ws.cmd(&["--database", "new.db", "get", "secret1"]);
    let out = cmd
        .env("MAGE_SECRETS_KEY", &key)
        .env("MAGE_SECRETS_ENVIRONMENT", &uuid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!ws.path("new.db").exists());
    // Writing to an environment that exists is fine; rotating is refused
    // (the new key would have nowhere to go).
    run_with_key(&ws, &key, &uuid, &["set", "secret2"], b"two\n").ok();
    let rotate = run_with_key(&ws, &key, &uuid, &["rotate-key"], b"").code(2);
    assert!(
        rotate.stderr.contains("rotate-key writes the new key"),
        "{}",
        rotate.stderr
    );
    let got = ws
        .run(&["--data-dir", "prod", "--database", SHARED, "get", "secret2"])
        .ok();
    assert_eq!(got.stdout, "two\n");
}

#[test]
fn export_key_prints_the_key_to_a_pipe_with_a_warning() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    let run = ws
        .run(&[
            "--data-dir",
            "prod",
            "--database",
            SHARED,
            "env",
            "--export-key",
        ])
        .ok();
    assert_eq!(run.stdout, key);
    assert!(
        run.stderr
            .contains("warning: printing the key of environment"),
        "{}",
        run.stderr
    );
    assert!(run
        .stderr
        .contains(&format!("MAGE_SECRETS_ENVIRONMENT={uuid}")));
    // The exported key, given back, opens the environment.
    let got = run_with_key(&ws, &run.stdout, &uuid, &["get", "secret1"], b"").ok();
    assert_eq!(got.stdout, "real production secret\n");
}

/// Runs the binary with stdout on a pseudo-terminal; returns (exit code,
/// what it wrote to the terminal, stderr).
fn run_on_a_terminal(ws: &Workspace, args: &[&str]) -> (i32, String, String) {
    on_a_terminal(ws, args, false)
}

/// [`run_on_a_terminal`], with standard input on the terminal too when
/// `stdin_too`.
pub(crate) fn on_a_terminal(
    ws: &Workspace,
    args: &[&str],
    stdin_too: bool,
) -> (i32, String, String) {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    let master = unsafe { fs::File::from_raw_fd(master) };
    let slave = unsafe { fs::File::from_raw_fd(slave) };
    let stdin = if stdin_too {
        Stdio::from(slave.try_clone().unwrap())
    } else {
        Stdio::null()
    };
    let mut cmd = ws.cmd(args);
    if stdin_too {
        cmd.env("MAGE_SECRETS_ENVIRONMENT", "0");
    }
    let out = cmd
        .stdin(stdin)
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    // The child has exited and the slave is closed: read what is buffered.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut master = master;
    unsafe {
        let flags = libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&master), libc::F_GETFL);
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            libc::F_SETFL,
            flags | libc::O_NONBLOCK,
        );
    }
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&seen).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_key_is_refused_on_a_terminal_unless_forced() {
    let ws = Workspace::new();
    let (key, _) = seed(&ws);
    let args = [
        "--data-dir",
        "prod",
        "--database",
        SHARED,
        "env",
        "--export-key",
    ];
    let (code, terminal, stderr) = run_on_a_terminal(&ws, &args);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("refusing to print the key"), "{stderr}");
    assert!(!terminal.contains(key.trim()) && !stderr.contains(key.trim()));
    let (code, terminal, stderr) = run_on_a_terminal(&ws, &[&args[..], &["--force"]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(terminal.contains(key.trim()), "{terminal:?}");
    assert!(stderr.contains("warning: printing the key"), "{stderr}");
}

#[test]
fn an_environment_variable_naming_another_environment_than_the_data_dirs_is_refused() {
    let ws = Workspace::new();
    let (_, prod_uuid) = seed(&ws);
    // The key variable did not reach this job; the data dir is dev's.
    let mut cmd = ws.cmd(&["--data-dir", "dev", "--database", SHARED, "get", "secret1"]);
    let out = cmd
        .env("MAGE_SECRETS_ENVIRONMENT", &prod_uuid)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "MAGE_SECRETS_ENVIRONMENT='{prod_uuid}' names environment {prod_uuid}, but no key is given"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    // Naming the data dir's own environment is fine.
    let dev_uuid = fs::read_to_string(ws.path("dev/mage-secrets/uuid")).unwrap();
    let mut cmd = ws.cmd(&["--data-dir", "dev", "--database", SHARED, "get", "secret1"]);
    let out = cmd
        .env("MAGE_SECRETS_ENVIRONMENT", dev_uuid.trim())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "sooper dooper secret string\n"
    );
}

#[test]
fn key_files_that_cannot_be_keys_are_refused_without_reading_them_whole() {
    let ws = Workspace::new();
    let (_, uuid) = seed(&ws);
    for (path, want) in [
        ("/dev/zero", "too large to be a key"),
        ("missing.key", "cannot read key file missing.key"),
        ("empty.key", "is empty"),
    ] {
        ws.write("empty.key", "");
        let mut cmd = ws.cmd(&["--database", SHARED, "--key-file", path, "get", "secret1"]);
        let out = cmd.env("MAGE_SECRETS_ENVIRONMENT", &uuid).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{path}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{path}: {stderr}");
    }
}

#[test]
fn doctor_checks_the_environment_of_a_given_key() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    let run = run_with_key(&ws, &key, &uuid, &["doctor"], b"").ok();
    assert!(
        run.stdout.contains("ok       key: from MAGE_SECRETS_KEY"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("the key opens environment {uuid}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("all 1 secret(s) open"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("data dir"), "{}", run.stdout);
    let dev_key = fs::read_to_string(ws.path("dev/mage-secrets/key")).unwrap();
    let run = run_with_key(&ws, &dev_key, &uuid, &["doctor"], b"").code(1);
    assert!(
        run.stdout.contains("the key does not open"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_run_command_does_not_inherit_the_key_unless_asked() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    let show = r#"printf '%s|%s\n' "${MAGE_SECRETS_KEY+present}" "${secret1-unset}""#;
    let run = run_with_key(&ws, &key, &uuid, &["run", "--", "sh", "-c", show], b"").ok();
    assert_eq!(run.stdout, "|real production secret\n");
    let run = run_with_key(
        &ws,
        &key,
        &uuid,
        &["--keep-key-env", "run", "--", "sh", "-c", show],
        b"",
    )
    .ok();
    assert_eq!(run.stdout, "present|real production secret\n");
}

#[test]
fn the_environment_variable_takes_a_name_or_a_uuid_prefix_too() {
    let ws = Workspace::new();
    let (key, uuid) = seed(&ws);
    name_environment(&ws, "prod", "prod");
    for named in ["prod", &uuid[..8]] {
        let got = run_with_key(&ws, &key, named, &["get", "secret1"], b"").ok();
        assert_eq!(got.stdout, "real production secret\n", "{named}");
    }
    let none = run_with_key(&ws, &key, "staging", &["get", "secret1"], b"").code(2);
    assert!(
        none.stderr.contains("MAGE_SECRETS_ENVIRONMENT='staging': "),
        "{}",
        none.stderr
    );
    assert!(!none.stderr.contains("real production"), "{}", none.stderr);
    // dev's key does not open prod, whatever names prod.
    let dev_key = std::fs::read_to_string(ws.path("dev/mage-secrets/key")).unwrap();
    run_with_key(&ws, &dev_key, "prod", &["get", "secret1"], b"").code(2);
}
