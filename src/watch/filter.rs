//! Which file events matter to a watch: not reads or metadata changes, not
//! the output folder (the watch's own writes), not skipped folders (`.git`,
//! editors' and tools' folders). Pure: tested on made-up events.

use std::path::{Path, PathBuf};

use notify::event::ModifyKind;
use notify::{Event, EventKind};

use crate::project;

/// The project and output folders, absolute, as events name them.
#[derive(Clone, Debug)]
pub struct EventFilter {
    root_abs: PathBuf,
    /// The folder watched: the project root or a folder below it.
    watched_abs: PathBuf,
    out_abs: PathBuf,
}

impl EventFilter {
    pub fn new(root: &Path, out: &Path) -> EventFilter {
        let root_abs = project::absolute(root);
        EventFilter {
            watched_abs: root_abs.clone(),
            root_abs,
            out_abs: project::absolute(out),
        }
    }

    /// The same filter for a watch of `watched`, a folder below the root:
    /// events elsewhere are not relevant; paths stay root-relative.
    pub fn watching(mut self, watched: &Path) -> EventFilter {
        self.watched_abs = project::absolute(watched);
        self
    }

    /// The absolute folder to watch.
    pub fn root(&self) -> &Path {
        &self.watched_abs
    }

    /// The project-relative paths of an event that may change an output.
    pub fn relevant_paths(&self, event: &Event) -> Vec<PathBuf> {
        match event.kind {
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => Vec::new(),
            _ => event
                .paths
                .iter()
                .filter_map(|p| self.relevant(p))
                .collect(),
        }
    }

    /// The project-relative path of an event path, if it is one we watch.
    pub fn relevant(&self, path: &Path) -> Option<PathBuf> {
        if path.starts_with(&self.out_abs) || !path.starts_with(&self.watched_abs) {
            return None;
        }
        let rel = path.strip_prefix(&self.root_abs).ok()?;
        if rel.as_os_str().is_empty() || project::is_skipped_path(rel) {
            return None;
        }
        Some(rel.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, CreateKind, MetadataKind, ModifyKind, RenameMode};

    fn filter() -> EventFilter {
        EventFilter::new(Path::new("/p"), Path::new("/p/build"))
    }

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    #[test]
    fn edits_creates_and_renames_in_the_project_are_relevant() {
        let f = filter();
        let edit = event(
            EventKind::Modify(ModifyKind::Any),
            &["/p/pipelines/etl/a.yaml"],
        );
        assert_eq!(
            f.relevant_paths(&edit),
            vec![PathBuf::from("pipelines/etl/a.yaml")]
        );
        let create = event(EventKind::Create(CreateKind::File), &["/p/io_config.yaml"]);
        assert_eq!(
            f.relevant_paths(&create),
            vec![PathBuf::from("io_config.yaml")]
        );
        let rename = event(
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &["/p/a.yaml", "/p/b.yaml"],
        );
        assert_eq!(
            f.relevant_paths(&rename),
            vec![PathBuf::from("a.yaml"), PathBuf::from("b.yaml")]
        );
    }

    #[test]
    fn reads_metadata_own_outputs_and_skipped_folders_are_not() {
        let f = filter();
        let read = event(EventKind::Access(AccessKind::Any), &["/p/a.yaml"]);
        assert!(f.relevant_paths(&read).is_empty());
        let chmod = event(
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Permissions)),
            &["/p/a.yaml"],
        );
        assert!(f.relevant_paths(&chmod).is_empty());
        let own = event(EventKind::Modify(ModifyKind::Any), &["/p/build/a.yaml"]);
        assert!(f.relevant_paths(&own).is_empty());
        let git = event(EventKind::Modify(ModifyKind::Any), &["/p/.git/index"]);
        assert!(f.relevant_paths(&git).is_empty());
        let outside = event(EventKind::Modify(ModifyKind::Any), &["/elsewhere/a.yaml"]);
        assert!(f.relevant_paths(&outside).is_empty());
        let root = event(EventKind::Modify(ModifyKind::Any), &["/p"]);
        assert!(f.relevant_paths(&root).is_empty());
    }

    #[test]
    fn a_watched_subfolder_keeps_root_relative_paths() {
        let f = filter().watching(Path::new("/p/pipelines/etl"));
        let inside = event(
            EventKind::Modify(ModifyKind::Any),
            &["/p/pipelines/etl/metadata.yaml", "/p/io_config.yaml"],
        );
        assert_eq!(
            f.relevant_paths(&inside),
            vec![PathBuf::from("pipelines/etl/metadata.yaml")]
        );
        assert_eq!(f.root(), Path::new("/p/pipelines/etl"));
    }
}
