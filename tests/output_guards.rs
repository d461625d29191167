//! Outputs never reach what they must not: the project's templates and the
//! secret store, however the output path is spelled (`..` through a folder
//! that does not exist yet, links), and folders get the mode asked for.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{snapshot, Workspace};

const T: &str = "a: \"{{ mage_secret_var('pw') }}\"\n";

fn setup(ws: &Workspace) {
    ws.set("s/d", None, "pw", "v");
    ws.write("p/t.yaml", T);
    ws.write("p/sub/c.yaml", T);
}

#[test]
fn a_dotdot_through_a_missing_folder_is_resolved_before_any_check() {
    let ws = Workspace::new();
    setup(&ws);
    let store = snapshot(&ws.path("s"));
    for args in [
        &["render", "p", "--out", "nq/../p"][..],
        &["render", "p/sub/c.yaml", "--out", "nq2/../p/sub/"],
        &["render", "p", "--out", "s/d/nx/../mage-secrets"],
        &["render", "p/t.yaml", "--out", "s/d/ny/../mage-secrets/key"],
    ] {
        let run = ws.run(&[&["--data-dir", "s/d"][..], args].concat()).code(2);
        assert!(
            run.stderr.contains("project")
                || run.stderr.contains("template")
                || run.stderr.contains("secret store"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert_eq!(ws.read("p/t.yaml"), T);
    assert_eq!(ws.read("p/sub/c.yaml"), T);
    assert_eq!(snapshot(&ws.path("s")), store);
    // A link to the data dir, then `..`.
    std::os::unix::fs::symlink(ws.path("s/d"), ws.path("lnkd")).unwrap();
    let run = ws
        .run(&[
            "--data-dir",
            "s/d",
            "render",
            "p",
            "--out",
            "lnkd/mage-secrets/x/..",
        ])
        .code(2);
    assert!(run.stderr.contains("secret store"), "{}", run.stderr);
    assert_eq!(snapshot(&ws.path("s")), store);
}

#[test]
fn an_output_folder_linked_into_the_store_is_refused() {
    let ws = Workspace::new();
    setup(&ws);
    ws.write("p/sub/key", "k: 1\n");
    ws.run(&["--data-dir", "s/d", "render", "p", "--out", "o"])
        .ok();
    fs::remove_dir_all(ws.path("o/sub")).unwrap();
    std::os::unix::fs::symlink(ws.path("s/d/mage-secrets"), ws.path("o/sub")).unwrap();
    let store = snapshot(&ws.path("s"));
    let run = ws
        .run(&[
            "--data-dir",
            "s/d",
            "render",
            "p",
            "--include",
            "**/key",
            "--include",
            "**/*.yaml",
            "--out",
            "o",
        ])
        .code(2);
    assert!(run.stderr.contains("secret store"), "{}", run.stderr);
    assert_eq!(snapshot(&ws.path("s")), store);
    ws.run(&["--data-dir", "s/d", "get", "pw"]).ok();
}

#[test]
fn a_key_file_given_by_path_is_guarded_too() {
    let ws = Workspace::new();
    setup(&ws);
    let uuid = ws.read("s/d/mage-secrets/uuid");
    fs::create_dir(ws.path("keys")).unwrap();
    fs::copy(ws.path("s/d/mage-secrets/key"), ws.path("keys/key")).unwrap();
    let db = ws.path("s/d/mage-secrets/secrets.db");
    let mut cmd = ws.cmd(&[
        "--key-file",
        "keys/key",
        "--database",
        db.to_str().unwrap(),
        "render",
        "p",
        "--out",
        "keys",
        "--prune",
    ]);
    let out = cmd
        .env("MAGE_SECRETS_ENVIRONMENT", uuid.trim())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret store"));
    assert!(ws.path("keys/key").is_file());
}

#[test]
fn folders_a_render_makes_get_the_mode_asked_for_whatever_the_umask() {
    let ws = Workspace::new();
    setup(&ws);
    ws.run_with_umask(
        0o077,
        &[
            "--data-dir",
            "s/d",
            "render",
            "p",
            "--out",
            "um/a",
            "--mode",
            "0644",
        ],
    )
    .ok();
    for folder in ["um", "um/a", "um/a/sub"] {
        let mode = fs::metadata(ws.path(folder)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{folder}");
    }
    let mode = fs::metadata(ws.path("um/a/t.yaml"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn under_a_umask_without_the_owners_write_bit_the_store_and_renders_work() {
    use std::os::unix::process::CommandExt;
    let ws = Workspace::new();
    // Many small nested folders: where one worker's run of files ends and
    // another's begins, both need the same new staging folders at once.
    let rels: Vec<String> = (0..600)
        .map(|i| format!("p/f{:03}/g{}/t{i:03}.yaml", i / 4, i / 2 % 2))
        .collect();
    for rel in &rels {
        ws.write(rel, "a: \"{{ mage_secret_var('x') }}\"\n");
    }
    let run = |args: &[&str], stdin: &str| {
        let mut cmd = ws.unprivileged(args);
        // SAFETY: umask is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o277);
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mode = |rel: &str| fs::metadata(ws.path(rel)).unwrap().permissions().mode() & 0o777;
    // A new data dir, its key and database.
    run(&["--data-dir", "d", "set", "x"], "one");
    assert_eq!(run(&["--data-dir", "d", "get", "x"], ""), "one\n");
    assert_eq!(mode("d/mage-secrets"), 0o700);
    // A new output root, then the same root again with a changed value.
    for value in ["one", "two"] {
        run(&["--data-dir", "d", "set", "x"], value);
        run(&["--data-dir", "d", "render", "p", "--out", "o"], "");
        for folder in ["o/f000", "o/f149/g1"] {
            assert_eq!(mode(folder), 0o700, "{folder}");
        }
        // Private files stay as narrow as the umask makes them.
        for rel in &rels {
            let out = rel.replacen("p/", "o/", 1);
            assert_eq!(mode(&out) & 0o077, 0, "{rel}");
            let text = fs::read_to_string(ws.path(&out)).unwrap();
            assert_eq!(text, format!("a: \"{value}\""));
        }
    }
}

#[test]
fn folders_a_render_makes_get_the_mode_asked_for_under_a_default_acl() {
    use std::os::unix::ffi::OsStrExt;
    let ws = Workspace::new();
    setup(&ws);
    // A default ACL of u::rwx,g::r-x,o::--- on the folder above: the
    // system then ignores the umask and narrows new folders to 0750.
    fs::create_dir_all(ws.path("acl")).unwrap();
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 0)] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(u32::MAX.to_le_bytes());
    }
    let path = std::ffi::CString::new(ws.path("acl").as_os_str().as_bytes()).unwrap();
    let name = c"system.posix_acl_default";
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let set = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            acl.as_ptr().cast(),
            acl.len(),
            0,
        )
    };
    if set != 0 {
        eprintln!(
            "skipped: this file system takes no ACL ({})",
            std::io::Error::last_os_error()
        );
        return;
    }
    ws.run_with_umask(
        0o002,
        &[
            "--data-dir",
            "s/d",
            "render",
            "p",
            "--out",
            "acl/o/a",
            "--mode",
            "0644",
        ],
    )
    .ok();
    for folder in ["acl/o", "acl/o/a", "acl/o/a/sub"] {
        let mode = fs::metadata(ws.path(folder)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "{folder}");
    }
}

#[test]
fn an_existing_output_root_spelled_through_a_missing_folder_is_compared_with_disk() {
    let ws = Workspace::new();
    setup(&ws);
    ws.run(&["--data-dir", "s/d", "render", "p", "--out", "o"])
        .code(0);
    let workspace_mode = crate::support::mode(&ws.path(""));
    // Unchanged outputs are found unchanged, through `new/..`.
    let run = ws
        .run(&["--data-dir", "s/d", "render", "p", "--out", "new/../o"])
        .code(0);
    assert!(
        run.stderr.contains("0 written, 2 unchanged"),
        "{}",
        run.stderr
    );
    // A folder where an output goes is refused before anything is replaced.
    ws.write("p/t.yaml", "a: \"{{ mage_secret_var('pw') }}-2\"\n");
    fs::remove_file(ws.path("o/sub/c.yaml")).unwrap();
    fs::create_dir(ws.path("o/sub/c.yaml")).unwrap();
    let run = ws
        .run(&["--data-dir", "s/d", "render", "p", "--out", "new2/../o"])
        .code(2);
    assert!(run.stderr.contains("is a folder"), "{}", run.stderr);
    assert_eq!(ws.read("o/t.yaml"), "a: \"v\"");
    // The folders the path passes through are not the run's to re-mode.
    assert_eq!(crate::support::mode(&ws.path("")), workspace_mode);
    assert_eq!(crate::support::mode(&ws.path("o")) & 0o777, 0o700);
}

#[test]
fn dotdot_after_a_link_is_taken_from_the_links_target() {
    let ws = Workspace::new();
    setup(&ws);
    // Run from W, beside the project: W/lnk leads to p/sub.
    fs::create_dir(ws.path("W")).unwrap();
    std::os::unix::fs::symlink(ws.path("p/sub"), ws.path("W/lnk")).unwrap();
    let dd = ws.path("s/d");
    let dd = dd.to_str().unwrap();
    let p = ws.path("p");
    let p = p.to_str().unwrap();
    // new/.. is W, lnk/.. is the project.
    let run = ws
        .run_in(
            &ws.path("W"),
            &["--data-dir", dd, "render", p, "--out", "new/../lnk/.."],
        )
        .code(2);
    assert!(run.stderr.contains("project"), "{}", run.stderr);
    assert_eq!(ws.read("p/t.yaml"), T);
    assert_eq!(ws.read("p/sub/c.yaml"), T);
    assert!(!ws.path("W/new").exists());
    // A failed render through such a path leaves no folder it made.
    fs::create_dir_all(ws.path("A/B")).unwrap();
    std::os::unix::fs::symlink(ws.path("A/B"), ws.path("W/lnk2")).unwrap();
    ws.write("q/bad.yaml", "b: {{ nope( }}\n");
    let q = ws.path("q");
    ws.run_in(
        &ws.path("W"),
        &[
            "--data-dir",
            dd,
            "render",
            q.to_str().unwrap(),
            "--out",
            "new/../lnk2/../o",
        ],
    )
    .code(1);
    assert!(!ws.path("A/o").exists());
    assert!(!ws.path("W/new").exists());
    // And a good one lands where the system resolves the path.
    ws.run_in(
        &ws.path("W"),
        &["--data-dir", dd, "render", p, "--out", "new/../lnk2/../o"],
    )
    .code(0);
    assert_eq!(ws.read("A/o/t.yaml"), "a: \"v\"");
}

#[test]
fn an_output_root_spelled_with_a_dot_is_made() {
    let ws = Workspace::new();
    setup(&ws);
    for out in ["o1/.", "o2/./"] {
        ws.run(&["--data-dir", "s/d", "render", "p", "--out", out])
            .code(0);
    }
    assert_eq!(ws.read("o1/t.yaml"), "a: \"v\"");
    assert_eq!(ws.read("o2/sub/c.yaml"), "a: \"v\"");
}

#[test]
fn a_new_output_folder_takes_paths_near_the_system_limit() {
    let ws = Workspace::new();
    ws.set("s/d", None, "pw", "v");
    // Sources and targets under the system's path limit (4,096 with the
    // NUL) whose staging path in a tree, longer by the staging folder's
    // name, would not be.
    let base = ws.path("").canonicalize().unwrap().as_os_str().len() + 1;
    let want = 4_083 - base; // the source, base + "p/" + rel: 4,085 bytes
    let mut rel = String::new();
    while rel.len() + 250 + 5 < want {
        rel.push_str(&"d".repeat(250));
        rel.push('/');
    }
    rel.push_str(&"f".repeat(want - rel.len() - 5));
    rel.push_str(".yaml");
    assert_eq!(base + 2 + rel.len(), 4_085);
    ws.write(&format!("p/{rel}"), T);
    ws.write("p/t.yaml", T);
    ws.run(&["--data-dir", "s/d", "render", "p", "--out", "o"])
        .code(0);
    assert_eq!(ws.read(&format!("o/{rel}")), "a: \"v\"");
    assert_eq!(ws.read("o/t.yaml"), "a: \"v\"");
}
