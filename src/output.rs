//! Output folders: the rules that keep a render from ever hurting its
//! sources, and the writing of a whole output set as one step.
//!
//! - An output folder may not be the project, an ancestor of it, or a folder
//!   holding any file the render reads; a render never writes over a file it
//!   reads. Every output root holds [`OUTPUT_MARKER`], and a folder holding
//!   one is never read as templates.
//! - Writing is all-or-nothing across I/O: every changed output is first
//!   written to a temporary file (staged in one folder as soon as it is
//!   rendered, see [`Staging`]), and only when all of them are written, and every
//!   target folder takes files, are they renamed over their targets. A
//!   failure before the renames removes the temporaries and leaves every old
//!   output as it was.
//!   A crash between two renames can leave some outputs new and some old;
//!   the next render (which compares every output) finishes the set.
//! - Temporary names carry the pid of their writer, so that concurrent
//!   renders into one folder never remove each other's temporaries: only
//!   those of processes that are gone are cleaned up.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;

mod staging;
pub use crate::project::OUTPUT_MARKER;
use crate::project::{self, Location, ProjectFiles};
pub use staging::Staging;

/// The marker's contents: what the folder is.
const MARKER_TEXT: &str = "This folder holds files written by mage-secrets render (resolved secrets).\nmage-secrets never reads a folder holding this file as templates.\n";

/// The folder mode that goes with a file mode: `x` wherever `r` is set.
pub fn folder_mode(file_mode: u32) -> u32 {
    file_mode | ((file_mode & 0o444) >> 2)
}

/// The real paths of the secret store this run uses: the data dir's own
/// folder, the SQLite database, a key file given by path.
pub fn store_paths(settings: &crate::settings::Settings) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if !settings.data_dir.as_os_str().is_empty() {
        paths.push(project::absolute(&settings.own_dir()));
    }
    if let Ok(crate::settings::DatabaseLocation::Sqlite(db)) = settings.database_location() {
        paths.push(project::absolute(&db));
    }
    if let Some(crate::settings::GivenKey {
        origin: crate::settings::KeyOrigin::File(file),
        ..
    }) = &settings.key
    {
        if file.as_os_str() != "-" {
            paths.push(project::absolute(file));
        }
    }
    paths
}

/// Refuses an output (a folder, or one file's target; `store` from
/// [`store_paths`]) that is, holds or lies in the secret store: replacing
/// or pruning files there could delete the key or the secrets.
pub fn check_spares_store(out: &Path, store: &[PathBuf]) -> Result<()> {
    check_real_spares_store(out, &project::absolute(out), store)
}

/// [`check_spares_store`] for an output whose real path is known.
pub(crate) fn check_real_spares_store(out: &Path, out_abs: &Path, store: &[PathBuf]) -> Result<()> {
    for guarded in store {
        if guarded.starts_with(out_abs) || out_abs.starts_with(guarded) {
            return Err(Error::Usage(format!(
                "output {} would be, hold or lie in the secret store's {}: writing or pruning there could delete the key or the secrets; choose an output outside the data dir's mage-secrets folder, the database and the key file",
                out.display(),
                guarded.display()
            )));
        }
    }
    Ok(())
}

/// Refuses an output folder that would hurt the project's sources: the
/// project itself, one of its ancestors, or a folder holding a file the
/// render reads.
pub fn check_out_dir(project: &ProjectFiles, out: &Path) -> Result<()> {
    let out_abs = project::absolute(out);
    let root = &project.root;
    if out_abs == *root {
        return Err(Error::Usage(format!(
            "--out {} is the project root; rendering there would overwrite the templates. Choose another folder, e.g. --out build/",
            out.display()
        )));
    }
    if root.starts_with(&out_abs) {
        return Err(Error::Usage(format!(
            "--out {} holds the project {} (it is an ancestor of it); rendering there would overwrite the templates. Choose a folder of its own, e.g. --out build/",
            out.display(),
            project.display_path(Path::new("")).display()
        )));
    }
    if out_abs.is_file() {
        return Err(Error::Usage(format!(
            "--out {} is a file; a project renders into a folder",
            out.display()
        )));
    }
    if let Some(read) = project.read.iter().find(|r| r.starts_with(&out_abs)) {
        let shown = read
            .strip_prefix(root)
            .map(|rel| project.display_path(rel))
            .unwrap_or_else(|_| read.clone());
        return Err(Error::Usage(format!(
            "--out {} holds {}, a file this render reads; rendering there would overwrite the templates. Choose a folder of its own; if {} holds earlier outputs of mage-secrets, delete it, or mark it as an output folder with an empty {OUTPUT_MARKER} file",
            out.display(),
            shown.display(),
            out.display()
        )));
    }
    Ok(())
}

/// Whether some folder from `dir` up to `stop` (inclusive) holds an output marker.
fn under_marker(dir: &Path, stop: &Path) -> bool {
    dir.ancestors()
        .take_while(|d| d.starts_with(stop))
        .any(|d| d.join(OUTPUT_MARKER).is_file())
}

/// Where `render FILE --out PATH` writes: the file PATH, or PATH/<name>
/// when PATH is an existing folder or ends in `/`. Refuses the source
/// itself, and a file that a render of the project would read as a
/// template. The second value says whether PATH is a folder (an output
/// root, marked).
pub fn file_target(location: &Location, source: &Path, out: &Path) -> Result<(PathBuf, bool)> {
    let folder = out.is_dir() || out.as_os_str().to_string_lossy().ends_with('/');
    let target = if folder {
        out.join(source.file_name().unwrap_or(source.as_os_str()))
    } else {
        out.to_path_buf()
    };
    let target_abs = project::absolute(&target);
    let source_abs = project::absolute(source);
    if target_abs == source_abs {
        return Err(Error::Usage(format!(
            "--out {} is the file being rendered; rendering there would overwrite the template. Write elsewhere, e.g. --out build/",
            out.display()
        )));
    }
    if fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir()) {
        return Err(Error::Setup(format!(
            "output {} is a folder; remove it or choose another --out",
            target.display()
        )));
    }
    if let Ok(rel) = target_abs.strip_prefix(&location.root) {
        let parent = target_abs.parent().unwrap_or(&location.root);
        // A folder output becomes a marked output root, so its files are
        // never read as templates, unless it is the project (or holds
        // templates already).
        let output_root = folder && parent != location.root.as_path() && !holds_yaml(parent);
        let read_as_template = project::is_yaml(rel)
            && !output_root
            && !project::is_skipped_path(rel)
            && !under_marker(parent, &location.root);
        if read_as_template {
            return Err(Error::Usage(format!(
                "--out {} lies in the project, where the next render would read it as a template (and copy its resolved values); write outside the project or into an output folder, e.g. --out build/",
                out.display()
            )));
        }
    }
    Ok((target, folder))
}

/// Whether a folder that is no output root holds a YAML file (a template).
fn holds_yaml(dir: &Path) -> bool {
    if dir.join(OUTPUT_MARKER).is_file() {
        return false;
    }
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .any(|e| e.file_type().is_file() && project::is_yaml(e.path()))
}

/// What writing one output would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The output does not exist yet.
    New,
    Changed,
    Unchanged,
}

/// One output to write: a path relative to the output root and its bytes.
pub struct OutputFile<'a> {
    pub rel: &'a Path,
    pub bytes: &'a [u8],
}

/// What a write of an output set would do, output by output.
#[derive(Debug, Default)]
pub struct OutputPlan {
    /// Each output with its change, in the order given.
    pub changes: Vec<(PathBuf, Change)>,
    /// Outputs whose source is gone (with `--prune`), relative to the root.
    pub prune: Vec<PathBuf>,
}

impl OutputPlan {
    pub fn count(&self, change: Change) -> usize {
        self.changes.iter().filter(|(_, c)| *c == change).count()
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteSummary {
    pub written: usize,
    pub unchanged: usize,
    pub pruned: usize,
}

/// What writing `bytes` at `target` would do; a folder there is an error.
pub fn change_of(target: &Path, bytes: &[u8]) -> Result<Change> {
    Ok(match fs::symlink_metadata(target) {
        Err(_) => Change::New,
        Ok(meta) if meta.is_dir() => {
            return Err(Error::Setup(format!(
                "output {} is a folder; remove it or choose another --out",
                target.display()
            )))
        }
        Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => {
            match fs::read(target).map(Zeroizing::new) {
                Ok(existing) if existing.as_slice() == bytes => Change::Unchanged,
                _ => Change::Changed,
            }
        }
        Ok(_) => Change::Changed,
    })
}

/// Gives an output left as it was the mode asked for.
pub fn keep_mode(target: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(target) {
        if meta.permissions().mode() & 0o777 != mode {
            fs::set_permissions(target, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("set permissions of", target, e))?;
        }
    }
    Ok(())
}

/// Compares each output with what is on disk, and (with `prune_below`, a
/// folder relative to the output root) lists the files there that no
/// output accounts for.
pub fn plan(
    out: &Path,
    files: &[OutputFile<'_>],
    prune_below: Option<&Path>,
) -> Result<OutputPlan> {
    let changes = crate::parallel::in_parallel(files.len(), |i| {
        change_of(&out.join(files[i].rel), files[i].bytes)
    })
    .into_iter()
    .collect::<Result<Vec<Change>>>()?;
    let mut plan = OutputPlan {
        changes: files
            .iter()
            .zip(changes)
            .map(|(f, c)| (f.rel.to_path_buf(), c))
            .collect(),
        prune: Vec::new(),
    };
    if let Some(below) = prune_below {
        let keep: Vec<&Path> = files.iter().map(|f| f.rel).collect();
        plan.prune = prune_list(out, &keep, below)?;
    }
    Ok(plan)
}

/// The files below `below` (relative to the output root `out`) that no
/// output in `keep` accounts for; refused unless `out` holds the marker.
pub fn prune_list(out: &Path, keep: &[&Path], below: &Path) -> Result<Vec<PathBuf>> {
    check_prunable(out)?;
    let keep: BTreeSet<&Path> = keep.iter().copied().collect();
    let mut prune = Vec::new();
    for entry in walkdir::WalkDir::new(out.join(below))
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .flatten()
    {
        if !entry.file_type().is_file() && !entry.file_type().is_symlink() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(out) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy();
        if rel == Path::new(OUTPUT_MARKER)
            || name.starts_with(fsutil::TEMP_PREFIX)
            || rel.components().next().is_some_and(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .starts_with(fsutil::TEMP_PREFIX)
            })
        {
            continue;
        }
        // A link to a folder the outputs were written through is kept.
        if !keep.contains(rel) && !keep.iter().any(|k| k.starts_with(rel)) {
            prune.push(rel.to_path_buf());
        }
    }
    Ok(prune)
}

/// `--prune` removes files only in a folder a render wrote (its marker).
pub fn check_prunable(out: &Path) -> Result<()> {
    if !out.join(OUTPUT_MARKER).is_file() {
        return Err(Error::Setup(format!(
            "--prune removes files only in a folder mage-secrets rendered into, and {} holds no {OUTPUT_MARKER}; render into it once without --prune",
            out.display()
        )));
    }
    Ok(())
}

/// Removes the planned prunes, and the folders they leave empty.
fn remove_pruned(out: &Path, prune: &[PathBuf]) -> Result<usize> {
    let mut pruned = 0;
    for rel in prune {
        let path = out.join(rel);
        match fs::remove_file(&path) {
            Ok(()) => pruned += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
        // Folders the prune emptied go too.
        for dir in path.ancestors().skip(1) {
            if dir == out || !dir.starts_with(out) || fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    Ok(pruned)
}

/// Writes the marker into an output root, unless it is there.
pub fn mark(out: &Path, mode: u32) -> Result<()> {
    mark_made(out, mode).map(drop)
}

/// [`mark`], saying whether this call made the marker.
pub(crate) fn mark_made(out: &Path, mode: u32) -> Result<bool> {
    let marker = out.join(OUTPUT_MARKER);
    if marker.is_file() {
        return Ok(false);
    }
    match fsutil::write_atomic(
        &marker,
        MARKER_TEXT.as_bytes(),
        mode,
        fsutil::Existing::Keep,
    ) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(false)
        }
        other => other.map(|()| true),
    }
}

/// Whether the process `pid` is alive (or not ours to signal).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The pid a temporary file's name says wrote it (`None`: an older name).
fn temp_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(fsutil::TEMP_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

/// Removes temporary files that a killed run left in an output folder.
/// Temporaries of running processes are left alone; one that vanishes
/// meanwhile (its owner renamed it) is not an error.
pub fn remove_stale_temp_files(out_dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let me = std::process::id() as i32;
    let mut entries = walkdir::WalkDir::new(out_dir)
        .follow_links(false)
        .into_iter();
    while let Some(entry) = entries.next() {
        let Ok(entry) = entry else {
            continue;
        };
        let name = entry.file_name().to_string_lossy();
        if !name.starts_with(fsutil::TEMP_PREFIX) {
            continue;
        }
        let is_dir = entry.file_type().is_dir();
        if is_dir {
            // A staging folder: its files are not temporaries of their own,
            // and its lock (not its pid, which another pid namespace may
            // share) says whether a render holds it.
            entries.skip_current_dir();
            if staging::staging_in_use(entry.path()) {
                continue;
            }
        } else if !entry.file_type().is_file() {
            continue;
        } else {
            match temp_owner(&name) {
                Some(pid) if pid == me || alive(pid) => continue,
                _ => {}
            }
        }
        if is_dir {
            match fs::remove_dir_all(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", entry.path(), e)),
            }
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", entry.path(), e)),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_modes_follow_file_modes() {
        assert_eq!(folder_mode(0o600), 0o700);
        assert_eq!(folder_mode(0o640), 0o750);
        assert_eq!(folder_mode(0o644), 0o755);
    }

    #[test]
    fn temp_names_carry_their_owner() {
        assert_eq!(temp_owner(".mage-secrets-tmp-1234-abcdef"), Some(1234));
        assert_eq!(temp_owner(".mage-secrets-tmp-abcdef"), None);
        assert!(alive(std::process::id() as i32));
    }

    #[test]
    fn stale_temps_of_running_processes_stay() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir
            .path()
            .join(format!("{}{}-x", fsutil::TEMP_PREFIX, std::process::id()));
        // pid 0x7ffffff0 is never a live process on Linux (pid_max is lower).
        let dead = dir
            .path()
            .join(format!("{}{}-x", fsutil::TEMP_PREFIX, 0x7fff_fff0));
        fs::write(&mine, "").unwrap();
        fs::write(&dead, "").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        assert!(mine.exists());
        assert!(!dead.exists());
    }
}
