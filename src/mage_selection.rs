//! Which YAML files Mage itself renders with Jinja, so that a pre-deploy
//! render resolves exactly those and leaves every other file as Mage (or dbt)
//! will read it. The rules follow Mage 0.9.80's own reading:
//!
//! | file (project-relative) | read with Jinja by |
//! |---|---|
//! | `io_config.yaml` | `mage_ai/io/config.py` (`ConfigFileLoader`) |
//! | `metadata.yaml` (the project's) | `mage_ai/data_preparation/repo_manager.py` (`RepoConfig`) |
//! | `pipelines/<p>/metadata.yaml`, when its Jinja lies only in the fields Mage renders | `models/pipeline.py` (`executor_type`), `executors/k8s_pipeline_executor.py` (`executor_config.namespace`), `models/block/__init__.py` (`blocks[].executor_type`), `executors/k8s_block_executor.py` (`blocks[].executor_config.namespace`), `models/block/dbt/block*.py` (`blocks[].configuration.dbt_profile_target`), `models/block/sql/__init__.py` (`blocks[].configuration.data_provider_profile`) |
//! | `data_loaders/**.yaml`, `data_exporters/**.yaml` | `models/block/data_integration/mixins.py`, `mage_ai/data_integrations/utils/config.py`, `executors/streaming_pipeline_executor.py` |
//! | `dbts/**.yaml` (dbt command blocks) | `models/block/dbt/block_yaml.py` (`interpolate_content`, `block/content.py`) |
//! | `interactions/**.yaml` | `mage_ai/presenters/interactions/utils.py` |
//! | `profiles.yml` in a dbt project's folder | `mage_ai/data_preparation/models/block/dbt/profiles.py` |
//!
//! A dbt project (a folder holding `dbt_project.yml` or `dbt_project.yaml`)
//! belongs to dbt: its other files are read by dbt with dbt's own Jinja
//! (`var`, `ref`, `config`, dbt's `env_var`), never by Mage's — except
//! Mage's own files above when the dbt project is the Mage project root.

use std::path::{Component, Path};

use crate::diagnostic::{Diagnostic, Kind};
use crate::template::raw_fields::{self, Seg};

/// The files that mark a dbt project (`cache/dbt/constants.py`).
pub const DBT_PROJECT_FILES: [&str; 2] = ["dbt_project.yml", "dbt_project.yaml"];

/// Whether `dir` is a dbt project's folder.
pub fn is_dbt_project(dir: &Path) -> bool {
    DBT_PROJECT_FILES.iter().any(|f| dir.join(f).is_file())
}

/// Where a file lies with respect to dbt projects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DbtPlace {
    /// A folder at or above the file's own holds a dbt project file.
    pub inside: bool,
    /// The file's own folder is that dbt project's folder.
    pub project_folder: bool,
    /// That dbt project is the Mage project root itself.
    pub at_root: bool,
}

/// Why a YAML file is not rendered by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRendered {
    /// Inside a dbt project and not its `profiles.yml`: dbt reads it.
    Dbt,
    /// Mage reads it without Jinja (or not at all).
    NotMage,
    /// A `profiles.yml` outside a dbt project's own folder.
    Profiles,
    /// A pipeline's `metadata.yaml` with Jinja outside the fields Mage renders.
    PipelineFields,
}

impl NotRendered {
    /// Why, in words, for messages.
    pub fn reason(self) -> &'static str {
        match self {
            NotRendered::Dbt => "it belongs to a dbt project, and dbt reads it with its own Jinja (var, ref, config, dbt's env_var)",
            NotRendered::NotMage => "Mage reads it without Jinja",
            NotRendered::Profiles => "Mage reads a profiles.yml only from a dbt project's own folder (the one holding dbt_project.yml), and this folder is none",
            NotRendered::PipelineFields => PIPELINE_FIELDS_REASON,
        }
    }
}

const PIPELINE_FIELDS_REASON: &str = "Mage loads a pipeline's metadata.yaml without Jinja and renders only executor_type, executor_config.namespace, blocks[].executor_type, blocks[].executor_config.namespace, blocks[].configuration.dbt_profile_target and blocks[].configuration.data_provider_profile";

/// What happens to a selected file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Rendered with Mage's functions.
    Render,
    /// Written to the output byte for byte, never evaluated.
    Copy(NotRendered),
}

fn parts(rel: &Path) -> Vec<&str> {
    rel.components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect()
}

/// Whether `rel` (from a Mage project root) is one of the files Mage renders.
fn is_mage_file(parts: &[&str]) -> bool {
    let yaml = parts.last().is_some_and(|n| n.ends_with(".yaml"));
    match parts {
        ["io_config.yaml"] | ["metadata.yaml"] => true,
        ["pipelines", _, "metadata.yaml"] => true,
        ["data_loaders" | "data_exporters" | "dbts" | "interactions", .., _] => yaml,
        _ => false,
    }
}

/// Whether `rel` is a pipeline's `metadata.yaml`.
pub fn is_pipeline_metadata(rel: &Path) -> bool {
    matches!(parts(rel).as_slice(), ["pipelines", _, "metadata.yaml"])
}

/// Whether `rel` is a dbt command block (`dbts/…`), whose text is shell
/// words, not YAML.
pub fn is_dbt_command_block(rel: &Path) -> bool {
    matches!(parts(rel).as_slice(), ["dbts", .., _])
}

/// Folders of a Mage project that hold Mage's code blocks, never dbt's.
const MAGE_BLOCK_FOLDERS: &[&str] = &[
    "pipelines",
    "data_loaders",
    "data_exporters",
    "transformers",
    "custom",
    "sensors",
    "callbacks",
    "conditionals",
    "dbts",
    "interactions",
    "extensions",
];

/// Whether a SQL or Python file at `rel` is dbt's (a model, a macro), not
/// one of Mage's blocks.
pub fn is_dbt_code(rel: &Path, dbt: DbtPlace) -> bool {
    let parts = parts(rel);
    let mage = parts.len() > 1 && MAGE_BLOCK_FOLDERS.contains(&parts[0]);
    dbt.inside && !(dbt.at_root && mage)
}

/// How a file is treated by default. `mage_project`: the walk found a Mage
/// project root (outside one, every YAML file is taken for a Mage config);
/// `dbt`: where the file lies with respect to dbt projects.
pub fn default_role(rel: &Path, mage_project: bool, dbt: DbtPlace) -> Role {
    let parts = parts(rel);
    let Some(name) = parts.last().copied() else {
        return Role::Copy(NotRendered::NotMage);
    };
    // In a Mage project, only the profiles.yml in a dbt project's own folder
    // is Mage's; outside one, a loose profiles.yml is a config like any.
    if name == "profiles.yml" && (mage_project || dbt.inside) {
        return if dbt.project_folder {
            Role::Render
        } else {
            Role::Copy(NotRendered::Profiles)
        };
    }
    let mage = mage_project && is_mage_file(&parts);
    if dbt.inside && !(dbt.at_root && mage) {
        return Role::Copy(NotRendered::Dbt);
    }
    if !mage_project || mage {
        Role::Render
    } else {
        Role::Copy(NotRendered::NotMage)
    }
}

/// The fields of a pipeline's `metadata.yaml` that Mage renders.
fn rendered_pipeline_field(path: &[Seg]) -> bool {
    let keys: Vec<Option<&str>> = path
        .iter()
        .map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    matches!(
        keys.as_slice(),
        [Some("executor_type")]
            | [Some("executor_config"), Some("namespace")]
            | [Some("blocks"), None, Some("executor_type")]
            | [
                Some("blocks"),
                None,
                Some("executor_config"),
                Some("namespace")
            ]
            | [
                Some("blocks"),
                None,
                Some("configuration"),
                Some("dbt_profile_target" | "data_provider_profile")
            ]
    )
}

/// The warning for a pipeline's `metadata.yaml` whose Jinja does not all
/// lie in the fields Mage renders (then the file is copied as it is): where
/// the first such construct is, and in which field.
pub fn pipeline_fields_warning(source: &str) -> Option<Diagnostic> {
    let outside = raw_fields::first_outside(source, rendered_pipeline_field)?;
    Some(
        Diagnostic::warning(
            Kind::NotRendered,
            format!(
                "Jinja in {}, {}: {PIPELINE_FIELDS_REASON}. This file is copied as it is (not rendered), so Mage sees this text unresolved",
                outside.place, outside.why
            ),
        )
        .at_offset(source, outside.offset)
        .with_help("keep Jinja to the fields Mage renders (put secrets in io_config.yaml), or render the file anyway with --include GLOB".to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_DBT: DbtPlace = DbtPlace {
        inside: false,
        project_folder: false,
        at_root: false,
    };

    fn role(rel: &str) -> Role {
        default_role(Path::new(rel), true, NO_DBT)
    }

    #[test]
    fn mage_renders_its_own_files_only() {
        for rel in [
            "io_config.yaml",
            "metadata.yaml",
            "pipelines/etl/metadata.yaml",
            "data_loaders/source.yaml",
            "data_exporters/sub/dest.yaml",
            "dbts/run.yaml",
            "interactions/form.yaml",
        ] {
            assert_eq!(role(rel), Role::Render, "{rel}");
        }
        for rel in [
            "io_config.yml",
            "pipelines/etl/triggers.yaml",
            "pipelines/etl/blocks/x.yaml",
            "data_loaders/x.yml",
            "transformers/t.yaml",
            "custom/settings.yaml",
            "charts/c.yaml",
        ] {
            assert_eq!(role(rel), Role::Copy(NotRendered::NotMage), "{rel}");
        }
        assert_eq!(role("dbt/profiles.yml"), Role::Copy(NotRendered::Profiles));
        // Outside a Mage project a loose profiles.yml is a config like any.
        assert_eq!(
            default_role(Path::new("conf/profiles.yml"), false, NO_DBT),
            Role::Render
        );
    }

    #[test]
    fn dbt_files_belong_to_dbt_except_profiles() {
        let inside = DbtPlace {
            inside: true,
            ..NO_DBT
        };
        let home = DbtPlace {
            project_folder: true,
            ..inside
        };
        let dbt = |rel: &str, place| default_role(Path::new(rel), true, place);
        assert_eq!(dbt("dbt/demo/profiles.yml", home), Role::Render);
        assert_eq!(
            dbt("dbt/demo/sub/profiles.yml", inside),
            Role::Copy(NotRendered::Profiles)
        );
        assert_eq!(
            dbt("dbt/demo/dbt_project.yml", home),
            Role::Copy(NotRendered::Dbt)
        );
        assert_eq!(
            dbt("dbt/demo/models/example/schema.yml", inside),
            Role::Copy(NotRendered::Dbt)
        );
        // A dbt project at the Mage root leaves Mage's files to Mage.
        let root = DbtPlace {
            at_root: true,
            ..inside
        };
        assert_eq!(dbt("io_config.yaml", root), Role::Render);
        assert_eq!(dbt("models/schema.yml", root), Role::Copy(NotRendered::Dbt));
        assert!(!is_dbt_code(Path::new("data_loaders/a.py"), root));
        assert!(is_dbt_code(Path::new("models/a.sql"), root));
        // Loose YAML outside a Mage project is taken for config.
        assert_eq!(
            default_role(Path::new("conf/a.yaml"), false, NO_DBT),
            Role::Render
        );
        assert_eq!(
            default_role(Path::new("d/schema.yml"), false, inside),
            Role::Copy(NotRendered::Dbt)
        );
    }

    #[test]
    fn pipeline_metadata_renders_only_with_jinja_in_mage_fields() {
        let ok = "executor_type: \"{{ env_var('E') }}\"\nexecutor_config:\n  namespace: \"{{ mage_secret_var('ns') }}\"\nblocks:\n- uuid: a\n  configuration:\n    dbt_profile_target: \"{{ env_var('T') }}\"\n";
        assert!(pipeline_fields_warning(ok).is_none());
        let bad = "name: etl\nblocks:\n- uuid: a\n  configuration:\n    file_path: \"{{ mage_secret_var('p') }}\"\n";
        let w = pipeline_fields_warning(bad).unwrap();
        assert_eq!((w.line, w.col), (Some(5), Some(17)));
        assert!(
            w.message.contains("`blocks[0].configuration.file_path`"),
            "{}",
            w.message
        );
    }
}
