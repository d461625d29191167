//! Which YAML files Mage itself renders with Jinja, so that a pre-deploy
//! render resolves exactly those and leaves every other file as Mage (or dbt)
//! will read it. The rules follow Mage 0.9.80's own reading:
//!
//! | file (project-relative) | read with Jinja by |
//! |---|---|
//! | `io_config.yaml` | `mage_ai/io/config.py` (`ConfigFileLoader`) |
//! | `metadata.yaml` (the project's) | `mage_ai/data_preparation/repo_manager.py` (`RepoConfig`) |
//! | `pipelines/<p>/metadata.yaml` | `mage_ai/data_preparation/models/pipeline.py` (executor type), `executors/k8s_*_executor.py` (namespace) |
//! | `data_loaders/**.yaml`, `data_exporters/**.yaml`, `transformers/**.yaml` | `models/block/data_integration/mixins.py`, `mage_ai/data_integrations/utils/config.py`, `executors/streaming_pipeline_executor.py` |
//! | `interactions/**.yaml` | `mage_ai/presenters/interactions/utils.py` |
//! | `profiles.yml` (dbt) | `mage_ai/data_preparation/models/block/dbt/profiles.py` |
//!
//! A dbt project (a folder holding `dbt_project.yml`) belongs to dbt: its
//! other files are read by dbt with dbt's own Jinja (`var`, `ref`, `config`,
//! dbt's `env_var`), never by Mage's.

use std::path::{Component, Path};

/// The file that marks a dbt project.
pub const DBT_PROJECT_FILE: &str = "dbt_project.yml";

/// Why a YAML file is not rendered by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotRendered {
    /// Inside a dbt project and not its `profiles.yml`: dbt reads it.
    Dbt,
    /// Mage reads it without Jinja (or not at all).
    NotMage,
}

impl NotRendered {
    /// Why, in words, for messages.
    pub fn reason(self) -> &'static str {
        match self {
            NotRendered::Dbt => "it belongs to a dbt project, and dbt reads it with its own Jinja (var, ref, config, dbt's env_var)",
            NotRendered::NotMage => "Mage reads it without Jinja",
        }
    }
}

/// What happens to a selected file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Rendered with Mage's functions.
    Render,
    /// Written to the output byte for byte, never evaluated.
    Copy(NotRendered),
}

/// How a file is treated by default. `mage_project`: the walk found a Mage
/// project root (outside one, every YAML file is taken for a Mage config);
/// `in_dbt`: the file lies inside a dbt project.
pub fn default_role(rel: &Path, mage_project: bool, in_dbt: bool) -> Role {
    let parts: Vec<&str> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => n.to_str(),
            _ => None,
        })
        .collect();
    let Some(name) = parts.last().copied() else {
        return Role::Copy(NotRendered::NotMage);
    };
    if name == "profiles.yml" {
        return Role::Render;
    }
    if in_dbt {
        return Role::Copy(NotRendered::Dbt);
    }
    if !mage_project {
        return Role::Render;
    }
    let yaml = name.ends_with(".yaml");
    let mage = match parts.as_slice() {
        ["io_config.yaml"] | ["metadata.yaml"] => true,
        ["pipelines", _, "metadata.yaml"] => true,
        ["data_loaders" | "data_exporters" | "transformers" | "interactions", .., _] => yaml,
        _ => false,
    };
    if mage {
        Role::Render
    } else {
        Role::Copy(NotRendered::NotMage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(rel: &str) -> Role {
        default_role(Path::new(rel), true, false)
    }

    #[test]
    fn mage_renders_its_own_files_only() {
        for rel in [
            "io_config.yaml",
            "metadata.yaml",
            "pipelines/etl/metadata.yaml",
            "data_loaders/source.yaml",
            "data_exporters/sub/dest.yaml",
            "transformers/t.yaml",
            "interactions/form.yaml",
            "dbt/demo/profiles.yml",
        ] {
            assert_eq!(role(rel), Role::Render, "{rel}");
        }
        for rel in [
            "io_config.yml",
            "pipelines/etl/triggers.yaml",
            "pipelines/etl/blocks/x.yaml",
            "data_loaders/x.yml",
            "custom/settings.yaml",
            "charts/c.yaml",
        ] {
            assert_eq!(role(rel), Role::Copy(NotRendered::NotMage), "{rel}");
        }
    }

    #[test]
    fn dbt_files_belong_to_dbt_except_profiles() {
        let dbt = |rel: &str| default_role(Path::new(rel), true, true);
        assert_eq!(dbt("dbt/demo/profiles.yml"), Role::Render);
        assert_eq!(
            dbt("dbt/demo/dbt_project.yml"),
            Role::Copy(NotRendered::Dbt)
        );
        assert_eq!(
            dbt("dbt/demo/models/example/schema.yml"),
            Role::Copy(NotRendered::Dbt)
        );
        // Loose YAML outside a Mage project is taken for config.
        assert_eq!(
            default_role(Path::new("conf/a.yaml"), false, false),
            Role::Render
        );
        assert_eq!(
            default_role(Path::new("d/schema.yml"), false, true),
            Role::Copy(NotRendered::Dbt)
        );
    }
}
