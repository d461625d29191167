//! Running the real binary against a temporary workspace.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "../src/store/test_server.rs"]
mod test_server;
pub use test_server::test_postgres_database;

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// The outcome of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout and stderr together, for searching.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mage-secrets"))
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command with a clean environment rooted in this workspace.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.dir.path())
            .env_remove("MAGE_DATA_DIR")
            .env_remove("MAGE_SECRETS_DATABASE")
            .env_remove("MAGE_SECRETS_KEY")
            .env_remove("MAGE_SECRETS_ENVIRONMENT")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .args(args);
        cmd
    }

    /// Runs with empty stdin.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, b"")
    }

    /// Runs with empty stdin in another current folder.
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> Run {
        Run::from(
            self.cmd(args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .output()
                .expect("run mage-secrets"),
        )
    }

    /// Runs with empty stdin under the file mode creation mask `umask`.
    pub fn run_with_umask(&self, umask: u32, args: &[&str]) -> Run {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.cmd(args);
        // SAFETY: umask is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(umask as libc::mode_t);
                Ok(())
            });
        }
        Run::from(cmd.stdin(Stdio::null()).output().expect("run mage-secrets"))
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mage-secrets");
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait");
        writer.join().unwrap();
        Run::from(out)
    }

    /// `set` for a data dir (and optional shared database).
    pub fn set(&self, data_dir: &str, db: Option<&str>, name: &str, value: &str) {
        let mut args = vec!["--data-dir", data_dir];
        if let Some(db) = db {
            args.extend(["--database", db]);
        }
        args.extend(["set", name, "--allow-empty"]);
        self.run_with_stdin(&args, format!("{value}\n").as_bytes())
            .ok();
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }
}

pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file below `dir` with its bytes, for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let p = e.path().to_path_buf();
            let bytes = fs::read(&p).unwrap();
            (p.clone(), bytes, mode(&p))
        })
        .collect();
    files.sort();
    files
}

/// Whether `needle` occurs in any file below `dir`.
pub fn tree_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    snapshot(dir)
        .into_iter()
        .find(|(_, bytes, _)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _, _)| p)
}

impl Workspace {
    /// A command that runs without root's power to ignore permissions: as
    /// `nobody` (through setpriv) when the tests run as root. The workspace
    /// is opened to that user.
    pub fn unprivileged(&self, args: &[&str]) -> Command {
        let probe = self.path(".uid-probe");
        fs::write(&probe, "").unwrap();
        let root = std::os::unix::fs::MetadataExt::uid(&fs::metadata(&probe).unwrap()) == 0;
        fs::remove_file(&probe).unwrap();
        if !root {
            return self.cmd(args);
        }
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let mut cmd = Command::new("setpriv");
        cmd.current_dir(self.dir.path())
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(bin())
            .env_remove("MAGE_DATA_DIR")
            .env_remove("MAGE_SECRETS_DATABASE")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1")
            .args(args);
        cmd
    }

    pub fn run_unprivileged(&self, args: &[&str]) -> Run {
        Run::from(
            self.unprivileged(args)
                .stdin(Stdio::null())
                .output()
                .expect("run"),
        )
    }
}
