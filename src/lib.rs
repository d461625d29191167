//! `mage-secrets`: an encrypted secret store and a config preprocessor for
//! Mage projects.
//!
//! ```no_run
//! use mage_secrets::{Environment, Settings};
//! let env = Environment::open(&Settings::from_env()?)?;
//! let value: Option<String> = env.get_secret_value("secret1")?;
//! # Ok::<(), mage_secrets::Error>(())
//! ```

pub mod check;
pub mod crypto;
mod data_dir;
pub mod database_record;
pub mod diagnostic;
pub mod doctor;
mod environment;
pub mod environment_name;
pub mod error;
pub mod fsutil;
pub mod mage_import;
pub mod mage_selection;
pub mod output;
pub mod parallel;
pub mod postgres_url;
pub mod project;
pub mod python_blocks;
pub mod render;
pub mod review;
pub mod secret;
pub mod settings;
pub mod store;
pub mod template;
pub mod watch;

pub use environment::{Environment, EnvironmentInfo, Resolved};
pub use error::{Error, ExitCode, Result};
pub use secret::{Scope, SecretValue};
pub use settings::Settings;

/// Mage's `get_secret_value(name)`: opens the environment named by the
/// process (`MAGE_DATA_DIR`, `MAGE_SECRETS_DATABASE`, else `~/.mage_data`)
/// and returns the global secret `name`, if set.
pub fn get_secret_value(name: &str) -> Result<Option<String>> {
    Environment::open(&Settings::from_env()?)?.get_secret_value(name)
}
